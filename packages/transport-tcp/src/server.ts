import { createServer, type Server, type Socket } from 'node:net'
import {
  ByteStream,
  ConnectionError,
  checkCount,
  checkDuration,
  checkPort,
  clampDelay,
  logDebug,
  serveConnection,
  silentLogger,
  throwIfAborted,
  toHandlerFunction,
  type AbortOptions,
  type ByteHandler,
  type ConnectionFilter,
  type ConnectionFilterFactory,
  type Logger,
  type ServeHandler,
  type ServedConnection,
  type ServerAddress,
} from '@labwire/core'
import { formatTarget } from './client.js'

const CLOSE_LINGER_MS = 1000

/** Options for {@link TcpServer}. */
export interface TcpServerOptions {
  /** Address to bind. Default `127.0.0.1` (loopback only; pass `0.0.0.0` or `::` to serve the network). */
  host?: string
  /** Port to bind; 0 (default) picks a free one. */
  port?: number
  /** Called per request with the connection's byte stream; an `ApplicationServer` fits. */
  callback: ByteHandler
  /** Unread bytes buffered per connection before its socket is paused. Default 64 KiB. */
  bufferSize?: number
  logger?: Logger
  /** Connections served at once; further ones are accepted and closed straight away (the peer sees the connection closed). Default: unlimited. */
  maxConnections?: number
  /** Close a connection that has been idle (no bytes either way, no request being handled) this many milliseconds. Default: never (0 = never). */
  idleTimeout?: number
  /** A request must arrive whole within this many milliseconds of its first byte, else its connection is closed. Default: no limit (0 = none). */
  requestTimeout?: number
  /** A protocol layer under the framing, one per connection (Telnet's codec, a wire trace). */
  filter?: ConnectionFilterFactory
}

/**
 * A TCP server for simulators and gateways. Each connection is one buffered byte stream; its
 * requests are handled one after another, in order, and its replies written in order. Many
 * connections are served at once. A callback that throws is logged and closes only its own
 * connection. A client that half-closes (shuts its write side) still gets every reply.
 *
 * @example
 * ```ts
 * const server = new TcpServer({ port: 0, callback: (bytes) => new SentinelBytesMarshaller('\n').unmarshall(bytes) })
 * const { port } = await server.listen()
 * await server.close()
 * ```
 */
export class TcpServer implements AsyncDisposable {
  private readonly server: Server
  private readonly handler: ServeHandler
  private readonly host: string
  private readonly port: number
  private readonly bufferSize: number
  private readonly logger: Logger
  private readonly maxConnections: number
  private readonly idleTimeout: number | undefined
  private readonly requestTimeout: number | undefined
  private readonly filter: ConnectionFilterFactory | undefined
  private readonly sockets = new Set<Socket>()
  private bound: ServerAddress | undefined
  private listening: Promise<ServerAddress> | undefined
  private closing: Promise<void> | undefined

