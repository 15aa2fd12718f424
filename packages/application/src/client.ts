import { Buffer } from 'node:buffer'
import {
  AbortError,
  AccessRefusedError,
  AccessTimeoutError,
  ByteStream,
  ConnectionClosedError,
  ConnectionError,
  Fifo,
  FrameTooLargeError,
  FramingError,
  NEED_MORE,
  TimeoutError,
  abortErrorFrom,
  byteStreamOf,
  clientRequestChannel,
  errorCodeOf,
  publishClientRequest,
  checkCount,
  checkDuration,
  clampDelay,
  decoderOf,
  escapeBytes,
  isLabwireError,
  logDebug,
  silentLogger,
  throwIfAborted,
  type AbortOptions,
  type ClientRequestMessage,
  type FrameDecoder,
  type LabwireError,
  type Logger,
  type TransportClient,
  type TransportClientSession,
} from '@labwire/core'

/** Reconnection policy for {@link ApplicationClientOptions.reconnect}. */
export interface ReconnectOptions {
  /** Attempts in a row before the session gives up (its calls then reject with `ConnectionError`). Default 5. */
  retries?: number
  /** Delay before the first attempt, in milliseconds; doubled after each failure. Default 100. */
  minDelay?: number
  /** Upper bound of the delay between attempts, in milliseconds. Default 5 000. */
  maxDelay?: number
}

/** Options for {@link ApplicationClient}. */
export interface ApplicationClientOptions<Res = unknown> {
  /**
   * Requests on the wire at once per session. 1 (default): lockstep, later calls queue FIFO.
   * n > 1: pipeline up to n requests; responses are matched to callers in order, so the device
   * must answer every request, in order.
   */
  maxInFlight?: number
  /** Default per-call limit for `sendReceive` and `send`, in milliseconds. Default 10 000; 0 or `Infinity` = none. */
  timeout?: number
  logger?: Logger
  /**
   * Frames that arrive while no request is waiting for a reply (an instrument's `ALARM` line, a
   * service request) are handed here instead of to a later caller. Without it they are logged
   * (warn) and dropped. Needs a labwire framer as the response unmarshaller (any of
   * `@labwire/marshallers`); with a custom async unmarshaller, bytes found buffered before a
   * request is written are dropped and logged.
   */
  onUnsolicited?: (message: Res) => void
  /**
   * Reconnect when the connection closes, and after a timeout whose reply never came (the
   * connection is then closed and opened again so no stale reply can follow). Calls not yet
   * written wait in the queue meanwhile; calls already written reject (their replies are lost).
   * `true` uses the defaults of {@link ReconnectOptions}. Default: off.
   */
  reconnect?: boolean | ReconnectOptions
}

/** Options for {@link ApplicationClientSession.sendReceive} and `send`. */
export interface SendReceiveOptions extends AbortOptions {
  /** Limit for this call in milliseconds (queueing included); overrides the client's default. 0 or `Infinity` = none. */
  timeout?: number
}

/** Encodes a request into bytes. */
export type RequestMarshaller<Req> = (request: Req) => Uint8Array
/** Reads one response from the connection's byte stream. */
export type ResponseUnmarshaller<Res> = (bytes: AsyncIterator<Uint8Array>) => Res | Promise<Res>

const DEFAULT_TIMEOUT = 10_000

interface ResolvedReconnect {
  retries: number
  minDelay: number
  maxDelay: number
}

/**
 * A client of a device: a transport plus a request marshaller and a response unmarshaller.
 *
 * @example
 * ```ts
 * const line = new SentinelBytesMarshaller('\n')
 * const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port: 5025 }), line.marshall, line.unmarshall)
 * await using session = await client.connect()
 * const idn = await session.sendReceive(new TextEncoder().encode('*IDN?'))
 * ```
 */
export class ApplicationClient<Req, Res> {
  private readonly settings: SessionSettings<Res>

