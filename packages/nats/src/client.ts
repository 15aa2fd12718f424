import { AbortError, ByteStream, ConnectionError, FrameTooLargeError, FramingError, TimeoutError, abortErrorFrom, raceSignal, throwIfAborted, type AbortOptions, type ConnectionFilter, type ConnectionFilterFactory, type TransportClient, type TransportClientSession } from '@labwire/core'
import { createInbox, headers as natsHeaders, type Msg, type NatsConnection, type Subscription } from 'nats'
import {
  CANCEL_HEADER,
  CANCEL_SUBJECT,
  CONTINUE_HEADER,
  CONTROL_HEADER,
  CREDIT_HEADER,
  ERROR_CODE_HEADER,
  ERROR_HEADER,
  ERROR_NAME_HEADER,
  MAX_CREDIT,
  MORE_HEADER,
  NatsServiceError,
  NoRespondersError,
  PARTIAL_HEADER,
  SERVICE_NAME,
  SIZE_HEADER,
  TIMEOUT_HEADER,
  OutageBuffer,
  chunkSize,
  openConnection,
  type NatsConnectOptions,
} from './protocol.js'

/** Options for {@link NatsClient}. */
export interface NatsClientOptions extends NatsConnectOptions {
  /** The service name; requests go to this subject (or `NAME.ENDPOINT`). */
  name: string
  /** An endpoint of the service (an RPC method, ...): requests go to `NAME.ENDPOINT`. */
  endpoint?: string
  /** An explicit subject instead of `NAME[.ENDPOINT]`. */
  subject?: string
  /** Longest wait for a whole reply, ms; then the session fails with `TimeoutError`. Default 30000; 0 = none. */
  timeout?: number
  /** Largest reply accepted for one request, bytes; more fails the session with `FrameTooLargeError`. Default 64 MiB. */
  maxReplyLength?: number
  /**
   * When no instance is subscribed (NATS "no responders"), send the request again with backoff
   * (50 ms doubling to 1 s) until `timeout`, then fail with `NoRespondersError`. Safe: nobody
   * received it, so nothing runs twice. Covers a service that is restarting or reconnecting.
   * Default true (needs a `timeout`); false fails at once.
   */
  retryNoResponders?: boolean
  /**
   * A connection filter (as TCP's `filter` option), e.g. `traceFilter()`: `output` sees each
   * request's bytes as sent, `input` each reply's bytes before they reach the session's stream.
   * Bytes a filter sends through its context go out as a request. `ready` is not awaited.
   */
  filter?: ConnectionFilterFactory
}

interface Call {
  seq: number
  done: boolean
  /** Reply bytes received while an earlier call is still unanswered (delivered in request order). */
  held: Uint8Array[]
  error: Error | undefined
  /** The rest of a chunked request, sent when the service says where. */
  upload: Uint8Array | undefined
  timer: ReturnType<typeof setTimeout> | undefined
  /** Reply bytes received so far. */
  received: number
  /** Publish the request (again). */
  send: () => void
  deadline: number
  retries: number
  noResponders: boolean
  /** A `call()`: the reply is collected whole and settles this, instead of going to the stream. */
  whole?: { resolve: (reply: Uint8Array) => void; reject: (error: Error) => void }
  /** Removes the call's abort listener. */
  cleanup?: () => void
}

/** Options of {@link NatsClientSession.requestStream}. */
export interface NatsStreamOptions extends AbortOptions {
  /** Subject; default the session's. */
  subject?: string
  /**
   * The whole stream must end within this many ms (the service gets it as the handler's
   * `deadline` and stops there too); then `TimeoutError`. Default: none — but while the consumer
   * waits, each next message must come within the session's `timeout`.
   */
  timeout?: number
  /** Items buffered here before the service waits for the consumer (its credit), 1–65536. Default 16. */
  window?: number
}

/** A stream of reply items: iterate it once; breaking out of the loop, or `cancel()`, stops the service's handler. */
export interface NatsReplyStream extends AsyncIterable<Uint8Array> {
  /** Stop the stream: the service's handler sees its signal abort. Idempotent. */
  cancel(): void
}

interface StreamState {
  items: Uint8Array[]
  partial: Uint8Array[]
  partialLength: number
  control: string | undefined
  upload: Uint8Array | undefined
  ended: boolean
  cancelled: boolean
  error: Error | undefined
  wake: (() => void) | undefined
  end: (error?: Error) => void
  /** End it and tell the service to stop. */
  cancel: (error: Error) => void
  window: number
}

