import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { Duplex } from 'node:stream'
import WebSocket, { WebSocketServer as WsServer } from 'ws'
import {
  AccessTimeoutError,
  ByteStream,
  CLOSE_CODE_ACCESS_REFUSED,
  CLOSE_CODE_ACCESS_TIMEOUT,
  ConnectionError,
  DEFAULT_MAX_LENGTH,
  FrameTooLargeError,
  FramingError,
  ServerKernel,
  checkCount,
  logDebug,
  checkPort,
  silentLogger,
  throwIfAborted,
  type AbortOptions,
  type AccessPolicy,
  type AccessRefusedError,
  type ByteHandler,
  type ConnectionIo,
  type KernelConnection,
  type Logger,
  type ServerAddress,
  type ServerCloseOptions,
} from '@labwire/core'
import type { TextMessagePolicy } from './client.js'

/** Default `maxPayload` of a {@link WebSocketServer}: the framers' default maximum frame length (1 MiB). */
export const DEFAULT_SERVER_MAX_PAYLOAD = DEFAULT_MAX_LENGTH
/** Default `maxConnections` of a {@link WebSocketServer}. */
export const DEFAULT_WS_MAX_CONNECTIONS = 1024
/** WebSocket close code for a session refused by the access policy (`AccessRefusedError`; the reason is its message). */
const CLOSE_ACCESS_REFUSED = CLOSE_CODE_ACCESS_REFUSED
/** WebSocket close code for a session that waited `queueTimeout` for exclusive access (`AccessTimeoutError`). */
const CLOSE_ACCESS_TIMEOUT = CLOSE_CODE_ACCESS_TIMEOUT

const CLOSE_LINGER_MS = 500

/** Options for {@link WebSocketServer}. */
export interface WebSocketServerOptions {
  /** Address to bind. Default `127.0.0.1` (loopback only; pass `0.0.0.0` or `::` to serve the network). */
  host?: string
  /** Port to bind; 0 (default) picks a free one. */
  port?: number
  /** The endpoint path; upgrades to any other path are refused with HTTP 404. Default `'/'`. */
  path?: string
  /** Called per request with the connection's byte stream; an `ApplicationServer` fits. */
  callback: ByteHandler
  /** Unread bytes buffered per connection before its socket is paused; also the `bufferedAmount` above which replies wait. Default 64 KiB. */
  bufferSize?: number
  /**
   * Largest incoming message in bytes, fragments of an unfinished message included; a longer one
   * closes that connection (1009, logged as `FrameTooLargeError`). Set it to the framer's
   * `maxLength` (a request cannot be longer). Default {@link DEFAULT_SERVER_MAX_PAYLOAD} (1 MiB).
   */
  maxPayload?: number
  /** Connections served at once; further upgrades are refused with HTTP 503. Default {@link DEFAULT_WS_MAX_CONNECTIONS} (1024). */
  maxConnections?: number
  /** Who may use the device at once (see `AccessPolicy`). A session turned away is closed with code 4403 (refused) or 4408 (queue timeout) and the error's message as reason. */
  access?: AccessPolicy
  /**
   * Browser origins allowed to connect (`'https://app.example'`), or `'*'` for any. A request
   * with no `Origin` header (not a browser) is always accepted. Default: only the server's own
   * origin (an `Origin` whose host:port is the request's `Host`); any other is refused with 403.
   */
  origins?: readonly string[] | '*'
  /**
   * Host names accepted in the `Host` header (DNS-rebinding guard), or `'*'` for any. Default:
   * on a loopback address, only `localhost`, `*.localhost`, `127.0.0.1`, `[::1]`; on any other
   * address, any host.
   */
  allowedHosts?: readonly string[] | '*'
  /** Close a connection idle (no message either way, no request being handled) this many milliseconds. Default: never. */
  idleTimeout?: number
  /** A request must arrive whole within this many milliseconds of its first byte, else its connection is closed (a slow-trickle peer cannot hold it). Default: no limit (0 = none). */
  requestTimeout?: number
  /** Text messages from a client: `'error'` (default) closes that connection (1003) and logs a `FramingError`; `'accept'` takes their UTF-8 bytes. */
  textMessages?: TextMessagePolicy
  logger?: Logger
}

