import {
  AbortError,
  ConnectionClosedError,
  ConnectionError,
  Fifo,
  FrameTooLargeError,
  FramingError,
  TimeoutError,
  abortErrorFrom,
  byteStreamOf,
  isLabwireError,
  logDebug,
  silentLogger,
  throwIfAborted,
  type AbortOptions,
  type LabwireError,
  type Logger,
  type TransportClient,
  type TransportClientSession,
} from '@labwire/core'

/** Options for {@link ApplicationClient}. */
export interface ApplicationClientOptions {
  /**
   * Requests on the wire at once per session. 1 (default): lockstep, later calls queue FIFO.
   * n > 1: pipeline up to n requests; responses are matched to callers in order, so the device
   * must answer every request, in order.
   */
  maxInFlight?: number
  /** Default per-call limit for `sendReceive`, in milliseconds. Default 10 000; 0 or `Infinity` = none. */
  timeout?: number
  logger?: Logger
}

/** Options for {@link ApplicationClientSession.sendReceive}. */
export interface SendReceiveOptions extends AbortOptions {
  /** Limit for this call in milliseconds (queueing included); overrides the client's default. 0 or `Infinity` = none. */
  timeout?: number
}

/** Encodes a request into bytes. */
export type RequestMarshaller<Req> = (request: Req) => Uint8Array
/** Reads one response from the connection's byte stream. */
export type ResponseUnmarshaller<Res> = (bytes: AsyncIterator<Uint8Array>) => Res | Promise<Res>

const DEFAULT_TIMEOUT = 10_000

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
  private readonly maxInFlight: number
  private readonly timeout: number | undefined
  private readonly logger: Logger

  constructor(
    private readonly transport: TransportClient,
    private readonly requestMarshaller: RequestMarshaller<Req>,
    private readonly responseUnmarshaller: ResponseUnmarshaller<Res>,
    options: ApplicationClientOptions = {},
  ) {
    const maxInFlight = options.maxInFlight ?? 1
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) throw new RangeError(`maxInFlight must be a positive integer, got ${maxInFlight}`)
    this.maxInFlight = maxInFlight
    this.timeout = normaliseTimeout(options.timeout ?? DEFAULT_TIMEOUT)
    this.logger = options.logger ?? silentLogger
  }

  /** Open a session. Rejects with the transport's `ConnectionError`, `TimeoutError` or `AbortError`. */
  async connect(options?: AbortOptions): Promise<ApplicationClientSession<Req, Res>> {
    throwIfAborted(options)
    const session = await this.transport.connect(options)
    return new ApplicationClientSession(session, this.requestMarshaller, this.responseUnmarshaller, {
      maxInFlight: this.maxInFlight,
      timeout: this.timeout,
      logger: this.logger,
    })
  }
}

interface Job<Res> {
  readonly bytes: Uint8Array
  readonly expectsReply: boolean
  readonly resolve: (value: Res | undefined) => void
  readonly reject: (error: LabwireError) => void
  /** Settled (answered, timed out, aborted or failed): a late reply for it is discarded. */
  settled: boolean
  /** Handed to the transport (a written request keeps its place until its reply is read). */
  written: boolean
  /** `Date.now()` value after which the call times out (Infinity: never), and its limit in ms. */
  readonly deadline: number
  readonly timeout: number
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
}

/**
 * One connection's worth of requests. Calls are answered in the order they were made and never
 * interleave on the wire. A reply that arrives after its caller timed out or aborted is read and
 * discarded; that request keeps its place (and its in-flight slot) until its reply arrives, so a
 * late reply is never returned to a later caller.
 */
export class ApplicationClientSession<Req, Res> implements AsyncDisposable {
  private readonly waiting = new Fifo<Job<Res>>()
  private readonly inFlight = new Fifo<Job<Res>>()
  /** One timer per session, armed for the earliest deadline (not one timer per call). */
  private timer: ReturnType<typeof setTimeout> | undefined
  private timerAt = Infinity
  private reading = false
  private stream: AsyncIterator<Uint8Array> | undefined
  private writing = false
  private failure: LabwireError | undefined
  private closed = false
  private readonly maxInFlight: number
  private readonly timeout: number | undefined
  private readonly logger: Logger

