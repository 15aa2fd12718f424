/**
 * RpcClient: typed calls over any `TransportClient`.
 *
 * @module
 */
import { Buffer } from 'node:buffer'
import {
  AbortError,
  ByteStream,
  MemoryClient,
  NEED_MORE,
  TimeoutError,
  abortErrorFrom,
  byteStreamOf,
  clientRequestChannel,
  errorCodeOf,
  isLabwireError,
  parseAccessNotice,
  silentLogger,
  throwIfAborted,
  type AbortOptions,
  type FrameDecoder,
  type LabwireError,
  type Logger,
  type TransportClient,
  type TransportClientSession,
} from '@labwire/core'
import type { Codec } from './codecs.js'
import { RemoteError, RpcClosedError, RpcDecodeError, RpcInsecureCodecError, RpcProtocolError, RpcSpecError, RpcSpecMismatchError, RpcUnknownMethodError } from './errors.js'
import { insecureMethods, type CallOptions, type ClientMethods, type MethodDef, type RpcStream, type ServiceSpec } from './spec.js'
import { BSR_VERSION, BsrType, DEFAULT_MAX_FRAME, FrameType, HEADER, bsrDecoder, encodeBsr, encodeFrame, frameDecoder, parseBsrException, type BsrFrame, type Frame } from './wire.js'

/** The wire protocol: labwire's own (default) or basic-socket-rpc 0.6's. */
export type RpcProtocol = 'labwire' | 'basic-socket-rpc'

/** Options for {@link RpcClient}. */
export interface RpcClientOptions {
  /** Default `'labwire'`. */
  protocol?: RpcProtocol
  /** Default per-call timeout in ms (sent as the call's deadline). Default: none. */
  timeout?: number
  /** Handshake limit in ms. Default 10 000. */
  connectTimeout?: number
  /** Allow `codecs.v8` methods (off a memory transport). Default false. */
  allowInsecureCodecs?: boolean
  /** Largest frame accepted from the server. Default 256 MiB. */
  maxFrameLength?: number
  /** Stream items buffered per stream before the client stops reading the connection (backpressure). Default 256. */
  streamHighWaterMark?: number
  /** basic-socket-rpc: wait this long between INIT retries while the server answers "not now" (exclusive access). Default 500 ms. */
  initRetryInterval?: number
  logger?: Logger
}

/** A connected session: the spec's methods plus `ping`, `close` and `[Symbol.asyncDispose]`. */
export type RpcClientSession<S extends ServiceSpec> = ClientMethods<S> & RpcSessionControl

/** The members every session has. */
export interface RpcSessionControl extends AsyncDisposable {
  /** Round trip to the server (labwire protocol); resolves with the time in ms. */
  ping(options?: CallOptions): Promise<number>
  /** Close the session; calls still pending reject with `RpcClosedError`. Idempotent. */
  close(): Promise<void>
  /** True once closed (by you or the peer). */
  readonly closed: boolean
}

/**
 * A typed RPC client. `connect()` opens a transport session, does the handshake and returns a
 * session whose methods are inferred from the spec.
 *
 * @example
 * ```ts
 * const client = new RpcClient(greet, new TcpClient({ host: '127.0.0.1', port }))
 * await using s = await client.connect()
 * console.log(await s.hello('bob', { timeout: 500 }))
 * ```
 */
export class RpcClient<S extends ServiceSpec> {
  private readonly options: RpcClientOptions
  constructor(
    readonly spec: S,
    private readonly transport: TransportClient,
    options: RpcClientOptions = {},
  ) {
    this.options = { ...options }
    const protocol = options.protocol ?? 'labwire'
    if (protocol !== 'labwire' && protocol !== 'basic-socket-rpc') throw new RpcSpecError(`RpcClient: protocol must be 'labwire' or 'basic-socket-rpc', got ${String(protocol)}`)
    if (protocol === 'basic-socket-rpc') checkBsrSpec(spec)
    const insecure = insecureMethods(spec)
    if (insecure.length > 0 && options.allowInsecureCodecs !== true && !(transport instanceof MemoryClient)) {
      throw new RpcInsecureCodecError(`method ${insecure.join(', ')} uses the insecure v8 codec over a network transport; pass allowInsecureCodecs: true to allow it`)
    }
  }