/**
 * A WebSocket server (on `ws`) for simulators and gateways reachable from browsers and proxies.
 * Each connection to `path` is one buffered byte stream fed by its binary messages; requests are
 * handled in order and each reply is sent as one binary message. A callback that throws is logged
 * and closes only its own connection.
 *
 * @example
 * ```ts
 * const server = new WebSocketServer({ port: 0, path: '/scpi', callback: device })
 * const { port } = await server.listen()
 * // clients connect to ws://127.0.0.1:<port>/scpi
 * await server.close()
 * ```
 */
export class WebSocketServer implements AsyncDisposable {
  /** The serving kernel: its connections, access policy and drain; diagnostics events name it as `kernel`. */
  readonly kernel: ServerKernel
  private readonly origins: readonly string[] | '*' | undefined
  private readonly allowedHosts: readonly string[] | '*' | undefined
  private readonly host: string
  private readonly port: number
  private readonly path: string
  private readonly bufferSize: number
  private readonly maxPayload: number
  private readonly textMessages: TextMessagePolicy
  private readonly logger: Logger
  private readonly http: Server
  private readonly wss: WsServer
  private bound: ServerAddress | undefined
  private closing: Promise<void> | undefined

  constructor(options: WebSocketServerOptions) {
    this.host = options.host ?? '127.0.0.1'
    this.port = checkPort('WebSocketServer', options.port ?? 0)
    const path = options.path ?? '/'
    if (typeof path !== 'string' || !path.startsWith('/')) throw new RangeError(`WebSocketServer: path must start with '/', got ${JSON.stringify(path)}`)
    this.path = path
    this.bufferSize = checkCount('WebSocketServer', 'bufferSize', options.bufferSize ?? 64 * 1024)
    this.maxPayload = checkCount('WebSocketServer', 'maxPayload', options.maxPayload ?? DEFAULT_SERVER_MAX_PAYLOAD)
    this.origins = checkNames('origins', options.origins)
    this.allowedHosts = checkNames('allowedHosts', options.allowedHosts)
    const textMessages = options.textMessages ?? 'error'
    if (textMessages !== 'error' && textMessages !== 'accept') throw new RangeError(`WebSocketServer: textMessages must be 'error' or 'accept', got ${String(textMessages)}`)
    this.textMessages = textMessages
    this.logger = options.logger ?? silentLogger
    this.kernel = new ServerKernel({
      server: 'WebSocketServer',
      transport: 'websocket',
      callback: options.callback,
      logger: this.logger,
      maxConnections: options.maxConnections ?? DEFAULT_WS_MAX_CONNECTIONS,
      idleTimeout: options.idleTimeout,
      requestTimeout: options.requestTimeout,
      access: options.access,
    })
    this.wss = new WsServer({ noServer: true, perMessageDeflate: false, maxPayload: this.maxPayload, clientTracking: false })
    this.http = createServer((_request, response) => {
      response.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket', connection: 'close' })
      response.end(`WebSocket endpoint: connect to ws://<host>:<port>${this.path}\n`)
    })
    this.http.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(request, socket, head))
    this.http.on('error', (error) => this.logger.error({ err: error }, 'server error'))
  }

  /** The bound address once listening, else `undefined`. */
  get address(): ServerAddress | undefined {
    return this.bound
  }

  /** The endpoint URL once listening (`ws://host:port/path`), else `undefined`. */
  get url(): string | undefined {
    if (this.bound === undefined) return undefined
    const host = this.bound.host.includes(':') ? `[${this.bound.host}]` : this.bound.host
    return `ws://${host}:${this.bound.port}${this.path}`
  }

  /** Open connections. */
  get connectionCount(): number {
    return this.kernel.size
  }

  /** Start listening. Resolves with the bound address (the real port when `port` was 0); rejects with `ConnectionError` naming host:port. */
  listen(options?: AbortOptions): Promise<ServerAddress> {
    try {
      throwIfAborted(options)
    } catch (error) {
      return Promise.reject(error)
    }
    if (this.bound !== undefined) return Promise.resolve(this.bound)
    if (this.closing !== undefined) return Promise.reject(new ConnectionError('WebSocket server is closed'))
    return new Promise<ServerAddress>((resolve, reject) => {
      const where = this.host.includes(':') ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`
      const onError = (error: Error): void => reject(new ConnectionError(`could not listen on ${where}: ${error.message}`, { cause: error }))
      this.http.once('error', onError)
      this.http.listen({ host: this.host, port: this.port }, () => {
        this.http.off('error', onError)
        const address = this.http.address()
        if (address === null || typeof address === 'string') {
          reject(new ConnectionError('server has no TCP address'))
          return
        }
        this.bound = { host: address.address, port: address.port }
        logDebug(this.logger, () => [{ url: this.url }, 'listening'])
        resolve(this.bound)
      })
    })
  }

  /**
   * Stop listening and close every connection, idle or busy (code 1001; dropped if the client does
   * not answer within 0.5 s) — or, with `drain`, let requests in flight finish for up to `drain`
   * ms first (a connection is closed with 1000 once nothing is in flight). Idempotent.
   */
  close(options?: ServerCloseOptions): Promise<void> {
    this.closing ??= (async () => {
      const stopped = this.http.listening ? new Promise<void>((resolve) => this.http.close(() => resolve())) : Promise.resolve()
      await this.kernel.close(options)
      this.wss.close()
      this.http.closeAllConnections()
      await stopped
    })()
    return this.closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  private upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (error) => logDebug(this.logger, () => [{ err: error }, 'upgrade socket error']))
    const peer = peerOf(request)
    const path = (request.url ?? '/').split('?')[0]
    const refuse = (status: number, text: string, why?: string): void => {
      this.logger.warn({ peer, path, status, ...(why === undefined ? {} : { why }) }, `upgrade refused: ${text}`)
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
    }
    if (this.kernel.full) return refuse(503, 'Service Unavailable')
    if (path !== this.path) return refuse(404, 'Not Found')
    const host = request.headers.host
    if (host !== undefined && !this.hostAllowed(host)) return refuse(403, 'Forbidden', `Host ${JSON.stringify(host)} is not allowed (allowedHosts)`)
    const origin = request.headers.origin
    if (origin !== undefined && !this.originAllowed(origin, host)) return refuse(403, 'Forbidden', `Origin ${JSON.stringify(origin)} is not allowed (origins)`)
    this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws, peer))
  }

  private hostAllowed(header: string): boolean {
    const allowed = this.allowedHosts
    if (allowed === '*') return true
    const name = hostnameOf(header)
    if (allowed !== undefined) return allowed.some((entry) => entry.toLowerCase() === name)
    if (!isLoopback(this.bound?.host ?? this.host)) return true
    return name === 'localhost' || name.endsWith('.localhost') || name === '127.0.0.1' || name === '[::1]' || name === '::1'
  }

  private originAllowed(origin: string, host: string | undefined): boolean {
    const allowed = this.origins
    if (allowed === '*') return true
    if (allowed !== undefined) return allowed.includes(origin)
    // Default: the server's own origin only.
    let originHost: string
    try {
      originHost = new URL(origin).host
    } catch {
      return false
    }
    return host !== undefined && originHost.toLowerCase() === host.toLowerCase()
  }

  private accept(ws: WebSocket, peer: string): void {
    ws.binaryType = 'nodebuffer'
    const stream = new ByteStream(undefined, { highWaterMark: this.bufferSize, producer: ws, label: `WebSocket peer ${peer}` })
    const io = new WsIo(ws, stream, this.bufferSize)
    const conn = this.kernel.admit(peer, stream, io)
    if (conn === undefined) {
      ws.terminate()
      return
    }
    io.conn = conn
    const textMessages = this.textMessages
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary && textMessages === 'error') {
        ws.close(1003, 'binary messages only') // before failing the stream: its loop closes the connection with 1000
        stream.fail(new FramingError(`${peer} sent a text message; this endpoint takes binary messages (textMessages: 'accept' takes their UTF-8 bytes)`))
        return
      }
      stream.push(data)
    })
    ws.on('error', (error: Error & { code?: string }) => {
      logDebug(this.logger, () => [{ peer, err: error }, 'websocket error'])
      stream.fail(
        error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
          ? new FrameTooLargeError(this.maxPayload, `${peer} sent a message over maxPayload (${this.maxPayload} bytes)`, { cause: error })
          : new ConnectionError(`connection from ${peer} failed: ${error.message}`, { cause: error }),
      )
    })
    ws.on('close', () => conn.closed())
  }
}

/** One WebSocket connection as the serving kernel drives it. */
class WsIo implements ConnectionIo {
  conn: KernelConnection | undefined = undefined
  private lingering: ReturnType<typeof setTimeout> | undefined

  constructor(
    private readonly ws: WebSocket,
    private readonly stream: ByteStream,
    private readonly highWaterMark: number,
  ) {}

  write(bytes: Uint8Array): Promise<void> | undefined {
    const ws = this.ws
    if (ws.readyState !== WebSocket.OPEN) return undefined
    // Non-string data goes out as a binary message (no options object per send).
    if (ws.bufferedAmount + bytes.length <= this.highWaterMark) {
      ws.send(bytes)
      return undefined
    }
    // Over the high-water mark: wait until this message has been written out.
    return new Promise<void>((resolve) => ws.send(bytes, () => resolve()))
  }

  flush(): void {}

  attach(conn: KernelConnection): void {
    this.conn = conn
  }

  end(): void {
    this.closeWith(1000, '', CLOSE_LINGER_MS * 2)
  }

  destroy(): void {
    this.closeWith(1001, 'server closing', CLOSE_LINGER_MS)
  }

  refuse(error: AccessRefusedError | AccessTimeoutError): void {
    this.closeWith(error instanceof AccessTimeoutError ? CLOSE_ACCESS_TIMEOUT : CLOSE_ACCESS_REFUSED, truncateReason(error.message), CLOSE_LINGER_MS * 2)
  }

  /** Send a close frame; drop the socket if the client does not answer the closing handshake in time. */
  private closeWith(code: number, reason: string, linger: number): void {
    const ws = this.ws
    this.stream.end()
    if (ws.readyState === WebSocket.CLOSED) return
    if (ws.readyState !== WebSocket.CLOSING) ws.close(code, reason)
    if (this.lingering !== undefined) return
    const timer = setTimeout(() => ws.terminate(), linger)
    timer.unref()
    this.lingering = timer
    ws.once('close', () => clearTimeout(timer))
  }
}

/** A close reason is at most 123 bytes of UTF-8. */
function truncateReason(text: string): string {
  const bytes = Buffer.from(text)
  return bytes.length <= 123 ? text : bytes.subarray(0, 120).toString('utf8').replace(/\uFFFD+$/, '') + '...'
}

function checkNames(name: string, value: unknown): readonly string[] | '*' | undefined {
  if (value === undefined || value === '*') return value
  if (!Array.isArray(value) || !value.every((entry) => typeof entry === 'string')) throw new TypeError(`WebSocketServer: ${name} must be an array of strings or '*'`)
  return [...(value)]
}

/** The lower-cased host name of a Host header (port dropped; IPv6 kept in brackets). */
function hostnameOf(header: string): string {
  const value = header.trim().toLowerCase()
  if (value.startsWith('[')) {
    const end = value.indexOf(']')
    return end < 0 ? value : value.slice(0, end + 1)
  }
  const colon = value.indexOf(':')
  return colon < 0 ? value : value.slice(0, colon)
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '::1' || host === '::ffff:127.0.0.1'
}

function peerOf(request: IncomingMessage): string {
  const address = request.socket.remoteAddress ?? '?'
  const port = request.socket.remotePort ?? 0
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`
}
