/**
 * SimulatorServer: serves one {@link Device} over TCP and owns the sockets, so that faults which
 * need the connection (close it, write fragments, refuse new ones) and unsolicited messages work.
 *
 * @module
 */
import { createServer, type Server, type Socket } from 'node:net'
import {
  ByteStream,
  ConnectionError,
  ServerKernel,
  logDebug,
  silentLogger,
  throwIfAborted,
  type AbortOptions,
  type AccessPolicy,
  type ConnectionFilterFactory,
  type Logger,
  type ServerAddress,
  type ServerCloseOptions,
} from '@labwire/core'
import { SocketIo, lingeringClose, socketErrorListener } from '@labwire/transport-tcp'
import { telnetServerFilter, type TelnetServerFilterOptions } from '@labwire/transport-telnet'
import { registerConnection, type Device, type SimConnection } from './device.js'

/** Options for {@link SimulatorServer}. */
export interface SimulatorServerOptions {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any device state
  device: Device<any>
  /** Address to bind. Default `127.0.0.1`. */
  host?: string
  /** Port; 0 (default) picks a free one. */
  port?: number
  /** Unread bytes buffered per connection before its socket is paused. Default 64 KiB. */
  bufferSize?: number
  /** Connections served at once; more are accepted and closed. Default unlimited. */
  maxConnections?: number
  /** Close a connection idle this many ms. Default never. */
  idleTimeout?: number
  /** Who may use the device at once (see `AccessPolicy`): an instrument that takes one controller at a time. */
  access?: AccessPolicy
  logger?: Logger
  /**
   * Serve Telnet instead of raw TCP: labwire's IAC codec on every connection (negotiation
   * answered, 0xFF escaped; `true` or the codec's options, e.g. a `banner`). Every fault, the
   * login dialogue and unsolicited messages work the same over Telnet.
   */
  telnet?: boolean | TelnetServerFilterOptions
  /** Any other protocol layer under the framing (what `TcpServer`'s `filter` is). Overrides `telnet`. */
  filter?: ConnectionFilterFactory
}

/** A connection as listed by the control channel. */
export interface ConnectionInfo {
  id: number
  peer: string
  /** Milliseconds since the epoch. */
  since: number
}

interface Tracked {
  readonly id: number
  readonly peer: string
  readonly since: number
  destroy(): void
}

/**
 * Serve a device on TCP. Every connection shares the device's state (like a real instrument);
 * each connection's requests are answered in order.
 *
 * @example
 * ```ts
 * const device = await loadDevice('devices/psu.yaml')
 * await using server = new SimulatorServer({ device })
 * const { port } = await server.listen()
 * ```
 */
export class SimulatorServer implements AsyncDisposable {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any device state
  readonly device: Device<any>
  private readonly server: Server
  private readonly host: string
  private readonly port: number
  private readonly bufferSize: number
  private readonly logger: Logger
  private readonly filter: ConnectionFilterFactory | undefined
  /** The serving kernel: its connections, access policy and drain; diagnostics events name it as `kernel`. */
  readonly kernel: ServerKernel
  /** Live connections by id, for the control channel (the kernel owns their lifecycle). */
  private readonly tracked = new Map<number, Tracked>()
  private nextId = 1
  private bound: ServerAddress | undefined
  private closing: Promise<void> | undefined
  private cable = true
  private readonly unsubscribe: () => void

  constructor(options: SimulatorServerOptions) {
    this.device = options.device
    this.host = options.host ?? '127.0.0.1'
    this.port = options.port ?? 0
    this.bufferSize = options.bufferSize ?? 64 * 1024
    this.logger = options.logger ?? silentLogger
    const telnet = options.telnet
    this.filter = options.filter ?? (telnet === undefined || telnet === false ? undefined : telnetServerFilter(telnet === true ? {} : telnet))
    this.kernel = new ServerKernel({
      server: 'SimulatorServer',
      transport: this.filter === undefined ? 'tcp' : 'telnet',
      callback: this.device.handler(),
      logger: this.logger,
      maxConnections: options.maxConnections,
      idleTimeout: options.idleTimeout,
      access: options.access,
    })
    this.server = createServer({ noDelay: true }, (socket) => this.accept(socket))
    this.server.on('error', (error) => this.logger.error({ err: error }, 'simulator server error'))
    this.unsubscribe = this.device.on((event) => {
      if (event.type === 'cable-cut') this.cutCable()
    })
  }

  /** The bound address once listening. */
  get address(): ServerAddress | undefined {
    return this.bound
  }

  /** Open connections. */
  get connections(): ConnectionInfo[] {
    return [...this.tracked.values()].map(({ id, peer, since }) => ({ id, peer, since }))
  }

  /** False while the cable is cut (connections are refused). */
  get cableConnected(): boolean {
    return this.cable
  }

  /** Start listening; starts the device's tick loops. */
  listen(options?: AbortOptions): Promise<ServerAddress> {
    try {
      throwIfAborted(options)
    } catch (error) {
      return Promise.reject(error)
    }
    if (this.bound !== undefined) return Promise.resolve(this.bound)
    if (this.closing !== undefined) return Promise.reject(new ConnectionError('server is closed'))
    return new Promise<ServerAddress>((resolve, reject) => {
      const onError = (error: Error): void => reject(new ConnectionError(`could not listen on ${this.host}:${this.port}: ${error.message}`, { cause: error }))
      this.server.once('error', onError)
      this.server.listen({ host: this.host, port: this.port }, () => {
        this.server.off('error', onError)
        const address = this.server.address()
        if (address === null || typeof address === 'string') {
          reject(new ConnectionError('server has no TCP address'))
          return
        }
        this.bound = { host: address.address, port: address.port }
        this.device.start()
        resolve(this.bound)
      })
    })
  }

