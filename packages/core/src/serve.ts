import type { ByteStream } from './byte-stream.js'
import { NEED_MORE, type NeedMore } from './frame-decoder.js'
import { ConnectionClosedError, ConnectionError, FrameTooLargeError, FramingError, TimeoutError, isLabwireError } from './errors.js'
import { logDebug, silentLogger, type Logger } from './logger.js'
import type { ByteHandler, ByteHandlerFunction } from './types.js'
import { clampDelay } from './validate.js'
import { errorCodeOf, serverRequestChannel, takeRequestCommand, type ServerRequestMessage } from './diagnostics.js'
import { isConnectionHandler, type ConnectionHandler, type ServerConnection } from './connection.js'

/**
 * The synchronous fast path of a handler: decode one request from what `stream` has buffered and
 * answer it. Returns `NEED_MORE` (consuming no request bytes) when no whole request is buffered,
 * the reply (or `undefined` for none), or a promise when the answer is really pending.
 */
export type BufferedHandler = (stream: ByteStream) => Uint8Array | undefined | NeedMore | Promise<Uint8Array | undefined>

/** A {@link ByteHandlerFunction} that may carry a {@link BufferedHandler} fast path. */
export type ServeHandler = ByteHandlerFunction & {
  readonly handleBuffered?: BufferedHandler | undefined
  /** Set when the callback was a {@link ConnectionHandler}: {@link serveConnection} hands it the whole connection instead of calling the function. */
  readonly connectionHandler?: ConnectionHandler | undefined
}

/**
 * Turn any form of {@link ByteHandler} into a function. An object's optional `handleBuffered`
 * fast path stays attached to the function; a {@link ConnectionHandler} is attached as
 * `connectionHandler` (the function itself then refuses per-request use).
 */
export function toHandlerFunction(handler: ByteHandler): ServeHandler {
  if (isConnectionHandler(handler)) {
    const perRequest: ByteHandlerFunction = () => {
      throw new TypeError('this callback is a ConnectionHandler: it serves whole connections (serveConnection), not single requests')
    }
    return Object.assign(perRequest, { connectionHandler: handler })
  }
  if (typeof handler === 'function') return handler
  if (handler === null || typeof handler !== 'object' || typeof handler.handle !== 'function') {
    throw new TypeError(`callback must be a function or an object with a handle(bytes) method (an ApplicationServer), got ${handler === null ? 'null' : typeof handler}`)
  }
  const fn: ByteHandlerFunction = (bytes) => handler.handle(bytes)
  const buffered = handler.handleBuffered
  if (typeof buffered !== 'function') return fn
  const bound: BufferedHandler = (stream) => buffered.call(handler, stream)
  return Object.assign(fn, { handleBuffered: bound })
}

/** One server-side connection, as {@link serveConnection} sees it. Transports implement it. */
export interface ServedConnection {
  /** Human-readable peer name for logs, e.g. `127.0.0.1:53122`. */
  readonly peer: string
  /** The transport kind (`'tcp'`, `'tls'`, `'unix'`, `'telnet'`, …), shown to a {@link ConnectionHandler}. Default `'unknown'`. */
  readonly transport?: string
  /** Set by the loop: true while a request is being handled. */
  busy: boolean
  /** When present, the loop counts the requests it answers here (the kernel reports it on close). */
  requests?: number
  /** Queue a reply. Return a promise only when the caller should wait (write buffer full). A throw (or a rejection) closes the connection and is logged. */
  write(bytes: Uint8Array): Promise<void> | undefined
  /** Called before the loop waits for more input: flush corked writes. */
  flush(): void
  /** Close the connection (idempotent): send what is queued, then end it. */
  close(): void
}

/** Options for {@link serveConnection}. */
export interface ServeOptions {
  /**
   * A request must arrive whole within this many milliseconds of its first byte, else the
   * connection is closed (a slow-trickle client cannot hold it forever). Default: no limit.
   */
  requestTimeout?: number | undefined
}

/**
 * Serve one connection: while it has input, hand the connection's byte stream to `handler`,
 * write each reply in order. Requests already buffered are decoded and answered synchronously
 * when the handler has a synchronous fast path; the loop awaits only when something is really
 * pending (an async handler, a full write buffer, more input).
 *
 * When the peer ends its side (half-close), every request already received is still answered,
 * then the connection is closed. A handler that throws is logged at error level and closes the
 * connection; other connections are unaffected. A `FrameTooLargeError` whose `resynchronised` is
 * true, or a `FramingError` whose `recoverable` is true (a whole frame was read and rejected),
 * is logged at warn level and the connection goes on. A handler that consumes no byte of buffered
 * input is an error (it would be called again forever): logged, connection closed.
 * Resolves when the connection is done; never rejects.
 */