  constructor(options: TcpServerOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('TcpServer: options { callback, host?, port?, … } are required')
    if (options.callback === undefined) throw new TypeError('TcpServer: callback is required (a ByteHandler, e.g. an ApplicationServer)')
    this.handler = toHandlerFunction(options.callback)
    if (options.host !== undefined && (typeof options.host !== 'string' || options.host.length === 0)) throw new TypeError(`TcpServer: host must be a non-empty string, got ${typeof options.host === 'string' ? "''" : typeof options.host}`)
    this.host = options.host ?? '127.0.0.1'
    this.port = checkPort('TcpServer', options.port ?? 0)
    this.bufferSize = checkCount('TcpServer', 'bufferSize', options.bufferSize ?? 64 * 1024)
    this.logger = options.logger ?? silentLogger
    this.maxConnections = checkCount('TcpServer', 'maxConnections', options.maxConnections ?? Infinity, { allowInfinity: true })
    this.idleTimeout = checkDuration('TcpServer', 'idleTimeout', options.idleTimeout)
    this.requestTimeout = checkDuration('TcpServer', 'requestTimeout', options.requestTimeout)
    if (options.filter !== undefined && typeof options.filter !== 'function') throw new TypeError('TcpServer: filter must be a function (context) => ConnectionFilter')
    this.filter = options.filter
    // allowHalfOpen: a client that shuts its write side still gets the replies to what it sent.
    this.server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.accept(socket))
    this.server.on('error', (error) => this.logger.error({ err: error }, 'server error'))
  }

  /** The bound address once listening, else `undefined`. */
  get address(): ServerAddress | undefined {
    return this.bound
  }

  /** Open connections. */
  get connectionCount(): number {
    return this.sockets.size
  }

  /** Start listening. Resolves with the bound address (the real port when `port` was 0). */
  listen(options?: AbortOptions): Promise<ServerAddress> {
    try {
      throwIfAborted(options)
    } catch (error) {
      return Promise.reject(error)
    }
    if (this.closing !== undefined) return Promise.reject(new ConnectionError(`server on ${formatTarget(this.host, this.port)} is closed`))
    this.listening ??= new Promise<ServerAddress>((resolve, reject) => {
      const onError = (error: Error): void => {
        this.listening = undefined
        reject(new ConnectionError(`could not listen on ${formatTarget(this.host, this.port)}: ${error.message}`, { cause: error }))
      }
      this.server.once('error', onError)
      this.server.listen({ host: this.host, port: this.port }, () => {
        this.server.off('error', onError)
        if (this.closing !== undefined) {
          // close() was called while listen() was in progress: do not stay bound.
          this.server.close()
          reject(new ConnectionError(`server on ${formatTarget(this.host, this.port)} was closed while it was starting`))
          return
        }
        const address = this.server.address()
        if (address === null || typeof address === 'string') {
          reject(new ConnectionError('server has no TCP address'))
          return
        }
        this.bound = { host: address.address, port: address.port }
        logDebug(this.logger, () => [{ ...this.bound }, 'listening'])
        resolve(this.bound)
      })
    })
    return this.listening
  }

  /**
   * Stop listening and close every connection, idle or busy. Resolves once all are closed
   * (`connectionCount` is 0 by then). Idempotent; also stops a `listen()` still in progress.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const starting = this.listening
      if (starting !== undefined) await starting.then(() => undefined, () => undefined)
      const closed = [...this.sockets].map(
        (socket) =>
          new Promise<void>((resolve) => {
            if (socket.destroyed) resolve()
            else socket.once('close', () => resolve())
            socket.destroy()
          }),
      )
      const stopped = new Promise<void>((resolve) => {
        if (!this.server.listening) resolve()
        else this.server.close(() => resolve())
      })
      await Promise.all([...closed, stopped])
      this.sockets.clear()
    })()
    return this.closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  private accept(socket: Socket): void {
    const peer = formatTarget(socket.remoteAddress ?? '?', socket.remotePort ?? 0)
    socket.on('error', (error) => logDebug(this.logger, () => [{ peer, err: error }, 'socket error']))
    if (this.closing !== undefined || this.sockets.size >= this.maxConnections) {
      this.logger.warn({ peer, maxConnections: this.maxConnections }, 'connection refused: server at maxConnections or closing')
      lingeringClose(socket)
      return
    }
    this.sockets.add(socket)
    socket.setNoDelay(true)
    const stream = new ByteStream(undefined, {
      highWaterMark: this.bufferSize,
      onPause: () => socket.pause(),
      onResume: () => socket.resume(),
      label: peer,
    })
    let filter: ConnectionFilter | undefined
    if (this.filter !== undefined) {
      filter = this.filter({
        side: 'server',
        peer,
        send: (bytes) => {
          if (!socket.destroyed && socket.writable) socket.write(bytes)
        },
      })
    }
    if (filter === undefined) {
      socket.on('data', (chunk: Buffer) => stream.push(chunk))
    } else {
      const input = filter
      socket.on('data', (chunk: Buffer) => {
        let data: Uint8Array
        try {
          data = input.input(chunk)
        } catch (error) {
          stream.fail(error)
          this.logger.warn({ peer, err: error }, 'protocol error; closing the connection')
          conn.close()
          return
        }
        if (data.length > 0) stream.push(data)
      })
    }
    socket.on('end', () => stream.end())
    socket.on('close', () => {
      this.sockets.delete(socket)
      stream.end()
      filter?.close?.()
    })
    let corked = false
    const output = filter
    const conn: ServedConnection = {
      peer,
      busy: false,
      write(reply) {
        if (socket.destroyed || !socket.writable) return undefined
        const bytes = output === undefined ? reply : output.output(reply)
        // More requests already buffered (pipelined): cork, so their replies leave together; the
        // cork is released when the loop waits for input or at the end of this tick, whichever is
        // first. Lockstep (nothing buffered): write at once.
        if (!corked && stream.bufferedLength > 0) {
          corked = true
          socket.cork()
          process.nextTick(() => conn.flush())
        }
        if (socket.write(bytes)) return undefined
        conn.flush()
        return new Promise<void>((resolve) => {
          const done = (): void => {
            socket.off('drain', done)
            socket.off('close', done)
            resolve()
          }
          socket.on('drain', done)
          socket.on('close', done)
        })
      },
      flush() {
        if (corked) {
          corked = false
          socket.uncork()
        }
      },
      close() {
        stream.end()
        lingeringClose(socket)
      },
    }
    if (this.idleTimeout !== undefined) {
      const idleTimeout = clampDelay(this.idleTimeout)
      // Node registers setTimeout's callback with once(): listen with on() so the timer, re-armed
      // by socket activity, can fire again; re-arm it by hand while busy (a reply-less request has no activity).
      socket.setTimeout(idleTimeout)
      socket.on('timeout', () => {
        if (conn.busy) {
          socket.setTimeout(idleTimeout)
          return
        }
        logDebug(this.logger, () => [{ peer, idleTimeout }, 'closing idle connection'])
        socket.destroy()
      })
    }
    logDebug(this.logger, () => [{ peer }, 'connection accepted'])
    filter?.open?.()
    void serveConnection(stream, this.handler, conn, this.logger, { requestTimeout: this.requestTimeout })
  }
}

/**
 * Lingering close: send what is queued and a FIN, then read and drop whatever the peer still
 * sends until it closes too, for at most 1 s. Destroying at once with unread input would reset
 * the connection, and the peer could lose replies it has not read yet.
 */
function lingeringClose(socket: Socket): void {
  if (socket.destroyed) return
  socket.removeAllListeners('data')
  socket.on('data', () => undefined)
  socket.resume()
  socket.end()
  const timer = setTimeout(() => socket.destroy(), CLOSE_LINGER_MS)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
  // With allowHalfOpen the socket waits for the peer's FIN; once both sides ended, let it go.
  socket.once('end', () => socket.destroy())
}