  /** "Cut the cable": close every connection now and refuse new ones until {@link SimulatorServer.restoreCable}. */
  cutCable(): void {
    this.cable = false
    for (const connection of this.tracked.values()) connection.destroy()
  }

  /** Accept connections again after {@link SimulatorServer.cutCable}. */
  restoreCable(): void {
    this.cable = true
  }

  /** Close one connection by id. Returns false when there is none. */
  disconnect(id: number): boolean {
    const connection = this.tracked.get(id)
    if (connection === undefined) return false
    connection.destroy()
    return true
  }

  /** Stop listening, close every connection (or, with `drain`, after requests in flight finish, for at most `drain` ms), stop the tick loops. Idempotent. */
  close(options?: ServerCloseOptions): Promise<void> {
    this.closing ??= (async () => {
      this.unsubscribe()
      const stopped = this.server.listening ? new Promise<void>((resolve) => this.server.close(() => resolve())) : Promise.resolve()
      await this.kernel.close(options)
      this.device.stop()
      await stopped
    })()
    return this.closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  private accept(socket: Socket): void {
    socket.on('error', socketErrorListener)
    const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`
    if (!this.cable || this.kernel.full) {
      logDebug(this.logger, () => [{ peer, cable: this.cable }, 'connection refused'])
      socket.destroy()
      return
    }
    socket.setNoDelay(true)
    const id = this.nextId++
    const stream = new ByteStream(undefined, { highWaterMark: this.bufferSize, producer: socket, label: peer })
    const io = new SimulatorIo(socket, stream, peer, this.logger, this, id)
    if (this.filter !== undefined) io.filter = this.filter({ side: 'server', peer, send: (bytes) => io.send(bytes) })
    io.listen()
    registerConnection(stream, io.handle)
    const conn = this.kernel.admit(peer, stream, io)
    if (conn === undefined) {
      lingeringClose(socket)
      return
    }
    io.conn = conn
    this.tracked.set(id, io.handle)
    this.device.attach(io.handle)
    if (conn.ending) return
    io.filter?.open?.()
    const greeting = this.device.greeting()
    if (greeting !== undefined) io.write(greeting)?.catch(() => undefined)
  }

  /** @internal */
  untrack(handle: SimHandle): void {
    if (this.tracked.get(handle.id) === handle) this.tracked.delete(handle.id)
    this.device.detach(handle)
  }

  /** @internal Unsent bytes a connection may hold before unsolicited writes to it are dropped. */
  get bufferLimit(): number {
    return this.bufferSize
  }
}

/**
 * A simulator connection: the kernel's socket I/O plus what the device engine needs (id, since,
 * unsolicited writes). Unsolicited writes (broadcasts, fault fragments) honour backpressure: while
 * the socket already holds `bufferSize` unsent bytes (the peer is not reading) they are dropped
 * and logged, so a connection that never reads cannot grow the server.
 */
class SimulatorIo extends SocketIo {
  readonly handle: SimHandle
  private dropped = 0

  constructor(
    socket: Socket,
    stream: ByteStream,
    peer: string,
    logger: Logger,
    private readonly owner: SimulatorServer,
    id: number,
  ) {
    super(socket, stream, peer, logger)
    this.handle = new SimHandle(this, id)
  }

  /** SimConnection.write: an unsolicited write, dropped while the peer is not reading. */
  unsolicited(bytes: Uint8Array): void {
    const socket = this.socket
    if (socket.destroyed || !socket.writable) return
    if (socket.writableLength >= this.owner.bufferLimit) {
      if (this.dropped++ === 0) this.logger.warn({ peer: this.peer, writableLength: socket.writableLength }, 'unsolicited message dropped: the peer is not reading (write buffer full)')
      return
    }
    this.dropped = 0
    if (this.conn !== undefined) this.conn.bytesOut += bytes.length
    this.flushBatch()
    socket.write(this.filter === undefined ? bytes : this.filter.output(bytes))
  }

  override gone(): void {
    super.gone()
    this.owner.untrack(this.handle)
  }
}

/** What the device engine and the control channel see of a connection. */
class SimHandle implements SimConnection, Tracked {
  readonly since = Date.now()

  constructor(
    private readonly io: SimulatorIo,
    readonly id: number,
  ) {}

  get peer(): string {
    return this.io.peer
  }

  get closed(): boolean {
    return this.io.socket.destroyed || !this.io.socket.writable
  }

  write(bytes: Uint8Array): void {
    this.io.unsolicited(bytes)
  }

  destroy(): void {
    this.io.destroy()
  }
}

/** Options for {@link serveDevice}. */
export interface ServeDeviceOptions extends Omit<SimulatorServerOptions, 'device'>, AbortOptions {}

/** Serve `device` on TCP and resolve once listening: `const server = await serveDevice(device, { port: 5025 })`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any device state
export async function serveDevice(device: Device<any>, options: ServeDeviceOptions = {}): Promise<SimulatorServer> {
  const { signal, ...rest } = options
  const server = new SimulatorServer({ ...rest, device })
  await server.listen(signal === undefined ? {} : { signal })
  return server
}
