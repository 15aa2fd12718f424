/**
 * The control channel: a small HTTP JSON API on loopback to inspect and drive running simulated
 * devices (state, methods, faults, connections, the cable). Routed by hono on `@hono/node-server`
 * (the framework the monitor uses), on a `node:http` server this class owns.
 *
 * @module
 */
import { timingSafeEqual } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import { isIP } from 'node:net'
import { hostname, networkInterfaces } from 'node:os'
import { getRequestListener } from '@hono/node-server'
import {
  ConnectionError,
  SocketAdopter,
  checkCount,
  checkDuration,
  silentLogger,
  throwIfAborted,
  type AbortOptions,
  type Logger,
  type ServerAddress,
  type ServerCloseOptions,
  type ServerKernel,
} from '@labwire/core'
import { Hono, type Context as HonoContext } from 'hono'
import type { BlankEnv } from 'hono/types'
import { validateFaultSpec } from './faults.js'
import type { SimulatorServer } from './server.js'

/** Options for {@link ControlServer}. */
export interface ControlServerOptions {
  /** The served devices, addressed by their device name. */
  servers: readonly SimulatorServer[]
  /**
   * Address to bind. Default `127.0.0.1`. Any address that is not loopback needs a
   * {@link ControlServerOptions.token}: without one the constructor throws.
   */
  host?: string | undefined
  /** Port; 0 (default) picks a free one. */
  port?: number
  /**
   * A shared secret: when set, every request must carry `Authorization: Bearer <token>` (401
   * otherwise). Required when `host` is not loopback. `undefined` = none (so a CLI flag can be passed as is).
   */
  token?: string | undefined
  /**
   * More names the `Host` header may carry (e.g. the lab machine's DNS name). Always accepted:
   * `localhost`, `127.0.0.1`, `[::1]` and the bound address (for a wildcard bind, `0.0.0.0` or
   * `::`, every address of this machine's interfaces and its host name).
   */
  allowedHosts?: readonly string[]
  /** Largest accepted request body, in bytes. Default 64 KiB. */
  maxBodyLength?: number
  /** HTTP connections open at once; one more is closed at once. Default {@link DEFAULT_CONTROL_MAX_CONNECTIONS}. */
  maxConnections?: number | undefined
  /** Close a connection with no request in progress and no bytes either way for this many ms. Default 60 000 (0 = never). */
  idleTimeout?: number | undefined
  logger?: Logger
}

/** Default `maxConnections` of the control channel: a few tools and a browser, with room to spare. */
export const DEFAULT_CONTROL_MAX_CONNECTIONS = 64
/** Default `idleTimeout` of the control channel, in ms. */
export const DEFAULT_CONTROL_IDLE_TIMEOUT = 60_000

/** True for `localhost`, 127.0.0.0/8, `::1` and IPv4-mapped loopback. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  if (h === 'localhost' || h === '::1') return true
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h
  return isIP(v4) === 4 && v4.startsWith('127.')
}

type Context = HonoContext<BlankEnv, string>

const WILDCARDS = new Set(['0.0.0.0', '::', '[::]'])

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

/**
 * An HTTP JSON API for running devices (see the package README for every endpoint):
 *
 * ```
 * GET    /devices                              list devices
 * GET    /devices/:name                        one device: state, faults, connections, cable, quiet
 * GET    /devices/:name/state                  the state
 * PATCH  /devices/:name/state                  { field: value, … }
 * POST   /devices/:name/methods/:method        { args: [...] } → { result }
 * POST   /devices/:name/reset                  leave quiet mode
 * GET    /devices/:name/faults                 list faults
 * POST   /devices/:name/faults                 a fault spec → the fault (201)
 * PATCH  /devices/:name/faults/:id             { enabled: bool }
 * DELETE /devices/:name/faults/:id             remove one
 * DELETE /devices/:name/faults                 remove all
 * GET    /devices/:name/connections            list connections
 * DELETE /devices/:name/connections/:id        close one
 * PUT    /devices/:name/cable                  { connected: bool }
 * POST   /devices/:name/broadcast              { message } or { hex } → { sent }
 * ```
 */
