import {
  AbortError,
  ByteStream,
  ConnectionClosedError,
  ConnectionError,
  FramingError,
  FrameTooLargeError,
  TimeoutError,
  silentLogger,
  toHandlerFunction,
  type ByteHandler,
  type Logger,
  type ServeHandler,
} from '@labwire/core'
import { createInbox, headers as natsHeaders, nuid, type Msg, type NatsConnection, type Subscription } from 'nats'
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
  PARTIAL_HEADER,
  SERVICE_NAME,
  SIZE_HEADER,
  TIMEOUT_HEADER,
  OutageBuffer,
  chunkSize,
  openConnection,
  type NatsConnectOptions,
} from './protocol.js'

/** One more endpoint of a {@link NatsServer}: an RPC method, a second device. */
export interface NatsEndpoint {
  /** Endpoint name (ADR-32 `name`). */
  name: string
  /** Subject; default `SERVICE.NAME`. */
  subject?: string
  callback: ByteHandler
  metadata?: Record<string, string>
}

/** What a stream handler gets besides the request. */
export interface NatsStreamContext {
  /** Aborts when the client cancels (breaks out of its loop, aborts its signal), its deadline passes, or the service closes. */
  signal: AbortSignal
  /** Absolute deadline (`Date.now()` ms), when the client sent a time limit. */
  deadline: number | undefined
}

/** What a call endpoint's handler gets besides the request (the same as a stream's). */
export type NatsCallContext = NatsStreamContext

/**
 * An endpoint that answers one request with a stream of items (an RPC `stream: true` method):
 * `stream` returns an async iterable, each item goes to the client as it is produced, paced by
 * the client's credit (bounded buffering on both sides), and cancelled when the client stops.
 */
export interface NatsStreamEndpoint {
  name: string
  /** Subject; default `SERVICE.NAME`. */
  subject?: string
  stream: (request: Uint8Array, ctx: NatsStreamContext) => AsyncIterable<Uint8Array> | Iterable<Uint8Array>
  metadata?: Record<string, string>
}

/**
 * An endpoint whose handler sees the call's context: its `signal` aborts when the caller cancels
 * (aborts its signal), its deadline passes (the caller's `timeout` travels in `Labwire-Timeout`),
 * or the service closes. One reply (what `rpcEndpoints` makes of a unary RPC method).
 */
export interface NatsCallEndpoint {
  name: string
  /** Subject; default `SERVICE.NAME`. */
  subject?: string
  call: (request: Uint8Array, ctx: NatsCallContext) => Promise<Uint8Array | undefined> | Uint8Array | undefined
  metadata?: Record<string, string>
}

/** Options for {@link NatsServer}. */
export interface NatsServerOptions extends NatsConnectOptions {
  /** The service name (ADR-32: `A-Z a-z 0-9 - _`); the default endpoint listens on this subject. */
  name: string
  /** The default endpoint's handler (any `ByteHandler`: an `ApplicationServer`, a device, a gateway). */
  callback?: ByteHandler
  /** More endpoints (one per RPC method); stream endpoints answer with a stream of items. */
  endpoints?: readonly (NatsEndpoint | NatsStreamEndpoint | NatsCallEndpoint)[]
  /** Queue group, so instances share the load. Default `q` (ADR-32); `null` = every instance gets every request. */
  queue?: string | null
  /** SemVer reported by `$SRV.INFO`. Default `0.1.0`. */
  version?: string
  description?: string
  metadata?: Record<string, string>
  /** Handlers running at once; the next message is not taken before one finishes. Default 64. */
  maxConcurrent?: number
  /** Largest request accepted (after reassembly), bytes. Default 64 MiB. */
  maxRequestLength?: number
  /** How long to wait for each next chunk of a large request, ms. Default 10000. */
  chunkTimeout?: number
  /** How long a stream waits for the client's credit before it gives up (the client is gone), ms. Default 30000. */
  creditTimeout?: number
  logger?: Logger
}

/** ADR-32 per-endpoint stats, as `$SRV.STATS` reports them. */
export interface NatsEndpointStats {
  name: string
  subject: string
  queue_group?: string
  num_requests: number
  num_errors: number
  last_error: string
  processing_time: number
  average_processing_time: number
}

