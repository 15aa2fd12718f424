import { connect as netConnect, type Socket } from 'node:net'
import {
  ByteQueue,
  ByteStream,
  ConnectionError,
  TimeoutError,
  abortErrorFrom,
  raceSignal,
  silentLogger,
  throwIfAborted,
  logDebug,
  type AbortOptions,
  type Logger,
  type TransportClient,
  type TransportClientSession,
} from '@labwire/core'

/** Options for {@link TcpClient}. */
export interface TcpClientOptions {
  host: string
  port: number
  /** Read inactivity limit in milliseconds: a read waiting this long for data rejects with `TimeoutError`. Default: none (the application layer times calls). */
  timeout?: number
  /** Connect limit in milliseconds. Default 10 000. */
  connectTimeout?: number
  /** Unread bytes buffered before the socket is paused (backpressure). Default 64 KiB. */
  bufferSize?: number
  logger?: Logger
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
  private readonly options: Required<Omit<TcpClientOptions, 'timeout'>> & { timeout: number | undefined }

  constructor(options: TcpClientOptions) {
    if (typeof options.host !== 'string' || options.host.length === 0) throw new TypeError('TcpClient: host is required')
    if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) throw new RangeError(`TcpClient: invalid port ${options.port}`)
    this.options = {
      host: options.host,
      port: options.port,
      timeout: options.timeout,
      connectTimeout: options.connectTimeout ?? 10_000,
      bufferSize: options.bufferSize ?? 64 * 1024,
      logger: options.logger ?? silentLogger,
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
        resolve(new TcpClientSession(socket, target, this.options))
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
      if (connectTimeout > 0 && Number.isFinite(connectTimeout)) {
        timer = setTimeout(() => {
          cleanup()
          socket.destroy()
          reject(new TimeoutError(`connect to ${target} timed out after ${connectTimeout} ms`))
        }, connectTimeout)
      }
    })
  }
}

/** One TCP connection. Implements the transport contract's session. */
export class TcpClientSession implements TransportClientSession {
  /** The connection's incoming byte stream (what `request()` returns). */
  readonly stream: ByteStream
  private readonly queue: ByteQueue
  private corked = false
  private writesThisTick = 0
  private closing: Promise<void> | undefined
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
    options: { bufferSize: number; timeout: number | undefined; logger: Logger },
  ) {
    this.queue = new ByteQueue({
      highWaterMark: options.bufferSize,
      onPause: () => socket.pause(),
      onResume: () => socket.resume(),
    })
    const queue = this.queue
    socket.on('data', (chunk: Buffer) => queue.push(chunk))
    socket.on('end', () => queue.end())
    socket.on('error', (error: Error) => {
      logDebug(options.logger, () => [{ target, err: error }, 'socket error'])
      queue.fail(new ConnectionError(`connection to ${target} failed: ${error.message}`, { cause: error }))
    })
    socket.on('close', () => queue.end())
    this.stream = new ByteStream(queue, { timeout: options.timeout })
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

  /** Write `bytes`; resolves when the socket's write buffer has room again (backpressure). */
  async write(bytes: Uint8Array, options?: AbortOptions): Promise<void> {
    throwIfAborted(options)
    if (this.writeNow(bytes)) return
    await raceSignal(this.drained(), options?.signal, 'write')
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
    return this.socket.write(bytes)
  }

  private uncork(): void {
    if (!this.corked) return
    this.corked = false
    this.socket.uncork()
  }

  private drained(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const socket = this.socket
      const done = (): void => {
        socket.off('drain', done)
        socket.off('close', closed)
        resolve()
      }
      const closed = (): void => {
        socket.off('drain', done)
        reject(new ConnectionError(`connection to ${this.target} closed during a write`))
      }
      socket.once('drain', done)
      socket.once('close', closed)
    })
  }
}

/** `host:port`, with brackets around IPv6 hosts. */
export function formatTarget(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}