export function serveConnection(stream: ByteStream, handler: ByteHandler, conn: ServedConnection, logger: Logger, options: ServeOptions = {}): Promise<void> {
  const fn = toHandlerFunction(handler)
  const whole = fn.connectionHandler
  if (whole !== undefined) return serveWholeConnection(stream, whole, conn, logger)
  return new Promise<void>((resolve) => {
    new ConnectionLoop(stream, fn, conn, logger, options.requestTimeout, resolve).run()
  })
}

/**
 * @internal {@link serveConnection} for the serving kernel, which does not wait for the end of a
 * connection (the transport reports it): no promise and no resolve function per connection.
 */
export function startServing(stream: ByteStream, handler: ServeHandler, conn: ServedConnection, logger: Logger, requestTimeout: number | undefined): void {
  const whole = handler.connectionHandler
  if (whole !== undefined) {
    void serveWholeConnection(stream, whole, conn, logger)
    return
  }
  new ConnectionLoop(stream, handler, conn, logger, requestTimeout, noop).run()
}

const noop = (): void => undefined

/** The `onData` of every served stream: runs the stream's loop (one shared function, no closure per connection). */
function runServedLoop(this: ByteStream): void {
  this.servedBy?.run()
}

/**
 * A {@link ServerConnection} over a transport's {@link ServedConnection}: the signal aborts when
 * the stream ends (the peer closed or the transport closed the connection) or on `close()`.
 */
class HandedConnection implements ServerConnection {
  readonly peer: string
  readonly transport: string
  readonly kernel: object | undefined
  private readonly controller = new AbortController()
  private closed = false

  constructor(
    readonly stream: ByteStream,
    private readonly conn: ServedConnection,
  ) {
    this.peer = conn.peer
    this.transport = conn.transport ?? 'unknown'
    this.kernel = (conn as { kernel?: object }).kernel
    stream.onEnd = () => this.abort()
  }

  get signal(): AbortSignal {
    return this.controller.signal
  }

  write(bytes: Uint8Array): Promise<void> | undefined {
    if (this.closed || this.controller.signal.aborted) throw new ConnectionClosedError(`connection to ${this.peer} is closed`)
    if (!(bytes instanceof Uint8Array)) throw new TypeError(`write takes a Uint8Array, got ${typeof bytes}`)
    if (bytes.length === 0) return undefined
    return this.conn.write(bytes)
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    try {
      this.conn.flush()
    } finally {
      this.conn.close()
      this.abort()
    }
  }

  private abort(): void {
    if (this.controller.signal.aborted) return
    this.controller.abort(new ConnectionClosedError(`connection to ${this.peer} closed`))
  }
}

function serveWholeConnection(stream: ByteStream, handler: ConnectionHandler, conn: ServedConnection, logger: Logger): Promise<void> {
  const connection = new HandedConnection(stream, conn)
  let served: Promise<void>
  try {
    served = Promise.resolve(handler.serveConnection(connection))
  } catch (error) {
    served = Promise.reject(error)
  }
  return served.then(
    () => {
      logDebug(logger, () => [{ peer: conn.peer }, 'connection handler done'])
      connection.close()
    },
    (error: unknown) => {
      if (connection.signal.aborted && (error instanceof ConnectionClosedError || error === connection.signal.reason)) {
        logDebug(logger, () => [{ peer: conn.peer, err: error }, 'connection handler ended with its connection'])
      } else {
        logger.error({ peer: conn.peer, err: isLabwireError(error) || error instanceof Error ? error : new Error(describeThrown(error)) }, 'connection handler failed; closing the connection')
      }
      connection.close()
    },
  )
}

class ConnectionLoop {
  // Fields in the order V8 lays them out: what every request reads first (with many connections
  // their loops are rarely cached, and each cache line touched costs a miss).
  private readonly stream: ByteStream
  private readonly conn: ServedConnection
  private readonly fast: BufferedHandler | undefined
  private running = false
  private waiting = false
  private finished = false
  private requestTimer: ReturnType<typeof setTimeout> | undefined = undefined
  /** performance.now() when the current request started, only while someone subscribes to `labwire:server:request`; else -1. */
  private startedAt = -1
  private requests = 0
  /** The stream is fed by pushes (its data event runs the loop), not read from a source. */
  private readonly pushMode: boolean
  private readonly handler: ServeHandler
  private readonly logger: Logger
  private readonly requestTimeout: number | undefined
  private readonly resolve: () => void
  private requestStartConsumed = 0