interface Endpoint {
  name: string
  subject: string
  handler: ServeHandler | undefined
  stream: NatsStreamEndpoint['stream'] | undefined
  call: NatsCallEndpoint['call'] | undefined
  metadata: Record<string, string>
  stats: NatsEndpointStats
  processingNs: bigint
}

const EMPTY = new Uint8Array(0)

/** A request being handled. */
interface Inflight {
  msg: Msg
  answered: boolean
  /** Abort the handler's signal (the service closing, the caller cancelling). */
  stop?: (reason: Error) => void
}

/**
 * Publishes `ByteHandler`s as a NATS micro service (ADR-32): each endpoint is a queue
 * subscription (group `q`), and the service answers `$SRV.PING|INFO|STATS[.NAME[.ID]]`, so any
 * NATS client's services API finds it and reads real counters. Requests are taken off the
 * subscription by iteration and handled concurrently (up to `maxConcurrent`): an async handler
 * never blocks the connection's read loop. Requests and replies over `max_payload` are chunked.
 */
export class NatsServer implements AsyncDisposable {
  /** This instance's id (ADR-32). */
  readonly id: string = nuid.next()
  readonly name: string
  private readonly options: NatsServerOptions
  private readonly endpoints: Endpoint[] = []
  private readonly queue: string | undefined
  private readonly maxConcurrent: number
  private readonly maxRequestLength: number
  private readonly chunkTimeout: number
  private readonly creditTimeout: number
  private readonly logger: Logger
  private nc: NatsConnection | undefined
  private outage: OutageBuffer | undefined
  private readonly subs: Subscription[] = []
  private started = ''
  private active = 0
  private slotWaiters: (() => void)[] = []
  private readonly loops: Promise<void>[] = []
  private readonly inflight = new Set<Inflight>()
  private closing: Promise<void> | undefined

  constructor(options: NatsServerOptions) {
    if (typeof options.name !== 'string' || !SERVICE_NAME.test(options.name)) throw new RangeError(`NatsServer: name must match ${String(SERVICE_NAME)}, got ${JSON.stringify(options.name)}`)
    this.name = options.name
    this.options = { ...options }
    const queue = options.queue === undefined ? 'q' : options.queue
    this.queue = queue === null ? undefined : queue
    this.maxConcurrent = options.maxConcurrent ?? 64
    this.maxRequestLength = options.maxRequestLength ?? 64 * 1024 * 1024
    this.chunkTimeout = options.chunkTimeout ?? 10_000
    this.creditTimeout = options.creditTimeout ?? 30_000
    this.logger = options.logger ?? silentLogger
    const add = (name: string, subject: string, kind: Pick<Endpoint, 'handler' | 'stream' | 'call'>, metadata: Record<string, string> = {}): void => {
      const stats: NatsEndpointStats = { name, subject, num_requests: 0, num_errors: 0, last_error: '', processing_time: 0, average_processing_time: 0 }
      if (this.queue !== undefined) stats.queue_group = this.queue
      this.endpoints.push({ name, subject, ...kind, metadata: { ...metadata }, stats, processingNs: 0n })
    }
    const none = { handler: undefined, stream: undefined, call: undefined }
    if (options.callback !== undefined) add(options.name, options.name, { ...none, handler: toHandlerFunction(options.callback) })
    for (const endpoint of options.endpoints ?? []) {
      const subject = endpoint.subject ?? `${options.name}.${endpoint.name}`
      if ('stream' in endpoint && typeof endpoint.stream === 'function') add(endpoint.name, subject, { ...none, stream: endpoint.stream }, endpoint.metadata)
      else if ('call' in endpoint && typeof endpoint.call === 'function') add(endpoint.name, subject, { ...none, call: endpoint.call }, endpoint.metadata)
      else if ('callback' in endpoint && endpoint.callback !== undefined) add(endpoint.name, subject, { ...none, handler: toHandlerFunction(endpoint.callback) }, endpoint.metadata)
      else throw new RangeError(`NatsServer: endpoint ${endpoint.name} needs a callback, a call or a stream function`)
    }
    if (this.endpoints.length === 0) throw new RangeError('NatsServer: give a callback or at least one endpoint')
  }

