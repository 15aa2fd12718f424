import { createSocket, type Socket } from 'node:dgram'
import { isIPv6 } from 'node:net'
import { formatTarget } from './address.js'
import {
  ByteStream,
  ConnectionError,
  FrameTooLargeError,
  abortErrorFrom,
  checkCount,
  checkDuration,
  checkPort,
  logDebug,
  silentLogger,
  throwIfAborted,
  type AbortOptions,
  type Logger,
  type TransportClient,
  type TransportClientSession,
} from '@labwire/core'

/**
 * Largest UDP payload over IPv4 (65 535 − 8 − 20). Loopback carries it; a real network path
 * fragments anything over its MTU (about 1 472 bytes on Ethernet), and a lost fragment loses the
 * whole datagram, so devices usually keep datagrams far smaller.
 */
export const MAX_UDP_PAYLOAD = 65_507

/** The end-of-connection signal: a datagram with no payload (see the package README). */
export const EMPTY_DATAGRAM = new Uint8Array(0)

/** Options for {@link UdpClient}. */
export interface UdpClientOptions {
  host: string
  port: number
  /** `'udp4'` or `'udp6'`; default: `'udp6'` for an IPv6 literal host, else `'udp4'`. */
  type?: 'udp4' | 'udp6'
  /** Read inactivity limit in milliseconds (`TimeoutError`). Default: none (the application layer times calls). On UDP a timeout is the only sign of a lost datagram. */
  timeout?: number
  /** Largest datagram sent; a longer request is refused with `FrameTooLargeError`, never truncated. Default {@link MAX_UDP_PAYLOAD}. */
  maxDatagramSize?: number
  /**
   * Unread bytes buffered while nobody reads; datagrams arriving beyond it are dropped (and logged
   * at warn), as the kernel does with a full socket buffer. A reader waiting for the rest of a
   * frame lets datagrams in past it (the framer's `maxLength` bounds that). Default 64 KiB.
   */
  bufferSize?: number
  /**
   * Signal the end of a session with an empty datagram, both ways: `close()` sends one, and one
   * received ends the response stream (`ConnectionClosedError`). Default true; turn it off for a
   * device that sends or chokes on empty datagrams.
   */
  closeSignal?: boolean
  logger?: Logger
}

/**
 * A UDP "connection" to one peer: a socket of its own on an ephemeral port, `connect()`ed to
 * `host:port`, so that only that peer's datagrams are read. Each datagram received is one chunk of
 * the session's byte stream; each `request()` is sent as one datagram.
 *
 * @example
 * ```ts
 * const client = new UdpClient({ host: '127.0.0.1', port: 5025 })
 * await using session = await client.connect()
 * const stream = session.request(new TextEncoder().encode('*IDN?\n'))
 * ```
 */
export class UdpClient implements TransportClient {
  private readonly host: string
  private readonly port: number
  private readonly type: 'udp4' | 'udp6'
  private readonly settings: UdpSessionSettings

  constructor(options: UdpClientOptions) {
    if (typeof options.host !== 'string' || options.host.length === 0) throw new TypeError('UdpClient: host is required')
    this.host = options.host
    this.port = checkPort('UdpClient', options.port)
    if (this.port === 0) throw new RangeError('UdpClient: port must be 1–65535 (the peer’s port), got 0')
    if (options.type !== undefined && options.type !== 'udp4' && options.type !== 'udp6') {
      throw new RangeError(`UdpClient: type must be 'udp4' or 'udp6', got ${String(options.type)}`)
    }
    this.type = options.type ?? (isIPv6(options.host) ? 'udp6' : 'udp4')
    const maxDatagramSize = checkCount('UdpClient', 'maxDatagramSize', options.maxDatagramSize ?? MAX_UDP_PAYLOAD)
    if (maxDatagramSize > MAX_UDP_PAYLOAD) throw new RangeError(`UdpClient: maxDatagramSize must be at most ${MAX_UDP_PAYLOAD}, got ${maxDatagramSize}`)
    this.settings = {
      timeout: checkDuration('UdpClient', 'timeout', options.timeout),
      maxDatagramSize,
      bufferSize: checkCount('UdpClient', 'bufferSize', options.bufferSize ?? 64 * 1024),
      closeSignal: options.closeSignal ?? true,
      logger: options.logger ?? silentLogger,
    }
  }

  /** `host:port` of the peer. */
  get target(): string {
    return formatTarget(this.host, this.port)
  }

  /**
   * Open a socket and `connect()` it to the peer. No datagram is exchanged (UDP has no
   * handshake), so this succeeds whether or not anything listens there; a closed port shows up
   * later as a `ConnectionError` (ICMP port unreachable, when the kernel reports it) or a timeout.
   * Rejects with `ConnectionError` (e.g. the host does not resolve) or `AbortError`.
   */
  connect(options?: AbortOptions): Promise<UdpClientSession> {
    const target = this.target
    if (options?.signal?.aborted === true) return Promise.reject(abortErrorFrom(options.signal, `connect to ${target}`))
    return new Promise<UdpClientSession>((resolve, reject) => {
      const socket = createSocket({ type: this.type })
      const signal = options?.signal
      const cleanup = (): void => {
        socket.off('error', onError)
        signal?.removeEventListener('abort', onAbort)
      }
      const onError = (error: Error): void => {
        cleanup()
        socket.close()
        reject(new ConnectionError(`could not connect to ${target}: ${error.message}`, { cause: error }))
      }
      const onAbort = (): void => {
        cleanup()
        socket.close()
        reject(abortErrorFrom(signal as AbortSignal, `connect to ${target}`))
      }
      socket.once('error', onError)
      signal?.addEventListener('abort', onAbort, { once: true })
      socket.connect(this.port, this.host, () => {
        if (signal?.aborted === true) return
        cleanup()
        logDebug(this.settings.logger, () => [{ target }, 'connected'])
        resolve(new UdpClientSession(socket, target, this.settings))
      })
    })
  }
}

