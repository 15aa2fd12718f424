/**
 * @packageDocumentation
 * labwire's live monitor: Prometheus `/metrics` (prom-client, `labwire_*` families), `/healthz`,
 * `/readyz`, and a live page at `/` where you watch services and simulators being driven. It
 * learns about traffic from the serving kernel's `diagnostics_channel` events; servers carry no
 * metrics code. Binds 127.0.0.1; checks `Host` and `Origin` on every request; anything beyond
 * loopback needs a token.
 *
 * @example
 * ```ts
 * import { Monitor } from '@labwire/monitor'
 * import { loadDevice, SimulatorServer } from '@labwire/simulator'
 *
 * const simulator = new SimulatorServer({ device: await loadDevice('psu.yaml'), port: 0 })
 * await simulator.listen()
 * const monitor = new Monitor({ port: 0 })
 * monitor.addService({ name: 'psu', simulator })
 * const { port } = await monitor.listen()
 * console.log(`open http://127.0.0.1:${port}/`)
 * ```
 */
export { Monitor, MonitorConfigError, type MonitorOptions, type MonitoredService, type MonitorSnapshot, type ServiceState, type ConnectionView } from './monitor.js'
export { MonitorMetrics, ServiceStats, RequestDelta, DURATION_BUCKETS, MAX_COMMANDS, type RequestDeltaData, type RequestSample, type ServicePoint, type ProcessPoint } from './metrics.js'
export { subscribeServerEvents, CHANNELS, type ServerEventSink } from './events.js'
export { checkRequest, isLoopbackHost, type GuardOptions, type GuardedRequest, type Refusal } from './guard.js'