/**
 * Reaches a labwire service on NATS by name: a `TransportClient`, so
 * `new ApplicationClient(new NatsClient({ servers, name }), …)` and `RpcClient` work unchanged.
 * Each session opens its own connection (reconnecting forever, with backoff) unless given one.
 */
export class NatsClient implements TransportClient {
  private readonly options: NatsClientOptions
  readonly subject: string

  constructor(options: NatsClientOptions) {
    if (typeof options.name !== 'string' || !SERVICE_NAME.test(options.name)) throw new RangeError(`NatsClient: name must match ${String(SERVICE_NAME)}, got ${JSON.stringify(options.name)}`)
    this.options = { ...options }
    this.subject = options.subject ?? (options.endpoint === undefined ? options.name : `${options.name}.${options.endpoint}`)
    const timeout = options.timeout ?? 30_000
    if (typeof timeout !== 'number' || Number.isNaN(timeout) || timeout < 0) throw new RangeError(`NatsClient: timeout must be a non-negative number of ms, got ${String(timeout)}`)
  }

  async connect(options: AbortOptions = {}): Promise<NatsClientSession> {
    throwIfAborted(options)
    const owned = this.options.connection === undefined
    const opening = this.options.connection !== undefined ? Promise.resolve(this.options.connection) : openConnection(this.options, `labwire client ${this.options.name}`)
    const nc = await raceSignal(opening, options.signal, `connect to NATS service ${this.options.name}`, () => {
      if (owned) void opening.then((c) => c.close(), () => undefined)
    })
    const session = new NatsClientSession(nc, owned, this.subject, this.options.timeout ?? 30_000, this.options.maxReplyLength ?? 64 * 1024 * 1024, this.options.retryNoResponders ?? true, this.options.name)
    const factory = this.options.filter
    if (factory !== undefined) session.useFilter(factory({ side: 'client', peer: `nats:${this.subject}`, send: (bytes) => void session.request(bytes) }))
    return session
  }
}

/**
 * One session: requests go out as NATS requests to the service subject; replies come back on a
 * private inbox and are appended to one response byte stream in request order (so pipelining
 * works even when several instances answer).
 */
export class NatsClientSession implements TransportClientSession {
  private readonly stream: ByteStream
  private readonly outage: OutageBuffer
  private readonly prefix = createInbox()
  private readonly sub: Subscription
  private readonly calls = new Map<number, Call>()
  private readonly streams = new Map<number, StreamState>()
  private readonly order: Call[] = []
  private seq = 0
  private failure: Error | undefined
  private closed = false
  private filter: ConnectionFilter | undefined
  private settledWaiters: { resolve: () => void; reject: (error: Error) => void }[] = []

  /** @internal */
  constructor(
    private readonly nc: NatsConnection,
    private readonly owned: boolean,
    readonly subject: string,
    private readonly timeout: number,
    private readonly maxReplyLength: number,
    private readonly retryNoResponders: boolean,
    /** The service name, where cancels of `call()`s go (`_LABWIRE.CANCEL.NAME`). */
    private readonly serviceName?: string,
  ) {
    this.stream = new ByteStream(undefined, { label: `nats:${subject}` })
    this.outage = new OutageBuffer(nc)
    this.sub = nc.subscribe(`${this.prefix}.*`, { callback: (_error, msg) => this.onReply(msg) })
    void nc.closed().then((error) => this.fail(error ?? new ConnectionError(`NATS connection for ${subject} closed`)))
  }

  /**
   * Send `request` to the service (one NATS request; nothing for zero bytes) and return the
   * session's response byte stream, where the replies are appended in request order.
   */
  request(request: Uint8Array): AsyncIterator<Uint8Array> {
    if (this.closed) throw new ConnectionError(`session to NATS service ${this.subject} is closed`)
    if (this.failure !== undefined) return this.stream
    const bytes = this.filter === undefined ? request : this.filter.output(request)
    // Zero bytes are no request (as writing nothing to a socket sends nothing): a caller that asks
    // only for the response stream (a proxy pumping it) must not send the service an empty message.
    if (bytes.length > 0) this.start(bytes, this.subject, undefined)
    return this.stream
  }

  /** @internal Attach a connection filter (the client's `filter` option). */
  useFilter(filter: ConnectionFilter): void {
    this.filter = filter
    filter.open?.()
  }

