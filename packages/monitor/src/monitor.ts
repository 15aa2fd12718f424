import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { serve, type ServerType } from '@hono/node-server'
import { checkCount, checkDuration, silentLogger, SocketAdopter, traceFilter, type ConnectionFilterFactory, type Logger, type LogMethod, type ServerAddress, type TraceEvent } from '@labwire/core'
import { validateFaultSpec, type SimulatorServer } from '@labwire/simulator'
import { Hono, type Context, type Env, type Input } from 'hono'
import { streamSSE } from 'hono/streaming'
import { checkRequest, isLoopbackHost, TOKEN_COOKIE } from './guard.js'
import { MonitorMetrics, type ProcessPoint, type RequestDeltaData, type ServicePoint, type ServiceStats } from './metrics.js'
import { subscribeServerEvents, type ServerEventSink } from './events.js'

/** A service's life as the page and `/readyz` show it. */
export type ServiceState = 'starting' | 'ready' | 'draining' | 'stopped' | 'failed'

/** One open connection as the page lists it. */
export interface ConnectionView {
  peer: string
  /** Milliseconds since the epoch when it opened. */
  since: number
  /** True when this session holds exclusive access. */
  exclusive?: boolean
}

/** A service the monitor shows. Only `name` is required; everything else adds a panel. */
export interface MonitoredService {
  /** Unique name: the `service` label of every metric. */
  name: string
  /** What it is, for the page (`simulator`, `rpc`, `gateway`, a transport name…). */
  kind?: string
  /**
   * The server object(s) whose diagnostics events count for this service (a `TcpServer`, a
   * `SimulatorServer`, …). Events of servers not registered here are counted under
   * `unregistered`.
   */
  servers?: readonly object[]
  /** The bound address, for the page. */
  address?: () => ServerAddress | undefined
  /** A simulator: the page shows its state, connections and fault switches, and can cut its cable. */
  simulator?: SimulatorServer
}

/** Options for {@link Monitor}. */
export interface MonitorOptions {
  /** Address to bind. Default `127.0.0.1`. Anything but loopback needs `token`. */
  host?: string
  /** Port; 0 (default) picks a free one. */
  port?: number
  /** Required on every request when set (`Authorization: Bearer`, or `?token=` once in a browser, which sets a cookie). Required when `host` is not loopback. */
  token?: string
  /** Host names accepted in the `Host` header besides loopback names and `host` (a reverse proxy's name). */
  allowedHosts?: readonly string[]
  /** Sampling period of the page's history, milliseconds. Default 1000. */
  sampleInterval?: number
  /** History points kept per series. Default 300 (5 minutes at 1 s). */
  historyLength?: number
  /** Log lines kept for the page. Default 200. */
  logLines?: number
  /** Wire-trace events kept per service. Default 200. */
  traceLength?: number
  /** Live-page connections served at once (each gets one snapshot per sample). Default 16. */
  maxViewers?: number
  /** HTTP connections open at once (the serving kernel's limit; one more is closed at once). Default 64. */
  maxConnections?: number
  /** Close an HTTP connection with no request in progress after this many ms (a live page's stream is a request in progress). Default 60,000. */
  idleTimeout?: number
  /** Where the monitor's own problems go. Default: silent. */
  logger?: Logger
}

/** Raised when a monitor is told to listen beyond loopback without a token. */
export class MonitorConfigError extends Error {
  override readonly name = 'MonitorConfigError'
  readonly code = 'LABWIRE_MONITOR_CONFIG'
}

interface LogLine {
  t: number
  level: string
  service: string
  message: string
}

interface TraceLine {
  t: number
  peer: string
  dir: string
  hex: string
  text: string
  length: number
}

interface ServiceRecord {
  service: MonitoredService
  /** Its request figures (the per-request hot path goes straight here). */
  stats: ServiceStats
  state: ServiceState
  connections: Map<string, ConnectionView>
  queued: number
  holder: string | undefined
  trace: TraceLine[]
  traceSeq: number
}

const TRACE_BYTES = 128
const decoder = new TextDecoder('utf-8', { fatal: false })

