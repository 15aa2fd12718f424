import type { Logger, ServerAddress } from '@labwire/core'
import { Monitor, type RequestDeltaData } from '@labwire/monitor'
import type { SimulatorServer } from '@labwire/simulator'
import { RegistryClient, RegistryRegistration } from '@labwire/registry'
import { assignSockets, type ActivatedSocket } from './activation.js'
import type { HostConfig, ServiceConfig } from './config.js'
import { ServiceStartError } from './errors.js'
import { serviceLogger, type LogOptions } from './logger.js'
import { WorkerPool, type ScaleOptions } from './pool.js'
import { startService, type ServiceAddress, type StartedService } from './service.js'

/**
 * How services run. `inprocess`: all in this process (RPyC's threaded server). `cluster`: every
 * service that can, in `node:cluster` workers between `min_proc_num` and `max_proc_num` (RPyC's
 * forking server). `auto` (default): workers only for services with `max_proc_num > 1`. Gateways,
 * UDP and stdio services always run in this process.
 */
export type HostMode = 'auto' | 'inprocess' | 'cluster'

/** What the host reports while it works (also logged). */
export type HostEvent =
  | { type: 'starting'; service: string }
  | { type: 'listening'; service: string; address: ServiceAddress; workers?: number }
  | { type: 'failed'; service: string; error: Error }
  | { type: 'stopped'; service: string; clean: boolean }
  | { type: 'worker'; service: string; event: 'spawn' | 'ready' | 'exit' | 'retire' | 'grow' | 'shrink'; pid: number; reason?: string; workers: number }

/** Options for {@link ServiceHost}. */
export interface ServiceHostOptions {
  mode?: HostMode
  /** Where logs go (per service: its `log_dir`, else this fd). */
  log?: LogOptions
  /** A logger per service instead of pino (tests, embedding). */
  loggerFor?: (service: ServiceConfig) => Logger
  /** Override the port of the one service (the CLI's `-p`; an error with several services). */
  port?: number
  /** Called for every {@link HostEvent}. */
  onEvent?: (event: HostEvent) => void
  /** The worker entry for cluster mode. Default: this package's built `dist/worker.js`. */
  workerScript?: string
  /** The scale rule's thresholds (see {@link ScaleOptions}). */
  scale?: Partial<ScaleOptions>
  /** For a stdio service: the streams. */
  stdin?: NodeJS.ReadableStream
  stdout?: NodeJS.WritableStream
  /** Serve the config's `[web monitor]` section (default true when the config has one). */
  monitor?: boolean
  /**
   * Listening sockets inherited from a service manager (systemd socket activation; see
   * {@link activatedSockets}): a socket named like a service goes to it, the others in order to
   * the tcp, telnet, tls and unix services. Such a service runs in this process.
   */
  sockets?: readonly ActivatedSocket[]
}

/** A running service: in this process or as a worker pool. */
interface Running {
  config: ServiceConfig
  address: ServiceAddress
  close(options: { drain?: number }): Promise<boolean>
  pool?: WorkerPool
  done?: Promise<void>
  registration?: RegistryRegistration
  server?: object
  simulator?: SimulatorServer
}

/** What {@link ServiceHost.reload} did. */
export interface ReloadResult {
  started: string[]
  restarted: string[]
  stopped: string[]
  unchanged: string[]
  failed: { service: string; error: Error }[]
}

/**
 * Runs a config's services: boots them in file order (a `wait_until_completed` service must be
 * listening before the next one starts; if it fails, `start()` closes what started and rejects
 * with its {@link ServiceStartError}), reloads a changed config (only changed services restart),
 * and closes them all with a drain deadline.
 *
 * @example
 * ```ts
 * const host = new ServiceHost(await loadConfig('lab.ini'))
 * await host.start()
 * console.log(host.address('dmm')?.url)
 * await host.close({ drain: 5_000 })
 * ```
 */
export class ServiceHost implements AsyncDisposable {
  private config: HostConfig
  private readonly options: ServiceHostOptions
  private readonly running = new Map<string, Running>()
  private readonly loggers = new Map<string, Logger & { flush?: () => void }>()
  private closing: Promise<boolean> | undefined
  /** Services that failed to start (not `wait_until_completed` ones: those fail the host). */
  readonly failed = new Map<string, Error>()
  /** The `[web monitor]`, while it runs. */
  private monitorServer: Monitor | undefined

  /** Service name → inherited socket fd (socket activation). */
  private readonly fds: Map<string, number>

  constructor(config: HostConfig, options: ServiceHostOptions = {}) {
    this.config = config
    this.options = options
    this.fds = assignSockets(options.sockets ?? [], config.services.map((s) => ({ name: s.name, eligible: ['tcp', 'telnet', 'tls', 'unix'].includes(s.transport) })))
    if (options.port !== undefined && config.services.length !== 1) throw new TypeError(`ServiceHost: port given but the config has ${config.services.length} services (it applies to one)`)
  }