  constructor(
    private readonly transport: TransportClient,
    private readonly requestMarshaller: RequestMarshaller<Req>,
    private readonly responseUnmarshaller: ResponseUnmarshaller<Res>,
    options: ApplicationClientOptions<Res> = {},
  ) {
    if (transport === null || typeof transport !== 'object' || typeof transport.connect !== 'function') {
      throw new TypeError('ApplicationClient: transport must be a TransportClient (e.g. new TcpClient({ host, port }))')
    }
    if (typeof requestMarshaller !== 'function') throw new TypeError('ApplicationClient: requestMarshaller must be a function (e.g. marshaller.marshall)')
    if (typeof responseUnmarshaller !== 'function') throw new TypeError('ApplicationClient: responseUnmarshaller must be a function (e.g. marshaller.unmarshall)')
    const reconnect = options.reconnect === true ? {} : options.reconnect === false || options.reconnect === undefined ? undefined : options.reconnect
    this.settings = {
      maxInFlight: checkCount('ApplicationClient', 'maxInFlight', options.maxInFlight ?? 1),
      timeout: checkDuration('ApplicationClient', 'timeout', options.timeout ?? DEFAULT_TIMEOUT),
      logger: options.logger ?? silentLogger,
      onUnsolicited: options.onUnsolicited,
      reconnect:
        reconnect === undefined
          ? undefined
          : {
              retries: checkCount('ApplicationClient', 'reconnect.retries', reconnect.retries ?? 5, { allowInfinity: true }),
              minDelay: checkDuration('ApplicationClient', 'reconnect.minDelay', reconnect.minDelay ?? 100) ?? 0,
              maxDelay: checkDuration('ApplicationClient', 'reconnect.maxDelay', reconnect.maxDelay ?? 5_000) ?? 0,
            },
    }
  }

  /** Open a session. Rejects with the transport's `ConnectionError`, `TimeoutError` or `AbortError`. */
  async connect(options?: AbortOptions): Promise<ApplicationClientSession<Req, Res>> {
    throwIfAborted(options)
    const session = await this.transport.connect(options)
    return new ApplicationClientSession(session, this.requestMarshaller, this.responseUnmarshaller, {
      ...this.settings,
      connect: (connectOptions) => this.transport.connect(connectOptions),
    })
  }
}

/** @internal What a session is made with. */
interface SessionSettings<Res> {
  maxInFlight: number
  timeout: number | undefined
  logger: Logger
  onUnsolicited: ((message: Res) => void) | undefined
  reconnect: ResolvedReconnect | undefined
  connect?: ((options?: AbortOptions) => Promise<TransportClientSession>) | undefined
}

/** One call (a class: every call shares one hidden class, made without the object-literal slow path). */
class Job<Req, Res> {
  /** Settled (answered, timed out, aborted or failed): a late reply for it is discarded. */
  settled = false
  /** Handed to the transport (a written request keeps its place until its reply is read). */
  written = false
  signal: AbortSignal | undefined = undefined
  /** A `send` whose write is waiting for room: aborting this cancels it (not written). */
  cancel: AbortController | undefined = undefined
  /** Why a cancelled write was cancelled. */
  cancelError: LabwireError | undefined = undefined
  /** Bytes of input its reply took (set when the reply is read). */
  bytesIn = 0
  /** Bytes of the request (kept for the event after `bytes` is released). */
  readonly bytesOut: number

  constructor(
    /** The request and its bytes; released (emptied) once the call settles, so an abandoned call holds no payload. */
    public request: Req | undefined,
    public bytes: Uint8Array,
    readonly expectsReply: boolean,
    readonly resolve: (value: Res | undefined) => void,
    readonly reject: (error: LabwireError) => void,
    /** `Date.now()` value after which the call times out (Infinity: never), and its limit in ms. */
    readonly deadline: number,
    readonly timeout: number,
    /** `performance.now()` when the call was made, or -1: nobody subscribed to `labwire:client:request` then. */
    readonly startedAt: number,
  ) {
    this.bytesOut = bytes.length
  }
}

/**
 * One connection's worth of requests. Calls are answered in the order they were made and never
 * interleave on the wire. A reply that arrives after its caller timed out or aborted is read and
 * discarded; that request keeps its place (and its in-flight slot) until its reply arrives, so a
 * late reply is never returned to a later caller. Frames that arrive while no request waits for
 * a reply are unsolicited: never handed to a later caller.
 *
 * With a labwire framer as the response unmarshaller and a transport whose stream is a push-mode
 * `ByteStream` (TCP, Telnet, …), replies are decoded and callers resolved straight from the
 * transport's data event; other unmarshallers are read on an async loop.
 */
