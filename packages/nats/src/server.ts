import {
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
import { CONTINUE_HEADER, ERROR_CODE_HEADER, ERROR_HEADER, ERROR_NAME_HEADER, MORE_HEADER, SERVICE_NAME, SIZE_HEADER, OutageBuffer, chunkSize, openConnection, type NatsConnectOptions } from './protocol.js'

/** One more endpoint of a {@link NatsServer}: an RPC method, a second device. */
export interface NatsEndpoint {
  /** Endpoint name (ADR-32 `name`). */
  name: string
  /** Subject; default `SERVICE.NAME`. */
  subject?: string
  callback: ByteHandler
  metadata?: Record<string, string>
}

/** Options for {@link NatsServer}. */
export interface NatsServerOptions extends NatsConnectOptions {
  /** The service name (ADR-32: `A-Z a-z 0-9 - _`); the default endpoint listens on this subject. */
  name: string
  /** The default endpoint's handler (any `ByteHandler`: an `ApplicationServer`, a device, a gateway). */
  callback?: ByteHandler
  /** More endpoints (one per RPC method). */
  endpoints?: readonly NatsEndpoint[]
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
  handler: ServeHandler
  metadata: Record<string, string>
  stats: NatsEndpointStats
  processingNs: bigint
}

const EMPTY = new Uint8Array(0)

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
  private readonly logger: Logger
  private nc: NatsConnection | undefined
  private outage: OutageBuffer | undefined
  private readonly subs: Subscription[] = []
  private started = ''
  private active = 0
  private slotWaiters: (() => void)[] = []
  private readonly loops: Promise<void>[] = []
  private readonly inflight = new Set<{ msg: Msg; answered: boolean }>()
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
    this.logger = options.logger ?? silentLogger
    const add = (name: string, subject: string, callback: ByteHandler, metadata: Record<string, string> = {}): void => {
      const stats: NatsEndpointStats = { name, subject, num_requests: 0, num_errors: 0, last_error: '', processing_time: 0, average_processing_time: 0 }
      if (this.queue !== undefined) stats.queue_group = this.queue
      this.endpoints.push({ name, subject, handler: toHandlerFunction(callback), metadata: { ...metadata }, stats, processingNs: 0n })
    }
    if (options.callback !== undefined) add(options.name, options.name, options.callback)
    for (const endpoint of options.endpoints ?? []) add(endpoint.name, endpoint.subject ?? `${options.name}.${endpoint.name}`, endpoint.callback, endpoint.metadata)
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
    const inflight = { msg, answered: false }
    this.inflight.add(inflight)
    try {
      const payload = await this.readRequest(msg)
      const stream = new ByteStream(undefined, { label: `nats:${endpoint.subject}` })
      stream.push(payload)
      stream.end()
      // One message may carry several frames (a pipelined burst): answer each as soon as it is
      // ready, in order; the last reply message goes without Labwire-More.
      for (;;) {
        const before = stream.consumed
        const reply = await endpoint.handler(stream)
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
