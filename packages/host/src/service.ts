import { existsSync, readFileSync, statSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { pathToFileURL } from 'node:url'
import { ApplicationServer } from '@labwire/application'
import { isConnectionHandler, type ByteHandler, type ConnectionHandler, type Logger } from '@labwire/core'
import { NatsServer, rpcEndpoints } from '@labwire/nats'
import { RpcServer, type Handlers, type RpcProtocol, type ServiceSpec } from '@labwire/rpc'
import { loadDevices, SimulatorServer, type Device } from '@labwire/simulator'
import { StdioServer } from '@labwire/transport-stdio'
import { TcpServer } from '@labwire/transport-tcp'
import { telnetServerFilter } from '@labwire/transport-telnet'
import { UdpServer } from '@labwire/transport-udp'
import { WebSocketServer } from '@labwire/transport-websocket'
import type { ServiceConfig } from './config.js'
import { ServiceStartError } from './errors.js'
import { marshallerByName } from './framing.js'
import { Gateway, parseInstrumentResource } from './gateway.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a device of any state
type AnyDevice = Device<any>

/** Where a started service listens. */
export interface ServiceAddress {
  transport: ServiceConfig['transport']
  host: string
  port: number
  path?: string
  /** `tcp://127.0.0.1:5025`, `ws://…/endpoint`, `unix:/path`, `stdio`. */
  url: string
}

/** What a service serves, before a transport is chosen. */
export interface Served {
  /** The `ByteHandler` (or `ConnectionHandler`: an RpcServer); absent for a device, which its own server serves. */
  handler?: ByteHandler | ConnectionHandler
  device?: AnyDevice
  /** What it is, for logs: `device "dmm" from dmm.yaml`. */
  what: string
  /** A port the export itself names (speedysvc's `port` on the server class). */
  port?: number
  /** An RPC service's spec and handlers (served per method as NATS endpoints under `transport = nats`). */
  rpc?: { service: ServiceSpec; handlers: Handlers<ServiceSpec> }
  close(): Promise<void>
}

interface Listener {
  listen(): Promise<{ host: string; port: number; path?: string }>
  /** Servers on the serving kernel take `drain`; the others close at once. */
  close(options?: { drain?: number }): Promise<void>
}

/** A service serving on its transport in this process. */
export interface StartedService {
  readonly config: ServiceConfig
  readonly address: ServiceAddress
  /** Stop accepting, give in-flight requests up to `drain` ms, close. Resolves `true` when nothing had to be cut. */
  close(options?: { drain?: number }): Promise<boolean>
  /** A stdio service: resolves when its input ends. */
  readonly done?: Promise<void>
  /** The transport server it listens on (its `kernel` names its events), when it has one. */
  readonly server?: object
  /** The simulator server, when the service is a simulated device served by `SimulatorServer`. */
  readonly simulator?: SimulatorServer
}

/** Options for {@link startService}. */
export interface StartServiceOptions {
  logger: Logger
  /** Replace the configured port (the CLI's `-p`). */
  port?: number
  /** Serve on this inherited listening socket (systemd socket activation) instead of binding. */
  fd?: number
  /** For `transport = stdio`: the streams. Default the process's. */
  stdin?: NodeJS.ReadableStream
  stdout?: NodeJS.WritableStream
}

const EXTENSIONS = ['', '.js', '.mjs', '.cjs', '.yaml', '.yml', '/index.js', '/index.mjs']
const DEVICE_FILE = /\.ya?ml$/i

/** Find `import_from` on disk (speedysvc names modules without an extension). A package specifier is returned as is. */
export function locateImport(spec: string): string {
  if (!spec.startsWith('/') && !/^[A-Za-z]:[\\/]/.test(spec)) return spec
  for (const ext of EXTENSIONS) {
    const candidate = spec + ext
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate
  }
  throw new Error(`import_from: no file ${spec}{${EXTENSIONS.filter(Boolean).join(',')}}`)
}

function isDevice(value: unknown): value is AnyDevice {
  return typeof value === 'object' && value !== null && typeof (value as { handler?: unknown }).handler === 'function' && typeof (value as { name?: unknown }).name === 'string' && typeof (value as { start?: unknown }).start === 'function'
}

function isHandlerObject(value: unknown): value is { handle(bytes: AsyncIterator<Uint8Array>): Promise<Uint8Array | undefined> } {
  return typeof value === 'object' && value !== null && typeof (value as { handle?: unknown }).handle === 'function'
}

/** Load what a service serves: a device file, a module's export, or a gateway to an instrument. */
export async function resolveService(config: ServiceConfig, logger: Logger): Promise<Served> {
  if (config.resource !== undefined) {
    const instrument = parseInstrumentResource(config.resource)
    const gateway = new Gateway({ instrument, timeout: config.timeout, lockLease: config.lockLease, lockWait: config.lockWait, reply: config.reply, logger })
    return { handler: gateway, what: `gateway to ${config.resource}`, close: () => gateway.close() }
  }
  const file = locateImport(config.importFrom as string)
  if (DEVICE_FILE.test(file)) return deviceFromFile(file, config)
  const module = (await import(file.startsWith('/') ? pathToFileURL(file).href : file)) as Record<string, unknown>
  const candidates = config.export !== undefined ? [config.export] : [config.name, 'default', 'service', 'device', 'handler']
  const key = candidates.find((name) => module[name] !== undefined)
  if (key === undefined) throw new Error(`${file} has no ${candidates.map((c) => `"${c}"`).join(' or ')} export (exports: ${Object.keys(module).join(', ') || 'none'})`)
  let exported = module[key]
  const what = `export "${key}" of ${file}`
  // A class (speedysvc's server class, an ApplicationServer subclass): instantiate it.
  if (typeof exported === 'function' && typeof (exported as { prototype?: { handle?: unknown } }).prototype?.handle === 'function') {
    exported = new (exported as new () => unknown)()
  }
  const ownPort = (exported as { port?: unknown } | null)?.port
  const port = typeof ownPort === 'number' && Number.isInteger(ownPort) ? ownPort : undefined
  const base = { what, ...(port === undefined ? {} : { port }) }
  if (isDevice(exported)) return { ...base, device: exported, close: () => Promise.resolve() }
  // { service, handlers, protocol? }: an RPC service and its handlers, served by an RpcServer.
  if (typeof exported === 'object' && exported !== null && 'service' in exported && 'handlers' in exported) {
    const rpc = exported as { service: ServiceSpec; handlers: Handlers<ServiceSpec>; protocol?: RpcProtocol }
    const server = new RpcServer(rpc.service, rpc.handlers, { allowInsecureCodecs: config.allowInsecureSerialisation, logger, ...(rpc.protocol === undefined ? {} : { protocol: rpc.protocol }) })
    return { ...base, what: `RPC service "${rpc.service.name}" (${what})`, handler: server, rpc: { service: rpc.service, handlers: rpc.handlers }, close: () => Promise.resolve() }
  }
  // An RpcServer (or any ConnectionHandler) built by the module itself.
  if (isConnectionHandler(exported)) return { ...base, handler: exported, close: () => Promise.resolve() }
  if (isHandlerObject(exported)) {
    if (config.framerIn !== undefined) throw new Error(`${what} is a ByteHandler (it frames its own bytes): framer/framer_in apply to a request function only`)
    return { ...base, handler: exported, close: () => Promise.resolve() }
  }
  if (typeof exported === 'function') {
    if (config.framerIn === undefined) {
      // No framer: a ByteHandler function, (bytes) => reply.
      return { ...base, handler: exported as ByteHandler, close: () => Promise.resolve() }
    }
    // A framer: a request function, (request) => reply, wrapped in an ApplicationServer.
    const input = marshallerByName(config.framerIn, config.codecIn)
    const output = marshallerByName(config.framerOut ?? config.framerIn, config.codecOut ?? config.codecIn)
    const server = new ApplicationServer<unknown, unknown>(input.unmarshall, output.marshall, exported as (request: unknown) => unknown)
    return { ...base, handler: server, close: () => Promise.resolve() }
  }
  throw new Error(`${what} is not a Device, a ByteHandler, an ApplicationServer, a request function or { service, handlers }`)
}

async function deviceFromFile(file: string, config: ServiceConfig): Promise<Served> {
  const loaded = await loadDevices(file)
  const wanted = config.device
  let deviceName: string | undefined
  let resource = wanted === undefined ? undefined : loaded.resources.find((r) => r.name === wanted)
  if (wanted !== undefined) deviceName = loaded.devices.has(wanted) ? wanted : resource?.device
  else if (loaded.devices.has(config.name)) deviceName = config.name
  else if (loaded.devices.size === 1) deviceName = [...loaded.devices.keys()][0]
  if (deviceName === undefined) {
    throw new Error(`${file}: ${wanted === undefined ? `${loaded.devices.size} devices and none named "${config.name}"; pick one with device = NAME` : `no device or resource named "${wanted}"`} (devices: ${[...loaded.devices.keys()].join(', ')})`)
  }
  resource ??= loaded.resources.find((r) => r.device === deviceName)
  const definition = loaded.devices.get(deviceName)
  if (definition === undefined) throw new Error(`${file}: resource names device "${deviceName}", which the file does not define`)
  const device = definition.create({ ...(config.eom === undefined ? {} : { eom: config.eom }), ...(resource === undefined ? {} : { resource }) })
  return { device, what: `device "${deviceName}" from ${file}`, close: () => Promise.resolve() }
}

/** Resolve a service and serve it on its transport. Rejects with {@link ServiceStartError}. */
export async function startService(config: ServiceConfig, options: StartServiceOptions): Promise<StartedService> {
  const { logger } = options
  let served: Served
  try {
    served = await resolveService(config, logger)
  } catch (error) {
    throw new ServiceStartError(config.name, error instanceof Error ? error.message : String(error), { cause: error })
  }
  const port = options.port ?? config.port ?? served.port ?? 0
  const access = config.access.maxSessions === undefined && config.access.exclusive === undefined ? undefined : config.access
  const common = {
    logger,
    ...(access === undefined ? {} : { access }),
    ...(config.idleTimeout === undefined ? {} : { idleTimeout: config.idleTimeout }),
    ...(config.requestTimeout === undefined ? {} : { requestTimeout: config.requestTimeout }),
  }
  const device = served.device
  const handler = served.handler ?? device?.handler()
  if (handler === undefined) throw new ServiceStartError(config.name, 'nothing to serve')
  let listener: Listener
  let stdio: StdioServer | undefined
  const inherited = options.fd === undefined ? {} : { fd: options.fd }
  if (options.fd !== undefined && !['tcp', 'telnet', 'tls', 'unix'].includes(config.transport)) {
    await served.close()
    throw new ServiceStartError(config.name, `socket activation: transport ${config.transport} cannot serve an inherited socket (tcp, telnet, tls and unix can)`)
  }
  let natsServer: NatsServer | undefined
  try {
    switch (config.transport) {
      case 'tcp':
      case 'telnet':
        // A device with a login greets each client on connect: SimulatorServer does that (and
        // socket-level faults); every other service is served on the kernel-backed TcpServer
        // (drain, access), Telnet as TCP plus the Telnet codec filter.
        if (options.fd !== undefined && device?.greeting() !== undefined) throw new Error('socket activation: a device that greets its clients (a login) is served by SimulatorServer, which binds its own socket')
        listener = device?.greeting() !== undefined
          ? new SimulatorServer({ device: device, host: config.host, port, logger, ...(config.access.maxSessions === undefined ? {} : { maxConnections: config.access.maxSessions }), ...(config.transport === 'telnet' ? { telnet: true } : {}) })
          : new TcpServer({ host: config.host, port, callback: handler, ...common, ...inherited, ...(config.transport === 'telnet' ? { filter: telnetServerFilter({}) } : {}) })
        break
      case 'tls':
        listener = new TcpServer({ host: config.host, port, callback: handler, tls: { cert: readFileSync(config.tlsCert as string), key: readFileSync(config.tlsKey as string) }, ...common, ...inherited })
        break
      case 'unix':
        listener = new TcpServer({ path: config.path as string, callback: handler, ...common, ...inherited })
        break
      case 'udp':
        listener = new UdpServer({ host: config.host, port, callback: handler, ...common })
        break
      case 'websocket':
        listener = new WebSocketServer({ host: config.host, port, callback: handler, ...(config.endpoint === undefined ? {} : { path: config.endpoint }), ...common })
        break
      case 'nats': {
        // Published as a NATS micro service (ADR-32), queue group `q`: instances on several hosts
        // share the load. An RPC service is published per method under its spec's name (what
        // connectNatsRpc calls); anything else is one endpoint under the section's name.
        const rpc = served.rpc
        if (rpc === undefined && isConnectionHandler(handler)) throw new Error('a ConnectionHandler export cannot be served over NATS: export { service, handlers } for an RPC service')
        const nats = new NatsServer({
          servers: config.natsServers ?? [],
          name: rpc?.service.name ?? config.name,
          logger,
          ...(rpc === undefined ? { callback: handler } : { endpoints: rpcEndpoints(rpc.service, rpc.handlers, { allowInsecureCodecs: config.allowInsecureSerialisation }) }),
        })
        listener = {
          listen: async () => {
            await nats.listen()
            return { host: '', port: 0 }
          },
          close: (closeOptions) => nats.close(closeOptions),
        }
        natsServer = nats
        break
      }
      case 'stdio':
        stdio = new StdioServer({ callback: handler, logger, ...(options.stdin === undefined ? {} : { input: options.stdin as never }), ...(options.stdout === undefined ? {} : { output: options.stdout as never }) })
        listener = { listen: () => Promise.resolve({ host: '', port: 0 }), close: () => (stdio as StdioServer).close() }
        break
    }
  } catch (error) {
    await served.close()
    throw new ServiceStartError(config.name, error instanceof Error ? error.message : String(error), { cause: error })
  }
  // SimulatorServer starts and stops its device; on any other server the host does.
  const ownsDevice = device !== undefined && !(listener instanceof SimulatorServer)
  if (ownsDevice) device.start()
  let bound: { host: string; port: number; path?: string }
  try {
    bound = await listener.listen()
  } catch (error) {
    if (ownsDevice) device.stop()
    await served.close()
    throw new ServiceStartError(config.name, `cannot listen: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
  }
  const done = stdio?.serve().catch((error: unknown) => logger.error({ err: error }, 'stdio serving failed'))
  const address = addressOf(config, bound)
  logger.info({ url: address.url, what: served.what, transport: config.transport }, 'listening')
  let closing: Promise<boolean> | undefined
  return {
    config,
    address,
    ...(done === undefined ? {} : { done }),
    server: stdio ?? natsServer ?? listener,
    ...(listener instanceof SimulatorServer ? { simulator: listener } : {}),
    close: (closeOptions = {}) => {
      closing ??= (async () => {
        const drain = closeOptions.drain ?? 0
        // The kernel cuts what is still in flight at the deadline: a close that took the whole
        // deadline was not clean. (SimulatorServer and StdioServer close at once.)
        const started = performance.now()
        await listener.close(drain > 0 ? { drain } : {})
        const clean = drain === 0 || performance.now() - started < drain - 1
        if (ownsDevice) device.stop()
        await served.close()
        logger.info({ clean }, 'closed')
        return clean
      })()
      return closing
    },
  }
}

function addressOf(config: ServiceConfig, bound: { host: string; port: number; path?: string }): ServiceAddress {
  const host = bound.host.includes(':') ? `[${bound.host}]` : bound.host
  const scheme = { tcp: 'tcp', telnet: 'telnet', tls: 'tls', udp: 'udp', websocket: 'ws' }
  let url: string
  if (config.transport === 'nats') url = `nats://${(config.natsServers?.[0] ?? '127.0.0.1:4222').replace(/^nats:\/\//, '')}/${config.name}`
  else if (config.transport === 'unix') url = `unix:${config.path as string}`
  else if (config.transport === 'stdio') url = 'stdio'
  else url = `${scheme[config.transport]}://${host}:${bound.port}${config.transport === 'websocket' ? (config.endpoint ?? '/') : ''}`
  return { transport: config.transport, host: bound.host, port: bound.port, url, ...(config.path === undefined ? {} : { path: config.path }) }
}
