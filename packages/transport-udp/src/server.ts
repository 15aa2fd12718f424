import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { isIPv6 } from 'node:net'
import {
  ByteStream,
  ConnectionError,
  FrameTooLargeError,
  ServerKernel,
  accessNotice,
  checkCount,
  checkPort,
  logDebug,
  silentLogger,
  throwIfAborted,
  type AbortOptions,
  type AccessPolicy,
  type AccessRefusedError,
  type AccessTimeoutError,
  type ByteHandler,
  type ConnectionIo,
  type KernelConnection,
  type Logger,
  type ServerAddress,
  type ServerCloseOptions,
} from '@labwire/core'
import { formatTarget } from './address.js'
import { EMPTY_DATAGRAM, MAX_UDP_PAYLOAD } from './client.js'

const CLOSE_FLUSH_MS = 1000

/** Options for {@link UdpServer}. */
export interface UdpServerOptions {
  /** Address to bind. Default `127.0.0.1` (loopback only; pass `0.0.0.0` or `::` to serve the network). */
  host?: string
  /** Port to bind; 0 (default) picks a free one. */
  port?: number
  /** `'udp4'` or `'udp6'`; default: `'udp6'` for an IPv6 literal host, else `'udp4'`. */
  type?: 'udp4' | 'udp6'
  /** Called per request with the sender's byte stream; an `ApplicationServer` fits. */
  callback: ByteHandler
  /** Largest reply datagram; a longer reply is a `FrameTooLargeError` (logged, that peer's connection closed), never truncated. Default {@link MAX_UDP_PAYLOAD}. */
  maxDatagramSize?: number
  /** Unread bytes buffered per peer while nobody reads; datagrams beyond it are dropped and logged at warn. Default 64 KiB. */
  bufferSize?: number
  /**
   * Peers (remote address:port pairs) remembered at once. A datagram from a new peer when the
   * table is full evicts the least recently active peer (one with no request being handled first;
   * it is sent the end-of-session signal), so spoofed one-datagram peers cannot lock clients out.
   * Default 1024.
   */
  maxConnections?: number
  /** Who may use the device at once (see `AccessPolicy`); a peer turned away gets the access notice datagram, then the end-of-session signal. */
  access?: AccessPolicy
  /** Forget a peer that has sent nothing and been answered nothing for this many milliseconds (no request being handled). Default 60 000; 0 = never (then `maxConnections` alone bounds the table). */
  idleTimeout?: number
  /** A request must arrive whole within this many milliseconds of its first byte, else its connection is closed (a slow-trickle peer cannot hold it). Default: no limit (0 = none). */
  requestTimeout?: number
  /** Use empty datagrams as the end-of-session signal, both ways (see {@link UdpClientOptions.closeSignal}). Default true. */
  closeSignal?: boolean
  logger?: Logger
}

/** One UDP peer as the serving kernel drives it. */
class Peer implements ConnectionIo {
  conn: KernelConnection | undefined = undefined
  /** The peer said goodbye (empty datagram): do not answer it with one. */
  ended = false
  private done = false

  constructor(
    private readonly server: UdpServer,
    readonly key: string,
    readonly address: string,
    readonly port: number,
    readonly stream: ByteStream,
  ) {}

  write(bytes: Uint8Array): Promise<void> | undefined {
    if (this.done) return undefined
    const max = this.server.maxDatagramSize
    if (bytes.length > max) {
      // Never truncate: log the typed error and end this peer's session (the peer is told).
      const error = new FrameTooLargeError(max, `reply of ${bytes.length} bytes to ${this.key} does not fit one datagram (maxDatagramSize ${max}); not sent`)
      this.server.logger.error({ peer: this.key, err: error }, 'reply too large for one datagram; closing the connection')
      this.conn?.close()
      return undefined
    }
    this.server.sendTo(bytes, this)
    return undefined
  }

  flush(): void {}

  attach(conn: KernelConnection): void {
    this.conn = conn
  }

  end(): void {
    if (this.done) return
    this.done = true
    this.server.forget(this)
    this.stream.end()
    if (this.server.closeSignal && !this.ended) this.server.sendTo(EMPTY_DATAGRAM, this)
    this.conn?.closed()
  }

