/**
 * RpcServer: a `ConnectionHandler`, so it is the `callback` of any transport server.
 *
 * @module
 */
import { Buffer } from 'node:buffer'
import {
  AbortError,
  NEED_MORE,
  TimeoutError,
  errorCodeOf,
  serverRequestChannel,
  silentLogger,
  type ConnectionHandler,
  type FrameDecoder,
  type Logger,
  type ServerConnection,
} from '@labwire/core'
import { checkBsrSpec, decodeBsrValue, type RpcProtocol } from './client.js'
import { RpcDecodeError, RpcInsecureCodecError, RpcSpecError, RpcSpecMismatchError, RpcUnknownMethodError } from './errors.js'
import { compareFingerprints, insecureMethods, type Handlers, type MethodDef, type MethodFingerprint, type RpcContext, type ServiceSpec } from './spec.js'
import { BsrType, DEFAULT_MAX_FRAME, FLAG_ONE_WAY, FrameType, HEADER, bsrDecoder, bsrString, encodeBsr, encodeFrame, frameDecoder, type BsrFrame, type Frame } from './wire.js'

/** Options for {@link RpcServer}. */
export interface RpcServerOptions {
  /** Default `'labwire'`. */
  protocol?: RpcProtocol
  /** Serve methods with insecure codecs (`codecs.v8`) over a network transport. Default false (memory and stdio are local and always allowed). */
  allowInsecureCodecs?: boolean
  /** Send a handler's stack to the caller (`RemoteError.remoteStack`). Default false. */
  exposeStack?: boolean
  /** Largest frame accepted from a client. Default 256 MiB; a larger one closes that connection. */
  maxFrameLength?: number
  /** Calls running at once per connection; past it the server stops reading that connection until one ends (backpressure). Default 256. */
  maxConcurrentCalls?: number
  logger?: Logger
}

/** Transports that never leave the machine's process boundary in a way a remote peer could use. */
const LOCAL_TRANSPORTS = new Set(['memory', 'stdio'])

/** Writes reply frames for one connection (batched during a burst); a promise while the socket's buffer is full. */
type Send = (chunks: Uint8Array[]) => Promise<void> | undefined

/** What a call needs from its server: one per server, shared by every call. */
interface CallSupport {
  readonly logger: Logger
  /** An ERROR frame answering `frame` with `error`. */
  errorFrame(frame: Frame, error: unknown): Uint8Array[]
}

/**
 * One call: the `ctx` its handler gets, and what answering it takes. One object per call, a
 * class, so every call shares one hidden class and no closure is made per call; its
 * AbortController is made only when the handler reads `signal` or something aborts it.
 */
class Running implements RpcContext {
  timer: ReturnType<typeof setTimeout> | undefined = undefined
  private ac: AbortController | undefined = undefined
  /** Why the call was stopped (set with `aborted`). */
  reason: unknown = undefined
  private stopped = false
  /** `performance.now()` at the start while `labwire:server:request` has subscribers, else -1. */
  private readonly startedAt: number

  constructor(
    readonly method: string,
    readonly deadline: number | undefined,
    readonly session: Map<string, unknown>,
    private readonly connection: ServerConnection,
    private readonly support: CallSupport,
    private readonly frame: Frame,
    private readonly send: Send,
    private readonly running: Map<number, Running>,
  ) {
    this.startedAt = serverRequestChannel.hasSubscribers ? performance.now() : -1
  }

  get peer(): string {
    return this.connection.peer
  }

  get signal(): AbortSignal {
    if (this.ac === undefined) {
      this.ac = new AbortController()
      if (this.stopped) this.ac.abort(this.reason)
    }
    return this.ac.signal
  }

  get aborted(): boolean {
    return this.stopped
  }

  abort(reason: unknown): void {
    if (this.stopped) return
    this.stopped = true
    this.reason = reason
    this.ac?.abort(reason)
  }

  startDeadline(ms: number): void {
    this.timer = setTimeout(expire, ms, this, ms)
  }