  /** @internal Created by {@link ApplicationClient.connect}. */
  constructor(
    private readonly transport: TransportClientSession,
    private readonly requestMarshaller: RequestMarshaller<Req>,
    private readonly responseUnmarshaller: ResponseUnmarshaller<Res>,
    options: { maxInFlight: number; timeout: number | undefined; logger: Logger },
  ) {
    this.maxInFlight = options.maxInFlight
    this.timeout = options.timeout
    this.logger = options.logger
  }

  /** Requests written whose replies have not been read yet (including abandoned ones). */
  get pending(): number {
    return this.inFlight.length + this.waiting.length
  }

  /** Send a request that gets no reply. Resolves once it has been written (after earlier calls). */
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
    this.fail(new ConnectionClosedError('session closed while the request was pending'))
    await this.transport.close()
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  private enqueue(request: Req, expectsReply: boolean, options: SendReceiveOptions | undefined): Promise<Res | undefined> {
    if (this.closed) return Promise.reject(new ConnectionError('session is closed'))
    if (this.failure !== undefined) return Promise.reject(new ConnectionError(`session is unusable: ${this.failure.message}`, { cause: this.failure }))
    try {
      throwIfAborted(options)
    } catch (error) {
      return Promise.reject(error)
    }
    let bytes: Uint8Array
    try {
      bytes = this.requestMarshaller(request)
    } catch (error) {
      return Promise.reject(isLabwireError(error) ? error : new FramingError('request marshaller failed', { cause: error }))
    }
    return new Promise<Res | undefined>((resolve, reject) => {
      const timeout = options?.timeout === undefined ? this.timeout : normaliseTimeout(options.timeout)
      const deadline = timeout === undefined ? Infinity : Date.now() + timeout
      const job: Job<Res> = { bytes, expectsReply, resolve, reject, settled: false, written: false, deadline, timeout: timeout ?? Infinity, signal: undefined, onAbort: undefined }
      if (deadline < this.timerAt) this.armTimer(deadline)
      const signal = options?.signal
      if (signal !== undefined) {
        job.signal = signal
        job.onAbort = () => {
          this.abandon(job, () => abortErrorFrom(signal, 'request'))
        }
        signal.addEventListener('abort', job.onAbort, { once: true })
      }
      this.waiting.push(job)
      this.pump()
    })
  }

  private armTimer(deadline: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timerAt = deadline
    this.timer = setTimeout(this.onTimer, Math.max(0, deadline - Date.now()))
  }

  /** Time out every call past its deadline; re-arm for the next one. */
  private readonly onTimer = (): void => {
    const now = Math.max(Date.now(), this.timerAt)
    this.timer = undefined
    this.timerAt = Infinity
    let stale = 0
    for (const job of this.inFlight) if (job.settled) stale++
    let next = Infinity
    for (const queue of [this.inFlight, this.waiting]) {
      for (const job of queue) {
        if (job.settled) continue
        if (job.deadline > now) {
          next = Math.min(next, job.deadline)
          continue
        }
        this.abandon(job, (partial, queued) => {
          const reason =
            queued && stale > 0
              ? ` (never written: still waiting behind ${stale} earlier request(s) that timed out and whose replies never arrived; close and reconnect if the device dropped them)`
              : ''
          return new TimeoutError(`no response within ${job.timeout} ms${reason}`, { partial })
        })
      }
    }
    if (next < Infinity && !this.closed) this.armTimer(next)
  }

  /**
   * Settle a job early (timeout, abort). A waiting job is skipped when its turn comes; a written
   * one keeps its place and its reply will be discarded.
   */
  private abandon(job: Job<Res>, makeError: (partial: Uint8Array, queued: boolean) => LabwireError): void {
    if (job.settled) return
    if (!job.written) {
      this.settle(job, makeError(new Uint8Array(0), true))
      return
    }
    const isHead = this.inFlight.peek() === job
    const partial = isHead && this.stream !== undefined ? byteStreamOf(this.stream).peek() : new Uint8Array(0)
    this.settle(job, makeError(partial, false))
    logDebug(this.logger, () => [{ inFlight: this.inFlight.length }, 'request abandoned; its late reply will be discarded'])
  }