export class ApplicationClientSession<Req, Res> implements AsyncDisposable {
  // Fields are declared in the order V8 lays them out: the ones every call reads come first, so a
  // call touches few of the session's cache lines (with a thousand sessions they are rarely cached).
  private closed = false
  private failure: LabwireError | undefined
  /** Calls not yet settled: while there are none the session is idle and does not hold the event loop open. */
  private active = 0
  /** True while this session counts in the process-wide keep-alive (`holdLoop`). */
  private holding = false
  private readonly timeout: number | undefined
  private timerAt = Infinity
  private readonly requestMarshaller: RequestMarshaller<Req>
  private readonly waiting = new Fifo<Job<Req, Res>>()
  private settledWaiting = 0
  /** The `send` whose bytes are being handed to the transport (waiting for room). */
  private writingJob: Job<Req, Res> | undefined
  private readonly inFlight = new Fifo<Job<Req, Res>>()
  private readonly maxInFlight: number
  private transport: TransportClientSession | undefined
  private stream: AsyncIterator<Uint8Array> | undefined
  /** Set when replies are decoded from the data event (the fast path). */
  private pushStream: ByteStream | undefined
  private reading = false
  private readonly decoder: FrameDecoder<Res> | undefined
  /** One timer per session, armed for the earliest deadline (not one timer per call). */
  private timer: ReturnType<typeof setTimeout> | undefined
  /** One abort listener per signal, however many calls share it. */
  private readonly signals = new Map<AbortSignal, { jobs: Set<Job<Req, Res>>; listener: () => void }>()
  private reconnectAttempts = 0
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined
  private readonly responseUnmarshaller: ResponseUnmarshaller<Res>
  private readonly logger: Logger
  private readonly settings: SessionSettings<Res>
  /** The stream's `consumed` count after the last reply, so a reply's size is the difference (for the client request event). */
  private consumedMark = 0

  /** @internal Created by {@link ApplicationClient.connect}. */
  constructor(
    transport: TransportClientSession,
    requestMarshaller: RequestMarshaller<Req>,
    responseUnmarshaller: ResponseUnmarshaller<Res>,
    options: { maxInFlight: number; timeout: number | undefined; logger: Logger } & Partial<SessionSettings<Res>>,
  ) {
    this.requestMarshaller = requestMarshaller
    this.responseUnmarshaller = responseUnmarshaller
    this.transport = transport
    this.maxInFlight = options.maxInFlight
    this.timeout = options.timeout
    this.logger = options.logger
    this.settings = { onUnsolicited: undefined, reconnect: undefined, ...options }
    this.decoder = decoderOf<Res>(responseUnmarshaller)
    this.adopt(transport)
  }

  /**
   * Take a (new) connection: read its stream from the start, so that bytes arriving before the
   * first request (a banner, a prompt, an alarm) are unsolicited and never taken for its reply;
   * and let it hold the event loop open only while a call is pending.
   */
  private adopt(transport: TransportClientSession): void {
    const stream = (transport as { stream?: unknown }).stream
    if (stream instanceof ByteStream) {
      this.attachStream(stream)
      // Bytes that came with the connection (a banner sent while connecting) are read now.
      if (this.pushStream === stream && (stream.bufferedLength > 0 || stream.ended)) queueMicrotask(this.onData)
    }
    // The connection never holds the event loop itself: the process-wide keep-alive does, while
    // this session has a call pending (see `holdLoop`).
    ;(transport as Refable).unref?.()
    this.updateHold()
  }

  /**
   * Hold the event loop open while a call is pending (or `onUnsolicited` listens on a live
   * session), else let the process exit. One process-wide counter and keep-alive timer, not a
   * `ref()`/`unref()` of the socket and the timer per call: a lockstep caller touches no handle.
   */
  private updateHold(): void {
    const hold = !this.closed && this.failure === undefined && (this.active > 0 || this.settings.onUnsolicited !== undefined)
    if (hold === this.holding) return
    this.holding = hold
    if (hold) holdLoop()
    else releaseLoop()
  }

  /** Calls not yet settled by a reply: written requests whose replies have not been read (including abandoned ones), the send being written, and queued calls. */
  get pending(): number {
    return this.inFlight.length + (this.writingJob === undefined ? 0 : 1) + this.waiting.length - this.settledWaiting
  }

  /** Send a request that gets no reply. Resolves once it has been written (after earlier calls); `AbortError` and `TimeoutError` mean it was not written. */
  send(request: Req, options?: SendReceiveOptions): Promise<void> {
    return this.enqueue(request, false, options) as Promise<unknown> as Promise<void>
  }