/**
 * The live monitor: Prometheus `/metrics` (and `/metrics.json`), `/healthz`, `/readyz`, and a
 * live page at `/` — services with state, request rate, latency percentiles and memory over
 * time, open connections, the last log lines, a wire trace and a simulator's fault switches.
 * It learns about traffic from the serving kernel's `diagnostics_channel` events, so servers
 * carry no metrics code.
 *
 * @example
 * ```ts
 * const monitor = new Monitor({ port: 0 })
 * monitor.addService({ name: 'psu', kind: 'simulator', simulator, servers: [simulator] })
 * const { port } = await monitor.listen()   // open http://127.0.0.1:<port>/
 * ```
 */
export class Monitor implements AsyncDisposable {
  readonly metrics: MonitorMetrics
  private readonly host: string
  private readonly port: number
  private readonly token: string | undefined
  private readonly allowedHosts: readonly string[]
  private readonly sampleInterval: number
  private readonly logLimit: number
  private readonly traceLimit: number
  private readonly maxViewers: number
  private readonly logger: Logger
  private readonly records = new Map<string, ServiceRecord>()
  private readonly byServer = new Map<object, ServiceRecord>()
  private readonly logs: LogLine[] = []
  private readonly deviceListeners: (() => void)[] = []
  private readonly viewers = new Set<(snapshot: string) => void>()
  private readonly app: Hono
  private server: ServerType | undefined
  private readonly sockets: SocketAdopter
  private bound: ServerAddress | undefined
  private timer: ReturnType<typeof setInterval> | undefined
  private unsubscribe: (() => void) | undefined
  private draining = false
  private readonly started = Date.now()
  private pageScript: Promise<string> | undefined

  constructor(options: MonitorOptions = {}) {
    this.host = options.host ?? '127.0.0.1'
    this.port = options.port ?? 0
    this.token = options.token === undefined || options.token === '' ? undefined : options.token
    if (!isLoopbackHost(this.host) && this.token === undefined) {
      throw new MonitorConfigError(`the monitor would listen on ${this.host}, beyond loopback, without a token: give --monitor-token (option token) or bind 127.0.0.1`)
    }
    this.allowedHosts = options.allowedHosts ?? []
    this.sampleInterval = options.sampleInterval ?? 1000
    this.logLimit = options.logLines ?? 200
    this.traceLimit = options.traceLength ?? 200
    this.maxViewers = options.maxViewers ?? 16
    this.logger = options.logger ?? silentLogger
    this.metrics = new MonitorMetrics(options.historyLength ?? 300)
    this.sockets = new SocketAdopter({
      server: 'Monitor',
      transport: 'http',
      logger: this.logger,
      maxConnections: checkCount('Monitor', 'maxConnections', options.maxConnections ?? 64),
      idleTimeout: checkDuration('Monitor', 'idleTimeout', options.idleTimeout ?? 60_000),
    })
    this.app = this.routes()
  }

  /** The serving kernel that keeps the monitor's own HTTP connections (its events name it). */
  get kernel(): object {
    return this.sockets.kernel
  }

  /** Show a service. Its state starts as `starting` unless it is already listening. */
  addService(service: MonitoredService): void {
    if (this.records.has(service.name)) throw new TypeError(`monitor: a service named '${service.name}' is already shown`)
    this.metrics.addService(service.name)
    const record: ServiceRecord = { service, stats: this.metrics.serviceStats(service.name), state: addressOf(service) === undefined ? 'starting' : 'ready', connections: new Map(), queued: 0, holder: undefined, trace: [], traceSeq: 0 }
    this.records.set(service.name, record)
    this.attach(service.name, service)
  }

  /**
   * Count the events of more servers (and a simulator's device) under a service already shown: for
   * a host whose services are listed before they listen, or restart with new server objects.
   */
  attach(name: string, parts: Pick<MonitoredService, 'servers' | 'simulator'>): void {
    const record = this.records.get(name)
    if (record === undefined) throw new TypeError(`monitor: no service named '${name}'`)
    const service = record.service
    for (const server of parts.servers ?? []) this.register(server, record)
    const sim = parts.simulator
    if (sim !== undefined) {
      // The page's state and fault switches follow the latest simulator.
      if (service.simulator !== sim) record.service = { ...service, simulator: sim }
      this.register(sim, record)
      // The simulator names each request with its command word (labwire:server:request `command`): those are its commands.
      record.stats.commandsFromRequests = true
      this.deviceListeners.push(
        sim.device.on((event) => {
          if (event.type === 'error') this.log(service.name, 'error', { err: event.error }, `device error on '${escapeText(event.query.slice(0, 200))}'`)
          else if (event.type === 'fault') this.log(service.name, 'info', {}, `fault triggered: ${event.fault}`)
        }),
      )
    }
  }