  /** The call is over: its timer and its entry go. */
  finish(): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    if (this.running.get(this.frame.call) === this) this.running.delete(this.frame.call)
  }

  /** Send the handler's value (nothing for one-way or stopped calls). */
  reply(value: unknown, def: MethodDef): void {
    this.finish()
    if ((this.frame.flags & FLAG_ONE_WAY) !== 0 || this.stopped) {
      this.publish(0, this.stopped ? this.reason : undefined)
      return
    }
    let payload: Uint8Array
    try {
      payload = (def.response ?? NONE).encode(value)
    } catch (error) {
      this.fail(new RpcDecodeError(`${this.method}: the handler's result does not encode: ${error instanceof Error ? error.message : String(error)}`))
      return
    }
    const chunks = encodeFrame(FrameType.RESPONSE, this.frame.method, this.frame.call, payload)
    void this.send(chunks)
    this.publish(chunksLength(chunks), undefined)
  }

  /** The handler threw or rejected. */
  onError(error: unknown): void {
    this.finish()
    // A cancelled or expired call has nobody waiting for its answer.
    if (this.stopped) {
      this.publish(0, error)
      return
    }
    this.support.logger.debug({ peer: this.connection.peer, method: this.method, err: error }, 'RPC: handler threw')
    this.fail(error)
  }

  /** Answer with an ERROR frame (a one-way call is only logged). */
  fail(error: unknown): void {
    if ((this.frame.flags & FLAG_ONE_WAY) !== 0) {
      this.support.logger.warn({ peer: this.connection.peer, method: this.method, err: error }, 'RPC: one-way call failed')
      this.publish(0, error)
      return
    }
    const chunks = this.support.errorFrame(this.frame, error)
    void this.send(chunks)
    this.publish(chunksLength(chunks), error)
  }

  /** labwire:server:request: timed only while someone listens (the monitor), one message per finished call. */
  publish(bytesOut: number, error: unknown): void {
    if (this.startedAt < 0 || !serverRequestChannel.hasSubscribers) return
    const connection = this.connection
    serverRequestChannel.publish({
      kernel: connection.kernel,
      transport: connection.transport,
      peer: connection.peer,
      duration: performance.now() - this.startedAt,
      bytesIn: frameBytes(this.frame),
      bytesOut,
      ...(error === undefined ? {} : { error: errorCodeOf(error) }),
      method: this.method,
    })
  }
}

function expire(run: Running, ms: number): void {
  run.abort(new TimeoutError(`${run.method}: the call's deadline (${ms} ms) passed`))
}

/**
 * Serves a spec's handlers. Answers out of order (each call runs as soon as it arrives), streams,
 * and aborts a handler's `ctx.signal` on a cancel frame, at its deadline, or when the connection drops.
 *
 * @example
 * ```ts
 * const rpc = new RpcServer(greet, { hello: (name) => `hello ${name}` })
 * const server = new TcpServer({ port: 0, callback: rpc })
 * ```
 */
export class RpcServer<S extends ServiceSpec> implements ConnectionHandler {
  private readonly protocol: RpcProtocol
  private readonly logger: Logger
  private readonly decoder: FrameDecoder<Frame>
  private readonly bsr: FrameDecoder<BsrFrame>
  private readonly maxCalls: number
  private readonly insecure: string[]
  private readonly support: CallSupport

