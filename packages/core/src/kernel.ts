/**
 * The serving kernel: the one place where a server keeps its live connections (or UDP peers),
 * `maxConnections`, idle and request timers, the access policy, drain and the diagnostics events.
 * Transports only move bytes: they hand each accepted connection to {@link ServerKernel.admit}
 * with a {@link ConnectionIo}, and report its end with {@link KernelConnection.closed}.
 *
 * @module
 */
import type { ByteStream } from './byte-stream.js'
import { serverCloseChannel, serverConnectChannel, serverRequestChannel } from './diagnostics.js'
import { AccessRefusedError, AccessTimeoutError } from './errors.js'
import { logDebug, silentLogger, type Logger } from './logger.js'
import { startServing, toHandlerFunction, type ServeHandler, type ServedConnection } from './serve.js'
import type { ByteHandler } from './types.js'
import { checkCount, checkDuration, clampDelay } from './validate.js'

/**
 * Who may use the device at once. `exclusive` lets one session at a time (or `maxSessions`) use
 * it; later sessions wait their turn (`'queue'`: FIFO, at most {@link MAX_ACCESS_QUEUE}, each for
 * up to `queueTimeout` ms, then `AccessTimeoutError`) or are turned away at once (`'refuse'`:
 * `AccessRefusedError` naming the holder's peer address).
 */
export interface AccessPolicy {
  /** Sessions served at once. Default 1 with `exclusive`, else unlimited. */
  maxSessions?: number | undefined
  /** What happens to a session over `maxSessions`. Default `'refuse'`. */
  exclusive?: 'queue' | 'refuse' | undefined
  /** `'queue'`: how long a session may wait, in ms. Default 30 000; 0 = as long as it takes. */
  queueTimeout?: number | undefined
}

/** Options of every server's `close()`. */
export interface ServerCloseOptions {
  /**
   * Stop accepting, let requests in flight (received, being handled) finish for up to this many
   * milliseconds, then close what is left. Default 0: close every connection now.
   */
  drain?: number | undefined
}

/** Sessions waiting for exclusive access, at most; one more is refused. */
export const MAX_ACCESS_QUEUE = 1024
/** Default `access.queueTimeout`. */
export const DEFAULT_QUEUE_TIMEOUT = 30_000

/** Options for {@link ServerKernel}. */
export interface ServerKernelOptions {
  /** The server's class name, for messages and events (`'TcpServer'`). */
  server: string
  /** The transport kind a `ConnectionHandler` sees (`'tcp'`, `'udp'`, …). */
  transport: string
  /** The server's callback: per request, or a `ConnectionHandler`. */
  callback: ByteHandler
  logger?: Logger | undefined
  /** Live connections at most; one more is refused (`admit` returns undefined). Default unlimited. */
  maxConnections?: number | undefined
  /** Close a connection with no bytes either way and no request being handled for this many ms. Default: never (0 = never). */
  idleTimeout?: number | undefined
  /** A request must arrive whole within this many ms of its first byte. Default: no limit. */
  requestTimeout?: number | undefined
  access?: AccessPolicy | undefined
}

/** A transport's side of one connection: how the kernel writes to it and ends it. */
export interface ConnectionIo {
  /** Queue bytes; a promise only when the caller should wait (write buffer full). */
  write(bytes: Uint8Array): Promise<void> | undefined
  /** Release corked writes. */
  flush(): void
  /** Graceful end: send what is queued, then close (a lingering close: read and drop what the peer still sends, bounded). */
  end(): void
  /** Close now. */
  destroy(): void
  /**
   * Tell the peer why it is turned away, then end. Default: write {@link accessNotice}(error) and
   * `end()`. A WebSocket closes with code 4403 / 4408 and the message as reason.
   */
  refuse?(error: AccessRefusedError | AccessTimeoutError): void
  /** Called with the connection's record as soon as it exists, before it is served, queued or refused (so `closed()` can be reported from inside `admit`). */
  attach?(conn: KernelConnection): void
  /**
   * The peer's name, when `admit` was given none: read only when something needs it (a log line,
   * an event, an access refusal), so a socket server need not ask the kernel for the peer's
   * address on every accept. See {@link ServerKernel.wantsPeer}.
   */
  readonly peer?: string | undefined
}

