/**
 * The control channel: a small HTTP JSON API on loopback to inspect and drive running simulated
 * devices (state, methods, faults, connections, the cable).
 *
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { ConnectionError, silentLogger, throwIfAborted, type AbortOptions, type Logger, type ServerAddress } from '@labwire/core'
import { validateFaultSpec } from './faults.js'
import type { SimulatorServer } from './server.js'

/** Options for {@link ControlServer}. */
export interface ControlServerOptions {
  /** The served devices, addressed by their device name. */
  servers: readonly SimulatorServer[]
  /** Address to bind. Default `127.0.0.1`. */
  host?: string
  /** Port; 0 (default) picks a free one. */
  port?: number
  /** Largest accepted request body, in bytes. Default 64 KiB. */
  maxBodyLength?: number
  logger?: Logger
}

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
  private readonly servers: readonly SimulatorServer[]
  private bound: ServerAddress | undefined
  private closing: Promise<void> | undefined

  constructor(options: ControlServerOptions) {
    this.servers = options.servers
    this.host = options.host ?? '127.0.0.1'
    this.port = options.port ?? 0
    this.maxBodyLength = options.maxBodyLength ?? 64 * 1024
    this.logger = options.logger ?? silentLogger
    this.server = createServer((req, res) => {
      this.route(req, res).catch((error: unknown) => {
        const status = error instanceof HttpError ? error.status : 500
        if (status === 500) this.logger.error({ err: error }, 'control request failed')
        send(res, status, { error: error instanceof Error ? error.message : String(error) })
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
    const parts = url.pathname.split('/').filter((p) => p.length > 0).map(decodeURIComponent)
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

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.end()
    return
  }
  const text = JSON.stringify(body, (_key, value: unknown) => (typeof value === 'bigint' ? Number(value) : value))
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}