  constructor(
    readonly spec: S,
    private readonly handlers: Handlers<S>,
    private readonly options: RpcServerOptions = {},
  ) {
    this.protocol = options.protocol ?? 'labwire'
    if (this.protocol !== 'labwire' && this.protocol !== 'basic-socket-rpc') throw new RpcSpecError(`RpcServer: protocol must be 'labwire' or 'basic-socket-rpc', got ${String(this.protocol)}`)
    if (this.protocol === 'basic-socket-rpc') checkBsrSpec(spec)
    for (const [, { name }] of spec.byId) {
      if (typeof (handlers as Record<string, unknown>)[name] !== 'function') throw new RpcSpecError(`RpcServer: no handler function for method ${name}`)
    }
    this.logger = options.logger ?? silentLogger
    this.decoder = frameDecoder(options.maxFrameLength ?? DEFAULT_MAX_FRAME)
    this.bsr = bsrDecoder(options.maxFrameLength ?? DEFAULT_MAX_FRAME)
    this.maxCalls = options.maxConcurrentCalls ?? 256
    this.insecure = insecureMethods(spec)
    this.support = {
      logger: this.logger,
      errorFrame: (frame, error) => encodeFrame(FrameType.ERROR, frame.method, frame.call, json(this.errorBody(error))),
    }
  }

  /** Serve one connection until it ends. */
  serveConnection(connection: ServerConnection): Promise<void> {
    return this.protocol === 'labwire' ? this.serveLabwire(connection) : this.serveBsr(connection)
  }

  private insecureRefusal(connection: ServerConnection): RpcInsecureCodecError | undefined {
    if (this.insecure.length === 0 || this.options.allowInsecureCodecs === true || LOCAL_TRANSPORTS.has(connection.transport)) return undefined
    return new RpcInsecureCodecError(`method ${this.insecure.join(', ')} uses the insecure v8 codec over ${connection.transport}; the server needs allowInsecureCodecs: true to serve it`)
  }

  // ── labwire ────────────────────────────────────────────────────────────────────────────────

  private async serveLabwire(connection: ServerConnection): Promise<void> {
    const stream = connection.stream
    const running = new Map<number, Running>()
    const inflight = new Set<Promise<void>>()
    const session = new Map<string, unknown>()
    let greeted = false
    const onClose = (): void => {
      for (const run of running.values()) run.abort(connection.signal.reason)
    }
    connection.signal.addEventListener('abort', onClose, { once: true })
    // Replies made while `drive` decodes a burst of requests (synchronous handlers) are batched and
    // leave in one write when the burst is done: one syscall, one buffer, for 64 answers in flight.
    let batch: Uint8Array[] = []
    let batchBytes = 0
    const writeNow = (chunks: Uint8Array[]): Promise<void> | undefined => {
      if (connection.signal.aborted) return undefined
      try {
        let wait: Promise<void> | undefined
        for (const chunk of chunks) wait = connection.write(chunk) ?? wait
        return wait?.catch(() => undefined)
      } catch {
        return undefined
      }
    }
    const flushBatch = (): void => {
      if (batch.length === 0) return
      const chunks = batch.length === 1 ? batch : [Buffer.concat(batch, batchBytes)]
      batch = []
      batchBytes = 0
      void writeNow(chunks)
    }
    const send = (chunks: Uint8Array[]): Promise<void> | undefined => {
      if (!busy || chunks.length !== 1 || batchBytes > BATCH_LIMIT) {
        flushBatch() // keep the order of frames
        return writeNow(chunks)
      }
      const chunk = chunks[0] as Uint8Array
      batch.push(chunk)
      batchBytes += chunk.length
      return undefined
    }
    let stopped = false
    let busy = false
    let pulling = false
    let finished: () => void = () => undefined
    const done = new Promise<void>((resolve) => (finished = resolve))
    const stop = (): void => {
      if (stopped) return
      stopped = true
      stream.onData = undefined
      finished()
    }
    // Decode and dispatch every whole frame buffered, synchronously: from the stream's data events
    // (push mode) or after a pull (pull mode). Returns when it needs more bytes or must wait.
    const drive = (): void => {
      if (busy || stopped) return
      busy = true
      try {
        while (!stopped) {
          if (running.size >= this.maxCalls) return // resumed when a call ends
          let frame: Frame | typeof NEED_MORE
          try {
            frame = this.decoder.decode(stream)
          } catch (error) {
            this.logger.warn({ peer: connection.peer, err: error }, 'RPC: malformed frame, closing the connection')
            stop()
            return
          }
          if (frame === NEED_MORE) {
            if (stream.ended || connection.signal.aborted) stop()
            else if (stream.pushMode) stream.wantMore()
            else if (!pulling) {
              pulling = true
              stream.fill().then(
                (more) => {
                  pulling = false
                  if (more) drive()
                  else stop()
                },
                () => stop(),
              )
            }
            return
          }
          this.dispatch(frame, greeted, connection, running, session, send, inflight, drive, stop)
          greeted = true
        }
      } finally {
        busy = false
        flushBatch()
      }
    }
    if (stream.pushMode) stream.onData = drive
    connection.signal.addEventListener('abort', stop, { once: true })
    drive()
    await done
    connection.signal.removeEventListener('abort', onClose)
    connection.signal.removeEventListener('abort', stop)
    // Input ended or broke: calls still running finish (the kernel's drain) unless the connection closes.
    if (inflight.size > 0) await Promise.allSettled([...inflight])
  }