  /** Connect (unless given a connection), subscribe every endpoint and the `$SRV` verbs. */
  async listen(): Promise<{ name: string; id: string; subjects: string[] }> {
    if (this.closing !== undefined) throw new ConnectionError('NatsServer: closed')
    if (this.nc === undefined) {
      const nc = this.options.connection ?? (await openConnection(this.options, `labwire ${this.name}`))
      this.nc = nc
      this.outage = new OutageBuffer(nc)
      this.started = new Date().toISOString()
      for (const endpoint of this.endpoints) {
        const sub = nc.subscribe(endpoint.subject, this.queue === undefined ? {} : { queue: this.queue })
        this.subs.push(sub)
        this.loops.push(this.serve(sub, endpoint))
      }
      this.subs.push(nc.subscribe(`${CANCEL_SUBJECT}.${this.name}`, { callback: (_error, msg) => this.cancelCall(msg) }))
      for (const verb of ['PING', 'INFO', 'STATS'] as const) {
        for (const subject of [`$SRV.${verb}`, `$SRV.${verb}.${this.name}`, `$SRV.${verb}.${this.name}.${this.id}`]) {
          this.subs.push(nc.subscribe(subject, { callback: (_error, msg) => this.control(verb, msg) }))
        }
      }
      await nc.flush()
    }
    return { name: this.name, id: this.id, subjects: this.endpoints.map((endpoint) => endpoint.subject) }
  }

  /** Zero every endpoint's counters (ADR-32 `reset()`). */
  resetStats(): void {
    for (const endpoint of this.endpoints) {
      Object.assign(endpoint.stats, { num_requests: 0, num_errors: 0, last_error: '', processing_time: 0, average_processing_time: 0 })
      endpoint.processingNs = 0n
    }
  }

  /** The `$SRV.STATS` answer for this instance. */
  stats(): { type: string; name: string; id: string; version: string; metadata: Record<string, string>; started: string; endpoints: NatsEndpointStats[] } {
    return { ...this.identity('io.nats.micro.v1.stats_response'), started: this.started, endpoints: this.endpoints.map((endpoint) => ({ ...endpoint.stats })) }
  }

  private identity(type: string): { type: string; name: string; id: string; version: string; metadata: Record<string, string> } {
    return { type, name: this.name, id: this.id, version: this.options.version ?? '0.1.0', metadata: { ...this.options.metadata } }
  }

  private control(verb: 'PING' | 'INFO' | 'STATS', msg: Msg): void {
    if (msg.reply === undefined) return
    let body: unknown
    if (verb === 'PING') body = this.identity('io.nats.micro.v1.ping_response')
    else if (verb === 'STATS') body = this.stats()
    else {
      body = {
        ...this.identity('io.nats.micro.v1.info_response'),
        description: this.options.description ?? '',
        endpoints: this.endpoints.map((endpoint) => ({ name: endpoint.name, subject: endpoint.subject, ...(this.queue === undefined ? {} : { queue_group: this.queue }), metadata: endpoint.metadata })),
      }
    }
    msg.respond(new TextEncoder().encode(JSON.stringify(body)))
  }

  /** Take requests off `sub` by iteration; each is handled on its own, at most `maxConcurrent` at once. */
  private async serve(sub: Subscription, endpoint: Endpoint): Promise<void> {
    for await (const msg of sub) {
      while (this.active >= this.maxConcurrent) await new Promise<void>((resolve) => this.slotWaiters.push(resolve))
      this.active++
      void this.handle(endpoint, msg).finally(() => {
        this.active--
        this.slotWaiters.shift()?.()
      })
    }
  }