  /**
   * Send a request and resolve with its response. Rejects with `TimeoutError` (with `partial`
   * bytes), `AbortError`, `ConnectionClosedError`, `ConnectionError` or `FramingError`.
   */
  sendReceive(request: Req, options?: SendReceiveOptions): Promise<Res> {
    return this.enqueue(request, true, options) as Promise<Res>
  }

  /** Close the session; pending calls reject with `ConnectionClosedError`. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer)
    this.fail(new ConnectionClosedError('session closed while the request was pending'))
    this.updateHold()
    this.detachStream()
    await this.transport?.close()
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  private get target(): string {
    const named = this.transport as { target?: unknown } | undefined
    if (typeof named?.target === 'string') return named.target
    return this.pushStream?.label ?? 'the device'
  }

  private enqueue(request: Req, expectsReply: boolean, options: SendReceiveOptions | undefined): Promise<Res | undefined> {
    if (this.closed) return Promise.reject(new ConnectionError('session is closed'))
    if (this.failure !== undefined) {
      // Turned away by the server's access policy: every call says so, in its own terms.
      if (isAccessError(this.failure)) return Promise.reject(this.failure)
      return Promise.reject(new ConnectionError(`session is unusable: ${this.failure.message}`, { cause: this.failure }))
    }
    let timeout: number | undefined
    let bytes: Uint8Array
    try {
      throwIfAborted(options)
      timeout = options?.timeout === undefined ? this.timeout : checkDuration('sendReceive', 'timeout', options.timeout)
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new TypeError(String(error)))
    }
    try {
      bytes = this.requestMarshaller(request)
    } catch (error) {
      if (isLabwireError(error)) return Promise.reject(error)
      return Promise.reject(new FramingError(`request marshaller failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error }))
    }
    if (!(bytes instanceof Uint8Array)) {
      return Promise.reject(new FramingError(`the request marshaller returned ${bytes === null ? 'null' : typeof bytes}, not a Uint8Array`))
    }
    return new Promise<Res | undefined>((resolve, reject) => {
      const deadline = timeout === undefined ? Infinity : Date.now() + timeout
      if (this.active++ === 0) this.updateHold()
      const job = new Job<Req, Res>(request, bytes, expectsReply, resolve, reject, deadline, timeout ?? Infinity, clientRequestChannel.hasSubscribers ? this.timedStart() : -1)
      if (deadline < this.timerAt) this.armTimer(deadline)
      const signal = options?.signal
      if (signal !== undefined) this.watchSignal(job, signal)
      this.waiting.push(job)
      this.pump()
    })
  }

  private watchSignal(job: Job<Req, Res>, signal: AbortSignal): void {
    job.signal = signal
    let watch = this.signals.get(signal)
    if (watch === undefined) {
      const jobs = new Set<Job<Req, Res>>()
      const listener = (): void => {
        this.signals.delete(signal)
        for (const each of jobs) this.abandon(each, () => abortErrorFrom(signal, 'request'))
        this.compactWaiting()
      }
      watch = { jobs, listener }
      this.signals.set(signal, watch)
      signal.addEventListener('abort', listener, { once: true })
    }
    watch.jobs.add(job)
  }

  private armTimer(deadline: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timerAt = deadline
    this.timer = setTimeout(this.onTimer, clampDelay(deadline - Date.now()))
    // The keep-alive holds the event loop while a call is pending; the deadline timer never does.
    this.timer.unref()
  }

  /** Time out every call past its deadline; re-arm for the next one. */
  private readonly onTimer = (): void => {
    const now = Date.now()
    this.timer = undefined
    this.timerAt = Infinity
    let stale = 0
    for (const job of this.inFlight) if (job.settled) stale++
    let next = Infinity
    let lostReply = false
    const check = (job: Job<Req, Res>): void => {
      if (job.settled) return
      if (job.deadline > now) {
        next = Math.min(next, job.deadline)
        return
      }
      if (job.written) lostReply = true
      this.abandon(job, (partial, queued) => {
        const reason =
          queued && stale > 0
            ? ` (never written: still waiting behind ${stale} earlier request(s) that timed out and whose replies never arrived; use the reconnect option, or close and reconnect, if the device dropped them)`
            : queued
              ? ' (never written: still queued)'
              : ''
        const arrived = partial.length === 0 ? '' : `: ${describeArrived(partial)}`
        return new TimeoutError(`no ${partial.length === 0 ? '' : 'complete '}response from ${this.target} to ${describeRequest(job.request)} within ${job.timeout} ms${reason}${arrived}`, { partial })
      })
    }
    for (const job of this.inFlight) check(job)
    if (this.writingJob !== undefined) check(this.writingJob)
    for (const job of this.waiting) check(job)
    this.compactWaiting()
    if (next < Infinity && !this.closed) this.armTimer(next)
    // A reply that never came holds its slot; with reconnect on, start afresh instead.
    if (lostReply && this.settings.reconnect !== undefined && !this.closed && this.failure === undefined) {
      this.connectionLost(new TimeoutError(`${this.target} did not answer; reconnecting so that its late reply cannot be taken for another`))
    }
  }

