import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { Duplex } from 'node:stream'
import WebSocket, { WebSocketServer as WsServer } from 'ws'
import {
  ByteStream,
  ConnectionError,
  FrameTooLargeError,
  FramingError,
  checkCount,
  checkDuration,
  checkPort,
  logDebug,
  serveConnection,
  silentLogger,
  throwIfAborted,
  toHandlerFunction,
  type AbortOptions,
  type ByteHandler,
  type ByteHandlerFunction,
  type Logger,
  type ServedConnection,
  type ServerAddress,
} from '@labwire/core'
import { DEFAULT_MAX_PAYLOAD, type TextMessagePolicy } from './client.js'

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
  /** Largest incoming message in bytes; a longer one closes that connection (1009, logged as `FrameTooLargeError`). Default {@link DEFAULT_MAX_PAYLOAD}. */
  maxPayload?: number
  /** Connections served at once; further upgrades are refused with HTTP 503. Default: unlimited. */
  maxConnections?: number
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
  private readonly handler: ByteHandlerFunction
  private readonly host: string
  private readonly port: number
  private readonly path: string
  private readonly bufferSize: number
  private readonly maxPayload: number
  private readonly maxConnections: number
  private readonly idleTimeout: number | undefined
  private readonly requestTimeout: number | undefined
  private readonly textMessages: TextMessagePolicy
  private readonly logger: Logger
  private readonly http: Server
  private readonly wss: WsServer
  private readonly sockets = new Set<WebSocket>()
  private bound: ServerAddress | undefined
  private closing: Promise<void> | undefined

  constructor(options: WebSocketServerOptions) {
    this.handler = toHandlerFunction(options.callback)
    this.host = options.host ?? '127.0.0.1'
    this.port = checkPort('WebSocketServer', options.port ?? 0)
    const path = options.path ?? '/'
    if (typeof path !== 'string' || !path.startsWith('/')) throw new RangeError(`WebSocketServer: path must start with '/', got ${JSON.stringify(path)}`)
    this.path = path
    this.bufferSize = checkCount('WebSocketServer', 'bufferSize', options.bufferSize ?? 64 * 1024)
    this.maxPayload = checkCount('WebSocketServer', 'maxPayload', options.maxPayload ?? DEFAULT_MAX_PAYLOAD)
    this.maxConnections = checkCount('WebSocketServer', 'maxConnections', options.maxConnections ?? Infinity, { allowInfinity: true })
    this.idleTimeout = checkDuration('WebSocketServer', 'idleTimeout', options.idleTimeout)
    this.requestTimeout = checkDuration('WebSocketServer', 'requestTimeout', options.requestTimeout)
    const textMessages = options.textMessages ?? 'error'
    if (textMessages !== 'error' && textMessages !== 'accept') throw new RangeError(`WebSocketServer: textMessages must be 'error' or 'accept', got ${String(textMessages)}`)
    this.textMessages = textMessages
    this.logger = options.logger ?? silentLogger
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
    return this.sockets.size
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

  /** Stop listening and close every connection, idle or busy (code 1001; dropped if the client does not answer within 0.5 s). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const sockets = [...this.sockets]
      const gone = sockets.map((ws) =>
        ws.readyState === WebSocket.CLOSED ? Promise.resolve() : new Promise<void>((resolve) => ws.once('close', () => resolve())),
      )
      for (const ws of sockets) ws.close(1001, 'server closing')
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([Promise.all(gone), new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_LINGER_MS)))])
      clearTimeout(timer)
      for (const ws of sockets) ws.terminate()
      this.wss.close()
      if (!this.http.listening) return
      await new Promise<void>((resolve) => {
        this.http.close(() => resolve())
        this.http.closeAllConnections()
      })
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
    const refuse = (status: number, text: string): void => {
      this.logger.warn({ peer, path, status }, `upgrade refused: ${text}`)
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
    }
    if (this.closing !== undefined) return refuse(503, 'Service Unavailable')
    if (path !== this.path) return refuse(404, 'Not Found')
    if (this.sockets.size >= this.maxConnections) return refuse(503, 'Service Unavailable')
    this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws, peer))
  }

  private accept(ws: WebSocket, peer: string): void {
    if (this.closing !== undefined) {
      ws.terminate()
      return
    }
    this.sockets.add(ws)
    ws.binaryType = 'nodebuffer'
    const stream = new ByteStream(undefined, {
      highWaterMark: this.bufferSize,
      onPause: () => ws.pause(),
      onResume: () => ws.resume(),
      label: `WebSocket peer ${peer}`,
    })
    // Activity is timed only when there is an idle timeout (a clock read per message otherwise wasted).
    const timed = this.idleTimeout !== undefined
    let lastActivity = timed ? performance.now() : 0
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (timed) lastActivity = performance.now()
      if (!isBinary && this.textMessages === 'error') {
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
    let idleTimer: ReturnType<typeof setTimeout> | undefined
    ws.on('close', () => {
      this.sockets.delete(ws)
      if (idleTimer !== undefined) clearTimeout(idleTimer)
      stream.end()
    })
    const highWaterMark = this.bufferSize
    const conn: ServedConnection = {
      peer,
      busy: false,
      write(bytes) {
        if (ws.readyState !== WebSocket.OPEN) return undefined
        if (timed) lastActivity = performance.now()
        // Non-string data goes out as a binary message (no options object per send).
        if (ws.bufferedAmount + bytes.length <= highWaterMark) {
          ws.send(bytes)
          return undefined
        }
        // Over the high-water mark: wait until this message has been written out.
        return new Promise<void>((resolve) => ws.send(bytes, () => resolve()))
      },
      flush: () => undefined,
      close() {
        if (ws.readyState === WebSocket.CLOSED || ws.readyState === WebSocket.CLOSING) return
        stream.end()
        ws.close(1000)
        // Drop the socket if the client never answers the closing handshake.
        const timer = setTimeout(() => ws.terminate(), CLOSE_LINGER_MS * 2)
        timer.unref()
        ws.once('close', () => clearTimeout(timer))
      },
    }
    const idleTimeout = this.idleTimeout
    if (idleTimeout !== undefined) {
      const check = (): void => {
        const idle = performance.now() - lastActivity
        if (conn.busy || idle < idleTimeout) {
          idleTimer = setTimeout(check, conn.busy ? idleTimeout : idleTimeout - idle)
          idleTimer.unref()
          return
        }
        logDebug(this.logger, () => [{ peer, idleTimeout }, 'closing idle connection'])
        conn.close()
      }
      idleTimer = setTimeout(check, idleTimeout)
      idleTimer.unref()
    }
    logDebug(this.logger, () => [{ peer }, 'connection accepted'])
    void serveConnection(stream, this.handler, conn, this.logger, { requestTimeout: this.requestTimeout })
  }
}

function peerOf(request: IncomingMessage): string {
  const address = request.socket.remoteAddress ?? '?'
  const port = request.socket.remotePort ?? 0
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`
}
