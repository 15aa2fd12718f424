import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { isIPv6 } from 'node:net'
import {
  ByteStream,
  ConnectionError,
  FrameTooLargeError,
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
  /** Peers (remote address:port pairs) served at once; datagrams from further peers are dropped (and answered with the end-of-session signal). Default 1024. */
  maxConnections?: number
  /** Forget a peer that has sent nothing and been answered nothing for this many milliseconds (no request being handled). Default 60 000; 0 = never (then `maxConnections` alone bounds the table). */
  idleTimeout?: number
  /** A request must arrive whole within this many milliseconds of its first byte, else its connection is closed (a slow-trickle peer cannot hold it). Default: no limit (0 = none). */
  requestTimeout?: number
  /** Use empty datagrams as the end-of-session signal, both ways (see {@link UdpClientOptions.closeSignal}). Default true. */
  closeSignal?: boolean
  logger?: Logger
}

interface Peer {
  readonly stream: ByteStream
  readonly conn: ServedConnection
  lastActivity: number
  timer: ReturnType<typeof setTimeout> | undefined
  /** The peer said goodbye (empty datagram): do not answer it with one. */
  ended: boolean
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
  private readonly handler: ByteHandlerFunction
  private readonly host: string
  private readonly port: number
  private readonly type: 'udp4' | 'udp6'
  private readonly maxDatagramSize: number
  private readonly bufferSize: number
  private readonly maxConnections: number
  private readonly idleTimeout: number | undefined
  private readonly requestTimeout: number | undefined
  private readonly closeSignal: boolean
  private readonly logger: Logger
  private readonly peers = new Map<string, Peer>()
  private socket: Socket | undefined
  private bound: ServerAddress | undefined
  private closing: Promise<void> | undefined
  private readonly pendingSends = new Set<Promise<void>>()

  constructor(options: UdpServerOptions) {
    this.handler = toHandlerFunction(options.callback)
    this.host = options.host ?? '127.0.0.1'
    this.port = checkPort('UdpServer', options.port ?? 0)
    if (options.type !== undefined && options.type !== 'udp4' && options.type !== 'udp6') {
      throw new RangeError(`UdpServer: type must be 'udp4' or 'udp6', got ${String(options.type)}`)
    }
    this.type = options.type ?? (isIPv6(this.host) ? 'udp6' : 'udp4')
    this.maxDatagramSize = checkCount('UdpServer', 'maxDatagramSize', options.maxDatagramSize ?? MAX_UDP_PAYLOAD)
    if (this.maxDatagramSize > MAX_UDP_PAYLOAD) throw new RangeError(`UdpServer: maxDatagramSize must be at most ${MAX_UDP_PAYLOAD}, got ${this.maxDatagramSize}`)
    this.bufferSize = checkCount('UdpServer', 'bufferSize', options.bufferSize ?? 64 * 1024)
    this.maxConnections = checkCount('UdpServer', 'maxConnections', options.maxConnections ?? 1024, { allowInfinity: true })
    this.idleTimeout = checkDuration('UdpServer', 'idleTimeout', options.idleTimeout ?? 60_000)
    this.requestTimeout = checkDuration('UdpServer', 'requestTimeout', options.requestTimeout)
    this.closeSignal = options.closeSignal ?? true
    this.logger = options.logger ?? silentLogger
  }

  /** The bound address once listening, else `undefined`. */
  get address(): ServerAddress | undefined {
    return this.bound
  }

  /** Peers currently remembered (one per remote address:port). */
  get connectionCount(): number {
    return this.peers.size
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
   * close the socket. Handlers still running are abandoned: their replies are not sent. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const peer of [...this.peers.values()]) peer.conn.close()
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
    let peer = this.peers.get(key)
    if (datagram.length === 0) {
      if (!this.closeSignal || peer === undefined) return
      logDebug(this.logger, () => [{ peer: key }, 'peer ended its session (empty datagram)'])
      peer.ended = true
      peer.stream.end()
      return
    }
    if (peer === undefined) {
      if (this.peers.size >= this.maxConnections) {
        this.logger.warn({ peer: key, maxConnections: this.maxConnections }, 'datagram dropped: server at maxConnections')
        if (this.closeSignal) this.send(EMPTY_DATAGRAM, from.port, from.address)
        return
      }
      peer = this.open(key, from)
    }
    peer.lastActivity = performance.now()
    if (peer.stream.paused) {
      this.logger.warn({ peer: key, bufferSize: this.bufferSize }, 'datagram dropped: receive buffer full (the handler is not reading)')
      return
    }
    peer.stream.push(datagram)
  }

  private open(key: string, from: RemoteInfo): Peer {
    const stream = new ByteStream(undefined, { highWaterMark: this.bufferSize, label: `UDP peer ${key}` })
    const address = from.address
    const port = from.port
    const maxDatagramSize = this.maxDatagramSize
    let closed = false
    const conn: ServedConnection = {
      peer: key,
      busy: false,
      write: (bytes) => {
        if (closed) return undefined
        if (bytes.length > maxDatagramSize) {
          // Never truncate: log the typed error and end this peer's session (the peer is told).
          const error = new FrameTooLargeError(maxDatagramSize, `reply of ${bytes.length} bytes to ${key} does not fit one datagram (maxDatagramSize ${maxDatagramSize}); not sent`)
          this.logger.error({ peer: key, err: error }, 'reply too large for one datagram; closing the connection')
          conn.close()
          return undefined
        }
        peer.lastActivity = performance.now()
        this.send(bytes, port, address)
        return undefined
      },
      flush: () => undefined,
      close: () => {
        if (closed) return
        closed = true
        if (peer.timer !== undefined) clearTimeout(peer.timer)
        if (this.peers.get(key) === peer) this.peers.delete(key)
        stream.end()
        if (this.closeSignal && !peer.ended) this.send(EMPTY_DATAGRAM, port, address)
      },
    }
    const peer: Peer = { stream, conn, lastActivity: performance.now(), timer: undefined, ended: false }
    this.peers.set(key, peer)
    const idleTimeout = this.idleTimeout
    if (idleTimeout !== undefined) {
      // One timer per peer, re-armed for the remaining time instead of reset on every datagram.
      const check = (): void => {
        const idle = performance.now() - peer.lastActivity
        if (conn.busy || idle < idleTimeout) {
          peer.timer = setTimeout(check, conn.busy ? idleTimeout : idleTimeout - idle)
          peer.timer.unref()
          return
        }
        logDebug(this.logger, () => [{ peer: key, idleTimeout }, 'forgetting idle peer'])
        conn.close()
      }
      peer.timer = setTimeout(check, idleTimeout)
      peer.timer.unref()
    }
    logDebug(this.logger, () => [{ peer: key }, 'new peer'])
    void serveConnection(stream, this.handler, conn, this.logger, { requestTimeout: this.requestTimeout })
    return peer
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