  /** Handle one frame (HELLO first, then calls). */
  private dispatch(
    frame: Frame,
    greeted: boolean,
    connection: ServerConnection,
    running: Map<number, Running>,
    session: Map<string, unknown>,
    send: Send,
    inflight: Set<Promise<void>>,
    drive: () => void,
    stop: () => void,
  ): void {
    if (!greeted) {
      if (frame.type !== FrameType.HELLO) {
        this.logger.warn({ peer: connection.peer }, `RPC: expected HELLO, got frame type ${frame.type}; closing`)
        stop()
        return
      }
      const refusal = this.hello(frame.payload, connection)
      if (refusal !== undefined) {
        void send(encodeFrame(FrameType.HELLO_ERROR, 0, 0, json(refusal)))
        stop()
        return
      }
      void send(encodeFrame(FrameType.HELLO_OK, 0, 0, EMPTY))
      return
    }
    switch (frame.type) {
      case FrameType.PING:
        void send(encodeFrame(FrameType.PONG, 0, frame.call, EMPTY))
        return
      case FrameType.CANCEL:
        running.get(frame.call)?.abort(new AbortError('the client cancelled the call'))
        return
      case FrameType.REQUEST: {
        if (running.has(frame.call)) {
          this.logger.warn({ peer: connection.peer, call: frame.call }, 'RPC: call id already in flight; closing')
          stop()
          return
        }
        const pending = this.request(frame, connection, running, session, send)
        if (pending !== undefined) {
          inflight.add(pending)
          void pending.then(() => {
            inflight.delete(pending)
            // The loop may have stopped at maxConcurrentCalls: go on.
            queueMicrotask(drive)
          })
        }
        return
      }
      default:
        this.logger.warn({ peer: connection.peer, type: frame.type }, 'RPC: unexpected frame type; closing')
        stop()
    }
  }

  /** Check a HELLO; returns the refusal to send, or undefined to accept. */
  private hello(payload: Uint8Array, connection: ServerConnection): { code: string; message: string; mismatches?: string[] } | undefined {
    const refusal = this.insecureRefusal(connection)
    if (refusal !== undefined) return { code: refusal.code, message: refusal.message }
    let methods: MethodFingerprint[]
    try {
      const body = JSON.parse(new TextDecoder().decode(payload)) as { methods?: unknown }
      if (!Array.isArray(body.methods)) throw new TypeError('no methods array')
      methods = (body.methods as unknown[]).map((m) => {
        const o = m as Record<string, unknown>
        return { id: Number(o.id), name: String(o.name), request: String(o.request), response: String(o.response), stream: o.stream === true, oneWay: o.oneWay === true }
      })
    } catch (error) {
      return { code: 'ERR_RPC_PROTOCOL', message: `unreadable handshake: ${error instanceof Error ? error.message : String(error)}` }
    }
    const mismatches = compareFingerprints(methods, this.spec.fingerprint)
    if (mismatches.length === 0) return undefined
    const error = new RpcSpecMismatchError(mismatches)
    this.logger.warn({ peer: connection.peer, mismatches }, 'RPC: client spec does not match')
    return { code: error.code, message: error.message, mismatches }
  }