  /**
   * Resolves once every request sent so far through {@link request} has its whole reply (an
   * acknowledgement: a write that the service answered with nothing has then been handled).
   * Rejects with the session's failure (`NoRespondersError`, `NatsServiceError`, …), `TimeoutError`
   * after `timeout` ms, `AbortError` when `signal` aborts. What `labwire query` uses after a write.
   */
  settled(options: AbortOptions & { timeout?: number } = {}): Promise<void> {
    throwIfAborted(options)
    if (this.failure !== undefined) return Promise.reject(this.failure)
    if (this.order.length === 0) return Promise.resolve()
    const last = this.order[this.order.length - 1] as Call
    return new Promise<void>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const signal = options.signal
      const waiter = {
        resolve: () => {
          if (!last.done || this.order.includes(last)) return
          done()
          resolve()
        },
        reject: (error: Error) => {
          done()
          reject(error)
        },
      }
      const onAbort = (): void => waiter.reject(abortErrorFrom(signal as AbortSignal, `waiting for NATS service ${this.subject}`))
      const done = (): void => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        this.settledWaiters = this.settledWaiters.filter((w) => w !== waiter)
      }
      if (options.timeout !== undefined && options.timeout > 0) {
        const ms = options.timeout
        timer = setTimeout(() => waiter.reject(new TimeoutError(`NATS service ${this.subject} did not acknowledge within ${ms} ms`)), ms)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.settledWaiters.push(waiter)
    })
  }

  /**
   * One request/reply exchange outside the session's byte stream: resolves with the whole reply
   * (all its messages), rejects with this call's error only — the session goes on. `subject`
   * defaults to the session's; `timeout` (ms, 0 = none) replaces the session's for this call;
   * `signal` gives up waiting (`AbortError`; the service is not told). What RPC over NATS (one
   * endpoint per method) uses.
   */
  call(request: Uint8Array, options: { subject?: string; signal?: AbortSignal; timeout?: number } = {}): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new ConnectionError(`session to NATS service ${this.subject} is closed`))
    if (this.failure !== undefined) return Promise.reject(this.failure)
    const signal = options.signal
    if (signal?.aborted === true) return Promise.reject(abortErrorFrom(signal, `call to NATS service ${options.subject ?? this.subject}`))
    const timeout = options.timeout
    if (timeout !== undefined && !(typeof timeout === 'number' && timeout >= 0)) return Promise.reject(new RangeError(`NatsClientSession.call: timeout must be a non-negative number of ms, got ${String(timeout)}`))
    return new Promise<Uint8Array>((resolve, reject) => this.start(request, options.subject ?? this.subject, { resolve, reject }, { timeout, signal }))
  }

  /**
   * One request answered with a stream of items (a stream endpoint: an RPC `stream: true` method),
   * outside the session's byte stream. At most `window` items wait here; the service sends more as
   * the consumer takes them. Errors: `NatsServiceError` (the handler threw), `NoRespondersError`,
   * `TimeoutError`, `AbortError` (the signal), `FrameTooLargeError` (an item over `maxReplyLength`).
   */
  requestStream(request: Uint8Array, options: NatsStreamOptions = {}): NatsReplyStream {
    const window = options.window ?? 16
    if (!Number.isSafeInteger(window) || window < 1 || window > MAX_CREDIT) throw new RangeError(`NatsClientSession.requestStream: window must be an integer 1–${MAX_CREDIT}, got ${String(window)}`)
    const limit = options.timeout
    if (limit !== undefined && !(Number.isSafeInteger(limit) && limit > 0)) throw new RangeError(`NatsClientSession.requestStream: timeout must be a positive whole number of ms, got ${String(limit)}`)
    const subject = options.subject ?? this.subject
    const signal = options.signal
    const seq = ++this.seq
    let wholeTimer: ReturnType<typeof setTimeout> | undefined
    const onAbort = (): void => cancel(abortErrorFrom(signal as AbortSignal, `stream from NATS service ${subject}`))
    const state: StreamState = {
      items: [],
      partial: [],
      partialLength: 0,
      control: undefined,
      upload: undefined,
      ended: false,
      cancelled: false,
      error: undefined,
      wake: undefined,
      window,
      end: (error) => {
        if (state.ended) return
        state.ended = true
        state.error = error
        state.partial = []
        clearTimeout(wholeTimer)
        signal?.removeEventListener('abort', onAbort)
        // A stream cancelled before the service said where to send the cancel stays listed until it
        // does, for a while (the service may never answer).
        if (!(state.cancelled && state.control === undefined)) this.streams.delete(seq)
        else setTimeout(() => this.streams.delete(seq), Math.max(this.timeout, 10_000)).unref()
        state.wake?.()
      },
      cancel: (error) => cancel(error),
    }
    const cancel = (error: Error): void => {
      if (state.ended) return
      state.cancelled = true
      if (state.control !== undefined) this.sendControl(state.control, CANCEL_HEADER, '1')
      state.items = []
      state.end(error)
    }
    if (this.closed) state.end(new ConnectionError(`session to NATS service ${this.subject} is closed`))
    else if (this.failure !== undefined) state.end(this.failure)
    else if (signal?.aborted === true) state.end(abortErrorFrom(signal, `stream from NATS service ${subject}`))
    else {
      this.streams.set(seq, state)
      signal?.addEventListener('abort', onAbort, { once: true })
      if (limit !== undefined) wholeTimer = setTimeout(() => cancel(new TimeoutError(`stream from NATS service ${subject} did not finish within ${limit} ms`)), limit)
      const reply = `${this.prefix}.${seq}`
      this.outage.run(() => {
        if (state.ended) {
          this.streams.delete(seq) // never sent: no answer to wait for
          return
        }
        try {
          const h = natsHeaders()
          h.set(CREDIT_HEADER, String(window))
          if (limit !== undefined) h.set(TIMEOUT_HEADER, String(limit))
          const size = chunkSize(this.nc)
          if (request.length > size) {
            h.set(SIZE_HEADER, String(request.length))
            state.upload = request.subarray(size)
          }
          this.nc.publish(subject, request.subarray(0, size), { reply, headers: h })
        } catch (cause) {
          state.end(new ConnectionError(`NATS publish to ${subject} failed`, { cause }))
        }
      })
    }
    const idleLimit = this.timeout
    const grant = (count: number): void => {
      if (state.control !== undefined && !state.ended) this.sendControl(state.control, CREDIT_HEADER, String(count))
    }
    async function* iterate(): AsyncGenerator<Uint8Array, void, undefined> {
      let taken = 0
      try {
        for (;;) {
          const item = state.items.shift()
          if (item !== undefined) {
            if (++taken >= Math.ceil(window / 2)) {
              grant(taken)
              taken = 0
            }
            yield item
            continue
          }
          if (state.ended) {
            if (state.error !== undefined) throw state.error
            return
          }
          let idle: ReturnType<typeof setTimeout> | undefined
          await new Promise<void>((resolve) => {
            state.wake = resolve
            if (idleLimit > 0) idle = setTimeout(() => cancel(new TimeoutError(`stream from NATS service ${subject}: nothing for ${idleLimit} ms`)), idleLimit)
          })
          clearTimeout(idle)
          state.wake = undefined
        }
      } finally {
        // The consumer broke out of its loop: tell the service to stop.
        cancel(new AbortError(`stream from NATS service ${subject} closed by the consumer`))
      }
    }
    let iterator: AsyncGenerator<Uint8Array, void, undefined> | undefined
    return {
      [Symbol.asyncIterator]: () => {
        if (iterator !== undefined) throw new TypeError('a NATS reply stream can be iterated once')
        iterator = iterate()
        return iterator
      },
      cancel: () => cancel(new AbortError(`stream from NATS service ${subject} cancelled`)),
    }
  }

  private sendControl(subject: string, header: string, value: string): void {
    if (this.nc.isClosed()) return
    const h = natsHeaders()
    h.set(header, value)
    try {
      this.nc.publish(subject, new Uint8Array(0), { headers: h })
    } catch {
      // The connection is closing: the service's credit timeout ends the stream.
    }
  }

  private onStreamReply(seq: number, state: StreamState, msg: Msg): void {
    const h = msg.headers
    const control = h?.get(CONTROL_HEADER) ?? ''
    if (control !== '' && state.control === undefined) {
      state.control = control
      if (state.ended) {
        if (state.cancelled) this.sendControl(control, CANCEL_HEADER, '1')
        this.streams.delete(seq)
        return
      }
    }
    if (state.ended) {
      if ((h?.get(MORE_HEADER) ?? '') === '') this.streams.delete(seq)
      return
    }
    if (h !== undefined) {
      if (h.code === 503 && h.get(ERROR_HEADER) === '') return state.end(new NoRespondersError(`no instance of NATS service ${this.subject} is reachable (no responders)`))
      const failure = failureIn(h, this.subject)
      if (failure !== undefined) return state.end(failure)
      if (continueUpload(this.nc, h, state)) return
    }
    if (control !== '') return
    const more = (h?.get(MORE_HEADER) ?? '') !== ''
    if (!more) return state.end()
    state.partial.push(msg.data)
    state.partialLength += msg.data.length
    if (state.partialLength > this.maxReplyLength) return state.end(new FrameTooLargeError(this.maxReplyLength, `stream item from NATS service ${this.subject} exceeds maxReplyLength ${this.maxReplyLength}`))
    if ((h?.get(PARTIAL_HEADER) ?? '') !== '') return
    const item = state.partial.length === 1 ? (state.partial[0] as Uint8Array) : Buffer.concat(state.partial, state.partialLength)
    state.partial = []
    state.partialLength = 0
    if (state.items.length >= state.window) return state.end(new FramingError(`stream from NATS service ${this.subject} sent more than its credit of ${state.window} items`))
    state.items.push(item)
    state.wake?.()
  }

  private start(request: Uint8Array, subject: string, whole: Call['whole'], limits: { timeout?: number | undefined; signal?: AbortSignal | undefined } = {}): void {
    const timeout = limits.timeout ?? this.timeout
    const call: Call = {
      seq: ++this.seq,
      done: false,
      held: [],
      error: undefined,
      upload: undefined,
      timer: undefined,
      received: 0,
      send: () => undefined,
      deadline: timeout > 0 ? Date.now() + timeout : Infinity,
      retries: 0,
      noResponders: false,
      ...(whole === undefined ? {} : { whole }),
    }
    this.calls.set(call.seq, call)
    if (whole === undefined) this.order.push(call)
    if (timeout > 0) {
      call.timer = setTimeout(() => {
        const error = call.noResponders
          ? new NoRespondersError(`no instance of NATS service ${subject} answered within ${timeout} ms (no responders)`)
          : new TimeoutError(`NATS service ${subject} did not answer within ${timeout} ms`)
        this.finish(call, error)
      }, timeout)
    }
    const reply = `${this.prefix}.${call.seq}`
    const signal = limits.signal
    if (signal !== undefined) {
      const onAbort = (): void => {
        // The instance running it aborts its handler (a labwire service; others ignore the subject).
        if (this.serviceName !== undefined && !this.nc.isClosed()) {
          try {
            this.nc.publish(`${CANCEL_SUBJECT}.${this.serviceName}`, new TextEncoder().encode(reply))
          } catch {
            // closing: nothing to cancel through
          }
        }
        this.finish(call, abortErrorFrom(signal, `call to NATS service ${subject}`))
      }
      signal.addEventListener('abort', onAbort, { once: true })
      call.cleanup = () => signal.removeEventListener('abort', onAbort)
    }
    call.send = () =>
      this.outage.run(() => {
        if (call.done) return
        try {
          const size = chunkSize(this.nc)
          // A call()'s time limit travels with it (the handler's deadline; relative ms).
          const left = whole !== undefined && timeout > 0 ? Math.max(1, Math.ceil(call.deadline - Date.now())) : undefined
          if (request.length <= size && left === undefined) this.nc.publish(subject, request, { reply })
          else {
            const h = natsHeaders()
            if (left !== undefined) h.set(TIMEOUT_HEADER, String(left))
            if (request.length > size) {
              h.set(SIZE_HEADER, String(request.length))
              call.upload = request.subarray(size)
            }
            this.nc.publish(subject, request.subarray(0, size), { reply, headers: h })
          }
        } catch (cause) {
          this.finish(call, new ConnectionError(`NATS publish to ${subject} failed`, { cause }))
        }
      })
    call.send()
  }

  private onReply(msg: Msg): void {
    const seq = Number(msg.subject.slice(this.prefix.length + 1))
    const stream = this.streams.get(seq)
    if (stream !== undefined) return this.onStreamReply(seq, stream, msg)
    const call = this.calls.get(seq)
    if (call === undefined || call.done) return
    const h = msg.headers
    let more = false
    if (h !== undefined) {
      if (h.code === 503 && h.get(ERROR_HEADER) === '') {
        const wait = Math.min(1000, 50 * 2 ** call.retries++)
        if (this.retryNoResponders && Date.now() + wait < call.deadline) {
          call.noResponders = true
          setTimeout(call.send, wait)
          return
        }
        return this.finish(call, new NoRespondersError(`no instance of NATS service ${this.subject} is reachable (no responders)`))
      }
      const failure = failureIn(h, this.subject)
      if (failure !== undefined) return this.finish(call, failure)
      if (continueUpload(this.nc, h, call)) return
      more = h.get(MORE_HEADER) !== ''
    }
    if (msg.data.length > 0) {
      call.received += msg.data.length
      if (call.received > this.maxReplyLength) return this.finish(call, new FrameTooLargeError(this.maxReplyLength, `reply from NATS service ${this.subject} exceeds maxReplyLength ${this.maxReplyLength}`))
      const data = call.whole === undefined && this.filter !== undefined ? this.filter.input(msg.data) : msg.data
      if (call.whole === undefined && this.order[0] === call) this.stream.push(data)
      else call.held.push(data)
    }
    if (!more) this.finish(call)
  }

  private finish(call: Call, error?: Error): void {
    if (call.done) return
    call.done = true
    call.error = error
    clearTimeout(call.timer)
    call.cleanup?.()
    this.calls.delete(call.seq)
    if (call.whole !== undefined) {
      if (error === undefined) call.whole.resolve(call.held.length === 1 ? (call.held[0] as Uint8Array) : Buffer.concat(call.held))
      else call.whole.reject(error)
      return
    }
    // Deliver in request order: the head's held bytes, then, if it is done, the next one's.
    while (this.order.length > 0) {
      const head = this.order[0] as Call
      for (const bytes of head.held) this.stream.push(bytes)
      head.held.length = 0
      if (!head.done) break
      this.order.shift()
      if (head.error !== undefined) return this.fail(head.error)
    }
    for (const waiter of [...this.settledWaiters]) waiter.resolve()
  }

  private fail(error: Error): void {
    if (this.failure !== undefined || this.closed) return
    // A service error: what was received and not yet read is the unfinished frame.
    const failure = error instanceof NatsServiceError && this.stream.bufferedLength > 0 ? new NatsServiceError(error.statusCode, error.description, this.subject, this.stream.peek().slice()) : error
    this.failure = failure
    for (const call of this.calls.values()) {
      clearTimeout(call.timer)
      call.whole?.reject(failure)
    }
    this.calls.clear()
    // Live streams are cancelled (the service stops now, not after its credit timeout).
    for (const stream of [...this.streams.values()]) stream.cancel(failure)
    this.order.length = 0
    this.outage.clear()
    this.stream.fail(failure)
    for (const waiter of [...this.settledWaiters]) waiter.reject(failure)
  }

  /** Close: unsubscribe, and close the connection if the session opened it. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return
    const hadStreams = this.streams.size > 0
    this.fail(new ConnectionError(`session to NATS service ${this.subject} closed`))
    this.closed = true
    this.filter?.close?.()
    this.outage.close()
    if (!this.nc.isClosed()) this.sub.unsubscribe()
    if (this.owned && !this.nc.isClosed()) {
      // The cancels of live streams go out first (bounded: the connection may be down).
      if (hadStreams && !this.outage.down) {
        let timer: ReturnType<typeof setTimeout> | undefined
        await Promise.race([this.nc.flush().catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, 1000)))])
        clearTimeout(timer)
      }
      await this.nc.close().catch(() => undefined)
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}

/** The service error a reply's headers carry (error text, code, error name), or undefined. */
function failureIn(h: NonNullable<Msg['headers']>, subject: string): NatsServiceError | undefined {
  const error = h.get(ERROR_HEADER)
  const code = h.get(ERROR_CODE_HEADER)
  if (error === '' && code === '') return undefined
  const failure = new NatsServiceError(Number(code) || 500, error, subject)
  const name = h.get(ERROR_NAME_HEADER)
  if (name !== '') failure.remoteName = name
  return failure
}

/**
 * The server asked for the rest of a large request (its CONTINUE header names the subject):
 * publish the held upload there in chunks the connection accepts. Returns true when the header was there.
 */
function continueUpload(nc: NatsConnection, h: NonNullable<Msg['headers']>, holder: { upload: Uint8Array | undefined }): boolean {
  const next = h.get(CONTINUE_HEADER)
  if (next === '') return false
  const upload = holder.upload
  holder.upload = undefined
  if (upload === undefined) return true
  const size = chunkSize(nc)
  for (let offset = 0; offset < upload.length; offset += size) nc.publish(next, upload.subarray(offset, offset + size))
  return true
}