  /** The address of a running service. */
  address(service: string): ServiceAddress | undefined {
    return this.running.get(service)?.address
  }

  /** Every running service's address, in boot order. */
  addresses(): { service: string; address: ServiceAddress }[] {
    return [...this.running.values()].sort((a, b) => a.config.index - b.config.index).map((r) => ({ service: r.config.name, address: r.address }))
  }

  /** Resolves when a stdio service's input has ended (undefined for other services). */
  done(service: string): Promise<void> | undefined {
    return this.running.get(service)?.done
  }

  /** Worker PIDs of a clustered service (empty for an in-process one). */
  workers(service: string): number[] {
    return this.running.get(service)?.pool?.pids() ?? []
  }

  /** The `[web monitor]`'s address, when the config has one and the host started it. */
  get monitorAddress(): ServerAddress | undefined {
    return this.monitorServer?.address
  }

  /**
   * Boot every service in file order. With a `[web monitor]` section the monitor listens first, so
   * `/readyz` answers 503 until every service listens (and again from the start of a drain).
   */
  async start(): Promise<void> {
    await this.startMonitor()
    const pending: Promise<void>[] = []
    for (const config of this.config.services) {
      const started = this.startOne(config)
      if (config.waitUntilCompleted) {
        try {
          await started
        } catch (error) {
          await Promise.allSettled(pending)
          await this.close()
          throw error
        }
      } else {
        pending.push(
          started.catch((error: unknown) => {
            this.failed.set(config.name, error as Error)
          }),
        )
      }
    }
    await Promise.all(pending)
  }

  /**
   * Apply a new config: services whose settings changed restart (drained for up to `drain` ms),
   * new ones start, removed ones stop, the rest keep running and keep their connections.
   */
  async reload(config: HostConfig, options: { drain?: number } = {}): Promise<ReloadResult> {
    const result: ReloadResult = { started: [], restarted: [], stopped: [], unchanged: [], failed: [] }
    const next = new Map(config.services.map((s) => [s.name, s]))
    for (const [name, running] of [...this.running]) {
      if (!next.has(name)) {
        await this.stopOne(running, options.drain ?? 0)
        result.stopped.push(name)
      }
    }
    this.config = config
    for (const service of config.services) {
      const running = this.running.get(service.name)
      if (running !== undefined && sameSettings(running.config, service)) {
        running.config = service
        result.unchanged.push(service.name)
        continue
      }
      if (running !== undefined) await this.stopOne(running, options.drain ?? 0)
      try {
        await this.startOne(service)
        ;(running === undefined ? result.started : result.restarted).push(service.name)
      } catch (error) {
        result.failed.push({ service: service.name, error: error as Error })
      }
    }
    return result
  }

