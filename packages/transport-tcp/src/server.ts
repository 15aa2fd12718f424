import { createServer, type Server, type Socket } from 'node:net'
import {
  ByteQueue,
  ByteStream,
  ConnectionError,
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
  /** Connections served at once; further ones are accepted and closed straight away. Default: unlimited. */
  maxConnections?: number
  /** Close a connection that has been idle (no bytes either way, no request being handled) this many milliseconds. Default: never. */
  idleTimeout?: number
}

/**
 * A TCP server for simulators and gateways. Each connection is one buffered byte stream; its
 * requests are handled one after another, in order, and its replies written in order. Many
 * connections are served at once. A callback that throws is logged and closes only its own
 * connection.
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
  private readonly handler: ByteHandlerFunction
  private readonly host: string
  private readonly port: number
  private readonly bufferSize: number
  private readonly logger: Logger
  private readonly maxConnections: number
  private readonly idleTimeout: number
  private readonly sockets = new Set<Socket>()
  private bound: ServerAddress | undefined
  private closing: Promise<void> | undefined

  constructor(options: TcpServerOptions) {
    this.handler = toHandlerFunction(options.callback)
    this.host = options.host ?? '127.0.0.1'
    this.port = options.port ?? 0
    this.bufferSize = options.bufferSize ?? 64 * 1024
    this.logger = options.logger ?? silentLogger
    this.maxConnections = options.maxConnections ?? Infinity
    this.idleTimeout = options.idleTimeout ?? 0
    this.server = createServer({ noDelay: true }, (socket) => this.accept(socket))
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
    if (this.bound !== undefined) return Promise.resolve(this.bound)
    if (this.closing !== undefined) return Promise.reject(new ConnectionError('server is closed'))
    return new Promise<ServerAddress>((resolve, reject) => {
      const onError = (error: Error): void => {
        reject(new ConnectionError(`could not listen on ${formatTarget(this.host, this.port)}: ${error.message}`, { cause: error }))
      }
      this.server.once('error', onError)
      this.server.listen({ host: this.host, port: this.port }, () => {
        this.server.off('error', onError)
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
  }

  /** Stop listening and close every connection, idle or busy. Resolves once all are closed. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      for (const socket of this.sockets) socket.destroy()
      if (!this.server.listening) {
        resolve()
        return
      }
      this.server.close(() => resolve())
    })
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
      socket.destroy()
      return
    }
    this.sockets.add(socket)
    socket.setNoDelay(true)
    const queue = new ByteQueue({
      highWaterMark: this.bufferSize,
      onPause: () => socket.pause(),
      onResume: () => socket.resume(),
    })
    socket.on('data', (chunk: Buffer) => queue.push(chunk))
    socket.on('end', () => queue.end())
    socket.on('close', () => {
      this.sockets.delete(socket)
      queue.end()
    })
    const stream = new ByteStream(queue)
    let corked = false
    const conn: ServedConnection = {
      peer,
      busy: false,
      write(bytes) {
        if (socket.destroyed || !socket.writable) return undefined
        // More requests already buffered (pipelined): cork, so their replies leave together; the
        // cork is released when the loop waits for input or at the end of this tick, whichever is
        // first, so a reply is never held back while a later request's handler is pending.
        // Lockstep (nothing buffered): write at once.
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
        if (socket.destroyed) return
        // Lingering close: send what is queued and a FIN, then read and drop whatever the peer still
        // sends (the queue is ended, so nothing is kept) until it closes too, for at most 1 s.
        // Destroying at once with unread input would reset the connection and could lose replies
        // the peer has not read yet.
        queue.end()
        socket.resume()
        socket.end()
        const timer = setTimeout(() => socket.destroy(), CLOSE_LINGER_MS)
        timer.unref()
        socket.once('close', () => clearTimeout(timer))
      },
    }
    if (this.idleTimeout > 0) {
      // Node registers setTimeout's callback with once(): listen with on() so the timer, re-armed
      // by socket activity, can fire again; re-arm it by hand while busy (a reply-less request has no activity).
      socket.setTimeout(this.idleTimeout)
      socket.on('timeout', () => {
        if (conn.busy) {
          socket.setTimeout(this.idleTimeout)
          return
        }
        logDebug(this.logger, () => [{ peer, idleTimeout: this.idleTimeout }, 'closing idle connection'])
        socket.destroy()
      })
    }
    logDebug(this.logger, () => [{ peer }, 'connection accepted'])
    void serveConnection(stream, this.handler, conn, this.logger)
  }
}