  /**
   * Settle a job early (timeout, abort). A waiting job leaves the queue; a `send` being written is
   * cancelled (settled by the outcome of its write); a written one keeps its place and its reply
   * will be discarded.
   */
  private abandon(job: Job<Req, Res>, makeError: (partial: Uint8Array, queued: boolean) => LabwireError): void {
    if (job.settled) return
    if (job === this.writingJob && job.cancel !== undefined) {
      job.cancelError ??= makeError(new Uint8Array(0), false)
      job.cancel.abort(job.cancelError)
      return
    }
    if (!job.written) {
      this.settle(job, makeError(new Uint8Array(0), true))
      this.settledWaiting++
      return
    }
    const isHead = this.inFlight.peek() === job
    const partial = isHead && this.stream !== undefined ? byteStreamOf(this.stream).peek() : new Uint8Array(0)
    this.settle(job, makeError(partial, false))
    logDebug(this.logger, () => [{ inFlight: this.inFlight.length }, 'request abandoned; its late reply will be discarded'])
  }

  /** Settled calls leave the waiting queue (so abandoned calls cannot pile up behind a silent device). Never call it while iterating the queue. */
  private compactWaiting(): void {
    if (this.settledWaiting < 64 || this.settledWaiting * 2 < this.waiting.length) return
    const live = this.waiting.drain().filter((job) => !job.settled)
    for (const job of live) this.waiting.push(job)
    this.settledWaiting = 0
  }

  private settle(job: Job<Req, Res>, error: LabwireError | undefined, value?: Res): void {
    if (job.settled) return
    job.settled = true
    // The payload is released at once: a call that timed out or was aborted in the queue holds nothing.
    job.bytes = EMPTY
    job.request = undefined
    if (--this.active === 0) this.updateHold()
    if (job.startedAt >= 0) this.publish(job, error)
    const signal = job.signal
    if (signal !== undefined) {
      const watch = this.signals.get(signal)
      if (watch !== undefined) {
        watch.jobs.delete(job)
        if (watch.jobs.size === 0) {
          this.signals.delete(signal)
          signal.removeEventListener('abort', watch.listener)
        }
      }
    }
    if (error === undefined) job.resolve(value)
    else job.reject(error)
  }

  /** Write waiting jobs while in-flight slots are free. */
  private pump(): void {
    const transport = this.transport
    if (transport === undefined || this.writingJob !== undefined) return
    while (this.waiting.length > 0 && this.inFlight.length < this.maxInFlight && this.failure === undefined && this.transport === transport) {
      const job = this.waiting.shift() as Job<Req, Res>
      if (job.settled) {
        this.settledWaiting--
        continue
      }
      if (job.expectsReply) {
        if (this.inFlight.length === 0) this.dropUnsolicited()
        let stream: AsyncIterator<Uint8Array>
        try {
          stream = transport.request(job.bytes)
        } catch (error) {
          this.settle(job, asConnectionError(error))
          continue
        }
        job.written = true
        this.inFlight.push(job)
        if (this.stream !== stream) this.attachStream(stream)
        if (this.pushStream === undefined && !this.reading) void this.readLoop(stream)
      } else if (transport.write !== undefined) {
        this.writingJob = job
        const cancel = new AbortController()
        job.cancel = cancel
        transport.write(job.bytes, { signal: cancel.signal }).then(
          () => {
            this.writingJob = undefined
            job.written = true
            this.settle(job, undefined)
            this.pump()
          },
          (error: unknown) => {
            this.writingJob = undefined
            this.settle(job, job.cancelError ?? (error instanceof AbortError ? error : asConnectionError(error)))
            this.pump()
          },
        )
        return
      } else {
        try {
          transport.request(job.bytes)
          job.written = true
          this.settle(job, undefined)
        } catch (error) {
          this.settle(job, asConnectionError(error))
        }
      }
    }
  }