  /** Connect and handshake. Rejects with `RpcSpecMismatchError`, the transport's errors, `AccessRefusedError` / `AccessTimeoutError`, `TimeoutError`, `AbortError`. */
  async connect(options?: AbortOptions): Promise<RpcClientSession<S>> {
    throwIfAborted(options)
    const session = await this.transport.connect(options)
    const core = new SessionCore(this.spec, session, this.options, this.transport)
    try {
      await core.handshake(options?.signal)
    } catch (error) {
      await session.close().catch(() => undefined)
      throw error
    }
    return core.facade() as RpcClientSession<S>
  }
}

/** Refuse what basic-socket-rpc cannot carry (no streams, no one-way calls). */
export function checkBsrSpec(spec: ServiceSpec): void {
  for (const [, { name, def }] of spec.byId) {
    if (def.stream === true || def.oneWay === true) throw new RpcSpecError(`method ${name}: basic-socket-rpc has no ${def.stream === true ? 'streams' : 'one-way calls'}`)
  }
}

interface Pending {
  name: string
  def: MethodDef
  resolve: (value: unknown) => void
  reject: (error: unknown) => void
  /** Streams: items not read yet. */
  stream?: StreamState
  /** basic-socket-rpc: the caller gave up; drop the reply when it comes. */
  abandoned?: boolean
  done?: () => void
  /** Bytes of the frame that settled the call (for `labwire:client:request`). */
  bytesIn?: number
}

interface StreamState {
  items: unknown[]
  ended: boolean
  error: LabwireError | undefined
  wake: (() => void) | undefined
}

const NO_CALL = 0

class SessionCore {
  private readonly protocol: RpcProtocol
  private readonly pending = new Map<number, Pending>()
  /** basic-socket-rpc: calls in order of sending. */
  private readonly fifo: Pending[] = []
  private nextCall = 1
  private stream: ByteStream | undefined
  private closing: Promise<void> | undefined
  private failure: LabwireError | undefined
  private readonly logger: Logger
  private readonly decoder: FrameDecoder<Frame>
  private readonly bsr: FrameDecoder<BsrFrame>
  private readonly highWater: number
  private pings = new Map<number, (t: number) => void>()
  /** Streams not finished by their consumer (checked for backpressure). */
  private readonly streams = new Set<StreamState>()

  constructor(
    private readonly spec: ServiceSpec,
    private readonly session: TransportClientSession,
    private readonly options: RpcClientOptions,
    private readonly transport: TransportClient,
  ) {
    this.protocol = options.protocol ?? 'labwire'
    this.logger = options.logger ?? silentLogger
    this.decoder = frameDecoder(options.maxFrameLength ?? DEFAULT_MAX_FRAME)
    this.bsr = bsrDecoder(options.maxFrameLength ?? DEFAULT_MAX_FRAME)
    this.highWater = options.streamHighWaterMark ?? 256
  }

  get closed(): boolean {
    return this.closing !== undefined || this.failure !== undefined
  }

  // ── handshake ──────────────────────────────────────────────────────────────────────────────