  /** Start one call; returns a promise while it runs asynchronously, undefined when it finished synchronously. */
  private request(
    frame: Frame,
    connection: ServerConnection,
    running: Map<number, Running>,
    session: Map<string, unknown>,
    send: Send,
  ): Promise<void> | undefined {
    const entry = this.spec.byId.get(frame.method)
    const name = entry === undefined ? `#${frame.method}` : entry.name
    const deadline = frame.timeout === undefined ? undefined : Date.now() + frame.timeout
    const run = new Running(name, deadline, session, connection, this.support, frame, send, running)
    if (entry === undefined) {
      run.fail(new RpcUnknownMethodError(`no method with id ${frame.method} in service ${this.spec.name}`))
      return undefined
    }
    const def = entry.def
    let request: unknown
    try {
      request = def.request.decode(frame.payload)
    } catch (error) {
      run.fail(new RpcDecodeError(`${name}: undecodable request: ${error instanceof Error ? error.message : String(error)}`))
      return undefined
    }
    if (frame.timeout !== undefined) run.startDeadline(frame.timeout)
    running.set(frame.call, run)
    const handler = (this.handlers as Record<string, (request: unknown, ctx: RpcContext) => unknown>)[name] as (request: unknown, ctx: RpcContext) => unknown
    let result: unknown
    try {
      result = handler(request, run)
    } catch (error) {
      run.onError(error)
      return undefined
    }
    if (def.stream === true)
      return this.pump(result, def, frame, run, send).then(
        (bytesOut) => {
          run.finish()
          run.publish(bytesOut, run.aborted ? run.reason : undefined)
        },
        (error: unknown) => run.onError(error),
      )
    if (isPromiseLike(result))
      return Promise.resolve(result).then(
        (value) => run.reply(value, def),
        (error: unknown) => run.onError(error),
      )
    run.reply(result, def)
    return undefined
  }

  /** Send a stream's items; resolves with the bytes written. */
  private async pump(result: unknown, def: MethodDef, frame: Frame, signal: Running, send: Send): Promise<number> {
    const source = (isPromiseLike(result) ? await result : result) as AsyncIterable<unknown> | Iterable<unknown>
    const codec = def.response ?? NONE
    if (source === null || typeof source !== 'object' || !(Symbol.asyncIterator in source || Symbol.iterator in source)) {
      throw new RpcSpecError('a stream handler must return an async generator or an iterable')
    }
    let bytes = 0
    for await (const item of source as AsyncIterable<unknown>) {
      if (signal.aborted) return bytes
      const chunks = encodeFrame(FrameType.STREAM_CHUNK, frame.method, frame.call, codec.encode(item))
      bytes += chunksLength(chunks)
      const wait = send(chunks)
      if (wait !== undefined) await wait
      if (signal.aborted) return bytes
    }
    if (!signal.aborted) {
      void send(encodeFrame(FrameType.STREAM_END, frame.method, frame.call, EMPTY))
      bytes += HEADER
    }
    return bytes
  }

  private errorBody(error: unknown): { name: string; code?: string; message: string; stack?: string } {
    const e = error instanceof Error ? error : undefined
    const code = e !== undefined && typeof (e as { code?: unknown }).code === 'string' ? (e as unknown as { code: string }).code : undefined
    return {
      name: e?.name ?? 'Error',
      ...(code === undefined ? {} : { code }),
      message: e?.message ?? String(error),
      ...(this.options.exposeStack === true && e?.stack !== undefined ? { stack: e.stack } : {}),
    }
  }

  // ── basic-socket-rpc ───────────────────────────────────────────────────────────────────────