  destroy(): void {
    this.end()
  }

  refuse(error: AccessRefusedError | AccessTimeoutError): void {
    if (!this.done) this.server.sendTo(accessNotice(error), this)
    this.end()
  }
}

/**
 * A UDP server for simulators of datagram instruments. One socket; each remote `address:port` is
 * one "connection" with its own byte stream (one chunk per datagram) and its own serving loop:
 * requests handled in order, each reply sent as one datagram to that address. Peers are forgotten
 * after `idleTimeout` and capped at `maxConnections`.
 *
 * @example
 * ```ts
 * const server = new UdpServer({ port: 0, callback: (bytes) => new SentinelBytesMarshaller('\n').unmarshall(bytes) })
 * const { port } = await server.listen()
 * await server.close()
 * ```
 */
export class UdpServer implements AsyncDisposable {
  /** The serving kernel: its connections, access policy and drain; diagnostics events name it as `kernel`. */
  readonly kernel: ServerKernel
  private readonly host: string
  private readonly port: number
  private readonly type: 'udp4' | 'udp6'
  /** @internal */
  readonly maxDatagramSize: number
  private readonly bufferSize: number
  /** @internal */
  readonly closeSignal: boolean
  /** @internal */
  readonly logger: Logger
  /** Peers by `address:port`, least recently active first (re-inserted on every datagram). */
  private readonly peers = new Map<string, Peer>()
  private socket: Socket | undefined
  private bound: ServerAddress | undefined
  private closing: Promise<void> | undefined
  private readonly pendingSends = new Set<Promise<void>>()

  constructor(options: UdpServerOptions) {
    this.host = options.host ?? '127.0.0.1'
    this.port = checkPort('UdpServer', options.port ?? 0)
    if (options.type !== undefined && options.type !== 'udp4' && options.type !== 'udp6') {
      throw new RangeError(`UdpServer: type must be 'udp4' or 'udp6', got ${String(options.type)}`)
    }
    this.type = options.type ?? (isIPv6(this.host) ? 'udp6' : 'udp4')
    this.maxDatagramSize = checkCount('UdpServer', 'maxDatagramSize', options.maxDatagramSize ?? MAX_UDP_PAYLOAD)
    if (this.maxDatagramSize > MAX_UDP_PAYLOAD) throw new RangeError(`UdpServer: maxDatagramSize must be at most ${MAX_UDP_PAYLOAD}, got ${this.maxDatagramSize}`)
    this.bufferSize = checkCount('UdpServer', 'bufferSize', options.bufferSize ?? 64 * 1024)
    this.closeSignal = options.closeSignal ?? true
    this.logger = options.logger ?? silentLogger
    this.kernel = new ServerKernel({
      server: 'UdpServer',
      transport: 'udp',
      callback: options.callback,
      logger: this.logger,
      maxConnections: options.maxConnections ?? 1024,
      idleTimeout: options.idleTimeout ?? 60_000,
      requestTimeout: options.requestTimeout,
      access: options.access,
    })
  }

  /** The bound address once listening, else `undefined`. */
  get address(): ServerAddress | undefined {
    return this.bound
  }

  /** Peers currently remembered (one per remote address:port). */
  get connectionCount(): number {
    return this.kernel.size
  }

  /** Bind the socket. Resolves with the bound address (the real port when `port` was 0). Rejects with `ConnectionError` naming host:port (e.g. EADDRINUSE). */
  listen(options?: AbortOptions): Promise<ServerAddress> {
    try {
      throwIfAborted(options)
    } catch (error) {
      return Promise.reject(error)
    }
    if (this.bound !== undefined) return Promise.resolve(this.bound)
    if (this.closing !== undefined) return Promise.reject(new ConnectionError('UDP server is closed'))
    return new Promise<ServerAddress>((resolve, reject) => {
      const socket = createSocket({ type: this.type })
      const onError = (error: Error): void => {
        socket.close()
        reject(new ConnectionError(`could not listen on UDP ${formatTarget(this.host, this.port)}: ${error.message}`, { cause: error }))
      }
      socket.once('error', onError)
      socket.bind({ address: this.host, port: this.port, exclusive: true }, () => {
        socket.off('error', onError)
        socket.on('error', (error) => this.logger.error({ err: error }, 'UDP server socket error'))
        socket.on('message', (datagram: Buffer, from: RemoteInfo) => this.receive(datagram, from))
        const address = socket.address()
        this.socket = socket
        this.bound = { host: address.address, port: address.port }
        logDebug(this.logger, () => [{ ...this.bound }, 'listening (UDP)'])
        resolve(this.bound)
      })
    })
  }