  async handshake(signal: AbortSignal | undefined): Promise<void> {
    const limit = this.options.connectTimeout ?? 10_000
    const timeout = AbortSignal.timeout(limit)
    const combined = signal === undefined ? timeout : AbortSignal.any([signal, timeout])
    const failWith = (): LabwireError => (signal?.aborted === true ? abortErrorFrom(signal, 'RPC handshake') : new TimeoutError(`RPC handshake got no answer within ${limit} ms (connectTimeout)`))
    if (this.protocol === 'labwire') {
      const hello = new TextEncoder().encode(JSON.stringify({ v: 1, service: this.spec.name, methods: this.spec.fingerprint }))
      this.stream = byteStreamOf(await this.firstRequest(concat(encodeFrame(FrameType.HELLO, 0, NO_CALL, hello))))
      const frame = await this.readOne(this.decoder, combined, failWith)
      if (frame.type === FrameType.HELLO_ERROR) throw helloError(frame.payload)
      if (frame.type !== FrameType.HELLO_OK) throw new RpcProtocolError(`expected the handshake answer, got frame type ${frame.type}`)
    } else {
      const retry = this.options.initRetryInterval ?? 500
      this.stream = byteStreamOf(await this.firstRequest(encodeBsr(BsrType.INIT, BSR_VERSION)))
      for (;;) {
        const frame = await this.readOne(this.bsr, combined, failWith)
        if (frame.type === BsrType.EXCEPTION) {
          const [name, text] = parseBsrException(frame.payload)
          throw new RemoteError(text, { remoteName: name, method: 'INIT' })
        }
        if (frame.type !== BsrType.INIT || frame.payload.length !== 1) throw new RpcProtocolError(`expected the INIT reply, got message type ${frame.type} of ${frame.payload.length} bytes`)
        if (frame.payload[0] === 1) break
        // "Not now" (the server's exclusive-access policy): ask again, as basic-socket-rpc's client does.
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(resolve, retry)
          combined.addEventListener('abort', () => {
            clearTimeout(timer)
            reject(failWith())
          }, { once: true })
        })
        this.write([encodeBsr(BsrType.INIT, BSR_VERSION)])
      }
    }
    this.startReading()
  }

  /**
   * The first write. A server whose access policy turned us away may have closed the connection
   * already; its notice is then in the session's stream (when the session exposes one).
   */
  private async firstRequest(bytes: Uint8Array): Promise<AsyncIterator<Uint8Array>> {
    try {
      return this.session.request(bytes)
    } catch (error) {
      const stream = (this.session as { stream?: unknown }).stream
      if (stream instanceof ByteStream) {
        const limit = Date.now() + 1_000
        while (stream.indexOf(0x0a) < 0 && !stream.ended && Date.now() < limit) {
          if (!(await Promise.race([stream.fill().catch(() => false), new Promise<boolean>((r) => setTimeout(() => r(false), 100))]))) break
        }
        this.checkNotice(stream)
      }
      throw error
    }
  }

  private async readOne<T>(decoder: FrameDecoder<T>, signal: AbortSignal, failWith: () => LabwireError): Promise<T> {
    const stream = this.stream as ByteStream
    for (;;) {
      this.checkNotice(stream)
      const frame = decoder.decode(stream)
      if (frame !== NEED_MORE) return frame
      if (stream.ended) throw this.checkNotice(stream) ?? stream.closedError()
      const more = await raceAbort(stream.fill(), signal, failWith)
      if (!more) {
        throw this.checkNotice(stream) ?? stream.closedError()
      }
    }
  }

  /** The serving kernel's access notice (refused / timed out in the queue) instead of an answer. */
  private checkNotice(stream: ByteStream): LabwireError | undefined {
    if (stream.bufferedLength === 0 || stream.byteAt(0) !== 0x15) return undefined
    const end = stream.indexOf(0x0a)
    if (end < 0) return undefined
    const notice = parseAccessNotice(stream.peek(end + 1))
    if (notice !== undefined) throw notice
    return undefined
  }

  // ── reading ────────────────────────────────────────────────────────────────────────────────

  private busy = false
  private pulling = false

  /**
   * Decode and dispatch every whole frame buffered, synchronously: from the stream's data events
   * (push mode) or after a pull (pull mode). Stops while a stream consumer is behind (backpressure:
   * the transport pauses its socket), resumed by `releaseBlock`.
   */
  private readonly drive = (): void => {
    const stream = this.stream
    if (this.busy || stream === undefined || this.closing !== undefined || this.failure !== undefined) return
    this.busy = true
    try {
      for (;;) {
        if (this.blocked()) return
        const frame = this.protocol === 'labwire' ? this.decoder.decode(stream) : this.bsr.decode(stream)
        if (frame !== NEED_MORE) {
          if (this.protocol === 'labwire') this.onFrame(frame as Frame)
          else this.onBsrFrame(frame)
          if (this.closing !== undefined || this.failure !== undefined) return
          continue
        }
        if (stream.ended) throw stream.closedError()
        if (stream.pushMode) stream.wantMore()
        else if (!this.pulling) {
          this.pulling = true
          stream.fill().then(
            (more) => {
              this.pulling = false
              if (more) this.drive()
              else this.readFailed(stream.closedError())
            },
            (error: unknown) => {
              this.pulling = false
              // The transport's own inactivity timeout: the RPC layer times each call itself.
              if (error instanceof TimeoutError && !stream.ended) this.drive()
              else this.readFailed(error)
            },
          )
        }
        return
      }
    } catch (error) {
      this.readFailed(error)
    } finally {
      this.busy = false
    }
  }

  private startReading(): void {
    const stream = this.stream as ByteStream
    if (stream.pushMode) stream.onData = this.drive
    this.drive()
  }

  private readFailed(error: unknown): void {
    if (this.closing !== undefined || this.failure !== undefined) return
    if (this.stream !== undefined && this.stream.onData === this.drive) this.stream.onData = undefined
    this.fail(isLabwireError(error) ? error : new RpcProtocolError(String(error), { cause: error }))
    void this.session.close().catch(() => undefined)
  }

  private blocked(): boolean {
    if (this.streams.size === 0) return false
    for (const state of this.streams) if (state.items.length >= this.highWater) return true
    return false
  }

  private releaseBlock(): void {
    if (this.streams.size === 0 || !this.blocked()) queueMicrotask(this.drive)
  }

  private onFrame(frame: Frame): void {
    if (frame.type === FrameType.PONG) {
      this.pings.get(frame.call)?.(Date.now())
      this.pings.delete(frame.call)
      return
    }
    const call = this.pending.get(frame.call)
    // A reply to a call the caller gave up on (timeout, abort): dropped, never taken for another.
    if (call === undefined) return
    switch (frame.type) {
      case FrameType.RESPONSE: {
        this.pending.delete(frame.call)
        call.bytesIn = frameBytes(frame)
        let value: unknown
        try {
          value = (call.def.response ?? noneCodec).decode(frame.payload)
        } catch (error) {
          call.reject(asDecodeError(call.name, error))
          return
        }
        call.resolve(value)
        return
      }
      case FrameType.STREAM_CHUNK: {
        const state = call.stream
        if (state === undefined) return
        try {
          state.items.push((call.def.response ?? noneCodec).decode(frame.payload))
        } catch (error) {
          state.error = asDecodeError(call.name, error)
          state.ended = true
          this.pending.delete(frame.call)
          this.cancelOnWire(call.def.id, frame.call)
        }
        wakeStream(state)
        return
      }
      case FrameType.STREAM_END:
        if (call.stream !== undefined) {
          call.stream.ended = true
          this.pending.delete(frame.call)
          wakeStream(call.stream)
        }
        return
      case FrameType.ERROR: {
        this.pending.delete(frame.call)
        call.bytesIn = frameBytes(frame)
        const error = remoteError(call.name, frame.payload)
        if (call.stream !== undefined) {
          call.stream.error = error
          call.stream.ended = true
          wakeStream(call.stream)
        } else call.reject(error)
        return
      }
      default:
        throw new RpcProtocolError(`unexpected frame type ${frame.type} from the server`)
    }
  }

  private onBsrFrame(frame: BsrFrame): void {
    const call = this.fifo.shift()
    if (call === undefined) throw new RpcProtocolError(`basic-socket-rpc: message type ${frame.type} answers no call`)
    call.done?.()
    if (frame.type === BsrType.EXCEPTION) {
      const [name, text] = parseBsrException(frame.payload)
      if (call.abandoned !== true) call.reject(new RemoteError(text, { remoteName: name, method: call.name }))
      return
    }
    if (frame.type !== BsrType.RPC) throw new RpcProtocolError(`basic-socket-rpc: unexpected message type ${frame.type}`)
    if (call.abandoned === true) return
    let value: unknown
    try {
      value = decodeBsrValue(call.def.response ?? noneCodec, frame.payload)
    } catch (error) {
      call.reject(asDecodeError(call.name, error))
      return
    }
    call.resolve(value)
  }

  private fail(error: LabwireError): void {
    if (this.failure !== undefined) return
    this.failure = error
    const calls = [...this.pending.values(), ...this.fifo]
    this.pending.clear()
    this.fifo.length = 0
    for (const call of calls) {
      call.done?.()
      if (call.stream !== undefined) {
        call.stream.error = error
        call.stream.ended = true
        wakeStream(call.stream)
      } else call.reject(error)
    }
  }

  // ── writing ────────────────────────────────────────────────────────────────────────────────

  private write(chunks: Uint8Array[]): void {
    for (const chunk of chunks) this.session.request(chunk)
  }

  private cancelOnWire(method: number, call: number): void {
    if (this.closed) return
    try {
      this.write(encodeFrame(FrameType.CANCEL, method, call, EMPTY))
    } catch {
      // The connection is gone: nothing to cancel.
    }
  }

  private allocateCall(): number {
    for (;;) {
      const call = this.nextCall
      this.nextCall = this.nextCall >= 0xffffffff ? 1 : this.nextCall + 1
      if (!this.pending.has(call) && !this.pings.has(call)) return call
    }
  }

  private checkOpen(name: string): void {
    if (this.closing !== undefined) throw new RpcClosedError(`${name}: the RPC session is closed`)
    if (this.failure !== undefined) throw new RpcClosedError(`${name}: the RPC session's connection is gone (${this.failure.message})`, { cause: this.failure })
  }

  call(name: string, def: MethodDef, request: unknown, options: CallOptions | undefined): Promise<unknown> {
    try {
      this.checkOpen(name)
      throwIfAborted(options)
    } catch (error) {
      return Promise.reject(error)
    }
    let payload: Uint8Array
    try {
      payload = this.protocol === 'labwire' ? def.request.encode(request) : def.request.encodeField(request)
    } catch (error) {
      return Promise.reject(asDecodeError(name, error))
    }
    const timeout = options?.timeout ?? this.options.timeout
    if (this.protocol === 'basic-socket-rpc') return this.bsrCall(name, def, payload, timeout, options?.signal)
    if (def.oneWay === true) {
      try {
        this.write(encodeFrame(FrameType.REQUEST, def.id, this.allocateCall(), payload, { oneWay: true }))
      } catch (error) {
        return Promise.reject(error)
      }
      return Promise.resolve(undefined)
    }
    if (clientRequestChannel.hasSubscribers) return this.observed(name, def, payload, timeout, options?.signal)
    return this.unary(name, def, payload, timeout, options?.signal)
  }

  /** A unary call published on `labwire:client:request` when it settles (only while someone subscribes). */
  private observed(name: string, def: MethodDef, payload: Uint8Array, timeout: number | undefined, signal: AbortSignal | undefined): Promise<unknown> {
    const startedAt = performance.now()
    const bytesOut = HEADER + (timeout === undefined ? 0 : 4) + payload.length
    let entry: Pending | undefined
    const publish = (error: unknown): void => {
      clientRequestChannel.publish({
        ...describeTransport(this.transport),
        duration: performance.now() - startedAt,
        bytesIn: entry?.bytesIn ?? 0,
        bytesOut,
        ...(error === undefined ? {} : { error: errorCodeOf(error) }),
      })
    }
    return this.unary(name, def, payload, timeout, signal, (e) => (entry = e)).then(
      (value) => {
        publish(undefined)
        return value
      },
      (error: unknown) => {
        publish(error)
        throw error
      },
    )
  }

  private unary(name: string, def: MethodDef, payload: Uint8Array, timeout: number | undefined, signal: AbortSignal | undefined, track?: (entry: Pending) => void): Promise<unknown> {
    const call = this.allocateCall()
    if (timeout === undefined && signal === undefined) {
      // The common case, no timer and no signal: nothing to clean up when the answer comes.
      return new Promise<unknown>((resolve, reject) => {
        const entry: Pending = { name, def, resolve, reject }
        track?.(entry)
        this.pending.set(call, entry)
        try {
          this.write(encodeFrame(FrameType.REQUEST, def.id, call, payload))
        } catch (error) {
          this.pending.delete(call)
          reject(error)
        }
      })
    }
    return new Promise<unknown>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const settle = (): void => {
        if (timer !== undefined) clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
      }
      // On timeout the server's own copy of the deadline stops the handler; on abort a cancel frame does.
      const giveUp = (error: LabwireError, cancel: boolean): void => {
        if (this.pending.get(call) === entry) {
          this.pending.delete(call)
          if (cancel) this.cancelOnWire(def.id, call)
        }
        settle()
        reject(error)
      }
      const onAbort = (): void => giveUp(abortErrorFrom(signal as AbortSignal, name), true)
      const entry: Pending = {
        name,
        def,
        resolve: (value) => {
          settle()
          resolve(value)
        },
        reject: (error) => {
          settle()
          reject(error)
        },
      }
      track?.(entry)
      this.pending.set(call, entry)
      try {
        this.write(encodeFrame(FrameType.REQUEST, def.id, call, payload, { timeout }))
      } catch (error) {
        this.pending.delete(call)
        reject(error)
        return
      }
      if (timeout !== undefined) timer = setTimeout(() => giveUp(new TimeoutError(`${name} got no answer within ${timeout} ms`), false), timeout)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  private bsrCall(name: string, def: MethodDef, payload: Uint8Array, timeout: number | undefined, signal: AbortSignal | undefined): Promise<unknown> {
    const id = new Uint8Array(2)
    id[0] = def.id & 0xff
    id[1] = def.id >> 8
    return new Promise<unknown>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const entry: Pending = { name, def, resolve, reject }
      const onAbort = (): void => {
        entry.abandoned = true
        settle()
        reject(abortErrorFrom(signal as AbortSignal, name))
      }
      const settle = (): void => {
        if (timer !== undefined) clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
      }
      entry.done = settle
      try {
        this.write([encodeBsr(BsrType.RPC, id, payload)])
      } catch (error) {
        reject(error)
        return
      }
      this.fifo.push(entry)
      // No call ids on this wire: a caller that gives up leaves its place in the queue, and the
      // reply, when it comes, is dropped (never taken for the next call's answer).
      if (timeout !== undefined)
        timer = setTimeout(() => {
          entry.abandoned = true
          settle()
          reject(new TimeoutError(`${name} got no answer within ${timeout} ms`))
        }, timeout)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  callStream(name: string, def: MethodDef, request: unknown, options: CallOptions | undefined): RpcStream<unknown> {
    const state: StreamState = { items: [], ended: false, error: undefined, wake: undefined }
    let call = NO_CALL
    let finished = false
    let timer: ReturnType<typeof setTimeout> | undefined
    const signal = options?.signal
    const stop = (error: LabwireError): void => {
      if (finished) return
      if (!state.ended) {
        state.ended = true
        state.error ??= error
      }
      if (call !== NO_CALL && this.pending.has(call)) {
        this.pending.delete(call)
        this.cancelOnWire(def.id, call)
      }
      wakeStream(state)
      this.releaseBlock()
    }
    const onAbort = (): void => stop(abortErrorFrom(signal as AbortSignal, name))
    const cleanup = (): void => {
      finished = true
      this.streams.delete(state)
      this.releaseBlock()
      if (timer !== undefined) clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
    try {
      this.checkOpen(name)
      throwIfAborted(options)
      const payload = def.request.encode(request)
      const timeout = options?.timeout ?? this.options.timeout
      call = this.allocateCall()
      this.pending.set(call, { name, def, resolve: () => undefined, reject: () => undefined, stream: state })
      this.streams.add(state)
      this.write(encodeFrame(FrameType.REQUEST, def.id, call, payload, { timeout }))
      if (timeout !== undefined) timer = setTimeout(() => stop(new TimeoutError(`${name} stream did not finish within ${timeout} ms`)), timeout)
      signal?.addEventListener('abort', onAbort, { once: true })
    } catch (error) {
      state.ended = true
      state.error = isLabwireError(error) ? error : asDecodeError(name, error)
      if (call !== NO_CALL) this.pending.delete(call)
    }
    const releaseBlock = (): void => this.releaseBlock()
    async function* iterate(): AsyncGenerator {
      try {
        for (;;) {
          if (state.items.length > 0) {
            const item = state.items.shift()
            releaseBlock()
            yield item
            continue
          }
          if (state.ended) {
            if (state.error !== undefined) throw state.error
            return
          }
          await new Promise<void>((resolve) => (state.wake = resolve))
        }
      } finally {
        // Normal end, error, or the consumer broke out: in the last case the server is told to stop.
        stop(new RpcClosedError(`${name}: stream closed by the consumer`))
        cleanup()
      }
    }
    return {
      [Symbol.asyncIterator]: iterate,
      cancel: () => {
        stop(new AbortError(`${name}: stream cancelled`))
        cleanup()
      },
    }
  }

  ping(options?: CallOptions): Promise<number> {
    try {
      this.checkOpen('ping')
      if (this.protocol !== 'labwire') throw new RpcProtocolError('ping: basic-socket-rpc has no ping message')
      throwIfAborted(options)
    } catch (error) {
      return Promise.reject(error)
    }
    const call = this.allocateCall()
    const start = Date.now()
    const limit = options?.timeout ?? this.options.timeout ?? 10_000
    return raceAbort(
      new Promise<number>((resolve) => {
        this.pings.set(call, (t) => resolve(t - start))
        this.write(encodeFrame(FrameType.PING, 0, call, EMPTY))
      }),
      options?.signal === undefined ? AbortSignal.timeout(limit) : AbortSignal.any([options.signal, AbortSignal.timeout(limit)]),
      () => {
        this.pings.delete(call)
        return options?.signal?.aborted === true ? abortErrorFrom(options.signal, 'ping') : new TimeoutError(`ping got no answer within ${limit} ms`)
      },
    )
  }

  close(): Promise<void> {
    if (this.closing === undefined) {
      this.fail(new RpcClosedError('the RPC session was closed while the call was pending'))
      if (this.stream !== undefined && this.stream.onData === this.drive) this.stream.onData = undefined
      this.closing = this.session.close()
      this.stream?.interruptWait()
    }
    return this.closing
  }

  /** The public session object: the spec's methods plus ping / close. */
  facade(): RpcSessionControl & Record<string, unknown> {
    const out: Record<string, unknown> = {}
    for (const [, { name, def }] of this.spec.byId) {
      out[name] = def.stream === true ? (request: unknown, options?: CallOptions) => this.callStream(name, def, request, options) : (request: unknown, options?: CallOptions) => this.call(name, def, request, options)
    }
    const control = {
      ping: (options?: CallOptions) => this.ping(options),
      close: () => this.close(),
      [Symbol.asyncDispose]: () => this.close(),
    }
    Object.defineProperty(out, 'closed', { get: () => this.closed, enumerable: true })
    return Object.assign(out, control) as unknown as RpcSessionControl & Record<string, unknown>
  }
}

const EMPTY = new Uint8Array(0)
const noneCodec: Codec<unknown> = {
  name: 'none',
  encode: () => EMPTY,
  decode: () => undefined,
  encodeField: () => EMPTY,
  decodeField: (_b, o) => [undefined, o],
}

/** Bytes of a decoded frame on the wire. */
function frameBytes(frame: Frame): number {
  return HEADER + (frame.timeout === undefined ? 0 : 4) + frame.payload.length
}

/**
 * `transport` and `peer` for `labwire:client:request`, best effort: the transport client's class
 * name (`TcpClient` → `'tcp'`) and its `host:port`, `path` or `url` when it shows one.
 */
function describeTransport(transport: TransportClient): { transport: string; peer: string } {
  const kind = transport.constructor.name.replace(/Client$/, '').toLowerCase() || 'unknown'
  const o = (transport as { options?: { host?: unknown; port?: unknown; path?: unknown } }).options
  const url = (transport as { url?: unknown }).url
  const peer =
    typeof o?.path === 'string' ? o.path : typeof o?.host === 'string' ? `${o.host}:${String(o.port)}` : typeof url === 'string' ? url : kind
  return { transport: kind, peer }
}

function wakeStream(state: StreamState): void {
  const wake = state.wake
  state.wake = undefined
  wake?.()
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0] as Uint8Array
  return new Uint8Array(Buffer.concat(chunks))
}

/** Decode a basic-socket-rpc value (the field form), with no trailing bytes. */
export function decodeBsrValue(codec: Codec<unknown>, payload: Uint8Array): unknown {
  const [value, end] = codec.decodeField(payload, 0)
  if (end !== payload.length) throw new RpcDecodeError(`cannot decode ${codec.name}: ${payload.length - end} trailing bytes`)
  return value
}

function asDecodeError(method: string, error: unknown): LabwireError {
  if (isLabwireError(error)) return error
  return new RpcDecodeError(`${method}: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
}

function helloError(payload: Uint8Array): LabwireError {
  let body: { code?: string; message?: string; mismatches?: string[] }
  try {
    body = JSON.parse(new TextDecoder().decode(payload)) as typeof body
  } catch (error) {
    return new RpcProtocolError('the server refused the handshake with an unreadable answer', { cause: error })
  }
  if (body.code === 'ERR_RPC_SPEC_MISMATCH' && Array.isArray(body.mismatches)) return new RpcSpecMismatchError(body.mismatches.map(String))
  if (body.code === 'ERR_RPC_INSECURE_CODEC') return new RpcInsecureCodecError(String(body.message))
  return new RpcProtocolError(`the server refused the handshake: ${String(body.message)}`)
}

/** An ERROR frame's payload as the caller's error: typed for the RPC layer's own codes, `RemoteError` for a handler's throw. */
function remoteError(method: string, payload: Uint8Array): LabwireError {
  let body: { name?: unknown; code?: unknown; message?: unknown; stack?: unknown }
  try {
    body = JSON.parse(new TextDecoder().decode(payload)) as typeof body
  } catch (error) {
    return new RpcProtocolError(`${method}: unreadable error frame`, { cause: error })
  }
  const message = typeof body.message === 'string' ? body.message : ''
  if (body.code === 'ERR_RPC_UNKNOWN_METHOD') return new RpcUnknownMethodError(message)
  if (body.code === 'ERR_RPC_DECODE') return new RpcDecodeError(message)
  if (body.code === 'ERR_RPC_PROTOCOL') return new RpcProtocolError(message)
  return new RemoteError(message, {
    remoteName: typeof body.name === 'string' ? body.name : 'Error',
    remoteCode: typeof body.code === 'string' ? body.code : undefined,
    remoteStack: typeof body.stack === 'string' ? body.stack : undefined,
    method,
  })
}

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal, failWith: () => LabwireError): Promise<T> {
  if (signal.aborted) return Promise.reject(failWith())
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(failWith())
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      },
    )
  })
}