  private settle(job: Job<Res>, error: LabwireError | undefined, value?: Res): void {
    if (job.settled) return
    job.settled = true
    if (job.onAbort !== undefined) job.signal?.removeEventListener('abort', job.onAbort)
    if (error === undefined) job.resolve(value)
    else job.reject(error)
  }

  /** Write waiting jobs while in-flight slots are free. */
  private pump(): void {
    if (this.writing) return
    while (this.waiting.length > 0 && this.inFlight.length < this.maxInFlight && this.failure === undefined) {
      const job = this.waiting.shift() as Job<Res>
      if (job.settled) continue
      if (job.expectsReply) {
        let stream: AsyncIterator<Uint8Array>
        try {
          stream = this.transport.request(job.bytes)
        } catch (error) {
          this.settle(job, asConnectionError(error))
          continue
        }
        this.stream = stream
        job.written = true
        this.inFlight.push(job)
        if (!this.reading) void this.readLoop(stream)
      } else if (this.transport.write !== undefined) {
        this.writing = true
        this.transport.write(job.bytes, job.signal === undefined ? undefined : { signal: job.signal }).then(
          () => {
            this.writing = false
            this.settle(job, undefined)
            this.pump()
          },
          (error: unknown) => {
            this.writing = false
            this.settle(job, error instanceof AbortError ? error : asConnectionError(error))
            this.pump()
          },
        )
        return
      } else {
        try {
          this.transport.request(job.bytes)
          this.settle(job, undefined)
        } catch (error) {
          this.settle(job, asConnectionError(error))
        }
      }
    }
  }

  private async readLoop(stream: AsyncIterator<Uint8Array>): Promise<void> {
    this.reading = true
    try {
      while (this.inFlight.length > 0) {
        const job = this.inFlight.peek() as Job<Res>
        let response: Res
        try {
          const result = this.responseUnmarshaller(stream)
          response = result instanceof Promise ? await result : result
        } catch (error) {
          if (error instanceof FrameTooLargeError && error.resynchronised) {
            // The framer skipped this oversized reply and is at the next one: only this call fails.
            this.inFlight.shift()
            this.settle(job, error)
            if (this.waiting.length > 0) this.pump()
            continue
          }
          if (error instanceof TimeoutError) {
            // The transport's read timeout: this caller gives up, its reply (if it comes) is discarded.
            this.settle(job, error)
            if (this.closed) return
            continue
          }
          this.onReadFailure(error)
          return
        }
        this.inFlight.shift()
        if (job.settled) {
          logDebug(this.logger, () => [{}, 'late reply discarded'])
        } else {
          this.settle(job, undefined, response)
        }
        if (this.waiting.length > 0) this.pump()
      }
    } finally {
      this.reading = false
    }
  }

  private onReadFailure(error: unknown): void {
    const head = this.inFlight.shift()
    let failure: LabwireError
    if (error instanceof ConnectionClosedError || error instanceof ConnectionError || error instanceof FramingError || error instanceof AbortError) {
      failure = error
    } else if (isLabwireError(error)) {
      failure = error
    } else {
      failure = new FramingError(`response unmarshaller failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
    }
    if (head !== undefined) this.settle(head, failure)
    if (!this.closed && (!(failure instanceof ConnectionClosedError) || failure.partial.length > 0)) {
      this.logger.warn({ err: failure }, 'response stream failed; closing the session')
    }
    this.failure = failure
    this.fail(
      failure instanceof ConnectionClosedError
        ? new ConnectionClosedError('connection closed before the response', { cause: failure })
        : new ConnectionError(`session failed: ${failure.message}`, { cause: failure }),
    )
    void this.transport.close()
  }

  private fail(error: LabwireError): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.timerAt = Infinity
    for (const job of this.inFlight.drain()) this.settle(job, error)
    for (const job of this.waiting.drain()) this.settle(job, error)
  }
}

function asConnectionError(error: unknown): LabwireError {
  if (isLabwireError(error)) return error
  return new ConnectionError(`write failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
}

function normaliseTimeout(timeout: number): number | undefined {
  if (typeof timeout !== 'number' || Number.isNaN(timeout) || timeout < 0) throw new RangeError(`timeout must be a non-negative number of milliseconds, got ${timeout}`)
  return timeout === 0 || !Number.isFinite(timeout) ? undefined : timeout
}