  /** Add requests counted in another process for a service (a `labwire serve` cluster worker's report). */
  absorb(name: string, delta: RequestDeltaData): void {
    const record = this.records.get(name)
    if (record === undefined) throw new TypeError(`monitor: no service named '${name}'`)
    record.stats.absorb(delta)
  }

  /** Set a service's state (`/readyz` is ready when every service is `ready` and no drain is on). */
  setState(name: string, state: ServiceState): void {
    const record = this.records.get(name)
    if (record === undefined) throw new TypeError(`monitor: no service named '${name}'`)
    record.state = state
  }

  /** Mark the whole process as draining: `/readyz` answers 503 from now on. */
  drain(): void {
    this.draining = true
    for (const record of this.records.values()) if (record.state === 'ready') record.state = 'draining'
  }

  /**
   * A logger that keeps its lines for the page (bounded) and passes them on to `inner`.
   * Give it to a server or device as its `logger`.
   */
  serviceLogger(service: string, inner: Logger = silentLogger): Logger {
    const method = (level: keyof Logger & ('debug' | 'info' | 'warn' | 'error')): LogMethod => (context, message) => {
      if (level !== 'debug') this.log(service, level, context, message)
      inner[level](context, message)
    }
    return { debug: method('debug'), info: method('info'), warn: method('warn'), error: method('error') }
  }

  /**
   * A connection filter that feeds a service's live wire trace (hex and text, bounded). Give it
   * to the server's `filter` option, or stack it with {@link composeFilters}.
   */
  traceFilter(service: string): ConnectionFilterFactory {
    return traceFilter({ onEvent: (event) => this.traced(service, event), sink: () => undefined })
  }

  /** The bound address once listening. */
  get address(): ServerAddress | undefined {
    return this.bound
  }

  /** Start serving. Resolves with the bound address. */
  async listen(): Promise<ServerAddress> {
    if (this.bound !== undefined) return this.bound
    this.unsubscribe = subscribeServerEvents(this.sink)
    const server = await new Promise<ServerType>((resolve, reject) => {
      const s = serve({ fetch: this.app.fetch, hostname: this.host, port: this.port }, () => resolve(s))
      s.once('error', reject)
    })
    server.on('error', (error: Error) => this.logger.error({ err: error }, 'monitor server error'))
    // Live set, maxConnections, idle timer and close: the serving kernel's, as for every labwire server.
    this.sockets.attachHttp(server)
    this.server = server
    const info = server.address() as AddressInfo
    this.bound = { host: info.address, port: info.port }
    this.metrics.sample()
    this.timer = setInterval(() => this.tick(), this.sampleInterval)
    this.timer.unref()
    return this.bound
  }