  private async handle(endpoint: Endpoint, msg: Msg): Promise<void> {
    const start = process.hrtime.bigint()
    endpoint.stats.num_requests++
    const inflight: Inflight = { msg, answered: false }
    this.inflight.add(inflight)
    try {
      const payload = await this.readRequest(msg)
      if (endpoint.stream !== undefined) {
        await this.handleStream(endpoint.stream, msg, payload, inflight)
        return
      }
      if (endpoint.call !== undefined) {
        const { signal, deadline, done } = this.callContext(msg, inflight)
        try {
          const reply = await endpoint.call(payload, { signal, deadline })
          if (!inflight.answered) this.reply(msg, reply ?? EMPTY, false)
        } finally {
          done()
        }
        return
      }
      const handler = endpoint.handler as ServeHandler
      const stream = new ByteStream(undefined, { label: `nats:${endpoint.subject}` })
      stream.push(payload)
      stream.end()
      // One message may carry several frames (a pipelined burst): answer each as soon as it is
      // ready, in order; the last reply message goes without Labwire-More.
      for (;;) {
        const before = stream.consumed
        const reply = await handler(stream)
        const last = stream.consumed === before || stream.bufferedLength === 0
        if (inflight.answered) break
        if (last) {
          this.reply(msg, reply ?? EMPTY, false)
          break
        }
        if (reply !== undefined && reply.length > 0) this.reply(msg, reply, true)
      }
    } catch (error) {
      endpoint.stats.num_errors++
      const message = error instanceof Error ? error.message : 'handler failed'
      endpoint.stats.last_error = message
      const code = error instanceof FramingError || error instanceof ConnectionClosedError ? 400 : error instanceof TimeoutError ? 408 : 500
      this.logger.warn({ error, subject: endpoint.subject }, 'nats service request failed')
      if (!inflight.answered) this.replyError(msg, code, message, error instanceof Error ? error.name : undefined)
    } finally {
      inflight.answered = true
      this.inflight.delete(inflight)
      endpoint.processingNs += process.hrtime.bigint() - start
      endpoint.stats.processing_time = Number(endpoint.processingNs)
      endpoint.stats.average_processing_time = Math.floor(Number(endpoint.processingNs / BigInt(endpoint.stats.num_requests)))
    }
  }

  /** The signal and deadline of a call: `Labwire-Timeout` arms the deadline; cancel and close abort it. */
  private callContext(msg: Msg, inflight: Inflight): { signal: AbortSignal; deadline: number | undefined; done: () => void } {
    const controller = new AbortController()
    inflight.stop = (reason) => {
      if (!controller.signal.aborted) controller.abort(reason)
    }
    const text = msg.headers?.get(TIMEOUT_HEADER) ?? ''
    const limit = text === '' ? undefined : Number(text)
    if (limit !== undefined && !(Number.isSafeInteger(limit) && limit > 0)) throw new FramingError(`bad ${TIMEOUT_HEADER} header: ${text.slice(0, 32)}`)
    const timer = limit === undefined ? undefined : setTimeout(() => inflight.stop?.(new TimeoutError(`call passed its deadline of ${limit} ms`)), limit)
    return { signal: controller.signal, deadline: limit === undefined ? undefined : Date.now() + limit, done: () => clearTimeout(timer) }
  }

  /** A caller gave up on the call whose reply subject is the payload: abort its handler, if it runs here. */
  private cancelCall(msg: Msg): void {
    if (msg.data.length === 0 || msg.data.length > 256) return
    const reply = new TextDecoder().decode(msg.data)
    for (const request of this.inflight) {
      if (request.msg.reply === reply) request.stop?.(new AbortError('call cancelled by the caller'))
    }
  }

