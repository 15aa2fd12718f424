/**
 * Service definitions shared by client and server, and the handshake fingerprint.
 *
 * @module
 */
import type { AbortOptions } from '@labwire/core'
import type { Codec } from './codecs.js'
import { RpcSpecError } from './errors.js'

/** One method of a service. */
export interface MethodDef<Req = any, Res = any> {
  /** 16-bit method id (0 … 65535), unique in the service: what travels on the wire. */
  readonly id: number
  readonly request: Codec<Req>
  /** Response (or stream item) codec. Default `codecs.none`. */
  readonly response?: Codec<Res>
  /** Server-streamed responses: the client gets an `AsyncIterable`, the handler is an async generator. */
  readonly stream?: boolean
  /** No reply at all: the client's promise resolves once the request is written. */
  readonly oneWay?: boolean
}

/** A service: a name and its methods. */
export interface ServiceDef<M extends Record<string, MethodDef> = Record<string, MethodDef>> {
  readonly name: string
  readonly methods: M
}

/** A service as {@link defineService} returns it: the definition plus lookup tables. */
export interface ServiceSpec<M extends Record<string, MethodDef> = Record<string, MethodDef>> extends ServiceDef<M> {
  /** Method name by id. */
  readonly byId: ReadonlyMap<number, { readonly name: string; readonly def: MethodDef }>
  /** The handshake description: one entry per method, sorted by id. */
  readonly fingerprint: readonly MethodFingerprint[]
}

/** What the handshake compares per method. */
export interface MethodFingerprint {
  readonly id: number
  readonly name: string
  readonly request: string
  readonly response: string
  readonly stream: boolean
  readonly oneWay: boolean
}

/** Per-call options: `signal`, and `timeout` in ms (sent to the server as the call's deadline). */
export interface CallOptions extends AbortOptions {
  timeout?: number
}

type ReqOf<D> = D extends MethodDef<infer Req, any> ? Req : never
type ResOf<D> = D extends { response: Codec<infer Res> } ? Res : undefined

type Args<Req> = undefined extends Req ? [request?: Req, options?: CallOptions] : [request: Req, options?: CallOptions]

/** The client-side function of one method, inferred from its definition. */
export type ClientMethod<D> = D extends { oneWay: true }
  ? (...args: Args<ReqOf<D>>) => Promise<void>
  : D extends { stream: true }
    ? (...args: Args<ReqOf<D>>) => RpcStream<ResOf<D>>
    : (...args: Args<ReqOf<D>>) => Promise<ResOf<D>>

/** The client's methods for a spec. */
export type ClientMethods<S extends ServiceDef> = { readonly [K in keyof S['methods']]: ClientMethod<S['methods'][K]> }

/** A server-streamed response: iterate it; breaking out of the loop cancels the call on the server. */
export interface RpcStream<T> extends AsyncIterable<T> {
  /** Stop: cancels the call on the server. Idempotent. */
  cancel(): void
}

/** What a handler gets besides its request. */
export interface RpcContext {
  /** Aborts when the client cancels, the call's deadline passes, or the connection drops. */
  readonly signal: AbortSignal
  /** Absolute deadline (`Date.now()` ms), when the client sent a timeout. */
  readonly deadline: number | undefined
  /** The peer, e.g. `127.0.0.1:53122`. */
  readonly peer: string
  /** Per-connection state shared by every call on this session (start empty). */
  readonly session: Map<string, unknown>
  /** The method called. */
  readonly method: string
}

/** The server-side function of one method. */
export type Handler<D> = D extends { stream: true }
  ? (request: ReqOf<D>, ctx: RpcContext) => AsyncIterable<ResOf<D>> | Iterable<ResOf<D>> | Promise<AsyncIterable<ResOf<D>> | Iterable<ResOf<D>>>
  : D extends { oneWay: true }
    ? (request: ReqOf<D>, ctx: RpcContext) => unknown
    : (request: ReqOf<D>, ctx: RpcContext) => HandlerResult<ResOf<D>>

/** What a unary handler returns: the response value (a method with no response may return nothing). */
export type HandlerResult<R> = undefined extends R ? R | void | Promise<R | void> : R | Promise<R>

/** The handlers an `RpcServer` needs for a spec: one per method. */
export type Handlers<S extends ServiceDef> = { readonly [K in keyof S['methods']]: Handler<S['methods'][K]> }

/** Names a method may not have (they are the session's own members or would confuse `await`). */
const RESERVED = new Set(['close', 'ping', 'then', 'constructor', 'closed', 'spec', '__proto__', 'prototype', 'toString', 'valueOf', 'hasOwnProperty'])

