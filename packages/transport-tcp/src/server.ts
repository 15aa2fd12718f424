import { chmod, lstat, unlink } from 'node:fs/promises'
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import {
  ByteStream,
  ConnectionError,
  ServerKernel,
  TimeoutError,
  checkCount,
  checkDuration,
  checkPort,
  clampDelay,
  logDebug,
  silentLogger,
  throwIfAborted,
  type AbortOptions,
  type AccessPolicy,
  type ByteHandler,
  type ConnectionFilterFactory,
  type Logger,
  type ServerAddress,
  type ServerCloseOptions,
} from '@labwire/core'
import { checkSocketPath, formatTarget } from './client.js'
import { SocketIo, lingeringClose, socketErrorListener } from './reply-writer.js'
import { DEFAULT_TLS_HANDSHAKE_TIMEOUT, describeTlsFailure, type TcpServerTlsOptions } from './tls.js'

/** A {@link TcpServer}'s bound address: `host` + `port`, and `path` when it listens on a Unix socket (then `host` is `''` and `port` 0). */
export interface TcpServerAddress extends ServerAddress {
  /** The Unix socket's path, when the server listens on one. */
  path?: string
}

/** How long the stale-socket probe waits for a connect to a leftover socket file. */
const STALE_PROBE_MS = 1000

/** Options for {@link TcpServer}. */
export interface TcpServerOptions {
  /** Address to bind. Default `127.0.0.1` (loopback only; pass `0.0.0.0` or `::` to serve the network). */
  host?: string
  /** Port to bind; 0 (default) picks a free one. */
  port?: number
  /**
   * Listen on a Unix domain socket at this path instead of `host` + `port`. A leftover socket file
   * of a dead server is removed first; a live server's is not (`ConnectionError`, address in use).
   * The file is removed again by `close()`.
   */
  path?: string
  /**
   * Serve an already-listening socket inherited as this file descriptor instead of binding one
   * (systemd socket activation: `LISTEN_FDS` sockets start at fd 3). `host`, `port` and `path` are
   * then not used for binding.
   */
  fd?: number
  /** With `path`: the socket file's permission bits, applied right after bind (e.g. `0o660`). Default: the process umask's. */
  mode?: number
  /** Speak TLS: the server's certificate and key, and for mutual TLS `requestCert` + `ca`. See {@link TcpServerTlsOptions}. */
  tls?: TcpServerTlsOptions
  /** Called per request with the connection's byte stream; an `ApplicationServer` fits. */
  callback: ByteHandler
  /** Unread bytes buffered per connection before its socket is paused. Default 64 KiB. */
  bufferSize?: number
  logger?: Logger
  /** Connections served at once; further ones are accepted and closed straight away (the peer sees the connection closed). Default: unlimited. */
  maxConnections?: number
  /** Who may use the device at once: `{ maxSessions?, exclusive?: 'queue' | 'refuse', queueTimeout? }` (see `AccessPolicy` in `@labwire/core`). Default: everyone. */
  access?: AccessPolicy
  /** Close a connection that has been idle (no bytes either way, no request being handled) this many milliseconds. Default: never (0 = never). */
  idleTimeout?: number
  /** A request must arrive whole within this many milliseconds of its first byte, else its connection is closed. Default: no limit (0 = none). */
  requestTimeout?: number
  /** A protocol layer under the framing, one per connection (Telnet's codec, a wire trace). */
  filter?: ConnectionFilterFactory
  /** @internal The transport kind a `ConnectionHandler` sees (`TelnetServer` passes `'telnet'`). Default `'tcp'`, `'tls'` or `'unix'`. */
  transportName?: string
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
  /** The serving kernel: its connections, access policy and drain; diagnostics events name it as `kernel`. */
  readonly kernel: ServerKernel
  private readonly host: string
  private readonly port: number
  private readonly path: string | undefined
  private readonly fd: number | undefined
  private readonly mode: number | undefined
  private readonly tls: boolean
  /** TLS: the raw TCP socket of every open connection, so close() also ends those still in their handshake (not yet in `sockets`). */
  private readonly rawSockets = new Set<Socket>()
  /** Inode of the socket file this server bound, so close() removes its own file only. */
  private boundInode: number | undefined
  private readonly bufferSize: number
  private readonly logger: Logger
  private readonly filter: ConnectionFilterFactory | undefined
  private bound: TcpServerAddress | undefined
  private listening: Promise<TcpServerAddress> | undefined
  private closing: Promise<void> | undefined