  /** Stop serving (idempotent). */
  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    this.unsubscribe?.()
    this.unsubscribe = undefined
    for (const off of this.deviceListeners.splice(0)) off()
    for (const viewer of this.viewers) viewer('')
    this.viewers.clear()
    const server = this.server
    this.server = undefined
    if (server !== undefined) {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()))
      await this.sockets.close()
      await stopped
    }
    this.metrics.close()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  /** Everything the page shows, as one JSON-ready object. */
  snapshot(): MonitorSnapshot {
    const services = [...this.records.values()].map((record) => {
      const { service } = record
      const sim = service.simulator
      const address = addressOf(service)
      const connections = sim !== undefined ? sim.connections.map((c) => ({ peer: c.peer, since: c.since })) : [...record.connections.values()]
      return {
        name: service.name,
        kind: service.kind ?? (sim !== undefined ? 'simulator' : 'service'),
        state: record.state,
        address: address === undefined ? null : `${address.host}:${address.port}`,
        connections,
        holder: record.holder ?? null,
        queued: record.queued,
        commands: this.metrics.commandCount(service.name),
        history: this.metrics.history(service.name),
        trace: record.trace,
        simulator:
          sim === undefined
            ? null
            : { device: sim.device.name, state: safeState(sim), faults: sim.device.faults.list(), cable: sim.cableConnected },
      }
    })
    return { now: Date.now(), uptime: Date.now() - this.started, draining: this.draining, process: this.metrics.processHistory, services, logs: this.logs }
  }

  /** Readiness: every service ready and no drain. */
  ready(): { ready: boolean; services: Record<string, ServiceState> } {
    const services: Record<string, ServiceState> = {}
    let ready = !this.draining && this.bound !== undefined
    for (const [name, record] of this.records) {
      if (record.state === 'starting' && addressOf(record.service) !== undefined) record.state = 'ready'
      services[name] = record.state
      if (record.state !== 'ready') ready = false
    }
    return { ready, services }
  }

  // ---- internals -------------------------------------------------------------------------

  private readonly sink: ServerEventSink = {
    connect: (server, peer) => {
      const record = this.recordOf(server)
      this.metrics.connected(record.service.name)
      record.connections.set(peer, { peer, since: Date.now() })
      // Bounded: the oldest entry goes first (a server's own maxConnections normally bounds it long before).
      if (record.connections.size > 10_000) record.connections.delete(record.connections.keys().next().value as string)
    },
    close: (server, peer, errorCode) => {
      const record = this.recordOf(server)
      if (record.connections.delete(peer)) this.metrics.disconnected(record.service.name, errorCode)
      else if (errorCode !== undefined) this.metrics.connectionError(record.service.name, errorCode)
    },
    request: (server, command, durationMs, bytesIn, bytesOut, errorCode) => {
      this.recordOf(server).stats.request(command, durationMs, bytesIn, bytesOut, errorCode)
    },
    refused: (server, reason) => this.metrics.refused(this.recordOf(server).service.name, reason),
    access: (server, holder, queued) => {
      const record = this.recordOf(server)
      record.holder = holder
      record.queued = queued
      this.metrics.queued(record.service.name, queued)
    },
  }

  private unregistered: ServiceRecord | undefined

  /** Events name their server by its serving kernel: register the server and, when it has one, its kernel. */
  private register(server: object, record: ServiceRecord): void {
    this.byServer.set(server, record)
    const kernel = (server as { kernel?: unknown }).kernel
    if (typeof kernel === 'object' && kernel !== null) this.byServer.set(kernel, record)
  }

  private recordOf(server: object): ServiceRecord {
    const known = this.byServer.get(server)
    if (known !== undefined) return known
    if (this.unregistered === undefined) {
      this.metrics.addService('unregistered')
      this.unregistered = { service: { name: 'unregistered' }, stats: this.metrics.serviceStats('unregistered'), state: 'ready', connections: new Map(), queued: 0, holder: undefined, trace: [], traceSeq: 0 }
    }
    return this.unregistered
  }

  private log(service: string, level: string, context: object, message: string | undefined): void {
    let text = message ?? ''
    const err = (context as { err?: unknown }).err
    if (err instanceof Error) text = `${text}${text.length > 0 ? ': ' : ''}${err.name}: ${err.message}`
    this.logs.push({ t: Date.now(), level, service, message: text.slice(0, 500) })
    if (this.logs.length > this.logLimit) this.logs.splice(0, this.logs.length - this.logLimit)
  }

  private traced(service: string, event: TraceEvent): void {
    const record = this.records.get(service)
    if (record === undefined) return
    const bytes = event.bytes.subarray(0, TRACE_BYTES)
    record.trace.push({
      t: event.time.getTime(),
      peer: event.peer,
      dir: event.kind,
      hex: Buffer.from(bytes).toString('hex'),
      text: escapeText(decoder.decode(bytes)),
      length: event.bytes.length,
    })
    record.traceSeq++
    if (record.trace.length > this.traceLimit) record.trace.splice(0, record.trace.length - this.traceLimit)
  }

  private tick(): void {
    this.metrics.sample()
    if (this.viewers.size === 0) return
    const text = JSON.stringify(this.snapshot())
    for (const viewer of this.viewers) viewer(text)
  }

  private guard<E extends Env, P extends string, I extends Input>(c: Context<E, P, I>): Response | undefined {
    const url = new URL(c.req.url)
    const refusal = checkRequest(
      {
        method: c.req.method,
        host: c.req.header('host'),
        origin: c.req.header('origin'),
        contentType: c.req.header('content-type'),
        authorization: c.req.header('authorization'),
        cookie: c.req.header('cookie'),
        queryToken: url.searchParams.get('token') ?? undefined,
      },
      { allowedHosts: this.allowedHosts, boundHost: this.host, token: this.token },
    )
    if (refusal !== undefined) return c.json({ error: refusal.message }, refusal.status)
    return undefined
  }

  private routes(): Hono {
    const app = new Hono()
    app.use('*', async (c, next) => {
      const refused = this.guard(c)
      if (refused !== undefined) return refused
      await next()
      c.header('x-content-type-options', 'nosniff')
      c.header('referrer-policy', 'no-referrer')
      c.header('cache-control', 'no-store')
      return undefined
    })
    app.get('/healthz', (c) => c.json({ ok: true, uptime: Date.now() - this.started }))
    app.get('/readyz', (c) => {
      const readiness = this.ready()
      return c.json(readiness, readiness.ready ? 200 : 503)
    })
    app.get('/metrics', async (c) => c.body(await this.metrics.text(), 200, { 'content-type': this.metrics.registry.contentType }))
    app.get('/metrics.json', async (c) => c.json(await this.metrics.json()))
    app.get('/api/snapshot', (c) => c.json(this.snapshot()))
    app.get('/events', (c) => {
      if (this.viewers.size >= this.maxViewers) return c.json({ error: `too many live viewers (maxViewers ${this.maxViewers})` }, 503)
      return streamSSE(c, async (stream) => {
        let pending = false
        let done = false
        let wake: (() => void) | undefined
        const viewer = (text: string): void => {
          if (text === '') {
            done = true
            wake?.()
            return
          }
          if (pending) return // a slow viewer skips samples instead of queueing them
          pending = true
          stream.writeSSE({ event: 'snapshot', data: text }).then(
            () => {
              pending = false
            },
            () => {
              done = true
              wake?.()
            },
          )
        }
        this.viewers.add(viewer)
        stream.onAbort(() => {
          done = true
          wake?.()
        })
        await stream.writeSSE({ event: 'snapshot', data: JSON.stringify(this.snapshot()) })
        while (!done) await new Promise<void>((resolve) => (wake = resolve))
        this.viewers.delete(viewer)
      })
    })
    app.put('/api/services/:name/cable', async (c) => {
      const sim = this.simulatorOf(c.req.param('name'))
      const body = await jsonBody(c)
      if (typeof body.connected !== 'boolean') return c.json({ error: 'connected must be a boolean' }, 400)
      if (body.connected) sim.restoreCable()
      else sim.cutCable()
      return c.json({ connected: sim.cableConnected })
    })
    app.get('/api/services/:name/faults', (c) => c.json(this.simulatorOf(c.req.param('name')).device.faults.list()))
    app.post('/api/services/:name/faults', async (c) => {
      const sim = this.simulatorOf(c.req.param('name'))
      const body = await jsonBody(c)
      let spec
      try {
        spec = validateFaultSpec(body)
      } catch (error) {
        return c.json({ error: error instanceof Error ? error.message : String(error) }, 400)
      }
      return c.json(sim.device.faults.add(spec), 201)
    })
    app.patch('/api/services/:name/faults/:id', async (c) => {
      const sim = this.simulatorOf(c.req.param('name'))
      const body = await jsonBody(c)
      if (typeof body.enabled !== 'boolean') return c.json({ error: 'enabled must be a boolean' }, 400)
      const id = Number(c.req.param('id'))
      if (!sim.device.faults.enable(id, body.enabled)) return c.json({ error: `no fault ${c.req.param('id')}` }, 404)
      return c.json(sim.device.faults.get(id))
    })
    app.delete('/api/services/:name/faults/:id', (c) => {
      const sim = this.simulatorOf(c.req.param('name'))
      if (!sim.device.faults.remove(Number(c.req.param('id')))) return c.json({ error: `no fault ${c.req.param('id')}` }, 404)
      return c.json(sim.device.faults.list())
    })
    app.get('/page.js', async (c) => c.body(await this.script(), 200, { 'content-type': 'text/javascript; charset=utf-8' }))
    app.get('/', (c) => {
      const token = new URL(c.req.url).searchParams.get('token')
      if (token !== null && this.token !== undefined) {
        // The token was checked by the guard: keep it in a cookie so the page's own requests carry it.
        c.header('set-cookie', `${TOKEN_COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`)
      }
      c.header('content-security-policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'")
      return c.html(PAGE_HTML)
    })
    app.onError((error, c) => {
      if (error instanceof HttpError) return c.json({ error: error.message }, error.status)
      this.logger.error({ err: error }, 'monitor request failed')
      return c.json({ error: 'internal error' }, 500)
    })
    app.notFound((c) => c.json({ error: `no route ${c.req.method} ${new URL(c.req.url).pathname}` }, 404))
    return app
  }

  private simulatorOf(name: string): SimulatorServer {
    const record = this.records.get(name)
    if (record === undefined) throw new HttpError(404, `no service '${name}'`)
    if (record.service.simulator === undefined) throw new HttpError(400, `service '${name}' is not a simulator`)
    return record.service.simulator
  }

  private script(): Promise<string> {
    this.pageScript ??= findPageScript()
    return this.pageScript
  }
}

