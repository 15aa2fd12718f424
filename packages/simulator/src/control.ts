/**
 * The control channel: a small HTTP JSON API on loopback to inspect and drive running simulated
 * devices (state, methods, faults, connections, the cable).
 *
 * @module
 */
import { timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { isIP } from 'node:net'
import { hostname, networkInterfaces } from 'node:os'
import { ConnectionError, silentLogger, throwIfAborted, type AbortOptions, type Logger, type ServerAddress } from '@labwire/core'
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
  logger?: Logger
}

/** True for `localhost`, 127.0.0.0/8, `::1` and IPv4-mapped loopback. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  if (h === 'localhost' || h === '::1') return true
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h
  return isIP(v4) === 4 && v4.startsWith('127.')
}

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
 * POST   /devices/:name/broadcast              { message } → { sent }
 * ```
 */
export class ControlServer implements AsyncDisposable {
  private readonly server: Server
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
    if (options.token !== undefined && options.token === '') throw new RangeError('ControlServer: token must not be empty')
    if (options.token === undefined && !isLoopbackHost(this.host))
      throw new RangeError(
        `ControlServer: host '${this.host}' is not loopback, so the control channel needs a token: set the token option (every request then carries 'Authorization: Bearer <token>')`,
      )
    this.token = options.token === undefined ? undefined : Buffer.from(options.token, 'utf8')
    this.allowedHosts = new Set(['localhost', '127.0.0.1', '::1', normalizeHost(this.host), ...(options.allowedHosts ?? []).map(normalizeHost)])
    this.server = createServer((req, res) => {
      try {
        this.check(req)
      } catch (error) {
        // The body of a refused request is not read: close the connection after the answer.
        res.setHeader('connection', 'close')
        fail(res, error, this.logger)
        return
      }
      this.route(req, res).catch((error: unknown) => {
        fail(res, error, this.logger)
      })
    })
    this.server.on('error', (error) => this.logger.error({ err: error }, 'control server error'))
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

