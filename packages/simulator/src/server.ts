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
  logDebug,
  serveConnection,
  silentLogger,
  throwIfAborted,
  toHandlerFunction,
  type AbortOptions,
  type ConnectionFilter,
  type ConnectionFilterFactory,
  type Logger,
  type ServedConnection,
  type ServerAddress,
} from '@labwire/core'
import { replyWriter } from '@labwire/transport-tcp'
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

interface Tracked extends SimConnection {
  socket: Socket
  since: number
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
  private readonly maxConnections: number
  private readonly logger: Logger
  private readonly filter: ConnectionFilterFactory | undefined
  private readonly tracked = new Map<number, Tracked>()
  private readonly handler
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
    this.maxConnections = options.maxConnections ?? Infinity
    this.logger = options.logger ?? silentLogger
    const telnet = options.telnet
    this.filter = options.filter ?? (telnet === undefined || telnet === false ? undefined : telnetServerFilter(telnet === true ? {} : telnet))
    this.handler = toHandlerFunction(this.device.handler())
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

  /** Stop listening, close every connection, stop the tick loops. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.unsubscribe()
      this.device.stop()
      for (const connection of this.tracked.values()) connection.socket.destroy()
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
    const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`
    socket.on('error', (error) => logDebug(this.logger, () => [{ peer, err: error }, 'socket error']))
    if (this.closing !== undefined || !this.cable || this.tracked.size >= this.maxConnections) {
      logDebug(this.logger, () => [{ peer, cable: this.cable }, 'connection refused'])
      socket.destroy()
      return
    }
    socket.setNoDelay(true)
    const id = this.nextId++
    const filter: ConnectionFilter | undefined = this.filter?.({
      side: 'server',
      peer,
      send: (bytes) => {
        if (!socket.destroyed && socket.writable) socket.write(bytes)
      },
    })
    const encode = (bytes: Uint8Array): Uint8Array => (filter === undefined ? bytes : filter.output(bytes))
    const stream = new ByteStream(undefined, {
      highWaterMark: this.bufferSize,
      onPause: () => socket.pause(),
      onResume: () => socket.resume(),
      label: peer,
    })
    const tracked: Tracked = {
      id,
      peer,
      socket,
      since: Date.now(),
      get closed() {
        return socket.destroyed || !socket.writable
      },
      write: (bytes) => {
        if (!socket.destroyed && socket.writable) socket.write(encode(bytes))
      },
      destroy: () => {
        stream.end()
        socket.destroy()
      },
    }
    this.tracked.set(id, tracked)
    socket.on('data', (chunk: Buffer) => {
      if (filter === undefined) {
        stream.push(chunk)
        return
      }
      let data: Uint8Array
      try {
        data = filter.input(chunk)
      } catch (error) {
        this.logger.warn({ peer, err: error }, 'protocol error; closing the connection')
        stream.fail(error)
        socket.destroy()
        return
      }
      if (data.length > 0) stream.push(data)
    })
    socket.on('end', () => stream.end())
    socket.on('close', () => {
      filter?.close?.()
      stream.end()
      this.tracked.delete(id)
      this.device.detach(tracked)
    })
    registerConnection(stream, tracked)
    this.device.attach(tracked)
    filter?.open?.()
    const greeting = this.device.greeting()
    if (greeting !== undefined) socket.write(encode(greeting))
    const writer = replyWriter(socket, stream, encode)
    const conn: ServedConnection = {
      peer,
      busy: false,
      write: writer.write,
      flush: writer.flush,
      close() {
        if (socket.destroyed) return
        stream.end()
        socket.end()
        const timer = setTimeout(() => socket.destroy(), 1000)
        timer.unref()
        socket.once('close', () => clearTimeout(timer))
      },
    }
    void serveConnection(stream, this.handler, conn, this.logger)
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
