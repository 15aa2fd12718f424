import { connect as netConnect, type Socket } from 'node:net'
import {
  ByteStream,
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

/** Options for {@link TcpClient}. */
export interface TcpClientOptions {
  host: string
  port: number
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
    if (typeof options !== 'object' || options === null) throw new TypeError('TcpClient: options { host, port } are required')
    if (typeof options.host !== 'string' || options.host.length === 0) throw new TypeError(`TcpClient: host must be a non-empty string, got ${typeof options.host === 'string' ? "''" : typeof options.host}`)
    if (options.filter !== undefined && typeof options.filter !== 'function') throw new TypeError('TcpClient: filter must be a function (context) => ConnectionFilter')
    this.options = {
      host: options.host,
      port: checkPort('TcpClient', options.port),
      timeout: checkDuration('TcpClient', 'timeout', options.timeout),
      connectTimeout: checkDuration('TcpClient', 'connectTimeout', options.connectTimeout ?? 10_000),
      bufferSize: checkCount('TcpClient', 'bufferSize', options.bufferSize ?? 64 * 1024),
      logger: options.logger ?? silentLogger,
      filter: options.filter,
    }
  }

  /** `host:port` of the peer. */
  get target(): string {
    return formatTarget(this.options.host, this.options.port)
  }

  /** Connect. Rejects with `ConnectionError` (refused, unreachable), `TimeoutError` or `AbortError`, each naming host:port. */
  connect(options?: AbortOptions): Promise<TcpClientSession> {
    const { host, port, connectTimeout, logger } = this.options
    const target = this.target
    // Reject (never throw synchronously) when the signal is already aborted.
    if (options?.signal?.aborted === true) return Promise.reject(abortErrorFrom(options.signal, `connect to ${target}`))
    return new Promise<TcpClientSession>((resolve, reject) => {
      const socket = netConnect({ host, port, noDelay: true })
      const signal = options?.signal
      let timer: ReturnType<typeof setTimeout> | undefined
      const cleanup = (): void => {
        if (timer !== undefined) clearTimeout(timer)
        socket.off('connect', onConnect)
        socket.off('error', onError)
        signal?.removeEventListener('abort', onAbort)
      }
      const onConnect = (): void => {
        cleanup()
        logDebug(logger, () => [{ target }, 'connected'])
        const session = new TcpClientSession(socket, target, this.options)
        const ready = session.filterReady(options)
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
        reject(new ConnectionError(`could not connect to ${target}: ${error.message}`, { cause: error }))
      }
      const onAbort = (): void => {
        cleanup()
        socket.destroy()
        reject(abortErrorFrom(signal as AbortSignal, `connect to ${target}`))
      }
      socket.once('connect', onConnect)
      socket.once('error', onError)
      signal?.addEventListener('abort', onAbort, { once: true })
      if (connectTimeout !== undefined) {
        timer = setTimeout(() => {
          cleanup()
          socket.destroy()
          reject(new TimeoutError(`connect to ${target} timed out after ${connectTimeout} ms`))
        }, clampDelay(connectTimeout))
      }
    })
  }
}

/** One TCP connection. Implements the transport contract's session. */
export class TcpClientSession implements TransportClientSession {
  /** The connection's incoming byte stream (what `request()` returns). */
  readonly stream: ByteStream
  private readonly filter: ConnectionFilter | undefined
  private corked = false
  private writesThisTick = 0
  private closing: Promise<void> | undefined
  private drainWait: Promise<void> | undefined
  /** End of a tick in which something was written: send what was corked. */
  private readonly endTick = (): void => {
    this.writesThisTick = 0
    this.uncork()
  }

  /** @internal Created by {@link TcpClient.connect}. */
  constructor(
    private readonly socket: Socket,
    /** `host:port` of the peer. */
    readonly target: string,
    options: { bufferSize: number; timeout: number | undefined; logger: Logger; filter?: ConnectionFilterFactory | undefined },
  ) {
    const stream = new ByteStream(undefined, {
      highWaterMark: options.bufferSize,
      onPause: () => socket.pause(),
      onResume: () => socket.resume(),
      timeout: options.timeout,
      label: target,
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
    if (filter === undefined) {
      socket.on('data', (chunk: Buffer) => stream.push(chunk))
    } else {
      socket.on('data', (chunk: Buffer) => {
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
    socket.on('error', (error: Error) => {
      logDebug(options.logger, () => [{ target, err: error }, 'socket error'])
      stream.fail(new ConnectionError(`connection to ${target} failed: ${error.message}`, { cause: error }))
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
    return this.closing !== undefined || this.socket.destroyed || !this.socket.writable
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
    if (this.closed) throw new ConnectionError(`connection to ${this.target} is closed`)
    if (this.socket.writableNeedDrain) await raceSignal(this.drained(), options?.signal, 'write')
    this.writeNow(bytes)
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
    if (this.closed) throw new ConnectionError(`connection to ${this.target} is closed`)
    // The first write of a tick goes straight out (lockstep latency); later ones in the same tick
    // are corked and leave together at the end of the tick (pipelined requests, one syscall).
    if (this.writesThisTick++ === 0) process.nextTick(this.endTick)
    else if (!this.corked) {
      this.corked = true
      this.socket.cork()
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

/** `host:port`, with brackets around IPv6 hosts. */
export function formatTarget(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}