const QUEUED = 0
const SERVING = 1
const ENDING = 2
const CLOSED = 3

const NAK = 0x15
const NOTICE_PREFIX = '\u0015labwire '

/**
 * The line a stream server writes before closing a session its access policy turned away:
 * `NAK "labwire " code " " message CR LF` (NAK = 0x15), e.g.
 * `\x15labwire ERR_ACCESS_REFUSED refused: the device is in exclusive use by 127.0.0.1:53122\r\n`.
 * A client recognises it with {@link parseAccessNotice}.
 */
export function accessNotice(error: AccessRefusedError | AccessTimeoutError): Uint8Array {
  return new TextEncoder().encode(`${NOTICE_PREFIX}${error.code} ${error.message.replace(/[\r\n]/g, ' ')}\r\n`)
}

/**
 * The access error an {@link accessNotice} carries, or `undefined` when `bytes` is not one. Accepts
 * the line with or without its line end (a line framer strips it), as a reply or as a
 * `ConnectionClosedError`'s `partial`.
 */
export function parseAccessNotice(bytes: Uint8Array): AccessRefusedError | AccessTimeoutError | undefined {
  if (bytes.length < NOTICE_PREFIX.length || bytes[0] !== NAK) return undefined
  const text = new TextDecoder().decode(bytes).replace(/\r?\n?$/, '').replace(/\r$/, '')
  if (!text.startsWith(NOTICE_PREFIX)) return undefined
  const rest = text.slice(NOTICE_PREFIX.length)
  const space = rest.indexOf(' ')
  const code = space < 0 ? rest : rest.slice(0, space)
  const message = space < 0 ? '' : rest.slice(space + 1)
  if (code === 'ERR_ACCESS_REFUSED') {
    const holder = / by (\S+)$/.exec(message)?.[1] ?? ''
    return new AccessRefusedError(message, { holder })
  }
  if (code === 'ERR_ACCESS_TIMEOUT') {
    const waited = Number(/waited (\d+) ms/.exec(message)?.[1] ?? 0)
    return new AccessTimeoutError(message, { waited })
  }
  return undefined
}

/** WebSocket close code of a session refused by the access policy. */
export const CLOSE_CODE_ACCESS_REFUSED = 4403
/** WebSocket close code of a session that waited `queueTimeout` for exclusive access. */
export const CLOSE_CODE_ACCESS_TIMEOUT = 4408

/**
 * The access error a WebSocket close carries (code 4403 / 4408, reason = the error's message), or
 * `undefined` for any other close. For WebSocket clients: fail the stream with it.
 */
export function accessErrorFromClose(code: number, reason: string): AccessRefusedError | AccessTimeoutError | undefined {
  if (code === CLOSE_CODE_ACCESS_REFUSED) return new AccessRefusedError(reason || undefined, { holder: / by (\S+)$/.exec(reason)?.[1] ?? '' })
  if (code === CLOSE_CODE_ACCESS_TIMEOUT) return new AccessTimeoutError(reason || undefined, { waited: Number(/waited (\d+) ms/.exec(reason)?.[1] ?? 0) })
  return undefined
}

/**
 * One connection (or UDP peer) as the kernel keeps it: what the serving loop writes through, and
 * the fields idle detection, the access queue and the events need. One object per connection.
 */
export class KernelConnection implements ServedConnection {
  busy = false
  requests = 0
  /** Bytes written to the peer. */
  bytesOut = 0
  /** @internal 0 queued, 1 serving, 2 ending, 3 closed. */
  state = QUEUED
  /** @internal Activity mark seen by the last idle sweep, and when it last changed (set when served with an idleTimeout). */
  seen = 0
  /** @internal */
  lastActive = 0
  /** @internal performance.now() at admission. */
  readonly openedAt: number
  /** @internal The access-queue timer, only while queued with a queueTimeout. */
  queueTimer: ReturnType<typeof setTimeout> | undefined = undefined

  constructor(
    readonly kernel: ServerKernel,
    private readonly peerName: string | undefined,
    readonly stream: ByteStream,
    readonly io: ConnectionIo,
  ) {
    this.openedAt = performance.now()
  }

  /** Human-readable peer name, e.g. `127.0.0.1:53122` (asked of the transport on first use when `admit` was given none). */
  get peer(): string {
    return this.peerName ?? this.io.peer ?? 'unknown'
  }