  /** Close every service, in reverse boot order, each drained for up to `drain` ms. Resolves `true` when every drain was clean. Idempotent. */
  close(options: { drain?: number } = {}): Promise<boolean> {
    this.closing ??= (async () => {
      this.monitorServer?.drain()
      const all = [...this.running.values()].sort((a, b) => b.config.index - a.config.index)
      const results = await Promise.all(all.map((running) => this.stopOne(running, options.drain ?? 0)))
      await this.monitorServer?.close()
      this.monitorServer = undefined
      for (const logger of this.loggers.values()) {
        try {
          logger.flush?.()
        } catch {
          // A closed destination has nothing left to flush.
        }
      }
      return results.every(Boolean)
    })()
    return this.closing
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  private emit(event: HostEvent): void {
    this.monitorEvent(event)
    this.options.onEvent?.(event)
  }

  private async startMonitor(): Promise<void> {
    const section = this.config.monitor
    if (section === undefined || this.options.monitor === false || this.monitorServer !== undefined) return
    const monitor = new Monitor({ host: section.host, port: section.port, ...(section.token === undefined ? {} : { token: section.token }) })
    for (const service of this.config.services) this.showService(monitor, service)
    await monitor.listen()
    this.monitorServer = monitor
  }

  private showService(monitor: Monitor, service: ServiceConfig): void {
    monitor.addService({
      name: service.name,
      kind: service.resource !== undefined ? 'gateway' : service.transport,
      address: () => {
        const address = this.running.get(service.name)?.address
        return address === undefined ? undefined : { host: address.host, port: address.port }
      },
    })
  }

  /** Keep the monitor's service list and states in step with the host. */
  private monitorEvent(event: HostEvent): void {
    const monitor = this.monitorServer
    if (monitor === undefined) return
    if (event.type === 'starting') {
      try {
        monitor.setState(event.service, 'starting')
      } catch {
        // A service new in a reloaded config.
        const config = this.config.services.find((s) => s.name === event.service)
        if (config !== undefined) this.showService(monitor, config)
      }
    } else if (event.type === 'failed') monitor.setState(event.service, 'failed')
    else if (event.type === 'stopped') monitor.setState(event.service, 'stopped')
    else if (event.type === 'listening') {
      const running = this.running.get(event.service)
      if (running?.server !== undefined) monitor.attach(event.service, { servers: [running.server], ...(running.simulator === undefined ? {} : { simulator: running.simulator }) })
      monitor.setState(event.service, this.closing === undefined ? 'ready' : 'draining')
    }
  }

  private loggerFor(config: ServiceConfig): Logger {
    let logger = this.loggers.get(config.name)
    if (logger === undefined) {
      logger = this.options.loggerFor?.(config) ?? serviceLogger(config.name, config.logDir, this.options.log)
      this.loggers.set(config.name, logger)
    }
    return logger
  }

  private clustered(config: ServiceConfig): boolean {
    if (config.resource !== undefined || config.transport === 'udp' || config.transport === 'stdio' || config.transport === 'nats' || this.fds.has(config.name)) return false
    const mode = this.options.mode ?? 'auto'
    if (mode === 'inprocess') return false
    if (mode === 'cluster') return true
    return config.maxProcNum > 1
  }

  private async startOne(config: ServiceConfig): Promise<void> {
    if (this.closing !== undefined) throw new ServiceStartError(config.name, 'the host is closing')
    this.emit({ type: 'starting', service: config.name })
    const logger = this.loggerFor(config)
    try {
      let running: Running
      if (this.clustered(config)) {
        const pool = new WorkerPool(config, {
          logger,
          ...(this.options.port === undefined ? {} : { port: this.options.port }),
          ...(this.options.workerScript === undefined ? {} : { workerScript: this.options.workerScript }),
          ...(this.options.scale === undefined ? {} : { scale: this.options.scale }),
          ...(this.options.log === undefined ? {} : { log: this.options.log }),
          onEvent: (event) => this.emit({ type: 'worker', service: config.name, ...event }),
          // [web monitor]: the workers count their requests; the primary's monitor adds them up.
          ...(this.monitorServer === undefined ? {} : { onMetrics: (requests: RequestDeltaData) => this.monitorServer?.absorb(config.name, requests) }),
        })
        const address = await pool.start()
        running = { config, address, pool, close: (o) => pool.close(o) }
      } else {
        const started: StartedService = await startService(config, {
          logger,
          ...(this.options.port === undefined ? {} : { port: this.options.port }),
          ...(this.fds.has(config.name) ? { fd: this.fds.get(config.name) as number } : {}),
          ...(this.options.stdin === undefined ? {} : { stdin: this.options.stdin }),
          ...(this.options.stdout === undefined ? {} : { stdout: this.options.stdout }),
        })
        running = {
          config,
          address: started.address,
          close: (o) => started.close(o),
          ...(started.done === undefined ? {} : { done: started.done }),
          ...(started.server === undefined ? {} : { server: started.server }),
          ...(started.simulator === undefined ? {} : { simulator: started.simulator }),
        }
      }
      if (config.autoRegister && running.address.port > 0) {
        // RPyC's registry protocol (UDP): registered now, again every minute, unregistered on stop.
        const registries = config.registry?.split(',').map((r) => r.trim()).filter((r) => r !== '')
        const client = new RegistryClient(registries === undefined ? {} : { registries })
        running.registration = new RegistryRegistration({ client, name: config.name, port: running.address.port, logger })
        if (!(await running.registration.start())) logger.warn({ registry: config.registry ?? '127.0.0.1:18811' }, 'auto_register: no registry answered (retrying every minute)')
      }
      this.running.set(config.name, running)
      this.failed.delete(config.name)
      this.emit({ type: 'listening', service: config.name, address: running.address, ...(running.pool === undefined ? {} : { workers: running.pool.pids().length }) })
    } catch (error) {
      const failure = error instanceof ServiceStartError ? error : new ServiceStartError(config.name, error instanceof Error ? error.message : String(error), { cause: error })
      logger.error({ err: failure }, 'failed to start')
      this.emit({ type: 'failed', service: config.name, error: failure })
      throw failure
    }
  }

  private async stopOne(running: Running, drain: number): Promise<boolean> {
    this.running.delete(running.config.name)
    await running.registration?.stop()
    let clean: boolean
    try {
      clean = await running.close({ drain })
    } catch (error) {
      this.loggerFor(running.config).error({ err: error }, 'close failed')
      clean = false
    }
    this.emit({ type: 'stopped', service: running.config.name, clean })
    return clean
  }
}

/** Whether two versions of a service have the same settings (file position aside). */
function sameSettings(a: ServiceConfig, b: ServiceConfig): boolean {
  const settings = (s: ServiceConfig): string => JSON.stringify({ ...s, index: 0, lines: {} })
  return settings(a) === settings(b)
}