export class ControlServer implements AsyncDisposable {
  private readonly server: Server
  /** The serving kernel's bookkeeping of the HTTP connections (live set, limits, idle timer, drain, events). */
  private readonly sockets: SocketAdopter
  private readonly host: string
  private readonly port: number
  private readonly maxBodyLength: number
  private readonly logger: Logger
  private readonly token: Buffer | undefined
  private readonly allowedHosts: Set<string>
  private readonly servers: readonly SimulatorServer[]
  private bound: ServerAddress | undefined
  private closing: Promise<void> | undefined

  constructor(options: ControlServerOptions) {
    this.servers = options.servers
    this.host = options.host ?? '127.0.0.1'
    this.port = options.port ?? 0
    this.maxBodyLength = options.maxBodyLength ?? 64 * 1024
    this.logger = options.logger ?? silentLogger
    this.sockets = new SocketAdopter({
      server: 'ControlServer',
      transport: 'http',
      logger: this.logger,
      maxConnections: checkCount('ControlServer', 'maxConnections', options.maxConnections ?? DEFAULT_CONTROL_MAX_CONNECTIONS),
      idleTimeout: checkDuration('ControlServer', 'idleTimeout', options.idleTimeout ?? DEFAULT_CONTROL_IDLE_TIMEOUT),
    })
    if (options.token !== undefined && options.token === '') throw new RangeError('ControlServer: token must not be empty')
    if (options.token === undefined && !isLoopbackHost(this.host))
      throw new RangeError(
        `ControlServer: host '${this.host}' is not loopback, so the control channel needs a token: set the token option (every request then carries 'Authorization: Bearer <token>')`,
      )
    this.token = options.token === undefined ? undefined : Buffer.from(options.token, 'utf8')
    this.allowedHosts = new Set(['localhost', '127.0.0.1', '::1', normalizeHost(this.host), ...(options.allowedHosts ?? []).map(normalizeHost)])
    const app = this.routes()
    const listener = getRequestListener(app.fetch, {
      // Never replace the process's global Request/Response.
      overrideGlobalObjects: false,
      // What @hono/node-server refuses before routing (no Host header, a Host or target it cannot parse).
      errorHandler: (error) => {
        const missing = error instanceof Error && /missing host/i.test(error.message)
        return json(400, { error: missing ? 'a Host header is required' : `bad request: ${error instanceof Error ? error.message : String(error)}` }, { connection: 'close' })
      },
    })
    this.server = createServer((req, res) => {
      listener(req, res).catch((error: unknown) => this.logger.error({ err: error }, 'control request failed'))
    })
    this.server.on('error', (error) => this.logger.error({ err: error }, 'control server error'))
    this.sockets.attachHttp(this.server)
  }

  /** The serving kernel keeping the HTTP connections; diagnostics events (transport `'http'`) name it as `kernel`. */
  get kernel(): ServerKernel {
    return this.sockets.kernel
  }

  /** HTTP connections open now. */
  get connectionCount(): number {
    return this.sockets.size
  }

  /** The bound address once listening. */
  get address(): ServerAddress | undefined {
    return this.bound
  }

  /** Start listening. */
  listen(options?: AbortOptions): Promise<ServerAddress> {
    try {
      throwIfAborted(options)
    } catch (error) {
      return Promise.reject(error)
    }
    if (this.bound !== undefined) return Promise.resolve(this.bound)
    return new Promise<ServerAddress>((resolve, reject) => {
      const onError = (error: Error): void => reject(new ConnectionError(`could not listen on ${this.host}:${this.port}: ${error.message}`, { cause: error }))
      this.server.once('error', onError)
      this.server.listen({ host: this.host, port: this.port }, () => {
        this.server.off('error', onError)
        const address = this.server.address()
        if (address === null || typeof address === 'string') {
          reject(new ConnectionError('control server has no TCP address'))
          return
        }
        this.bound = { host: address.address, port: address.port }
        this.allowedHosts.add(normalizeHost(address.address))
        if (WILDCARDS.has(address.address)) {
          // A wildcard bind answers on every interface: each of their addresses, and this machine's name.
          for (const list of Object.values(networkInterfaces())) for (const nic of list ?? []) this.allowedHosts.add(normalizeHost(nic.address))
          this.allowedHosts.add(normalizeHost(hostname()))
        }
        resolve(this.bound)
      })
    })
  }