  constructor(stream: ByteStream, handler: ServeHandler, conn: ServedConnection, logger: Logger, requestTimeout: number | undefined, resolve: () => void) {
    this.stream = stream
    this.conn = conn
    this.fast = handler.handleBuffered
    this.pushMode = stream.pushMode
    this.handler = handler
    this.logger = logger
    this.requestTimeout = requestTimeout
    this.resolve = resolve
    stream.servedBy = this
    stream.onData = runServedLoop
  }

  /** Drive the connection as far as it can go without waiting. Re-entered from data events. */
  run(): void {
    if (this.running || this.waiting || this.finished) return
    this.running = true
    try {
      this.loop()
    } finally {
      this.running = false
    }
  }

  private loop(): void {
    const stream = this.stream
    const conn = this.conn
    for (;;) {
      if (stream.bufferedLength === 0) {
        this.clearRequestTimer()
        if (stream.ended) {
          this.finish(stream.error)
          return
        }
        conn.flush()
        this.waitForInput()
        return
      }
      const before = stream.consumed
      const fast = this.fast
      if (fast === undefined) {
        this.callAsync(before)
        return
      }
      let result: ReturnType<BufferedHandler>
      conn.busy = true
      if (serverRequestChannel.hasSubscribers) this.startedAt = performance.now()
      try {
        result = fast(stream)
      } catch (error) {
        conn.busy = false
        if (!this.recover(error, before)) return
        continue
      }
      if (result === NEED_MORE) {
        this.startedAt = -1
        conn.busy = false
        if (stream.ended) {
          this.finish(stream.closedError())
          return
        }
        if (stream.consumed === before) this.armRequestTimer()
        stream.wantMore()
        conn.flush()
        this.waitForInput()
        return
      }
      if (result instanceof Promise) {
        this.await(result, before)
        return
      }
      conn.busy = false
      if (!this.answered(before, result)) return
    }
  }

  /** Push-mode streams call `run` from their data event; a pull-mode stream is read here. */
  private waitForInput(): void {
    if (this.pushMode) return
    this.waiting = true
    this.stream.fill().then(
      () => {
        this.waiting = false
        this.run()
      },
      (error: unknown) => {
        this.waiting = false
        if (this.stream.bufferedLength > 0) this.run()
        else this.finish(error)
      },
    )
  }

  /** The slow path: the handler reads the stream itself and may await. */
  private callAsync(before: number): void {
    this.conn.busy = true
    if (serverRequestChannel.hasSubscribers) this.startedAt = performance.now()
    let result: Promise<Uint8Array | undefined> | Uint8Array | undefined
    try {
      result = this.handler(this.stream)
    } catch (error) {
      this.conn.busy = false
      if (this.recover(error, before)) this.run()
      return
    }
    if (result instanceof Promise) {
      this.armRequestTimer()
      this.await(result, before)
      return
    }
    this.conn.busy = false
    if (this.answered(before, result)) this.run()
  }

  private await(result: Promise<Uint8Array | undefined>, before: number): void {
    this.waiting = true
    this.conn.busy = true
    result.then(
      (reply) => {
        this.waiting = false
        this.conn.busy = false
        if (this.finished) return
        if (this.answered(before, reply)) this.run()
      },
      (error: unknown) => {
        this.waiting = false
        this.conn.busy = false
        if (this.finished) return
        if (this.recover(error, before)) this.run()
      },
    )
  }

  /** A request was handled: check it made progress, write its reply. Returns false when the loop must stop here. */
  private answered(before: number, reply: Uint8Array | undefined): boolean {
    this.clearRequestTimer()
    if (this.stream.consumed === before && this.stream.bufferedLength > 0) {
      this.finish(new FramingError('the request handler returned without consuming any input; it would be called again forever (a zero-length frame, or a callback that ignores its stream)'), 'error')
      return false
    }
    this.requests++
    if (this.conn.requests !== undefined) this.conn.requests++
    if (this.startedAt >= 0) this.published(before, reply === undefined || !(reply instanceof Uint8Array) ? 0 : reply.length, undefined)
    if (reply === undefined || reply.length === 0) return true
    if (!(reply instanceof Uint8Array)) {
      this.finish(new TypeError(`the request handler returned ${typeof reply}, not a Uint8Array or undefined`), 'error')
      return false
    }
    let wait: Promise<void> | undefined
    try {
      wait = this.conn.write(reply)
    } catch (error) {
      this.finish(error)
      return false
    }
    if (wait === undefined) return true
    this.waiting = true
    wait.then(
      () => {
        this.waiting = false
        this.run()
      },
      (error: unknown) => {
        this.waiting = false
        this.finish(error)
      },
    )
    return false
  }

