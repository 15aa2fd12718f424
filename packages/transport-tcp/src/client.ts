import { connect as netConnect, isIP, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import {
  ByteStream,
  ConnectionClosedError,
  ConnectionError,
  TimeoutError,
  abortErrorFrom,
  checkCount,
  checkDuration,
  checkPort,
  clampDelay,
  isLabwireError,
  raceSignal,
  silentLogger,
  throwIfAborted,
  logDebug,
  type AbortOptions,
  type ConnectionFilter,
  type ConnectionFilterFactory,
  type Logger,
  type TransportClient,
  type TransportClientSession,
} from '@labwire/core'
import { connectFailure, describeTlsFailure, hasClientCertificate, watchVerdict, type TcpClientTlsOptions } from './tls.js'

/** Options for {@link TcpClient}. */
export interface TcpClientOptions {
  /** Host to connect to (with `port`). Give either `host` + `port` or `path`. */
  host?: string
  /** Port to connect to (with `host`). */
  port?: number
  /** A Unix domain socket to connect to, instead of `host` + `port`. */
  path?: string
  /** Speak TLS: `true` for the defaults (system CAs, host name checked) or {@link TcpClientTlsOptions}. */
  tls?: boolean | TcpClientTlsOptions
  /** Read inactivity limit in milliseconds: a read waiting this long for data rejects with `TimeoutError`. Default: none (0 = none; the application layer times calls). */
  timeout?: number
  /** Connect limit in milliseconds. Default 10 000 (0 = none). */
  connectTimeout?: number
  /** Unread bytes buffered before the socket is paused (backpressure). Default 64 KiB. */
  bufferSize?: number
  logger?: Logger
  /** A protocol layer under the framing (Telnet's codec, a wire trace); `connect()` waits for its `ready()`. */
  filter?: ConnectionFilterFactory
}

interface ResolvedOptions {
  host: string
  port: number
  path: string | undefined
  tls: TcpClientTlsOptions | undefined
  timeout: number | undefined
  connectTimeout: number | undefined
  bufferSize: number
  logger: Logger
  filter: ConnectionFilterFactory | undefined
}

/**
 * Connects to a TCP server. Sockets use TCP_NODELAY; each session is one persistent buffered
 * byte stream.
 *
 * @example
 * ```ts
 * const client = new TcpClient({ host: '127.0.0.1', port: 5025 })
 * await using session = await client.connect({ signal: AbortSignal.timeout(5_000) })
 * const stream = session.request(new TextEncoder().encode('*IDN?\n'))
 * ```
 */
export class TcpClient implements TransportClient {
  private readonly options: ResolvedOptions

  constructor(options: TcpClientOptions) {
    if (typeof options !== 'object' || options === null) throw new TypeError('TcpClient: options { host, port } (or { path }) are required')
    const path = options.path
    if (path !== undefined) {
      checkSocketPath('TcpClient', path)
      if (options.host !== undefined || options.port !== undefined) throw new TypeError('TcpClient: give either path (a Unix socket) or host + port, not both')
    } else if (typeof options.host !== 'string' || options.host.length === 0) {
      throw new TypeError(`TcpClient: host must be a non-empty string (or give path for a Unix socket), got ${typeof options.host === 'string' ? "''" : typeof options.host}`)
    }
    if (options.filter !== undefined && typeof options.filter !== 'function') throw new TypeError('TcpClient: filter must be a function (context) => ConnectionFilter')
    const tls = options.tls
    if (tls !== undefined && typeof tls !== 'boolean' && (typeof tls !== 'object' || tls === null)) throw new TypeError('TcpClient: tls must be true, false or an options object')
    this.options = {
      host: options.host ?? '',
      port: path === undefined ? checkPort('TcpClient', options.port) : 0,
      path,
      tls: tls === true ? {} : tls === false || tls === undefined ? undefined : { ...tls },
      timeout: checkDuration('TcpClient', 'timeout', options.timeout),
      connectTimeout: checkDuration('TcpClient', 'connectTimeout', options.connectTimeout ?? 10_000),
      bufferSize: checkCount('TcpClient', 'bufferSize', options.bufferSize ?? 64 * 1024),
      logger: options.logger ?? silentLogger,
      filter: options.filter,
    }
  }

  /** `host:port` of the peer, or the Unix socket's path. */
  get target(): string {
    return this.options.path ?? formatTarget(this.options.host, this.options.port)
  }

  /**
   * Connect (and, with `tls`, finish the TLS handshake). Rejects with `ConnectionError` (refused,
   * unreachable, untrusted certificate, hostname mismatch…), `TimeoutError` or `AbortError`, each
   * naming host:port (or the socket path).
   */
  connect(options?: AbortOptions): Promise<TcpClientSession> {
    const { host, port, path, tls, connectTimeout, logger } = this.options
    const target = this.target
    // Reject (never throw synchronously) when the signal is already aborted.
    if (options?.signal?.aborted === true) return Promise.reject(abortErrorFrom(options.signal, `connect to ${target}`))
    const servername = tls === undefined ? undefined : (tls.servername ?? (path === undefined && isIP(host) === 0 ? host : undefined))
    return new Promise<TcpClientSession>((resolve, reject) => {
      const endpoint = path === undefined ? { host, port } : { path }
      let socket: Socket
      let verdict: ReturnType<typeof watchVerdict> | undefined
      // Plain sockets without a filter read into one reused buffer, copied out at once into the
      // session's stream (straight into a large frame being assembled): no garbage chunk per read.
      let reader: SocketReader | undefined
      if (tls === undefined && this.options.filter === undefined) {
        const shared: SocketReader = { stream: undefined, early: [] }
        reader = shared
        socket = netConnect({
          ...endpoint,
          noDelay: true,
          onread: {
            buffer: sharedReadBuffer,
            callback: (nread: number, buffer: Uint8Array) => {
              readEpoch++
              const stream = shared.stream
              if (stream !== undefined) stream.pushCopy(buffer.subarray(0, nread))
              else shared.early.push(buffer.slice(0, nread))
              return true
            },
          },
        })
      } else if (tls === undefined) {
        socket = netConnect({ ...endpoint, noDelay: true })
      } else {
        const tlsSocket = tlsConnect({ ...tls, ...endpoint, ...(servername === undefined ? {} : { servername }), rejectUnauthorized: tls.rejectUnauthorized ?? true })
        // Listen for session tickets from the start (Node sets up ticket callbacks when the first
        // 'session' listener is added).
        if (hasClientCertificate(tls)) verdict = watchVerdict(tlsSocket)
        socket = tlsSocket
      }
      const connectEvent = tls === undefined ? 'connect' : 'secureConnect'
      const signal = options?.signal
      let timer: ReturnType<typeof setTimeout> | undefined
      const cleanup = (): void => {
        if (timer !== undefined) clearTimeout(timer)
        socket.off(connectEvent, onConnect)
        socket.off('error', onError)
        signal?.removeEventListener('abort', onAbort)
      }
      const onConnect = (): void => {
        cleanup()
        if (tls !== undefined) socket.setNoDelay(true)
        logDebug(logger, () => [{ target, tls: tls !== undefined }, 'connected'])
        const session = new TcpClientSession(socket, target, { ...this.options, servername, reader })
        // TLS 1.3 with a client certificate: the server judges it after our side of the handshake
        // is done, so wait (briefly) for its verdict before calling the session connected.
        const accepted = verdict?.(target, servername)
        const ready = accepted === undefined ? session.filterReady(options) : raceSignal(accepted, options?.signal, `connect to ${target}`).then(() => session.filterReady(options))
        if (ready === undefined) {
          resolve(session)
          return
        }
        ready.then(
          () => resolve(session),
          (error: unknown) => {
            void session.close()
            reject(isLabwireError(error) ? error : new ConnectionError(`connection to ${target} failed to start: ${error instanceof Error ? error.message : String(error)}`, { cause: error }))
          },
        )
      }
      const onError = (error: Error): void => {
        cleanup()
        socket.destroy()
        reject(connectFailure(error, target, servername))
      }
      const onAbort = (): void => {
        cleanup()
        socket.destroy()
        reject(abortErrorFrom(signal as AbortSignal, `connect to ${target}`))
      }
      socket.once(connectEvent, onConnect)
      socket.once('error', onError)
      signal?.addEventListener('abort', onAbort, { once: true })
      if (connectTimeout !== undefined) {
        timer = setTimeout(() => {
          cleanup()
          socket.destroy()
          // TCP connected but no TLS session yet: the handshake is what took too long.
          const stage = tls !== undefined && !socket.connecting ? 'TLS handshake with' : 'connect to'
          reject(new TimeoutError(`${stage} ${target} timed out after ${connectTimeout} ms`))
        }, clampDelay(connectTimeout))
      }
    })
  }
}

/** One TCP connection. Implements the transport contract's session. */
export class TcpClientSession implements TransportClientSession {
  /** The connection's incoming byte stream (what `request()` returns). */
  readonly stream: ByteStream
  /** The transport kind, for events and logs: `'tcp'`, `'tls'` or `'unix'`. */
  readonly transport: 'tcp' | 'tls' | 'unix'
  private readonly filter: ConnectionFilter | undefined
  private corked = false
  /** `readEpoch` at this session's last straight write (-1: none since the last end of tick). */
  private writeEpoch = -1
  private closing: Promise<void> | undefined
  private drainWait: Promise<void> | undefined
  /** End of a tick in which something was written: send what was corked. */
  private readonly endTick = (): void => {
    this.writeEpoch = -1
    this.uncork()
  }

  /** @internal Created by {@link TcpClient.connect}. */
  constructor(
    private readonly socket: Socket,
    /** `host:port` of the peer. */
    readonly target: string,
    options: {
      bufferSize: number
      timeout: number | undefined
      logger: Logger
      filter?: ConnectionFilterFactory | undefined
      servername?: string | undefined
      reader?: SocketReader | undefined
      tls?: TcpClientTlsOptions | undefined
      path?: string | undefined
    },
  ) {
    this.transport = options.tls !== undefined ? 'tls' : options.path !== undefined ? 'unix' : 'tcp'
    const stream = new ByteStream(undefined, {
      highWaterMark: options.bufferSize,
      onPause: () => socket.pause(),
      onResume: () => socket.resume(),
      timeout: options.timeout,
      label: target,
      accessNotices: true,
    })
    this.stream = stream
    const filter = options.filter?.({
      side: 'client',
      peer: target,
      send: (bytes) => {
        if (!socket.destroyed && socket.writable) socket.write(bytes)
      },
    })
    this.filter = filter
    const reader = options.reader
    if (reader !== undefined && filter === undefined) {
      for (const early of reader.early.splice(0)) stream.push(early)
      reader.stream = stream
    } else if (filter === undefined) {
      socket.on('data', (chunk: Buffer) => {
        readEpoch++
        stream.push(chunk)
      })
    } else {
      socket.on('data', (chunk: Buffer) => {
        readEpoch++
        let data: Uint8Array
        try {
          data = filter.input(chunk)
        } catch (error) {
          stream.fail(error)
          socket.destroy()
          return
        }
        if (data.length > 0) stream.push(data)
      })
    }
    socket.on('end', () => stream.end())
    socket.on('error', (error: Error & { code?: string }) => {
      logDebug(options.logger, () => [{ target, err: error }, 'socket error'])
      const tls = describeTlsFailure(error, target, options.servername)
      if (tls === undefined && (error.code === 'ECONNRESET' || error.code === 'EPIPE')) {
        // The peer closed (a cut cable, a crashed device): the documented ConnectionClosedError, whichever side noticed first.
        stream.fail(new ConnectionClosedError(`${target} reset the connection (${error.code})${stream.bufferedLength > 0 ? ` in the middle of a frame (${stream.bufferedLength} bytes received)` : ''}`, { cause: error, partial: stream.peek().slice() }))
        return
      }
      stream.fail(new ConnectionError(tls === undefined ? `connection to ${target} failed: ${error.message}` : `TLS: ${tls}`, { cause: error }))
    })
    socket.on('close', () => {
      stream.end()
      filter?.close?.()
    })
    filter?.open?.()
  }

  /** @internal The filter's readiness (e.g. a login dialogue), if it has one. */
  filterReady(options?: AbortOptions): Promise<void> | undefined {
    return this.filter?.ready?.(options)
  }

  /** True once the session is closed or the connection is gone. */
  get closed(): boolean {
    // A destroyed socket is not writable either (one state object read, not two).
    return this.closing !== undefined || !this.socket.writable
  }

  /** Write `request` and return the connection's response stream. Throws `ConnectionError` if the session is closed. */
  request(request: Uint8Array): AsyncIterator<Uint8Array> {
    this.writeNow(request)
    return this.stream
  }

  /**
   * Write `bytes` once the socket's write buffer has room (backpressure): while it is full this
   * waits for drain first. Resolves as soon as the bytes are handed to the socket. Rejects with
   * `AbortError` only if they were not written (aborted while waiting for room).
   */
  async write(bytes: Uint8Array, options?: AbortOptions): Promise<void> {
    throwIfAborted(options)
    if (this.closed) throw this.stream.accessError ?? new ConnectionError(`connection to ${this.target} is closed`)
    // Writers woken by one drain go one at a time: each checks for room again, so a peer that does
    // not read never gets more than one write buffer's worth, and a writer aborted while waiting
    // was never written and holds nothing.
    while (this.socket.writableNeedDrain) await raceSignal(this.drained(), options?.signal, 'write')
    this.writeNow(bytes)
  }

  /** Let the process exit while this connection is open (the application layer does this while a session is idle). */
  unref(): void {
    this.socket.unref()
  }

  /** Hold the process open while this connection is open (the default). */
  ref(): void {
    this.socket.ref()
  }

  /** Close the connection: flush pending writes, then close (at most 1 s later). Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const socket = this.socket
      if (socket.destroyed) {
        resolve()
        return
      }
      const timer = setTimeout(() => socket.destroy(), 1000)
      socket.once('close', () => {
        clearTimeout(timer)
        resolve()
      })
      this.uncork()
      socket.end(() => socket.destroy())
    })
    return this.closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  /** Returns true if the write buffer still has room. */
  private writeNow(bytes: Uint8Array): boolean {
    if (this.closed) throw this.stream.accessError ?? new ConnectionError(`connection to ${this.target} is closed`)
    // The first write after a read goes straight out (lockstep latency), with nothing scheduled;
    // a second one before the next read is corked, and what is corked leaves together at the end
    // of the tick (pipelined requests: one syscall). "Since the last read" stands in for "in this
    // tick": a write in a later tick with no read between is only held to the end of its own tick.
    if (this.writeEpoch !== readEpoch) this.writeEpoch = readEpoch
    else if (!this.corked) {
      this.corked = true
      this.socket.cork()
      atEndOfTick(this.endTick)
    }
    return this.socket.write(this.filter === undefined ? bytes : this.filter.output(bytes))
  }

  private uncork(): void {
    if (!this.corked) return
    this.corked = false
    this.socket.uncork()
  }

  /** One shared wait for drain (so many waiting writers add no listeners); rejects if the socket closes first. */
  private drained(): Promise<void> {
    this.drainWait ??= new Promise<void>((resolve, reject) => {
      const socket = this.socket
      const done = (): void => {
        socket.off('close', closed)
        this.drainWait = undefined
        resolve()
      }
      const closed = (): void => {
        socket.off('drain', done)
        this.drainWait = undefined
        reject(new ConnectionError(`connection to ${this.target} closed during a write`))
      }
      socket.once('drain', done)
      socket.once('close', closed)
    })
    return this.drainWait
  }
}

/** Longest Unix socket path Linux accepts, in bytes (sun_path is 108 bytes, NUL included). */
const MAX_SOCKET_PATH = 107

/** @internal A Unix socket path: a non-empty string that fits sun_path. */
export function checkSocketPath(owner: string, path: unknown): string {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError(`${owner}: path must be a non-empty string (a Unix socket path), got ${typeof path === 'string' ? "''" : typeof path}`)
  if (process.platform !== 'win32' && Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new RangeError(`${owner}: path is ${Buffer.byteLength(path)} bytes, longer than the ${MAX_SOCKET_PATH} a Unix socket path may have: ${path}`)
  }
  return path
}

/**
 * Counts socket reads of every client session in the process: a session's second write with no
 * read in between is corked (see `writeNow`), so a lockstep caller schedules nothing per request.
 */
let readEpoch = 0

/** Sessions that corked in the current tick: one `process.nextTick` for all of them, not one per session. */
let endOfTick: (() => void)[] = []

function runEndOfTick(): void {
  const due = endOfTick
  endOfTick = []
  for (const callback of due) callback()
}

function atEndOfTick(callback: () => void): void {
  if (endOfTick.length === 0) process.nextTick(runEndOfTick)
  endOfTick.push(callback)
}

/** Where a socket reading into the shared buffer hands its bytes (set once the session exists). */
interface SocketReader {
  stream: ByteStream | undefined
  early: Uint8Array[]
}

/**
 * One read buffer for every plain client socket of the process: libuv reads into it and the
 * callback copies the bytes out before it returns, so sockets never see each other's bytes.
 */
const sharedReadBuffer = new Uint8Array(64 * 1024)

/** `host:port`, with brackets around IPv6 hosts. */
export function formatTarget(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}
