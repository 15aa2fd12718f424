import { raceSignal, throwIfAborted } from './abort.js'
import { ByteQueue } from './byte-queue.js'
import { ByteStream } from './byte-stream.js'
import { ConnectionError } from './errors.js'
import { silentLogger, type Logger } from './logger.js'
import { ServerKernel, type AccessPolicy, type ConnectionIo, type KernelConnection, type ServerCloseOptions } from './kernel.js'
import type { AbortOptions, ByteHandler, TransportClient, TransportClientSession } from './types.js'

/** Options for {@link MemoryServer}. */
export interface MemoryServerOptions {
  /** Called per request with the connection's byte stream. */
  callback: ByteHandler
  /** Unread bytes each direction holds before the writer has to wait. Default 64 KiB. */
  capacity?: number
  logger?: Logger
  /** Connections at once; one more is refused (`ConnectionError`). Default unlimited. */
  maxConnections?: number
  /** Close a connection idle this many ms. Default never. */
  idleTimeout?: number
  /** A request must arrive whole within this many ms of its first byte. Default no limit. */
  requestTimeout?: number
  /** Access policy (see `AccessPolicy`). */
  access?: AccessPolicy
}

/** One direction of an in-memory connection: writes wait while the reader is `capacity` bytes behind. */
class Pipe {
  readonly queue: ByteQueue
  private resume: (() => void) | undefined
  private waiting: Promise<void> | undefined

  constructor(capacity: number) {
    this.queue = new ByteQueue({
      highWaterMark: capacity,
      onPause: () => undefined,
      onResume: () => {
        const resume = this.resume
        this.resume = undefined
        this.waiting = undefined
        resume?.()
      },
    })
  }

  /** Push bytes; the promise resolves once the reader has caught up below capacity. */
  write(bytes: Uint8Array): Promise<void> | undefined {
    if (this.queue.closed) return Promise.reject(new ConnectionError('in-memory connection is closed'))
    // Copy: the writer may reuse its buffer.
    this.queue.push(bytes.slice())
    if (!this.queue.paused) return undefined
    this.waiting ??= new Promise<void>((resolve) => {
      this.resume = resolve
    })
    return this.waiting
  }

  end(): void {
    this.queue.end()
    const resume = this.resume
    this.resume = undefined
    this.waiting = undefined
    resume?.()
  }
}

/** The server side of one in-memory connection, as the kernel drives it. */
class MemoryIo implements ConnectionIo {
  private conn: KernelConnection | undefined

  constructor(
    private readonly up: Pipe,
    private readonly down: Pipe,
    private readonly stream: ByteStream,
  ) {}

  write(bytes: Uint8Array): Promise<void> | undefined {
    return this.down.write(bytes)
  }

  flush(): void {}

  attach(conn: KernelConnection): void {
    this.conn = conn
  }

  end(): void {
    this.up.end()
    this.down.end()
    this.stream.end()
    this.conn?.closed()
  }

  destroy(): void {
    this.end()
  }
}

/**
 * An in-memory transport server: the same serving loop as the socket servers, over a pair of
 * bounded pipes. Use it to test application code and marshallers without sockets; `capacity`
 * makes backpressure real.
 */
export class MemoryServer {
  /** The serving kernel: its connections, access policy and drain; diagnostics events name it as `kernel`. */
  readonly kernel: ServerKernel
  private readonly capacity: number
  private closed = false

  constructor(options: MemoryServerOptions) {
    const logger: Logger = options.logger ?? silentLogger
    this.kernel = new ServerKernel({
      server: 'MemoryServer',
      transport: 'memory',
      callback: options.callback,
      logger,
      maxConnections: options.maxConnections,
      idleTimeout: options.idleTimeout,
      requestTimeout: options.requestTimeout,
      access: options.access,
    })
    this.capacity = options.capacity ?? 64 * 1024
  }

  /** Number of open connections. */
  get connectionCount(): number {
    return this.kernel.size
  }

  /** Open a connection (what {@link MemoryClient.connect} calls). */
  accept(options?: AbortOptions & { timeout?: number }): MemoryClientSession {
    throwIfAborted(options)
    if (this.closed || this.kernel.full) throw new ConnectionError(this.closed ? 'memory server is closed' : `memory server is at maxConnections (${this.kernel.maxConnections})`)
    const up = new Pipe(this.capacity)
    const down = new Pipe(this.capacity)
    const serverStream = new ByteStream(up.queue)
    const io = new MemoryIo(up, down, serverStream)
    const conn = this.kernel.admit('memory', serverStream, io)
    if (conn === undefined) throw new ConnectionError('memory server refused the connection')
    return new MemoryClientSession(up, new ByteStream(down.queue, { timeout: options?.timeout }), () => io.end())
  }

  /** Close every connection — at once, or (`drain`) after requests in flight finish, for at most `drain` ms. Idempotent. */
  close(options?: ServerCloseOptions): Promise<void> {
    this.closed = true
    return this.kernel.close(options)
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}

/** A client of a {@link MemoryServer}. */
export class MemoryClient implements TransportClient {
  constructor(
    private readonly server: MemoryServer,
    private readonly options: { timeout?: number } = {},
  ) {}

  connect(options?: AbortOptions): Promise<MemoryClientSession> {
    try {
      return Promise.resolve(this.server.accept({ ...options, ...this.options }))
    } catch (error) {
      return Promise.reject(error)
    }
  }
}

/** A session of a {@link MemoryClient}. */
export class MemoryClientSession implements TransportClientSession {
  private closed = false
  private writeError: Error | undefined

  /** @internal */
  constructor(
    private readonly up: Pipe,
    private readonly stream: ByteStream,
    private readonly closeConnection: () => void,
  ) {}

  request(request: Uint8Array): AsyncIterator<Uint8Array> {
    if (this.closed || this.up.queue.closed) throw new ConnectionError('in-memory connection is closed')
    this.up.write(request)?.catch((error: unknown) => {
      this.writeError = error as Error
    })
    return this.stream
  }

  async write(bytes: Uint8Array, options?: AbortOptions): Promise<void> {
    throwIfAborted(options)
    if (this.closed) throw new ConnectionError('session is closed')
    if (this.writeError !== undefined) throw this.writeError
    const wait = this.up.write(bytes)
    if (wait !== undefined) await raceSignal(wait, options?.signal, 'write')
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true
      this.closeConnection()
    }
    return Promise.resolve()
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}