  private async serveBsr(connection: ServerConnection): Promise<void> {
    const stream = connection.stream
    const session = new Map<string, unknown>()
    let established = false
    const exception = async (name: string, text: string): Promise<void> => {
      try {
        await connection.write(encodeBsr(BsrType.EXCEPTION, bsrString(name), bsrString(text)))
      } catch {
        // connection gone
      }
    }
    const write = async (bytes: Uint8Array): Promise<void> => {
      try {
        await connection.write(bytes)
      } catch {
        // connection gone
      }
    }
    for (;;) {
      let frame: BsrFrame | typeof NEED_MORE
      try {
        frame = this.bsr.decode(stream)
      } catch (error) {
        // A size below the header or over the limit: the stream cannot be resynchronised.
        await exception('ProtocolError', error instanceof Error ? error.message : String(error))
        return
      }
      if (frame === NEED_MORE) {
        if (stream.ended || connection.signal.aborted) return
        try {
          if (!(await stream.fill())) return
        } catch {
          return
        }
        continue
      }
      if (frame.type === BsrType.INIT) {
        if (established) {
          await exception('ProtocolError', 'Initialization already occurred')
          continue
        }
        if (frame.payload.length < 3) {
          await exception('ValueError', `Cannot deserialize version, insufficient bytes: ${frame.payload.length}. Expected 3`)
          return
        }
        const major = frame.payload[0] as number
        if (major !== 0) {
          await exception('ProtocolError', `Incorrect major version: ${major}. Expected 0`)
          continue
        }
        const refusal = this.insecureRefusal(connection)
        if (refusal !== undefined) {
          await exception(refusal.name, refusal.message)
          return
        }
        established = true
        await write(encodeBsr(BsrType.INIT, ONE))
        continue
      }
      if (frame.type !== BsrType.RPC) {
        await exception('ProtocolError', `Unexpected msg_type: ${frame.type}`)
        continue
      }
      if (!established) {
        await exception('ProtocolError', 'Need to initialize connection first')
        continue
      }
      if (frame.payload.length < 2) {
        await exception('ProtocolError', 'Insufficient bytes in command.')
        continue
      }
      const id = (frame.payload[0] as number) | ((frame.payload[1] as number) << 8)
      const entry = this.spec.byId.get(id)
      if (entry === undefined) {
        await exception('ProtocolError', `Unknown command with id: ${id}`)
        continue
      }
      const { name, def } = entry
      let request: unknown
      try {
        request = decodeBsrValue(def.request, frame.payload.subarray(2))
      } catch (error) {
        // What basic-socket-rpc's own deserializers raise for bad bytes.
        await exception('ValueError', error instanceof Error ? error.message : String(error))
        continue
      }
      const handler = (this.handlers as Record<string, (request: unknown, ctx: RpcContext) => unknown>)[name] as (request: unknown, ctx: RpcContext) => unknown
      const ctx: RpcContext = { signal: connection.signal, deadline: undefined, peer: connection.peer, session, method: name }
      let reply: Uint8Array
      try {
        const value = await handler(request, ctx)
        reply = encodeBsr(BsrType.RPC, (def.response ?? NONE).encodeField(value))
      } catch (error) {
        this.logger.debug({ peer: connection.peer, method: name, err: error }, 'RPC: handler threw')
        const body = this.errorBody(error)
        await exception(body.name, body.stack ?? body.message)
        continue
      }
      await write(reply)
    }
  }
}

/** Bytes of replies batched in one burst before they are written without waiting for its end. */
const BATCH_LIMIT = 64 * 1024
const EMPTY = new Uint8Array(0)
const ONE = new Uint8Array([1])
const NONE = { encode: (): Uint8Array => EMPTY, encodeField: (): Uint8Array => EMPTY }

/** Bytes of a decoded frame on the wire (header, optional timeout, payload). */
function frameBytes(frame: Frame): number {
  return HEADER + (frame.timeout === undefined ? 0 : 4) + frame.payload.length
}

function chunksLength(chunks: Uint8Array[]): number {
  let n = 0
  for (const chunk of chunks) n += chunk.length
  return n
}

function json(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value))
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function'
}

