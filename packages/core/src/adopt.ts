/**
 * Adopted sockets: the serving kernel's bookkeeping for a server whose sockets someone else reads
 * (`node:http`'s parser, a framework on top of it). The server keeps reading and answering; the
 * kernel keeps the set of live sockets, `maxConnections`, the idle timeout, `close({ drain })`
 * and the `labwire:server:connect` / `labwire:server:close` events — the same code every labwire
 * server uses, so an HTTP side (the simulator's control channel, the monitor) does not keep its own.
 *
 * @module
 */
import { ByteStream } from './byte-stream.js'
import type { ConnectionHandler, ServerConnection } from './connection.js'
import { ConnectionError } from './errors.js'
import { ServerKernel, type ConnectionIo, type KernelConnection, type ServerCloseOptions } from './kernel.js'
import type { Logger } from './logger.js'

/** What {@link SocketAdopter} needs of a socket (a `net.Socket` has it all). */
export interface AdoptableSocket {
  readonly remoteAddress?: string | undefined
  readonly remotePort?: number | undefined
  /** Bytes written so far (the idle timer's activity mark, and the close event's `bytesOut`). */
  readonly bytesWritten: number
  /** Bytes read so far (the close event's `bytesIn`). */
  readonly bytesRead: number
  readonly destroyed: boolean
  end(): unknown
  destroy(): unknown
  once(event: 'close', listener: () => void): unknown
}

/** What {@link SocketAdopter.request} needs of a response: its end (`http.ServerResponse` has it). */
export interface AdoptedResponse {
  once(event: 'close', listener: () => void): unknown
}

/** Options for {@link SocketAdopter}: the kernel options that make sense when another reader owns the bytes. */
export interface SocketAdopterOptions {
  /** The server's class name, for messages and events (`'ControlServer'`). */
  server: string
  /** The transport kind in events (`'http'`). */
  transport: string
  logger?: Logger | undefined
  /** Live sockets at most; one more is destroyed at once. Default unlimited. */
  maxConnections?: number | undefined
  /** Close a socket with no request in progress and no bytes written for this many ms. Default: never. */
  idleTimeout?: number | undefined
}

/** A socket that ends gracefully is destroyed if it has not closed this long after. */
const END_GRACE = 1_000

/**
 * The kernel's handler for adopted sockets: nothing to read (another reader owns the bytes), so a
 * connection is "served" until it closes.
 */
const untilClosed: ConnectionHandler = {
  serveConnection(connection: ServerConnection): Promise<void> {
    return new Promise<void>((resolve) => {
      if (connection.signal.aborted) resolve()
      else connection.signal.addEventListener('abort', () => resolve(), { once: true })
    })
  },
}

/**
 * An adopted socket's stream: never fed (the other reader has the bytes), but its `consumed` is
 * the socket's `bytesRead`, so the idle sweep sees incoming bytes as activity and the close event
 * reports them.
 */
class AdoptedStream extends ByteStream {
  constructor(
    private readonly socket: AdoptableSocket,
    label: string,
  ) {
    super(undefined, { label })
  }

  override get consumed(): number {
    return this.socket.bytesRead
  }
}

/** The kernel's side of an adopted socket: end and destroy it; nothing is written through the kernel. */
class AdoptedIo implements ConnectionIo {
  conn: KernelConnection | undefined = undefined

  constructor(readonly socket: AdoptableSocket) {}

  write(): Promise<void> | undefined {
    throw new ConnectionError('an adopted socket is written by the server that reads it, not through the kernel')
  }

  flush(): void {}

  end(): void {
    const socket = this.socket
    if (socket.destroyed) return
    socket.end()
    const timer = setTimeout(() => socket.destroy(), END_GRACE)
    timer.unref?.()
    socket.once('close', () => clearTimeout(timer))
  }

  destroy(): void {
    this.socket.destroy()
  }

  attach(conn: KernelConnection): void {
    this.conn = conn
  }
}