  /** Start reading a connection's stream: from its data event when possible. */
  private attachStream(stream: AsyncIterator<Uint8Array>): void {
    this.detachStream()
    this.stream = stream
    this.consumedMark = stream instanceof ByteStream ? stream.consumed : 0
    if (this.decoder !== undefined && stream instanceof ByteStream && stream.pushMode && stream.onData === undefined) {
      this.pushStream = stream
      stream.onData = this.onData
    }
  }

  private detachStream(): void {
    const push = this.pushStream
    if (push !== undefined && push.onData === this.onData) push.onData = undefined
    this.pushStream = undefined
    this.stream = undefined
  }

  /** The fast path: decode replies from what the connection has buffered, from its data event. */
  private readonly onData = (): void => {
    const stream = this.pushStream
    const decoder = this.decoder
    if (stream === undefined || decoder === undefined) return
    for (;;) {
      if (this.failure !== undefined || this.pushStream !== stream) return
      if (stream.bufferedLength === 0 && !stream.ended) return
      let frame: Res | typeof NEED_MORE
      try {
        frame = decoder.decode(stream)
      } catch (error) {
        if (!this.frameError(error)) return
        continue
      }
      if (frame === NEED_MORE) {
        if (stream.ended) this.connectionLost(stream.closedError(decoder.describePartial?.(stream)))
        else stream.wantMore()
        return
      }
      this.delivered(frame)
    }
  }

  /**
   * Start timing a call. With nothing in flight, the next reply starts at the stream's current
   * position (calls made while nobody listened left no mark).
   */
  private timedStart(): number {
    if (this.inFlight.length === 0 && this.waiting.length === 0) this.consumedMark = this.consumedNow()
    return performance.now()
  }

  /** Bytes read from the current connection's stream so far. */
  private consumedNow(): number {
    const stream = this.pushStream ?? (this.stream === undefined ? undefined : byteStreamOf(this.stream))
    return stream?.consumed ?? 0
  }

  /** One settled call on `labwire:client:request` (only calls made while someone subscribed are timed). */
  private publish(job: Job<Req, Res>, error: LabwireError | undefined): void {
    const transport = this.transport as { transport?: unknown } | undefined
    const message: { -readonly [K in keyof ClientRequestMessage]: ClientRequestMessage[K] } = {
      transport: typeof transport?.transport === 'string' ? transport.transport : transportKindOf(transport),
      peer: this.target,
      duration: performance.now() - job.startedAt,
      bytesIn: job.bytesIn,
      bytesOut: job.written ? job.bytesOut : 0,
    }
    if (error !== undefined) message.error = errorCodeOf(error)
    publishClientRequest(message)
  }

  /** A reply (or an unsolicited frame) was read. */
  private delivered(frame: Res): void {
    const job = this.inFlight.shift()
    // The reply's size for the client request event, for a timed call only (nothing per reply otherwise).
    if (job !== undefined && job.startedAt >= 0) {
      const consumed = this.consumedNow()
      job.bytesIn = consumed - this.consumedMark
      this.consumedMark = consumed
    }
    if (job === undefined) {
      this.unsolicited(frame)
      return
    }
    if (job.settled) logDebug(this.logger, () => [{}, 'late reply discarded'])
    else this.settle(job, undefined, frame)
    if (this.waiting.length > 0) this.pump()
  }

  private unsolicited(frame: Res): void {
    const handler = this.settings.onUnsolicited
    if (handler === undefined) {
      this.logger.warn({ target: this.target, message: frame }, 'unsolicited message dropped (no request was waiting for a reply)')
      return
    }
    try {
      handler(frame)
    } catch (error) {
      this.logger.error({ err: error }, 'onUnsolicited handler failed')
    }
  }