/**
 * Define a service. Checks ids (integers 0 … 65535, unique), names (not a session member such as
 * `close`), codecs and flags, and throws `RpcSpecError` naming the method otherwise.
 *
 * @example
 * ```ts
 * const greet = defineService({ name: 'greet', methods: {
 *   hello: { id: 0, request: codecs.string, response: codecs.string },
 * } })
 * ```
 */
export function defineService<const M extends Record<string, MethodDef>>(def: { name: string; methods: M }): ServiceSpec<M> {
  if (typeof def !== 'object' || def === null) throw new RpcSpecError('defineService: expected { name, methods }')
  if (typeof def.name !== 'string' || def.name === '') throw new RpcSpecError('defineService: name must be a non-empty string')
  if (typeof def.methods !== 'object' || def.methods === null) throw new RpcSpecError(`service ${def.name}: methods must be an object`)
  const byId = new Map<number, { name: string; def: MethodDef }>()
  const fingerprint: MethodFingerprint[] = []
  for (const [name, method] of Object.entries(def.methods)) {
    const where = `service ${def.name}, method ${name}`
    if (RESERVED.has(name)) throw new RpcSpecError(`${where}: the name is reserved (a member of the client session)`)
    if (typeof method !== 'object' || method === null) throw new RpcSpecError(`${where}: expected { id, request, response? }`)
    const { id } = method
    if (!Number.isInteger(id) || id < 0 || id > 0xffff) throw new RpcSpecError(`${where}: id must be an integer in 0 … 65535, got ${String(id)}`)
    const clash = byId.get(id)
    if (clash !== undefined) throw new RpcSpecError(`${where}: id ${id} is already used by ${clash.name}`)
    if (!isCodec(method.request)) throw new RpcSpecError(`${where}: request is not a codec`)
    if (method.response !== undefined && !isCodec(method.response)) throw new RpcSpecError(`${where}: response is not a codec`)
    if (method.stream === true && method.oneWay === true) throw new RpcSpecError(`${where}: a method cannot be both stream and oneWay`)
    if (method.oneWay === true && method.response !== undefined && method.response.name !== 'none') throw new RpcSpecError(`${where}: a oneWay method has no response codec`)
    byId.set(id, { name, def: method })
    fingerprint.push({
      id,
      name,
      request: method.request.name,
      response: method.response?.name ?? 'none',
      stream: method.stream === true,
      oneWay: method.oneWay === true,
    })
  }
  fingerprint.sort((a, b) => a.id - b.id)
  return Object.freeze({ name: def.name, methods: def.methods, byId, fingerprint })
}

function isCodec(value: unknown): value is Codec<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as Codec<unknown>).encode === 'function' && typeof (value as Codec<unknown>).decode === 'function' && typeof (value as Codec<unknown>).name === 'string'
}

/**
 * Compare a client's fingerprint with the server's: one line per mismatched method, e.g.
 * `add: client codec msgpack, server json`, `ramp: missing on the server`. Methods the server has
 * and the client does not use are fine.
 */
export function compareFingerprints(client: readonly MethodFingerprint[], server: readonly MethodFingerprint[]): string[] {
  const serverById = new Map(server.map((m) => [m.id, m]))
  const out: string[] = []
  for (const c of client) {
    const s = serverById.get(c.id)
    if (s === undefined) {
      out.push(`${c.name}: id ${c.id} missing on the server`)
      continue
    }
    const diffs: string[] = []
    if (s.name !== c.name) diffs.push(`client name ${c.name}, server ${s.name}`)
    if (s.request !== c.request) diffs.push(`client codec ${c.request}, server ${s.request}`)
    if (s.response !== c.response) diffs.push(`client response codec ${c.response}, server ${s.response}`)
    if (s.stream !== c.stream) diffs.push(`client stream ${String(c.stream)}, server ${String(s.stream)}`)
    if (s.oneWay !== c.oneWay) diffs.push(`client oneWay ${String(c.oneWay)}, server ${String(s.oneWay)}`)
    if (diffs.length > 0) out.push(`${c.name}: ${diffs.join(', ')}`)
  }
  return out
}

/** The methods of `spec` that use an insecure codec. */
export function insecureMethods(spec: ServiceSpec): string[] {
  const out: string[] = []
  for (const [, { name, def }] of spec.byId) {
    if (def.request.insecure === true || def.response?.insecure === true) out.push(name)
  }
  return out
}