  /** Stop listening and close every HTTP connection. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      if (!this.server.listening) {
        resolve()
        return
      }
      this.server.close(() => resolve())
      this.server.closeAllConnections()
    })
    return this.closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  /**
   * Refuse what a web page could send: a `Host` that is not this server (DNS rebinding, 403), an
   * `Origin` that is not this server (cross-origin, 403), a missing or wrong token (401), and a
   * mutating request whose body is not declared `application/json` (a "simple" cross-site
   * `text/plain` POST, 415).
   */
  private check(req: IncomingMessage): void {
    const host = req.headers.host
    if (host === undefined || host === '') throw new HttpError(400, 'a Host header is required')
    const hostName = normalizeHost(stripPort(host))
    if (!this.allowedHosts.has(hostName)) throw new HttpError(403, `Host '${host}' is not this control channel (allowed: localhost, 127.0.0.1, [::1], the bound address; see allowedHosts)`)
    const origin = req.headers.origin
    if (origin !== undefined && !this.sameOrigin(origin)) throw new HttpError(403, `cross-origin request from '${origin}' refused`)
    if (this.token !== undefined) {
      const given = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1]
      const bytes = Buffer.from(given ?? '', 'utf8')
      if (given === undefined || bytes.length !== this.token.length || !timingSafeEqual(bytes, this.token)) throw new HttpError(401, 'missing or wrong token (Authorization: Bearer <token>)')
    }
    const method = req.method ?? 'GET'
    if (method !== 'GET' && method !== 'HEAD') {
      const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase()
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

  private find(name: string): SimulatorServer {
    const server = this.servers.find((s) => s.device.name === name)
    if (server === undefined) throw new HttpError(404, `no device '${name}'`)
    return server
  }

  private async body(req: IncomingMessage): Promise<Record<string, unknown>> {
    const chunks: Buffer[] = []
    let length = 0
    for await (const chunk of req as AsyncIterable<Buffer>) {
      length += chunk.length
      if (length > this.maxBodyLength) throw new HttpError(413, `body over ${this.maxBodyLength} bytes`)
      chunks.push(chunk)
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

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost')
    let parts: string[]
    try {
      parts = url.pathname.split('/').filter((p) => p.length > 0).map(decodeURIComponent)
    } catch {
      throw new HttpError(400, `malformed percent-encoding in ${url.pathname}`)
    }
    const method = req.method ?? 'GET'
    if (parts[0] !== 'devices') throw new HttpError(404, `no route ${method} ${url.pathname}`)
    if (parts.length === 1) {
      if (method !== 'GET') throw new HttpError(405, 'GET only')
      send(res, 200, this.servers.map((s) => ({ name: s.device.name, address: s.address ?? null, connections: s.connections.length, cable: s.cableConnected, quiet: s.device.quiet })))
      return
    }
    const server = this.find(parts[1] ?? '')
    const device = server.device
    const section = parts[2]
    const id = parts[3]
    const route = `${method} ${section ?? ''}${id === undefined ? '' : '/:id'}`
    switch (route) {
      case 'GET ':
        send(res, 200, this.describe(server))
        return
      case 'GET state':
        send(res, 200, device.getState())
        return
      case 'PATCH state':
      case 'PUT state': {
        const body = await this.body(req)
        try {
          device.setState(body)
        } catch (error) {
          throw new HttpError(400, error instanceof Error ? error.message : String(error))
        }
        send(res, 200, device.getState())
        return
      }
      case 'POST methods/:id': {
        const fn = device.methods.get(id ?? '')
        if (fn === undefined) throw new HttpError(404, `no method '${id ?? ''}'; methods: ${[...device.methods.keys()].join(', ')}`)
        const body = await this.body(req)
        const args = body.args ?? []
        if (!Array.isArray(args)) throw new HttpError(400, 'args must be a list')
        const result: unknown = await fn(device, ...(args as unknown[]))
        send(res, 200, { result: result === undefined ? null : result })
        return
      }
      case 'POST reset':
        device.reset()
        send(res, 200, { quiet: device.quiet })
        return
      case 'GET faults':
        send(res, 200, device.faults.list())
        return
      case 'POST faults': {
        const body = await this.body(req)
        let spec
        try {
          spec = validateFaultSpec(body)
        } catch (error) {
          throw new HttpError(400, error instanceof Error ? error.message : String(error))
        }
        send(res, 201, device.faults.add(spec))
        return
      }
      case 'DELETE faults':
        device.faults.clear()
        send(res, 200, [])
        return
      case 'PATCH faults/:id': {
        const body = await this.body(req)
        if (typeof body.enabled !== 'boolean') throw new HttpError(400, 'enabled must be a boolean')
        if (!device.faults.enable(Number(id), body.enabled)) throw new HttpError(404, `no fault ${id ?? ''}`)
        send(res, 200, device.faults.get(Number(id)))
        return
      }
      case 'DELETE faults/:id':
        if (!device.faults.remove(Number(id))) throw new HttpError(404, `no fault ${id ?? ''}`)
        send(res, 200, device.faults.list())
        return
      case 'GET connections':
        send(res, 200, server.connections)
        return
      case 'DELETE connections/:id':
        if (!server.disconnect(Number(id))) throw new HttpError(404, `no connection ${id ?? ''}`)
        send(res, 200, { closed: Number(id) })
        return
      case 'PUT cable': {
        const body = await this.body(req)
        if (typeof body.connected !== 'boolean') throw new HttpError(400, 'connected must be a boolean')
        if (body.connected) server.restoreCable()
        else server.cutCable()
        send(res, 200, { connected: server.cableConnected })
        return
      }
      case 'POST broadcast': {
        const body = await this.body(req)
        if (typeof body.message !== 'string') throw new HttpError(400, 'message must be a string')
        const to = body.to
        if (to !== undefined && typeof to !== 'number') throw new HttpError(400, 'to must be a connection id')
        send(res, 200, { sent: device.broadcast(body.message, to === undefined ? {} : { to }) })
        return
      }
      default:
        throw new HttpError(404, `no route ${method} ${url.pathname}`)
    }
  }
}

function fail(res: ServerResponse, error: unknown, logger: Logger): void {
  const status = error instanceof HttpError ? error.status : 500
  if (status === 500) logger.error({ err: error }, 'control request failed')
  if (status === 401) res.setHeader('www-authenticate', 'Bearer')
  send(res, status, { error: error instanceof Error ? error.message : String(error) })
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

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.end()
    return
  }
  const text = JSON.stringify(body, (_key, value: unknown) => (typeof value === 'bigint' ? Number(value) : value))
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}