  /** Publish the finished request on `labwire:server:request`. */
  private published(before: number, bytesOut: number, error: unknown): void {
    const startedAt = this.startedAt
    this.startedAt = -1
    if (!serverRequestChannel.hasSubscribers) return
    const duration = performance.now() - startedAt
    const conn = this.conn
    const command = takeRequestCommand(this.stream)
    const kernel = (conn as { kernel?: object }).kernel
    const transport = conn.transport ?? 'unknown'
    const bytesIn = this.stream.consumed - before
    // One fixed object shape per outcome (no spread): the subscriber's property reads stay monomorphic.
    const message: ServerRequestMessage =
      error === undefined
        ? command === undefined
          ? { kernel, transport, peer: conn.peer, duration, bytesIn, bytesOut }
          : { kernel, transport, peer: conn.peer, duration, bytesIn, bytesOut, command }
        : command === undefined
          ? { kernel, transport, peer: conn.peer, duration, bytesIn, bytesOut, error: errorCodeOf(error) }
          : { kernel, transport, peer: conn.peer, duration, bytesIn, bytesOut, error: errorCodeOf(error), command }
    serverRequestChannel.publish(message)
  }

  /** A handler error: true when the connection can go on (the framer is back in step). */
  private recover(error: unknown, before: number): boolean {
    if (this.startedAt >= 0) this.published(before, 0, error)
    if ((error instanceof FrameTooLargeError && error.resynchronised) || (error instanceof FramingError && error.recoverable)) {
      this.clearRequestTimer()
      this.logger.warn({ peer: this.conn.peer, err: error }, error instanceof FrameTooLargeError ? 'oversized request skipped' : 'bad request frame skipped')
      return true
    }
    this.finish(error)
    return false
  }

  private armRequestTimer(): void {
    const limit = this.requestTimeout
    if (limit === undefined || this.requestTimer !== undefined) return
    this.requestStartConsumed = this.stream.consumed
    this.requestTimer = setTimeout(() => {
      this.requestTimer = undefined
      // A request that has been read whole and is being processed is not a slow trickle.
      if (this.waiting && this.stream.consumed !== this.requestStartConsumed) return
      this.finish(new TimeoutError(`request not complete within requestTimeout (${limit} ms of its first byte; ${this.stream.bufferedLength} bytes received)`), 'warn')
    }, clampDelay(limit))
    this.requestTimer.unref?.()
  }

  private clearRequestTimer(): void {
    if (this.requestTimer === undefined) return
    clearTimeout(this.requestTimer)
    this.requestTimer = undefined
  }

  private finish(error?: unknown, level?: 'warn' | 'error'): void {
    if (this.finished) return
    this.finished = true
    this.clearRequestTimer()
    this.stream.onData = undefined
    this.stream.servedBy = undefined
    const conn = this.conn
    conn.busy = false
    // The peer is named only for a logger that will print it (a socket server may name it on demand).
    const logger = this.logger
    if (error === undefined) {
      logDebug(logger, () => [{ peer: conn.peer, requests: this.requests }, 'connection ended by peer'])
    } else if (logger === silentLogger) {
      // nothing to log
    } else if (level !== undefined) {
      logger[level]({ peer: conn.peer, err: error }, level === 'error' ? 'request handler failed; closing the connection' : 'closing the connection')
    } else if (error instanceof ConnectionClosedError) {
      logger.warn({ peer: conn.peer, err: error, partialLength: error.partial.length }, 'connection closed in the middle of a request')
    } else if (error instanceof ConnectionError) {
      logDebug(logger, () => [{ peer: conn.peer, err: error }, 'connection failed'])
    } else {
      logger.error({ peer: conn.peer, err: isLabwireError(error) || error instanceof Error ? error : new Error(describeThrown(error)) }, 'request handler failed; closing the connection')
    }
    try {
      conn.flush()
    } finally {
      conn.close()
      this.resolve()
    }
  }
}

function describeThrown(value: unknown): string {
  if (typeof value === 'string') return value
  try {
    return JSON.stringify(value) ?? typeof value
  } catch {
    return typeof value
  }
}