interface UdpSessionSettings {
  timeout: number | undefined
  maxDatagramSize: number
  bufferSize: number
  closeSignal: boolean
  logger: Logger
}

/** One UDP session: its own socket, connected to the peer. Implements the transport contract's session. */
export class UdpClientSession implements TransportClientSession {
  /** The session's incoming byte stream (what `request()` returns): one chunk per datagram. */
  readonly stream: ByteStream
  /** The transport kind, for events and logs. */
  readonly transport = 'udp'
  private closing: Promise<void> | undefined
  private socketClosed = false
  private dropped = 0

  /** @internal Created by {@link UdpClient.connect}. */
  constructor(
    private readonly socket: Socket,
    /** `host:port` of the peer. */
    readonly target: string,
    private readonly settings: UdpSessionSettings,
  ) {
    const stream = (this.stream = new ByteStream(undefined, { timeout: settings.timeout, highWaterMark: settings.bufferSize, label: target, accessNotices: true }))
    const logger = settings.logger
    socket.on('message', (datagram: Buffer) => {
      if (datagram.length === 0) {
        if (settings.closeSignal) {
          logDebug(logger, () => [{ target }, 'peer signalled the end of the session (empty datagram)'])
          stream.end()
        }
        return
      }
      if (stream.paused) {
        // Over bufferSize with no reader asking for more. A UDP sender cannot be paused: drop, as a
        // full kernel buffer would, and say so.
        this.dropped++
        logger.warn({ target, dropped: this.dropped, bufferSize: settings.bufferSize }, 'datagram dropped: receive buffer full (nobody is reading)')
        return
      }
      stream.push(datagram)
    })
    socket.on('error', (error: NodeJS.ErrnoException) => {
      logDebug(logger, () => [{ target, err: error }, 'socket error'])
      const what = error.code === 'ECONNREFUSED' ? 'nothing listens there (ICMP port unreachable)' : error.message
      stream.fail(new ConnectionError(`UDP peer ${target} failed: ${what}`, { cause: error }))
    })
    socket.on('close', () => {
      this.socketClosed = true
      stream.end()
    })
  }

  /** True once the session is closed. */
  get closed(): boolean {
    return this.closing !== undefined || this.socketClosed
  }

  /** Datagrams dropped because the receive buffer was full. */
  get droppedDatagrams(): number {
    return this.dropped
  }

  /**
   * Send `request` as one datagram and return the session's response stream. Throws
   * `FrameTooLargeError` if it is longer than `maxDatagramSize` (nothing is sent) and
   * `ConnectionError` once the session is closed.
   */
  request(request: Uint8Array): AsyncIterator<Uint8Array> {
    this.send(request)
    return this.stream
  }

  /**
   * Send `bytes` as one datagram. Resolves at once: UDP has no backpressure (a datagram the
   * network cannot take is dropped, not delayed). Rejects like `request()` throws.
   */
  write(bytes: Uint8Array, options?: AbortOptions): Promise<void> {
    try {
      throwIfAborted(options)
      this.send(bytes)
    } catch (error) {
      return Promise.reject(error)
    }
    return Promise.resolve()
  }

  /** Close the socket (after sending the empty end-of-session datagram, unless `closeSignal` is off). Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      if (this.socketClosed) {
        resolve()
        return
      }
      const finish = (): void => {
        this.socket.close(() => resolve())
      }
      if (this.settings.closeSignal) this.socket.send(EMPTY_DATAGRAM, finish)
      else finish()
    })
    return this.closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  /** Let the process exit while this session is open (the application layer does this while a session is idle). */
  unref(): void {
    this.socket.unref()
  }

  /** Hold the process open while this session is open (the default). */
  ref(): void {
    this.socket.ref()
  }

  private send(bytes: Uint8Array): void {
    if (this.closed) throw this.stream.accessError ?? new ConnectionError(`UDP session to ${this.target} is closed`)
    if (bytes.length > this.settings.maxDatagramSize) {
      throw new FrameTooLargeError(
        this.settings.maxDatagramSize,
        `request of ${bytes.length} bytes does not fit one datagram to ${this.target} (maxDatagramSize ${this.settings.maxDatagramSize}); nothing was sent`,
      )
    }
    if (bytes.length === 0) return // an empty datagram would read as the end-of-session signal
    this.socket.send(bytes, (error) => {
      if (error != null) this.stream.fail(new ConnectionError(`send to ${this.target} failed: ${error.message}`, { cause: error }))
    })
  }
}