  get transport(): string {
    return this.kernel.transport
  }

  /** True once the connection is being closed (refused, timed out in the queue, ended). */
  get ending(): boolean {
    return this.state >= ENDING
  }

  /** True while the access policy keeps it waiting for a session. */
  get queued(): boolean {
    return this.state === QUEUED
  }

  /** True once the server began a `close({ drain })`. */
  get draining(): boolean {
    return this.kernel.draining
  }

  write(bytes: Uint8Array): Promise<void> | undefined {
    this.bytesOut += bytes.length
    return this.io.write(bytes)
  }

  flush(): void {
    this.io.flush()
    // Draining: the loop flushes right before it waits for more input, i.e. nothing is in flight.
    if (this.kernel.draining && this.state === SERVING && !this.busy) queueMicrotask(() => this.close())
  }

  /** Graceful close (idempotent): the session slot is released at once, the transport ends the connection. */
  close(): void {
    if (this.state >= ENDING) return
    this.kernel.release(this)
    this.io.end()
  }

  /** Close now. */
  destroy(): void {
    if (this.state === CLOSED) return
    this.kernel.release(this)
    this.io.destroy()
  }

  /** The transport reports the connection gone (socket closed). Idempotent. */
  closed(): void {
    if (this.state === CLOSED) return
    this.kernel.release(this)
    this.state = CLOSED
    this.stream.end()
    this.kernel.forget(this)
  }
}

/**
 * The serving kernel of one server. See the module documentation.
 *
 * @example
 * ```ts
 * const kernel = new ServerKernel({ server: 'MyServer', transport: 'tcp', callback, maxConnections: 100 })
 * // per accepted socket:
 * const conn = kernel.admit(peer, stream, io) // undefined: refused (maxConnections, closing)
 * socket.on('close', () => conn?.closed())
 * // shutting down:
 * await kernel.close({ drain: 2000 })
 * ```
 */
export class ServerKernel {
  readonly server: string
  readonly transport: string
  readonly logger: Logger
  readonly handler: ServeHandler
  readonly maxConnections: number
  readonly idleTimeout: number | undefined
  readonly requestTimeout: number | undefined
  /** Sessions served at once (Infinity: no access policy). */
  readonly maxSessions: number
  readonly exclusive: 'queue' | 'refuse'
  readonly queueTimeout: number | undefined
  /** Live connections, queued ones included. */
  readonly connections = new Set<KernelConnection>()
  private active = 0
  private queue: KernelConnection[] = []
  private sweepTimer: ReturnType<typeof setTimeout> | undefined
  private drainTimer: ReturnType<typeof setTimeout> | undefined
  private closing: Promise<void> | undefined
  private emptied: (() => void) | undefined
  private isDraining = false

  constructor(options: ServerKernelOptions) {
    const owner = options.server
    this.server = owner
    this.transport = options.transport
    this.logger = options.logger ?? silentLogger
    this.handler = toHandlerFunction(options.callback)
    this.maxConnections = checkCount(owner, 'maxConnections', options.maxConnections ?? Infinity, { allowInfinity: true })
    this.idleTimeout = checkDuration(owner, 'idleTimeout', options.idleTimeout)
    this.requestTimeout = checkDuration(owner, 'requestTimeout', options.requestTimeout)
    const access = options.access
    if (access !== undefined && (typeof access !== 'object' || access === null)) throw new TypeError(`${owner}: access must be an object { maxSessions?, exclusive?, queueTimeout? }`)
    const exclusive = access?.exclusive
    if (exclusive !== undefined && exclusive !== 'queue' && exclusive !== 'refuse') throw new RangeError(`${owner}: access.exclusive must be 'queue' or 'refuse', got ${String(exclusive)}`)
    this.exclusive = exclusive ?? 'refuse'
    this.maxSessions = checkCount(owner, 'access.maxSessions', access?.maxSessions ?? (exclusive === undefined ? Infinity : 1), { allowInfinity: true })
    this.queueTimeout = checkDuration(owner, 'access.queueTimeout', access?.queueTimeout ?? DEFAULT_QUEUE_TIMEOUT)
  }

  /** Live connections (queued ones included). */
  get size(): number {
    return this.connections.size
  }

  /** True once `close()` was called. */
  get isClosing(): boolean {
    return this.closing !== undefined
  }

