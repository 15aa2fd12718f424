/**
 * RpcServer: a `ConnectionHandler`, so it is the `callback` of any transport server.
 *
 * @module
 */
import {
  AbortError,
  ConnectionClosedError,
  NEED_MORE,
  TimeoutError,
  isLabwireError,
  silentLogger,
  type ConnectionHandler,
  type FrameDecoder,
  type Logger,
  type ServerConnection,
} from '@labwire/core'
import { checkBsrSpec, decodeBsrValue, type RpcProtocol } from './client.js'
import { RpcDecodeError, RpcInsecureCodecError, RpcProtocolError, RpcSpecError, RpcSpecMismatchError, RpcUnknownMethodError } from './errors.js'
import { compareFingerprints, insecureMethods, type Handlers, type MethodDef, type MethodFingerprint, type RpcContext, type ServiceSpec } from './spec.js'
import { BsrType, DEFAULT_MAX_FRAME, FLAG_ONE_WAY, FrameType, bsrDecoder, bsrString, encodeBsr, encodeFrame, frameDecoder, type BsrFrame, type Frame } from './wire.js'

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

interface Running {
  controller: AbortController
  timer: ReturnType<typeof setTimeout> | undefined
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
    let slot: (() => void) | undefined
    const onClose = (): void => {
      for (const run of running.values()) run.controller.abort(connection.signal.reason)
    }
    connection.signal.addEventListener('abort', onClose, { once: true })
    const send = (chunks: Uint8Array[]): Promise<void> | undefined => {
      if (connection.signal.aborted) return undefined
      try {
        let wait: Promise<void> | undefined
        for (const chunk of chunks) wait = connection.write(chunk) ?? wait
        return wait?.catch(() => undefined)
      } catch {
        return undefined
      }
    }
    try {
      for (;;) {
        if (running.size >= this.maxCalls) await new Promise<void>((resolve) => (slot = resolve))
        let frame: Frame | typeof NEED_MORE
        try {
          frame = this.decoder.decode(stream)
        } catch (error) {
          this.logger.warn({ peer: connection.peer, err: error }, 'RPC: malformed frame, closing the connection')
          return
        }
        if (frame === NEED_MORE) {
          if (stream.ended) return
          try {
            if (!(await stream.fill())) return
          } catch {
            return
          }
          continue
        }
        if (!greeted) {
          if (frame.type !== FrameType.HELLO) {
            this.logger.warn({ peer: connection.peer }, `RPC: expected HELLO, got frame type ${frame.type}; closing`)
            return
          }
          const refusal = this.hello(frame.payload, connection)
          if (refusal !== undefined) {
            await send(encodeFrame(FrameType.HELLO_ERROR, 0, 0, json(refusal)))
            return
          }
          greeted = true
          void send(encodeFrame(FrameType.HELLO_OK, 0, 0, EMPTY))
          continue
        }
        switch (frame.type) {
          case FrameType.PING:
            void send(encodeFrame(FrameType.PONG, 0, frame.call, EMPTY))
            break
          case FrameType.CANCEL:
            running.get(frame.call)?.controller.abort(new AbortError('the client cancelled the call'))
            break
          case FrameType.REQUEST: {
            if (running.has(frame.call)) {
              this.logger.warn({ peer: connection.peer, call: frame.call }, 'RPC: call id already in flight; closing')
              return
            }
            const done = this.request(frame, connection, running, session, send)
            if (done !== undefined) {
              inflight.add(done)
              void done.then(() => {
                inflight.delete(done)
                const wake = slot
                slot = undefined
                wake?.()
              })
            }
            break
          }
          default:
            this.logger.warn({ peer: connection.peer, type: frame.type }, 'RPC: unexpected frame type; closing')
            return
        }
      }
    } finally {
      connection.signal.removeEventListener('abort', onClose)
      // Input ended or broke: calls still running finish (the kernel's drain) unless the connection closes.
      if (inflight.size > 0) await Promise.allSettled([...inflight])
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
    send: (chunks: Uint8Array[]) => Promise<void> | undefined,
  ): Promise<void> | undefined {
    const oneWay = (frame.flags & FLAG_ONE_WAY) !== 0
    const entry = this.spec.byId.get(frame.method)
    const fail = (error: unknown, name: string): void => {
      if (oneWay) {
        this.logger.warn({ peer: connection.peer, method: name, err: error }, 'RPC: one-way call failed')
        return
      }
      void send(encodeFrame(FrameType.ERROR, frame.method, frame.call, json(this.errorBody(error))))
    }
    if (entry === undefined) {
      fail(new RpcUnknownMethodError(`no method with id ${frame.method} in service ${this.spec.name}`), `#${frame.method}`)
      return undefined
    }
    const { name, def } = entry
    let request: unknown
    try {
      request = def.request.decode(frame.payload)
    } catch (error) {
      fail(new RpcDecodeError(`${name}: undecodable request: ${error instanceof Error ? error.message : String(error)}`), name)
      return undefined
    }
    const controller = new AbortController()
    const deadline = frame.timeout === undefined ? undefined : Date.now() + frame.timeout
    const run: Running = { controller, timer: undefined }
    if (frame.timeout !== undefined) {
      run.timer = setTimeout(() => controller.abort(new TimeoutError(`${name}: the call's deadline (${frame.timeout} ms) passed`)), frame.timeout)
    }
    running.set(frame.call, run)
    const ctx: RpcContext = { signal: controller.signal, deadline, peer: connection.peer, session, method: name }
    const finish = (): void => {
      if (run.timer !== undefined) clearTimeout(run.timer)
      if (running.get(frame.call) === run) running.delete(frame.call)
    }
    const handler = (this.handlers as Record<string, (request: unknown, ctx: RpcContext) => unknown>)[name] as (request: unknown, ctx: RpcContext) => unknown
    const onError = (error: unknown): void => {
      finish()
      // A cancelled or expired call has nobody waiting for its answer.
      if (controller.signal.aborted) return
      this.logger.debug({ peer: connection.peer, method: name, err: error }, 'RPC: handler threw')
      fail(error, name)
    }
    let result: unknown
    try {
      result = handler(request, ctx)
    } catch (error) {
      onError(error)
      return undefined
    }
    if (def.stream === true) return this.pump(result, def, frame, controller.signal, send).then(finish, onError)
    const reply = (value: unknown): void => {
      finish()
      if (oneWay || controller.signal.aborted) return
      let payload: Uint8Array
      try {
        payload = (def.response ?? NONE).encode(value)
      } catch (error) {
        fail(new RpcDecodeError(`${name}: the handler's result does not encode: ${error instanceof Error ? error.message : String(error)}`), name)
        return
      }
      void send(encodeFrame(FrameType.RESPONSE, frame.method, frame.call, payload))
    }
    if (isPromiseLike(result)) return Promise.resolve(result).then(reply, onError)
    reply(result)
    return undefined
  }

  private async pump(result: unknown, def: MethodDef, frame: Frame, signal: AbortSignal, send: (chunks: Uint8Array[]) => Promise<void> | undefined): Promise<void> {
    const source = (isPromiseLike(result) ? await result : result) as AsyncIterable<unknown> | Iterable<unknown>
    const codec = def.response ?? NONE
    if (source === null || typeof source !== 'object' || !(Symbol.asyncIterator in source || Symbol.iterator in source)) {
      throw new RpcSpecError('a stream handler must return an async generator or an iterable')
    }
    for await (const item of source as AsyncIterable<unknown>) {
      if (signal.aborted) return
      const wait = send(encodeFrame(FrameType.STREAM_CHUNK, frame.method, frame.call, codec.encode(item)))
      if (wait !== undefined) await wait
      if (signal.aborted) return
    }
    if (!signal.aborted) void send(encodeFrame(FrameType.STREAM_END, frame.method, frame.call, EMPTY))
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

const EMPTY = new Uint8Array(0)
const ONE = new Uint8Array([1])
const NONE = { encode: (): Uint8Array => EMPTY, encodeField: (): Uint8Array => EMPTY }

function json(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value))
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function'
}