  constructor(options: TcpServerOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('TcpServer: options { callback, host?, port?, … } are required')
    if (options.callback === undefined) throw new TypeError('TcpServer: callback is required (a ByteHandler, e.g. an ApplicationServer)')
    if (options.host !== undefined && (typeof options.host !== 'string' || options.host.length === 0)) throw new TypeError(`TcpServer: host must be a non-empty string, got ${typeof options.host === 'string' ? "''" : typeof options.host}`)
    this.path = options.path === undefined ? undefined : checkSocketPath('TcpServer', options.path)
    if (this.path !== undefined && (options.host !== undefined || options.port !== undefined)) throw new TypeError('TcpServer: give either path (a Unix socket) or host/port, not both')
    if (options.mode !== undefined) {
      if (this.path === undefined) throw new TypeError('TcpServer: mode applies to a Unix socket: give path too')
      if (isAbstract(this.path)) throw new TypeError('TcpServer: mode does not apply to an abstract socket (a path starting with \\0): it has no file')
      if (typeof options.mode !== 'number' || !Number.isInteger(options.mode) || options.mode < 0 || options.mode > 0o777) throw new RangeError(`TcpServer: mode must be permission bits from 0 to 0o777, got ${String(options.mode)}`)
    }
    this.mode = options.mode
    this.host = this.path === undefined ? (options.host ?? '127.0.0.1') : ''
    this.port = checkPort('TcpServer', options.port ?? 0)
    if (options.fd !== undefined && (!Number.isInteger(options.fd) || options.fd < 0)) throw new RangeError(`TcpServer: fd must be a non-negative integer, got ${String(options.fd)}`)
    this.fd = options.fd
    this.bufferSize = checkCount('TcpServer', 'bufferSize', options.bufferSize ?? 64 * 1024)
    this.logger = options.logger ?? silentLogger
    if (options.filter !== undefined && typeof options.filter !== 'function') throw new TypeError('TcpServer: filter must be a function (context) => ConnectionFilter')
    this.filter = options.filter
    const tls = options.tls
    if (tls !== undefined) {
      if (typeof tls !== 'object' || tls === null) throw new TypeError('TcpServer: tls must be an options object { cert, key, … }')
      if ((tls.cert === undefined || tls.key === undefined) && tls.pfx === undefined && tls.SNICallback === undefined) throw new TypeError('TcpServer: tls needs the server certificate and key (tls.cert + tls.key, or tls.pfx)')
      checkDuration('TcpServer', 'tls.handshakeTimeout', tls.handshakeTimeout)
    }
    this.tls = tls !== undefined
    this.kernel = new ServerKernel({
      server: 'TcpServer',
      transport: options.transportName ?? (this.tls ? 'tls' : this.path !== undefined ? 'unix' : 'tcp'),
      callback: options.callback,
      logger: this.logger,
      maxConnections: options.maxConnections,
      idleTimeout: options.idleTimeout,
      requestTimeout: options.requestTimeout,
      access: options.access,
    })
    // allowHalfOpen: a client that shuts its write side still gets the replies to what it sent.
    if (tls === undefined) {
      this.server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.accept(socket))
    } else {
      const handshakeTimeout = checkDuration('TcpServer', 'tls.handshakeTimeout', tls.handshakeTimeout ?? DEFAULT_TLS_HANDSHAKE_TIMEOUT)
      const server = createTlsServer(
        {
          ...tls,
          // Node's own handshake timer (default 120 s); 0 = none here, as everywhere in labwire.
          handshakeTimeout: handshakeTimeout === undefined ? 0 : clampDelay(handshakeTimeout),
          noDelay: true,
          allowHalfOpen: true,
        },
        (socket) => this.accept(socket),
      )
      server.on('connection', (socket: Socket) => {
        // The raw TCP socket; the TLS socket wrapping it is what reaches secureConnection. Track it
        // so close() does not wait for a handshake in progress.
        this.rawSockets.add(socket)
        socket.once('close', () => this.rawSockets.delete(socket))
      })
      server.on('tlsClientError', (error: Error, socket: Socket) => {
        const peer = this.peerOf(socket)
        const code = (error as NodeJS.ErrnoException).code
        const err =
          code === 'ERR_TLS_HANDSHAKE_TIMEOUT'
            ? new TimeoutError(`TLS handshake with ${peer} timed out after ${handshakeTimeout ?? 0} ms`, { cause: error })
            : new ConnectionError(`TLS handshake with ${peer} failed: ${describeTlsFailure(error, peer) ?? error.message}`, { cause: error })
        this.logger.warn({ peer, err }, 'TLS handshake failed; connection closed')
        // Node leaves a timed-out handshake's socket open: close it.
        socket.destroy()
      })
      this.server = server
    }
    this.server.on('error', (error) => this.logger.error({ err: error }, 'server error'))
  }

  /** `host:port` (or the socket path) this server binds, for messages. */
  private get where(): string {
    return this.fd !== undefined ? `inherited fd ${this.fd}` : (this.path ?? formatTarget(this.host, this.port))
  }

  private peerOf(socket: Socket): string {
    return this.path ?? formatTarget(socket.remoteAddress ?? '?', socket.remotePort ?? 0)
  }

  /** The bound address once listening, else `undefined`. */
  get address(): TcpServerAddress | undefined {
    return this.bound
  }

  /** Open connections (TLS: with the handshake done). */
  get connectionCount(): number {
    return this.kernel.size
  }

  /**
   * Start listening. Resolves with the bound address (the real port when `port` was 0; `path` for
   * a Unix socket). Rejects with `ConnectionError` naming host:port or the path (address in use,
   * permission denied…).
   */
  listen(options?: AbortOptions): Promise<TcpServerAddress> {
    try {
      throwIfAborted(options)
    } catch (error) {
      return Promise.reject(error)
    }
    if (this.closing !== undefined) return Promise.reject(new ConnectionError(`server on ${this.where} is closed`))
    this.listening ??= this.bind().then(
      (address) => address,
      (error: unknown) => {
        this.listening = undefined
        throw error
      },
    )
    return this.listening
  }

  private async bind(): Promise<TcpServerAddress> {
    try {
      await this.listenOnce()
    } catch (error) {
      // A Unix socket file left by a server that died: remove it and bind again (once).
      if (this.path === undefined || isAbstract(this.path) || (error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw this.listenFailure(error)
      await this.removeStaleSocket(this.path, error as Error)
      try {
        await this.listenOnce()
      } catch (again) {
        throw this.listenFailure(again)
      }
    }
    if (this.closing !== undefined) {
      // close() was called while listen() was in progress: do not stay bound.
      await this.stopListening()
      throw new ConnectionError(`server on ${this.where} was closed while it was starting`)
    }
    const inherited = this.fd === undefined ? undefined : this.server.address()
    if (typeof inherited === 'string') {
      // An inherited Unix socket: its file belongs to whoever made it (systemd), not to us.
      this.bound = { host: '', port: 0, path: inherited }
    } else if (this.path !== undefined && this.fd === undefined) {
      if (!isAbstract(this.path)) await this.setUpSocketFile(this.path)
      this.bound = { host: '', port: 0, path: this.path }
    } else {
      const address = this.server.address()
      if (address === null || typeof address === 'string') throw new ConnectionError(`server on ${this.where} has no TCP address`)
      this.bound = { host: address.address, port: address.port }
    }
    logDebug(this.logger, () => [{ ...this.bound, tls: this.tls }, 'listening'])
    return this.bound
  }

  /** Note the socket file's inode (so close() removes our own file only) and apply `mode`. */
  private async setUpSocketFile(path: string): Promise<void> {
    try {
      const stats = await lstat(path)
      this.boundInode = stats.ino
      if (this.mode !== undefined) await chmod(path, this.mode)
    } catch (error) {
      await this.stopListening()
      // Gone right after our bind: another server starting at the same moment removed it as stale and took the path.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ConnectionError(`could not listen on ${path}: address in use (another server took the path while this one was starting)`, { cause: error })
      throw new ConnectionError(`could not set up the socket file ${path}: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
    }
  }

  private listenOnce(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => reject(error)
      this.server.once('error', onError)
      this.server.listen(this.fd !== undefined ? { fd: this.fd } : this.path === undefined ? { host: this.host, port: this.port } : { path: this.path }, () => {
        this.server.off('error', onError)
        resolve()
      })
    })
  }

  private listenFailure(error: unknown): ConnectionError {
    if (error instanceof ConnectionError) return error
    const code = (error as NodeJS.ErrnoException).code
    const message = error instanceof Error ? error.message : String(error)
    return new ConnectionError(`could not listen on ${this.where}: ${code === 'EADDRINUSE' ? 'address in use' : message}${code === 'EADDRINUSE' ? ` (${message})` : ''}`, { cause: error })
  }

  /**
   * `path` is taken (EADDRINUSE). Remove it if it is a socket nobody listens on (a dead server's
   * leftover); refuse if it is not a socket or a live server answers on it.
   */
  private async removeStaleSocket(path: string, inUse: Error): Promise<void> {
    let isSocket: boolean
    let inode: number
    try {
      const stats = await lstat(path)
      isSocket = stats.isSocket()
      inode = stats.ino
    } catch (error) {
      // Gone meanwhile: the retry binds it.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
      throw this.listenFailure(error)
    }
    if (!isSocket) throw new ConnectionError(`could not listen on ${path}: the path exists and is not a socket (not removed)`, { cause: inUse })
    const live = await new Promise<boolean>((resolve) => {
      const probe = netConnect({ path })
      const timer = setTimeout(() => {
        probe.destroy()
        resolve(true) // something holds it and does not refuse: treat as live
      }, STALE_PROBE_MS)
      probe.once('connect', () => {
        clearTimeout(timer)
        probe.destroy()
        resolve(true)
      })
      probe.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer)
        probe.destroy()
        resolve(error.code !== 'ECONNREFUSED' && error.code !== 'ENOENT')
      })
    })
    if (live) throw new ConnectionError(`could not listen on ${path}: address in use (a server is listening on it)`, { cause: inUse })
    try {
      // Remove the very file probed: another server starting at the same time may have replaced it.
      if ((await lstat(path)).ino !== inode) return
      this.logger.warn({ path }, 'removing a stale Unix socket file left by a server that is gone')
      await unlink(path)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw this.listenFailure(error)
    }
  }

  private stopListening(): Promise<void> {
    return new Promise<void>((resolve) => {
      if (!this.server.listening) resolve()
      else this.server.close(() => resolve())
    })
  }

  /**
   * Stop listening and close every connection, idle or busy — or, with `drain`, let requests in
   * flight finish for up to `drain` ms first. Resolves once all are closed (`connectionCount` is 0
   * by then) and a Unix socket file is removed. Idempotent; also stops a `listen()` still in progress.
   */
  close(options?: ServerCloseOptions): Promise<void> {
    this.closing ??= (async () => {
      const stopped = this.stopListening()
      const drained = this.kernel.close(options)
      const starting = this.listening
      if (starting !== undefined) await starting.then(() => undefined, () => undefined)
      await drained
      // TLS: raw sockets left are handshakes that never became connections (the listener's close waits for them).
      await Promise.all(
        [...this.rawSockets].map(
          (socket) =>
            new Promise<void>((resolve) => {
              if (socket.destroyed) resolve()
              else socket.once('close', () => resolve())
              socket.destroy()
            }),
        ),
      )
      await Promise.all([stopped, this.stopListening()])
      this.rawSockets.clear()
      await this.removeSocketFile()
    })()
    return this.closing
  }

  /** Remove our own socket file (libuv usually has already; never another server's that took the path since). */
  private async removeSocketFile(): Promise<void> {
    const path = this.path
    const inode = this.boundInode
    if (path === undefined || inode === undefined) return
    this.boundInode = undefined
    try {
      const stats = await lstat(path)
      if (stats.isSocket() && stats.ino === inode) await unlink(path)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.warn({ path, err: error }, 'could not remove the socket file')
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  private accept(socket: Socket): void {
    socket.on('error', socketErrorListener)
    if (this.kernel.full) {
      this.logger.warn({ peer: this.peerOf(socket), maxConnections: this.kernel.maxConnections }, 'connection refused: server at maxConnections or closing')
      lingeringClose(socket)
      return
    }
    // The peer's address costs a getpeername and a few strings: taken now only when a logger, an
    // event subscriber or a filter will want it, else on first use (SocketIo.peer).
    const peer = this.path !== undefined || this.filter !== undefined || this.kernel.wantsPeer ? this.peerOf(socket) : undefined
    const stream = new ByteStream(undefined, { highWaterMark: this.bufferSize, producer: socket, label: peer })
    const io = new SocketIo(socket, stream, peer, this.logger)
    if (peer === undefined) stream.labelFrom(io)
    if (this.filter !== undefined) {
      io.filter = this.filter({ side: 'server', peer: io.peer, send: (bytes) => io.send(bytes) })
    }
    io.listen()
    const conn = this.kernel.admit(peer, stream, io)
    if (conn === undefined) {
      lingeringClose(socket)
      return
    }
    io.conn = conn
    if (!conn.ending) io.filter?.open?.()
  }
}

/** A Linux abstract socket name (leading NUL): no file on disk. */
function isAbstract(path: string): boolean {
  return path.startsWith('\0')
}