  /** True while a `close({ drain })` lets requests in flight finish. */
  get draining(): boolean {
    return this.isDraining
  }

  /**
   * True when something will want every connection's peer name (a logger that is not silent, a
   * subscriber to the server events): a transport then names the peer at accept, while its socket
   * still has an address. Otherwise it may pass no peer to `admit` and name it on demand
   * ({@link ConnectionIo.peer}).
   */
  get wantsPeer(): boolean {
    return this.logger !== silentLogger || serverConnectChannel.hasSubscribers || serverCloseChannel.hasSubscribers || serverRequestChannel.hasSubscribers
  }

  /** True when a new connection would be refused outright (closing, or at `maxConnections`): the transport can refuse before building anything. */
  get full(): boolean {
    return this.closing !== undefined || this.connections.size >= this.maxConnections
  }

  /**
   * Admit a connection: serve it now, queue it (access policy) or turn it away with a reason.
   * Returns `undefined` — nothing kept, the transport closes it (lingering) — when the server is
   * closing or at `maxConnections`. `peer` may be left out when `io` names it on demand.
   */
  admit(peer: string | undefined, stream: ByteStream, io: ConnectionIo): KernelConnection | undefined {
    if (this.full) {
      this.logger.warn({ peer: peer ?? io.peer, maxConnections: this.maxConnections }, 'connection refused: server at maxConnections or closing')
      return undefined
    }
    const conn = new KernelConnection(this, peer, stream, io)
    this.connections.add(conn)
    io.attach?.(conn)
    if (serverConnectChannel.hasSubscribers) serverConnectChannel.publish({ server: this.server, kernel: this, transport: this.transport, peer: conn.peer, connections: this.connections.size })
    logDebug(this.logger, () => [{ peer: conn.peer }, 'connection accepted'])
    if (this.active < this.maxSessions) this.start(conn)
    else if (this.exclusive === 'refuse' || this.queue.length >= MAX_ACCESS_QUEUE) this.refuse(conn, new AccessRefusedError(undefined, { holder: this.holder() }))
    else this.enqueue(conn)
    return conn
  }

  /**
   * Stop admitting and close every connection: at once, or (`drain`) after the requests in flight
   * finish, for at most `drain` ms. Resolves when no connection is left. Idempotent.
   */
  close(options?: ServerCloseOptions): Promise<void> {
    if (this.closing !== undefined) return this.closing
    const drain = checkDuration(this.server, 'drain', options?.drain)
    this.closing = new Promise<void>((resolve) => {
      this.emptied = resolve
    })
    this.stopSweep()
    for (const conn of this.queue) if (conn.state === QUEUED) conn.close()
    this.queue = []
    if (drain !== undefined) {
      this.isDraining = true
      const whole = this.handler.connectionHandler !== undefined
      for (const conn of this.connections) {
        if (!whole && conn.state === SERVING && !conn.busy && conn.stream.bufferedLength === 0) conn.close()
      }
      this.drainTimer = setTimeout(() => this.destroyAll(), clampDelay(drain))
      this.drainTimer.unref?.()
    } else {
      this.destroyAll()
    }
    this.checkEmpty()
    return this.closing
  }

  /** @internal A connection stops holding (or waiting for) a session. */
  release(conn: KernelConnection): void {
    const state = conn.state
    if (state >= ENDING) return
    conn.state = ENDING
    if (state === SERVING) {
      this.active--
      this.promote()
    } else {
      this.clearQueued(conn)
    }
  }

  /** @internal The transport reported `conn` gone. */
  forget(conn: KernelConnection): void {
    if (!this.connections.delete(conn)) return
    if (serverCloseChannel.hasSubscribers) {
      serverCloseChannel.publish({
        server: this.server,
        kernel: this,
        transport: this.transport,
        peer: conn.peer,
        duration: performance.now() - conn.openedAt,
        bytesIn: conn.stream.consumed + conn.stream.bufferedLength,
        bytesOut: conn.bytesOut,
        requests: conn.requests,
        connections: this.connections.size,
      })
    }
    this.checkEmpty()
  }

  private start(conn: KernelConnection): void {
    conn.state = SERVING
    this.active++
    if (this.idleTimeout !== undefined) {
      conn.lastActive = performance.now()
      this.armSweep()
    }
    startServing(conn.stream, this.handler, conn, this.logger, this.requestTimeout)
  }