  /**
   * Answer with a stream: an opening message naming a control inbox, then each item while the
   * client has credit, then an empty end message. Stops when the client cancels, stops granting
   * credit for `creditTimeout`, the deadline passes, or the service closes.
   */
  private async handleStream(produce: NatsStreamEndpoint['stream'], msg: Msg, payload: Uint8Array, inflight: Inflight): Promise<void> {
    const nc = this.nc
    const reply = msg.reply
    if (nc === undefined || reply === undefined) throw new FramingError('a stream request needs a reply subject')
    const creditText = msg.headers?.get(CREDIT_HEADER) ?? ''
    // Without Labwire-Credit (a plain NATS client): no pacing by the client, but a flush every
    // 16 items bounds what waits in this connection's outbound buffer.
    let credit = creditText === '' ? Infinity : Number(creditText)
    if (creditText !== '' && !(Number.isSafeInteger(credit) && credit >= 1 && credit <= MAX_CREDIT)) throw new FramingError(`bad ${CREDIT_HEADER} header: ${creditText.slice(0, 32)}`)
    const timeoutText = msg.headers?.get(TIMEOUT_HEADER) ?? ''
    const asked = timeoutText === '' ? undefined : Number(timeoutText)
    if (asked !== undefined && !(Number.isSafeInteger(asked) && asked > 0)) throw new FramingError(`bad ${TIMEOUT_HEADER} header: ${timeoutText.slice(0, 32)}`)
    // A plain NATS client cannot cancel: its stream is bounded in time by creditTimeout.
    const limit = asked ?? (creditText === '' ? this.creditTimeout : undefined)
    const deadline = limit === undefined ? undefined : Date.now() + limit
    const controller = new AbortController()
    let wake: (() => void) | undefined
    const stop = (reason: Error): void => {
      if (!controller.signal.aborted) controller.abort(reason)
      wake?.()
    }
    const deadlineTimer = limit === undefined ? undefined : setTimeout(() => stop(new TimeoutError(`stream passed its deadline of ${limit} ms`)), limit)
    inflight.stop = stop
    // A labwire client (it sent credit) gets a control inbox for credit and cancel; a plain NATS
    // client gets the items alone (its first reply is the first item, as `nats req` expects).
    const control = creditText === '' ? undefined : createInbox()
    const sub = control === undefined ? undefined : nc.subscribe(control, {
      callback: (_error, m) => {
        if ((m.headers?.get(CANCEL_HEADER) ?? '') !== '') return stop(new AbortError('stream cancelled by the client'))
        const more = Number(m.headers?.get(CREDIT_HEADER) ?? '')
        if (Number.isSafeInteger(more) && more >= 1 && more <= MAX_CREDIT) {
          credit = Math.min(credit + more, MAX_CREDIT)
          wake?.()
        }
      },
    })
    const more = natsHeaders()
    more.set(MORE_HEADER, '1')
    const partial = natsHeaders()
    partial.set(MORE_HEADER, '1')
    partial.set(PARTIAL_HEADER, '1')
    const open = natsHeaders()
    open.set(MORE_HEADER, '1')
    if (control !== undefined) open.set(CONTROL_HEADER, control)
    const signal = controller.signal
    let iterator: AsyncIterator<Uint8Array> | Iterator<Uint8Array> | undefined
    try {
      if (control !== undefined) nc.publish(reply, EMPTY, { headers: open })
      const source = produce(payload, { signal, deadline })
      iterator = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]()
      let sent = 0
      for (;;) {
        while (credit <= 0 && !signal.aborted) {
          const got = await new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(false), this.creditTimeout)
            wake = () => {
              clearTimeout(timer)
              resolve(true)
            }
          })
          wake = undefined
          if (!got) stop(new TimeoutError(`stream: no credit from the client for ${this.creditTimeout} ms`))
        }
        if (signal.aborted) break
        const next = await iterator.next()
        if (next.done === true || signal.aborted) break
        const item = next.value
        if (!(item instanceof Uint8Array)) throw new TypeError('a stream endpoint must yield Uint8Array items')
        const size = chunkSize(nc)
        for (let offset = 0; ; offset += size) {
          const end = Math.min(item.length, offset + size)
          nc.publish(reply, item.subarray(offset, end), { headers: end < item.length ? partial : more })
          if (end >= item.length) break
        }
        credit--
        if (credit === Infinity && ++sent % 16 === 0) {
          let timer: ReturnType<typeof setTimeout> | undefined
          await Promise.race([nc.flush().catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, this.creditTimeout)))])
          clearTimeout(timer)
        }
      }
      const reason: unknown = signal.reason
      if (signal.aborted && reason instanceof TimeoutError) throw reason
      // Cancelled by the client, or the service closing (close() has answered 503): no end message.
      if (!signal.aborted && !inflight.answered) nc.publish(reply, EMPTY)
    } finally {
      clearTimeout(deadlineTimer)
      if (!controller.signal.aborted) controller.abort(new AbortError('stream ended'))
      sub?.unsubscribe()
      await Promise.resolve(iterator?.return?.()).catch(() => undefined)
    }
  }

  private replyError(msg: Msg, code: number, message: string, errorName?: string): void {
    if (msg.reply === undefined || this.nc === undefined || this.nc.isClosed()) return
    const h = natsHeaders()
    if (errorName !== undefined && /^[A-Za-z0-9_$]{1,64}$/.test(errorName)) h.set(ERROR_NAME_HEADER, errorName)
    h.set(ERROR_HEADER, message.replace(/[\r\n]+/g, ' ').slice(0, 1024))
    h.set(ERROR_CODE_HEADER, String(code))
    const send = (): boolean => msg.respond(EMPTY, { headers: h })
    if (this.outage === undefined) send()
    else this.outage.run(send)
  }

  /** The whole request: the message itself, or its chunks gathered on a private inbox. */
  private async readRequest(msg: Msg): Promise<Uint8Array> {
    const sizeText = msg.headers?.get(SIZE_HEADER)
    if (sizeText === undefined || sizeText === '') return msg.data
    const total = Number(sizeText)
    if (!Number.isSafeInteger(total) || total < msg.data.length) throw new FramingError(`bad ${SIZE_HEADER} header: ${sizeText.slice(0, 32)}`)
    if (total > this.maxRequestLength) throw new FrameTooLargeError(this.maxRequestLength, `request of ${total} bytes exceeds maxRequestLength ${this.maxRequestLength}`)
    if (total === msg.data.length) return msg.data
    const nc = this.nc
    if (nc === undefined || msg.reply === undefined) throw new FramingError('a chunked request needs a reply subject')
    // Chunks are kept as they come (not a buffer of the announced size): memory follows the bytes
    // really received, so a forged Labwire-Size costs nothing.
    const parts: Uint8Array[] = [msg.data]
    let filled = msg.data.length
    const inbox = createInbox()
    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const arm = (): void => {
        clearTimeout(timer)
        timer = setTimeout(() => {
          sub.unsubscribe()
          reject(new TimeoutError(`chunked request: no chunk for ${this.chunkTimeout} ms (${filled} of ${total} bytes)`))
        }, this.chunkTimeout)
      }
      const sub = nc.subscribe(inbox, {
        callback: (_error, chunk) => {
          if (filled + chunk.data.length > total) {
            clearTimeout(timer)
            sub.unsubscribe()
            reject(new FramingError(`chunked request overran its ${SIZE_HEADER} of ${total} bytes`))
            return
          }
          parts.push(chunk.data)
          filled += chunk.data.length
          if (filled === total) {
            clearTimeout(timer)
            sub.unsubscribe()
            resolve(Buffer.concat(parts, total))
          } else arm()
        },
      })
      arm()
      const h = natsHeaders()
      h.set(CONTINUE_HEADER, inbox)
      msg.respond(EMPTY, { headers: h })
    })
  }

  /** Send `reply` on the request's reply subject, cut into chunks; all but the last message carry Labwire-More (the last too when `more`). */
  private reply(msg: Msg, reply: Uint8Array, more: boolean): void {
    const nc = this.nc
    if (msg.reply === undefined || nc === undefined || nc.isClosed()) return
    const size = chunkSize(nc)
    const outage = this.outage
    if (outage !== undefined && outage.down) {
      outage.run(() => this.reply(msg, reply, more))
      return
    }
    if (reply.length <= size && !more) {
      msg.respond(reply)
      return
    }
    const h = natsHeaders()
    h.set(MORE_HEADER, '1')
    let offset = 0
    do {
      const end = Math.min(reply.length, offset + size)
      const final = end === reply.length && !more
      nc.publish(msg.reply, reply.subarray(offset, end), final ? {} : { headers: h })
      offset = end
    } while (offset < reply.length)
  }

  /**
   * Stop taking requests, give running handlers up to `drain` ms (default 0) to finish, answer
   * the rest with error 503 (their callers see a `NatsServiceError` at once, not a timeout), and
   * close the connection if it is ours. Idempotent.
   */
  close(options: { drain?: number } = {}): Promise<void> {
    this.closing ??= this.doClose(options.drain ?? 0)
    return this.closing
  }

  private async doClose(drain: number): Promise<void> {
    const nc = this.nc
    if (nc === undefined) return
    if (!nc.isClosed()) for (const sub of this.subs) sub.unsubscribe()
    await Promise.allSettled(this.loops)
    const until = Date.now() + drain
    while (this.active > 0 && Date.now() < until) await new Promise<void>((resolve) => setTimeout(resolve, 5))
    for (const request of this.inflight) {
      request.answered = true
      request.stop?.(new AbortError('service closing'))
      this.replyError(request.msg, 503, `service ${this.name} is shutting down`)
    }
    this.inflight.clear()
    this.outage?.close()
    if (this.options.connection === undefined && !nc.isClosed()) await nc.drain().catch(() => nc.close())
    else if (!nc.isClosed()) await nc.flush().catch(() => undefined)
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}