  /**
   * Stop listening and close every HTTP connection: at once, or (`drain`) idle ones now and those
   * with a request in progress once it is answered, for at most `drain` ms. Idempotent.
   */
  close(options?: ServerCloseOptions): Promise<void> {
    this.closing ??= (async () => {
      const stopped = this.server.listening ? new Promise<void>((resolve) => this.server.close(() => resolve())) : undefined
      await this.sockets.close(options)
      await stopped
    })()
    return this.closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  /** The hono app: the guard first, then one route per endpoint. */
  private routes(): Hono {
    const app = new Hono({ strict: false })
    // hono types the contexts of onError, notFound and '*' middleware with an `any` path or input.
    // eslint-disable-next-line @typescript-eslint/no-unsafe-argument
    app.onError((error, c) => this.fail(c, error))
    // eslint-disable-next-line @typescript-eslint/no-unsafe-argument
    app.notFound((c) => send(c, 404, { error: `no route ${c.req.method} ${new URL(c.req.url).pathname}` }))
    app.use('*', async (c, next) => {
      try {
        // eslint-disable-next-line @typescript-eslint/no-unsafe-argument
        this.check(c)
      } catch (error) {
        // The body of a refused request is not read: close the connection after the answer.
        c.header('connection', 'close')
        throw error
      }
      const pathname = new URL(c.req.url).pathname
      try {
        for (const part of pathname.split('/')) decodeURIComponent(part)
      } catch {
        throw new HttpError(400, `malformed percent-encoding in ${pathname}`)
      }
      await next()
    })

    app.get('/devices', (c) =>
      send(c, 200, this.servers.map((s) => ({ name: s.device.name, address: s.address ?? null, connections: s.connections.length, cable: s.cableConnected, quiet: s.device.quiet }))),
    )
    app.all('/devices', () => {
      throw new HttpError(405, 'GET only')
    })
    app.get('/devices/:name', (c) => send(c, 200, this.describe(this.find(c))))
    app.get('/devices/:name/state', (c) => send(c, 200, this.find(c).device.getState()))
    app.on(['PATCH', 'PUT'], '/devices/:name/state', async (c) => {
      const device = this.find(c).device
      const body = await this.body(c)
      try {
        device.setState(body)
      } catch (error) {
        throw new HttpError(400, error instanceof Error ? error.message : String(error))
      }
      return send(c, 200, device.getState())
    })
    app.post('/devices/:name/methods/:method', async (c) => {
      const device = this.find(c).device
      const name = c.req.param('method')
      const fn = device.methods.get(name)
      if (fn === undefined) throw new HttpError(404, `no method '${name}'; methods: ${[...device.methods.keys()].join(', ')}`)
      const body = await this.body(c)
      const args = body.args ?? []
      if (!Array.isArray(args)) throw new HttpError(400, 'args must be a list')
      const result: unknown = await fn(device, ...(args as unknown[]))
      return send(c, 200, { result: result === undefined ? null : result })
    })
    app.post('/devices/:name/reset', (c) => {
      const device = this.find(c).device
      device.reset()
      return send(c, 200, { quiet: device.quiet })
    })
    app.get('/devices/:name/faults', (c) => send(c, 200, this.find(c).device.faults.list()))
    app.post('/devices/:name/faults', async (c) => {
      const device = this.find(c).device
      const body = await this.body(c)
      let spec
      try {
        spec = validateFaultSpec(body)
      } catch (error) {
        throw new HttpError(400, error instanceof Error ? error.message : String(error))
      }
      return send(c, 201, device.faults.add(spec))
    })
    app.delete('/devices/:name/faults', (c) => {
      this.find(c).device.faults.clear()
      return send(c, 200, [])
    })
    app.patch('/devices/:name/faults/:id', async (c) => {
      const device = this.find(c).device
      const id = c.req.param('id')
      const body = await this.body(c)
      if (typeof body.enabled !== 'boolean') throw new HttpError(400, 'enabled must be a boolean')
      if (!device.faults.enable(Number(id), body.enabled)) throw new HttpError(404, `no fault ${id}`)
      return send(c, 200, device.faults.get(Number(id)))
    })
    app.delete('/devices/:name/faults/:id', (c) => {
      const device = this.find(c).device
      const id = c.req.param('id')
      if (!device.faults.remove(Number(id))) throw new HttpError(404, `no fault ${id}`)
      return send(c, 200, device.faults.list())
    })
    app.get('/devices/:name/connections', (c) => send(c, 200, this.find(c).connections))
    app.delete('/devices/:name/connections/:id', (c) => {
      const server = this.find(c)
      const id = c.req.param('id')
      if (!server.disconnect(Number(id))) throw new HttpError(404, `no connection ${id}`)
      return send(c, 200, { closed: Number(id) })
    })
    app.put('/devices/:name/cable', async (c) => {
      const server = this.find(c)
      const body = await this.body(c)
      if (typeof body.connected !== 'boolean') throw new HttpError(400, 'connected must be a boolean')
      if (body.connected) server.restoreCable()
      else server.cutCable()
      return send(c, 200, { connected: server.cableConnected })
    })
    app.post('/devices/:name/broadcast', async (c) => {
      const device = this.find(c).device
      const body = await this.body(c)
      const message = broadcastMessage(body)
      const to = body.to
      if (to !== undefined && typeof to !== 'number') throw new HttpError(400, 'to must be a connection id')
      let sent: number
      try {
        sent = device.broadcast(message, to === undefined ? {} : { to })
      } catch (error) {
        throw new HttpError(400, `the device could not encode the message: ${error instanceof Error ? error.message : String(error)}`)
      }
      return send(c, 200, { sent })
    })
    return app
  }

  /**
   * Refuse what a web page could send: a `Host` that is not this server (DNS rebinding, 403), an
   * `Origin` that is not this server (cross-origin, 403), a missing or wrong token (401), and a
   * mutating request whose body is not declared `application/json` (a "simple" cross-site
   * `text/plain` POST, 415).
   */
  private check(c: Context): void {
    const host = c.req.header('host')
    if (host === undefined || host === '') throw new HttpError(400, 'a Host header is required')
    const hostName = normalizeHost(stripPort(host))
    if (!this.allowedHosts.has(hostName)) throw new HttpError(403, `Host '${host}' is not this control channel (allowed: localhost, 127.0.0.1, [::1], the bound address; see allowedHosts)`)
    const origin = c.req.header('origin')
    if (origin !== undefined && !this.sameOrigin(origin)) throw new HttpError(403, `cross-origin request from '${origin}' refused`)
    if (this.token !== undefined) {
      const given = /^Bearer (.+)$/i.exec(c.req.header('authorization') ?? '')?.[1]
      const bytes = Buffer.from(given ?? '', 'utf8')
      if (given === undefined || bytes.length !== this.token.length || !timingSafeEqual(bytes, this.token)) throw new HttpError(401, 'missing or wrong token (Authorization: Bearer <token>)')
    }
    const method = c.req.method
    if (method !== 'GET' && method !== 'HEAD') {
      const type = (c.req.header('content-type') ?? '').split(';')[0]?.trim().toLowerCase()
      if (type !== 'application/json') throw new HttpError(415, `${method} needs Content-Type: application/json`)
    }
  }

  private sameOrigin(origin: string): boolean {
    let url: URL
    try {
      url = new URL(origin)
    } catch {
      return false // 'null' (a sandboxed or file: page) and anything unparsable
    }
    if (url.protocol !== 'http:') return false
    const port = url.port === '' ? 80 : Number(url.port)
    return port === this.bound?.port && this.allowedHosts.has(normalizeHost(url.hostname))
  }

  private find(c: Context): SimulatorServer {
    const name = c.req.param('name') ?? ''
    const server = this.servers.find((s) => s.device.name === name)
    if (server === undefined) throw new HttpError(404, `no device '${name}'`)
    return server
  }

  /** The JSON object body, read up to `maxBodyLength` bytes (413 past it, without reading the rest). */
  private async body(c: Context): Promise<Record<string, unknown>> {
    const declared = Number(c.req.header('content-length') ?? 0)
    if (declared > this.maxBodyLength) {
      c.header('connection', 'close')
      throw new HttpError(413, `body over ${this.maxBodyLength} bytes`)
    }
    const stream = c.req.raw.body
    if (stream === null) return {}
    const reader = (stream as ReadableStream<Uint8Array>).getReader()
    const chunks: Uint8Array[] = []
    let length = 0
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      length += value.length
      if (length > this.maxBodyLength) {
        reader.cancel().catch(() => undefined)
        c.header('connection', 'close')
        throw new HttpError(413, `body over ${this.maxBodyLength} bytes`)
      }
      chunks.push(value)
    }
    if (length === 0) return {}
    let parsed: unknown
    try {
      parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch {
      throw new HttpError(400, 'body is not valid JSON')
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new HttpError(400, 'body must be a JSON object')
    return parsed as Record<string, unknown>
  }

  private describe(server: SimulatorServer): Record<string, unknown> {
    const device = server.device
    return {
      name: device.name,
      address: server.address ?? null,
      state: device.getState(),
      methods: [...device.methods.keys()],
      faults: device.faults.list(),
      connections: server.connections,
      cable: server.cableConnected,
      quiet: device.quiet,
      commands: device.commands.map((c) => c.label),
    }
  }

  private fail(c: Context, error: unknown): Response {
    const status = error instanceof HttpError ? error.status : 500
    if (status === 500) this.logger.error({ err: error }, 'control request failed')
    if (status === 401) c.header('www-authenticate', 'Bearer')
    return send(c, status, { error: error instanceof Error ? error.message : String(error) })
  }
}

/** A broadcast body's message: `message` (text) or `hex` (bytes, e.g. `"a5 01 02"`, for binary devices), not both. */
function broadcastMessage(body: Record<string, unknown>): string | Uint8Array {
  if (body.hex !== undefined) {
    if (body.message !== undefined) throw new HttpError(400, 'give message or hex, not both')
    if (typeof body.hex !== 'string') throw new HttpError(400, 'hex must be a string of hex digit pairs')
    const digits = body.hex.replace(/[\s:]/g, '')
    if (!/^(?:[0-9a-fA-F]{2})*$/.test(digits)) throw new HttpError(400, 'hex must be a string of hex digit pairs')
    return Uint8Array.from(Buffer.from(digits, 'hex'))
  }
  if (typeof body.message !== 'string') throw new HttpError(400, 'message must be a string (or hex: bytes as hex digit pairs)')
  return body.message
}

/** `[::1]:8025` → `[::1]`, `localhost:8025` → `localhost`. */
function stripPort(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1)
  const colon = host.indexOf(':')
  return colon === -1 || host.indexOf(':', colon + 1) !== -1 ? host : host.slice(0, colon)
}

/** Lower case, no brackets, no trailing dot: `[::1]` → `::1`, `LocalHost.` → `localhost`. */
function normalizeHost(host: string): string {
  return host.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase()
}

const JSON_TYPE = 'application/json; charset=utf-8'

/** A JSON response (bigints as numbers), with the headers the context collected (connection, www-authenticate). */
function send(c: Context, status: number, body: unknown): Response {
  c.header('content-type', JSON_TYPE)
  return c.body(stringify(body), status as 200)
}

/** A JSON response outside a hono context (errors @hono/node-server raises before routing). */
function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(stringify(body), { status, headers: { 'content-type': JSON_TYPE, ...headers } })
}

function stringify(body: unknown): string {
  return JSON.stringify(body, (_key, value: unknown) => (typeof value === 'bigint' ? Number(value) : value))
}