  private promote(): void {
    while (this.active < this.maxSessions && this.queue.length > 0 && this.closing === undefined) {
      const next = this.queue.shift() as KernelConnection
      if (next.state !== QUEUED) continue
      if (next.queueTimer !== undefined) clearTimeout(next.queueTimer)
      next.queueTimer = undefined
      logDebug(this.logger, () => [{ peer: next.peer }, 'queued session gets access'])
      this.start(next)
    }
  }

  private enqueue(conn: KernelConnection): void {
    this.queue.push(conn)
    const limit = this.queueTimeout
    logDebug(this.logger, () => [{ peer: conn.peer, queued: this.queue.length }, 'session queued for exclusive access'])
    if (limit === undefined) return
    conn.queueTimer = setTimeout(() => {
      conn.queueTimer = undefined
      if (conn.state !== QUEUED) return
      const holder = this.holder()
      this.refuse(conn, new AccessTimeoutError(`waited ${limit} ms for exclusive access to the device${holder === '' ? '' : ` (held by ${holder})`} without getting it (queueTimeout)`, { waited: limit }))
    }, clampDelay(limit))
    conn.queueTimer.unref?.()
  }

  private clearQueued(conn: KernelConnection): void {
    if (conn.queueTimer !== undefined) clearTimeout(conn.queueTimer)
    conn.queueTimer = undefined
    const index = this.queue.indexOf(conn)
    if (index >= 0) this.queue.splice(index, 1)
  }

  private refuse(conn: KernelConnection, error: AccessRefusedError | AccessTimeoutError): void {
    this.logger.warn({ peer: conn.peer, err: error }, error instanceof AccessTimeoutError ? 'queued session timed out waiting for exclusive access' : 'session refused by the access policy')
    this.release(conn)
    const io = conn.io
    if (io.refuse !== undefined) {
      io.refuse(error)
      return
    }
    io.write(accessNotice(error))?.catch(() => undefined)
    io.flush()
    io.end()
  }

  /** The peer holding the device: the first session being served. */
  private holder(): string {
    for (const conn of this.connections) if (conn.state === SERVING) return conn.peer
    return ''
  }

  private destroyAll(): void {
    this.drainTimer = undefined
    for (const conn of [...this.connections]) conn.destroy()
  }

  private checkEmpty(): void {
    if (this.closing === undefined || this.connections.size > 0) return
    if (this.drainTimer !== undefined) clearTimeout(this.drainTimer)
    this.drainTimer = undefined
    this.isDraining = false
    const emptied = this.emptied
    this.emptied = undefined
    emptied?.()
  }

  // ── idle connections: one timer per server, not one per connection ─────────────────────────

  private armSweep(): void {
    if (this.sweepTimer !== undefined || this.idleTimeout === undefined || this.closing !== undefined) return
    this.sweepTimer = setTimeout(this.sweep, Math.max(1, clampDelay(this.idleTimeout / 4)))
    this.sweepTimer.unref?.()
  }

  private stopSweep(): void {
    if (this.sweepTimer !== undefined) clearTimeout(this.sweepTimer)
    this.sweepTimer = undefined
  }

  /**
   * Every idleTimeout/4: a connection whose byte counts (in and out) changed, or that is busy, is
   * active now; one unchanged for idleTimeout is closed. No clock read per chunk: a connection is
   * closed between idleTimeout and 1.25 × idleTimeout after its last byte, never before.
   */
  private readonly sweep = (): void => {
    this.sweepTimer = undefined
    const idle = this.idleTimeout
    if (idle === undefined || this.closing !== undefined) return
    const now = performance.now()
    let serving = false
    for (const conn of this.connections) {
      if (conn.state !== SERVING) continue
      const stream = conn.stream
      const mark = stream.consumed + stream.bufferedLength + conn.bytesOut
      if (conn.busy || mark !== conn.seen) {
        conn.seen = mark
        if (now - conn.lastActive > 0) conn.lastActive = now
      } else if (now - conn.lastActive >= idle) {
        logDebug(this.logger, () => [{ peer: conn.peer, idleTimeout: idle }, 'closing idle connection'])
        conn.close()
        continue
      }
      serving = true
    }
    if (serving) this.armSweep()
  }
}