/** The JSON the page receives. */
export interface MonitorSnapshot {
  now: number
  uptime: number
  draining: boolean
  process: readonly ProcessPoint[]
  services: {
    name: string
    kind: string
    state: ServiceState
    address: string | null
    connections: ConnectionView[]
    holder: string | null
    queued: number
    /** Simulator commands received since start (0 for other services). */
    commands: number
    history: readonly ServicePoint[]
    trace: readonly TraceLine[]
    simulator: { device: string; state: unknown; faults: unknown; cable: boolean } | null
  }[]
  logs: readonly LogLine[]
}

function addressOf(service: MonitoredService): ServerAddress | undefined {
  return service.address?.() ?? service.simulator?.address
}

class HttpError extends Error {
  constructor(
    readonly status: 400 | 404,
    message: string,
  ) {
    super(message)
  }
}

async function jsonBody<E extends Env, P extends string>(c: Context<E, P>): Promise<Record<string, unknown>> {
  const text = await c.req.text()
  if (text.length > 64 * 1024) throw new HttpError(400, 'body over 64 KiB')
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw new HttpError(400, 'body is not JSON')
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'body must be a JSON object')
  return body as Record<string, unknown>
}

function safeState(sim: SimulatorServer): unknown {
  try {
    return JSON.parse(JSON.stringify(sim.device.getState(), (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))) as unknown
  } catch {
    return null
  }
}

/** Control bytes shown visibly (`\x1b` as `\x1b`), so a device cannot drive the viewer's page or terminal. */
function escapeText(text: string): string {
  let out = ''
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0
    if (code === 0x0a) out += '\\n'
    else if (code === 0x0d) out += '\\r'
    else if (code === 0x09) out += '\\t'
    else if (code < 0x20 || code === 0x7f || (code >= 0x80 && code < 0xa0)) out += `\\x${code.toString(16).padStart(2, '0')}`
    else out += ch
  }
  return out
}

/** The page's bundled script: dist/page.js next to the built module, or built on first use from source. */
async function findPageScript(): Promise<string> {
  const candidates = [new URL('./page.js', import.meta.url), new URL('../dist/page.js', import.meta.url)]
  for (const url of candidates) {
    try {
      return await readFile(fileURLToPath(url), 'utf8')
    } catch {
      // try the next place
    }
  }
  return 'document.body.textContent = "labwire monitor: the page script is not built (run pnpm --filter @labwire/monitor build)"'
}

const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>labwire monitor</title>
</head>
<body>
<header><h1>labwire monitor</h1><span id="status">connecting…</span></header>
<main id="app"></main>
<script src="/page.js"></script>
</body>
</html>
`