  /** Before writing a request with nothing in flight: anything buffered is not its reply. */
  private dropUnsolicited(): void {
    const stream = this.stream === undefined ? undefined : byteStreamOf(this.stream)
    if (stream === undefined || stream.bufferedLength === 0 || this.reading) return
    if (this.pushStream !== undefined) {
      // The data event decodes whole frames at once; what is left is the start of one.
      this.logger.warn({ target: this.target, bytes: stream.bufferedLength }, 'unsolicited partial frame dropped before a new request')
    } else {
      this.logger.warn({ target: this.target, bytes: stream.bufferedLength }, 'unsolicited bytes dropped before a new request')
    }
    stream.discardBuffered()
    stream.decoderState = undefined
  }

  /** A framing error while reading replies: true when the stream is still in step (only that call fails). */
  private frameError(error: unknown): boolean {
    if ((error instanceof FrameTooLargeError && error.resynchronised) || (error instanceof FramingError && error.recoverable)) {
      const job = this.inFlight.shift()
      if (job === undefined) this.logger.warn({ target: this.target, err: error }, 'bad unsolicited frame skipped')
      else this.settle(job, error)
      if (this.waiting.length > 0) this.pump()
      return true
    }
    this.readFailed(error)
    return false
  }

  private async readLoop(stream: AsyncIterator<Uint8Array>): Promise<void> {
    this.reading = true
    try {
      while (this.inFlight.length > 0 && this.stream === stream) {
        const job = this.inFlight.peek() as Job<Req, Res>
        let response: Res
        try {
          const result = this.responseUnmarshaller(stream)
          response = result instanceof Promise ? await result : result
        } catch (error) {
          if (this.stream !== stream) return
          if (error instanceof TimeoutError) {
            // The transport's read timeout: this caller gives up, its reply (if it comes) is discarded.
            this.settle(job, error)
            if (this.closed) return
            continue
          }
          if (!this.frameError(error)) return
          continue
        }
        if (this.stream !== stream) return
        this.delivered(response)
      }
    } finally {
      this.reading = false
    }
  }