  /**
   * Forget every peer (sending each the end-of-session signal, unless `closeSignal` is off) and
   * close the socket. Handlers still running are abandoned: their replies are not sent — unless
   * `drain` gives requests in flight that many ms to finish first. Idempotent.
   */
  close(options?: ServerCloseOptions): Promise<void> {
    this.closing ??= (async () => {
      await this.kernel.close(options)
      const socket = this.socket
      if (socket === undefined) return
      // Let the goodbye datagrams leave before the socket goes (bounded).
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([
        Promise.all(this.pendingSends),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, CLOSE_FLUSH_MS)
        }),
      ])
      clearTimeout(timer)
      await new Promise<void>((resolve) => socket.close(() => resolve()))
    })()
    return this.closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  private receive(datagram: Buffer, from: RemoteInfo): void {
    if (this.closing !== undefined) return
    const key = formatTarget(from.address, from.port)
    const peers = this.peers
    let peer = peers.get(key)
    if (datagram.length === 0) {
      if (!this.closeSignal || peer === undefined) return
      logDebug(this.logger, () => [{ peer: key }, 'peer ended its session (empty datagram)'])
      peer.ended = true
      peer.stream.end()
      return
    }
    if (peer === undefined) {
      if (this.kernel.full) this.evict(key)
      peer = this.open(key, from)
      if (peer === undefined) {
        if (this.closeSignal) this.send(EMPTY_DATAGRAM, from.port, from.address)
        return
      }
    } else {
      // Most recently active last: the table's first entry is the one to evict.
      peers.delete(key)
      peers.set(key, peer)
    }
    if (peer.stream.paused) {
      this.logger.warn({ peer: key, bufferSize: this.bufferSize }, 'datagram dropped: receive buffer full (the handler is not reading)')
      return
    }
    peer.stream.push(datagram)
  }

  /** The table is full: forget the least recently active peer, preferring one with no request being handled. */
  private evict(newcomer: string): void {
    let victim: Peer | undefined
    for (const peer of this.peers.values()) {
      if (peer.conn?.busy !== true) {
        victim = peer
        break
      }
      victim ??= peer
    }
    if (victim === undefined) return
    this.logger.warn({ peer: victim.key, newcomer, maxConnections: this.kernel.maxConnections }, 'peer table full: forgetting the least recently active peer')
    victim.end()
  }

  private open(key: string, from: RemoteInfo): Peer | undefined {
    const stream = new ByteStream(undefined, { highWaterMark: this.bufferSize, label: `UDP peer ${key}` })
    const peer = new Peer(this, key, from.address, from.port, stream)
    this.peers.set(key, peer)
    const conn = this.kernel.admit(key, stream, peer)
    if (conn === undefined) {
      this.peers.delete(key)
      return undefined
    }
    peer.conn = conn
    return peer
  }

  /** @internal */
  forget(peer: Peer): void {
    if (this.peers.get(peer.key) === peer) this.peers.delete(peer.key)
  }

  /** @internal */
  sendTo(bytes: Uint8Array, peer: Peer): void {
    this.send(bytes, peer.port, peer.address)
  }

  private send(bytes: Uint8Array, port: number, address: string): void {
    const socket = this.socket
    if (socket === undefined) return
    const sent = new Promise<void>((resolve) => {
      socket.send(bytes, port, address, (error) => {
        if (error != null) this.logger.warn({ peer: formatTarget(address, port), err: error }, 'UDP send failed')
        resolve()
      })
    })
    this.pendingSends.add(sent)
    void sent.then(() => this.pendingSends.delete(sent))
  }
}