/**
 * Hands a server's sockets to a {@link ServerKernel} when the server reads them itself. Call
 * {@link SocketAdopter.adopt} from the server's `'connection'` event and
 * {@link SocketAdopter.request} when a request starts (or {@link SocketAdopter.attachHttp} for a
 * `node:http` server: both at once). A socket is busy while a request on it is in progress; idle
 * ones are closed after `idleTimeout`; `close({ drain })` closes idle sockets at once and busy
 * ones as their request ends (or at the deadline). No access policy: the reader has already
 * started on a socket the policy would make wait.
 *
 * @example
 * ```ts
 * const adopter = new SocketAdopter({ server: 'ControlServer', transport: 'http', maxConnections: 64, idleTimeout: 30_000 })
 * const http = createServer(handler)
 * adopter.attachHttp(http)
 * // shutting down:
 * http.close()
 * await adopter.close({ drain: 2_000 })
 * ```
 */
export class SocketAdopter {
  /** The kernel keeping the sockets (its `connections`, `size`; diagnostics events name it as `kernel`). */
  readonly kernel: ServerKernel
  private readonly adopted = new WeakMap<object, KernelConnection>()

  constructor(options: SocketAdopterOptions) {
    this.kernel = new ServerKernel({
      server: options.server,
      transport: options.transport,
      callback: untilClosed,
      logger: options.logger,
      maxConnections: options.maxConnections,
      idleTimeout: options.idleTimeout,
    })
  }

  /** Live sockets. */
  get size(): number {
    return this.kernel.size
  }

  /**
   * Take an accepted socket. Returns false when the kernel turns it away (at `maxConnections`, or
   * closing): the socket is destroyed.
   */
  adopt(socket: AdoptableSocket, peer = peerOf(socket)): boolean {
    if (socket.destroyed) return false
    const io = new AdoptedIo(socket)
    const conn = this.kernel.admit(peer, new AdoptedStream(socket, peer), io)
    if (conn === undefined) {
      socket.destroy()
      return false
    }
    this.adopted.set(socket, conn)
    socket.once('close', () => {
      conn.bytesOut = socket.bytesWritten
      conn.closed()
    })
    return true
  }

  /**
   * A request started on `socket`: it is busy (not idle, not closed by a drain) until `response`
   * closes. While draining, the socket is closed once its response is done.
   */
  request(socket: object, response: AdoptedResponse): void {
    const conn = this.adopted.get(socket)
    if (conn === undefined) return
    conn.busy = true
    conn.requests++
    response.once('close', () => {
      conn.busy = false
      // The idle sweep sees activity by a changed byte count.
      conn.bytesOut = (socket as AdoptableSocket).bytesWritten
      if (this.kernel.draining) conn.close()
    })
  }

  /** For a `node:http` (or https) server: adopt every connection and track every request. */
  attachHttp(server: HttpLikeServer): void {
    server.on('connection', (socket: AdoptableSocket) => {
      this.adopt(socket)
    })
    server.on('request', (request: { socket: object }, response: AdoptedResponse) => this.request(request.socket, response))
  }

  /**
   * Close every socket: at once, or (`drain`) idle ones now and busy ones when their request ends,
   * for at most `drain` ms. Resolves when none is left. Stop the server listening first. Idempotent.
   */
  close(options?: ServerCloseOptions): Promise<void> {
    const closing = this.kernel.close(options)
    if (this.kernel.draining) for (const conn of [...this.kernel.connections]) if (!conn.busy) conn.close()
    return closing
  }
}

/** The part of `http.Server` {@link SocketAdopter.attachHttp} uses. */
export interface HttpLikeServer {
  on(event: 'connection', listener: (socket: AdoptableSocket) => void): unknown
  on(event: 'request', listener: (request: { socket: object }, response: AdoptedResponse) => void): unknown
}

function peerOf(socket: AdoptableSocket): string {
  const address = socket.remoteAddress ?? '?'
  return `${address.includes(':') ? `[${address}]` : address}:${socket.remotePort ?? 0}`
}
