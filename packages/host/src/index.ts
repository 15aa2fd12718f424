/**
 * @packageDocumentation
 * labwire's service host: a lab's simulators, services and instrument gateways from one config
 * file — speedysvc's `.ini` shape (`[defaults]`, a section per service, `import_from`,
 * `min_proc_num`/`max_proc_num`, `wait_until_completed`, …) or the same model in YAML/JSON —
 * booted in file order, in this process or in `node:cluster` workers, reloaded and drained.
 * The `labwire serve` command is this package behind a command line.
 *
 * @example
 * ```ts
 * import { loadConfig, ServiceHost } from '@labwire/host'
 *
 * const host = new ServiceHost(await loadConfig('examples/serve/lab.ini'), { mode: 'inprocess' })
 * await host.start()
 * for (const { service, address } of host.addresses()) console.log(service, address.url)
 * await host.close({ drain: 2_000 })
 * ```
 */
export * from './errors.js'
export { loadConfig, parseConfig, envName, nearest, TRANSPORTS, FRAMERS, CODECS, type HostConfig, type ServiceConfig, type MonitorConfig, type AccessConfig, type LoadConfigOptions, type TransportName, type FramerName, type CodecName, type ReplyRule } from './config.js'
export { ServiceHost, type HostMode, type HostEvent, type ServiceHostOptions, type ReloadResult } from './host.js'
export { Gateway, parseInstrumentResource, ResourceFormatError, type GatewayOptions, type InstrumentAddress } from './gateway.js'
export { startService, resolveService, locateImport, type ServiceAddress, type StartedService, type StartServiceOptions, type Served } from './service.js'
export { WorkerPool, defaultWorkerScript, type ScaleOptions, type WorkerPoolOptions } from './pool.js'
export { framerByName, marshallerByName } from './framing.js'
export { serviceLogger, type LogOptions } from './logger.js'
export { activatedSockets, assignSockets, LISTEN_FDS_START, type ActivatedSocket } from './activation.js'