  /** The reply stream broke: the connection is lost (or the session is closed). */
  private readFailed(error: unknown): void {
    let failure: LabwireError
    if (isLabwireError(error)) failure = error
    else failure = new FramingError(`response unmarshaller failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
    this.connectionLost(failure)
  }

  private connectionLost(failure: LabwireError): void {
    if (this.closed || this.failure !== undefined) return
    const head = this.inFlight.shift()
    if (head !== undefined) this.settle(head, failure)
    const reconnect = this.settings.reconnect
    const broken = !(failure instanceof ConnectionClosedError) || failure.partial.length > 0
    if (broken && !(failure instanceof TimeoutError)) this.logger.warn({ err: failure, target: this.target }, reconnect === undefined ? 'response stream failed; closing the session' : 'response stream failed; reconnecting')
    const old = this.transport
    this.detachStream()
    // Turned away by the access policy: reconnecting would only be turned away again.
    if (reconnect === undefined || this.settings.connect === undefined || failure instanceof FramingError || isAccessError(failure)) {
      this.failure = failure
      this.fail(
        isAccessError(failure)
          ? failure
          : failure instanceof ConnectionClosedError
          ? new ConnectionClosedError(`${this.target} closed the connection before the response`, { cause: failure })
          : new ConnectionError(`session failed: ${failure.message}`, { cause: failure }),
      )
      this.updateHold()
      void old?.close()
      return
    }
    // Written requests lost their replies with the connection; queued ones wait for the next one.
    for (const job of this.inFlight.drain()) {
      this.settle(job, new ConnectionClosedError(`connection to ${this.target} lost before the response (${failure.message}); reconnecting`, { cause: failure }))
    }
    this.transport = undefined
    void old?.close()
    this.scheduleReconnect(reconnect)
  }

  private scheduleReconnect(policy: ResolvedReconnect): void {
    if (this.closed) return
    if (this.reconnectAttempts >= policy.retries) {
      const error = new ConnectionError(`could not reconnect to ${this.target} after ${this.reconnectAttempts} attempts`)
      this.failure = error
      this.fail(error)
      this.updateHold()
      return
    }
    const delay = Math.min(policy.maxDelay, policy.minDelay * 2 ** this.reconnectAttempts)
    this.reconnectAttempts++
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined
      const connect = this.settings.connect as (options?: AbortOptions) => Promise<TransportClientSession>
      connect().then(
        (session) => {
          if (this.closed) {
            void session.close()
            return
          }
          logDebug(this.logger, () => [{ target: this.target, attempts: this.reconnectAttempts }, 'reconnected'])
          this.reconnectAttempts = 0
          this.transport = session
          this.adopt(session)
          this.pump()
        },
        (error: unknown) => {
          logDebug(this.logger, () => [{ err: error, attempt: this.reconnectAttempts }, 'reconnect failed'])
          this.scheduleReconnect(policy)
        },
      )
    }, clampDelay(delay))
  }

  private fail(error: LabwireError): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.timerAt = Infinity
    for (const job of this.inFlight.drain()) this.settle(job, error)
    const writing = this.writingJob
    if (writing !== undefined) this.abandon(writing, () => error)
    for (const job of this.waiting.drain()) this.settle(job, error)
    this.settledWaiting = 0
  }
}

const EMPTY = new Uint8Array(0)

/** Sessions of the process that have a call pending (or an `onUnsolicited` listener). */
let holders = 0
/** Holds the event loop open while `holders` > 0: one timer for the process, ref'd and unref'd as the count leaves and reaches 0. */
let keepAlive: ReturnType<typeof setInterval> | undefined

function holdLoop(): void {
  if (holders++ > 0) return
  keepAlive ??= setInterval(noop, 0x7fffffff)
  keepAlive.ref()
}

function releaseLoop(): void {
  if (--holders === 0) keepAlive?.unref()
}

function noop(): void {}

/** Optional on a transport session: `unref()` lets the process exit while the session is idle (TCP, Telnet, stdio, UDP and WebSocket sessions have both). */
interface Refable {
  ref?(): void
  unref?(): void
}

/** Longest part of an unfinished reply quoted in a timeout message. */
const QUOTED = 64

/**
 * What arrived of an unfinished reply, for a timeout message: its length, the bytes escaped and
 * truncated, and a hint when it holds a line ending the framer was not waiting for.
 */
function describeArrived(partial: Uint8Array): string {
  const shown = escapeBytes(partial.subarray(0, QUOTED))
  const more = partial.length > QUOTED ? `… (+${partial.length - QUOTED} B)` : ''
  return `${partial.length} byte${partial.length === 1 ? '' : 's'} arrived without completing a frame: "${shown}"${more}${terminatorHint(partial)}`
}

const LINE_ENDINGS = ['\r\n', '\n\r', '\r', '\n', '\0'].map((text) => ({ text, bytes: new TextEncoder().encode(text) }))

/** `; they end with "\r": is that the response terminator?` when the bytes end with (or hold) a line ending. */
function terminatorHint(partial: Uint8Array): string {
  for (const { bytes } of LINE_ENDINGS) {
    if (partial.length >= bytes.length && bytes.every((byte, i) => partial[partial.length - bytes.length + i] === byte)) {
      return `; they end with "${escapeBytes(bytes)}": is that the response terminator?`
    }
  }
  for (const { bytes } of LINE_ENDINGS.slice(0, 4)) {
    if (Buffer.from(partial.buffer, partial.byteOffset, partial.byteLength).indexOf(bytes) >= 0) {
      return `; they hold "${escapeBytes(bytes)}": is that the response terminator?`
    }
  }
  return ''
}

/** A session without a `transport` property: its class name (`MemoryClientSession` → `'memory'`), else `'unknown'`. */
function transportKindOf(session: object | undefined): string {
  const name = session?.constructor.name.replace(/(Client)?Session$/, '').toLowerCase() ?? ''
  return name === '' || name === 'object' ? 'unknown' : name
}

/** The server's access policy turned the session away (refused, or timed out in its queue). */
function isAccessError(error: unknown): error is AccessRefusedError | AccessTimeoutError {
  return error instanceof AccessRefusedError || error instanceof AccessTimeoutError
}

function asConnectionError(error: unknown): LabwireError {
  if (isLabwireError(error)) return error
  return new ConnectionError(`write failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
}

/** A short printable form of a request for error messages: `'*IDN?'`, or `12 bytes`. */
function describeRequest(request: unknown): string {
  if (typeof request === 'string') return `'${request.length > 40 ? `${request.slice(0, 40)}…` : request}'`
  if (request instanceof Uint8Array) {
    const printable = request.length <= 40 && request.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x0a || b === 0x0d)
    return printable ? `'${new TextDecoder().decode(request).replace(/\r/g, '\\r').replace(/\n/g, '\\n')}'` : `a request of ${request.length} bytes`
  }
  return 'the request'
}
