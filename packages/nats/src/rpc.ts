import { RemoteError, RpcSpecError, type CallOptions, type ClientMethods, type Handlers, type MethodDef, type RpcContext, type RpcStream, type ServiceSpec } from '@labwire/rpc'
import { NatsClient, type NatsClientSession } from './client.js'
import { NatsServiceError, type NatsConnectOptions } from './protocol.js'
import type { NatsCallEndpoint, NatsEndpoint, NatsStreamEndpoint } from './server.js'

const EMPTY = new Uint8Array(0)

function methodsOf(spec: ServiceSpec): [string, MethodDef][] {
  return Object.entries(spec.methods)
}

/**
 * An `@labwire/rpc` service as NATS micro-service endpoints, one per method (subject
 * `SERVICE.METHOD`): the request payload is the method's request codec, the reply its response
 * codec, a thrown error goes back in the ADR-32 headers. Any NATS client can call it
 * (`nats req greet.hello bob` for a string method). Pass to `new NatsServer({ name: spec.name, endpoints })`.
 *
 * Stream methods (`stream: true`) become stream endpoints: each item the handler yields is one
 * reply message (its response codec), paced by the caller's credit, `ctx.signal` aborting when the
 * caller stops or its deadline passes. One-way methods answer an empty reply.
 */
export function rpcEndpoints<S extends ServiceSpec>(spec: S, handlers: Handlers<S>, options: { allowInsecureCodecs?: boolean } = {}): (NatsEndpoint | NatsStreamEndpoint | NatsCallEndpoint)[] {
  return methodsOf(spec).map(([method, def]): NatsStreamEndpoint | NatsCallEndpoint => {
    if ((def.request.insecure === true || def.response?.insecure === true) && options.allowInsecureCodecs !== true) {
      throw new RpcSpecError(`rpcEndpoints: ${spec.name}.${method} uses an insecure codec over NATS; pass allowInsecureCodecs: true`)
    }
    const handler = (handlers as unknown as Record<string, (request: unknown, ctx: RpcContext) => unknown>)[method]
    if (typeof handler !== 'function') throw new RpcSpecError(`rpcEndpoints: no handler function for method ${method}`)
    const metadata = { id: String(def.id), request: def.request.name, response: def.response?.name ?? 'none', ...(def.stream === true ? { stream: 'true' } : {}) }
    if (def.stream === true) {
      const codec = (def.response ?? { encode: () => EMPTY }) as { encode(value: unknown): Uint8Array }
      const stream: NatsStreamEndpoint['stream'] = async function* (payload, streamCtx) {
        const request: unknown = def.request.decode(payload)
        const ctx: RpcContext = { signal: streamCtx.signal, deadline: streamCtx.deadline, peer: 'nats', session: new Map(), method }
        const source = (await handler(request, ctx)) as AsyncIterable<unknown> | Iterable<unknown> | null
        if (source === null || typeof source !== 'object' || !(Symbol.asyncIterator in source || Symbol.iterator in source)) {
          throw new RpcSpecError(`${spec.name}.${method}: a stream handler must return an async generator or an iterable`)
        }
        for await (const item of source as AsyncIterable<unknown>) {
          if (streamCtx.signal.aborted) return
          yield codec.encode(item)
        }
      }
      return { name: method, stream, metadata }
    }
    const call: NatsCallEndpoint['call'] = async (payload, callCtx) => {
      const request: unknown = def.request.decode(payload)
      const ctx: RpcContext = { signal: callCtx.signal, deadline: callCtx.deadline, peer: 'nats', session: new Map(), method }
      const result = await handler(request, ctx)
      if (def.oneWay === true || def.response === undefined) return EMPTY
      return (def.response as { encode(value: unknown): Uint8Array }).encode(result)
    }
    return { name: method, call, metadata }
  })
}

/** A handler's error (status 500) as `RemoteError`; anything else as it is. */
function asRemote(error: unknown, method: string): unknown {
  if (error instanceof NatsServiceError && error.statusCode === 500) return new RemoteError(error.description, { remoteName: error.remoteName ?? 'Error', method, cause: error })
  return error
}

/** An RPC client over NATS: the spec's methods, plus `close()` and `await using`. */
export type NatsRpcSession<S extends ServiceSpec> = ClientMethods<S> & AsyncDisposable & { close(): Promise<void> }

/**
 * Call an `@labwire/rpc` service published with {@link rpcEndpoints} by name: each method goes to
 * `SERVICE.METHOD` as one NATS request (chunked past `max_payload`, retried while no instance is
 * subscribed, in-flight calls independent of each other). A thrown handler error arrives as
 * `RemoteError`; `NoRespondersError`, `TimeoutError` as for {@link NatsClient}. A stream method
 * returns an `RpcStream` (iterate it; break or `cancel()` stops the handler); `window` (default
 * 16) is how many of its items may wait here before the service waits for the consumer.
 */
export async function connectNatsRpc<S extends ServiceSpec>(spec: S, options: NatsConnectOptions & { timeout?: number; window?: number }): Promise<NatsRpcSession<S>> {
  const session: NatsClientSession = await new NatsClient({ ...options, name: spec.name }).connect()
  const methods: Record<string, unknown> = {}
  for (const [method, def] of methodsOf(spec)) {
    if (def.stream === true) {
      methods[method] = (request: unknown, callOptions: CallOptions = {}): RpcStream<unknown> => {
        const payload = (def.request as { encode(value: unknown): Uint8Array }).encode(request)
        const items = session.requestStream(payload, {
          subject: `${spec.name}.${method}`,
          ...(callOptions.signal === undefined ? {} : { signal: callOptions.signal }),
          ...(callOptions.timeout === undefined ? {} : { timeout: callOptions.timeout }),
          ...(options.window === undefined ? {} : { window: options.window }),
        })
        const decode = def.response === undefined ? () => undefined : (bytes: Uint8Array): unknown => (def.response as { decode(bytes: Uint8Array): unknown }).decode(bytes)
        return {
          [Symbol.asyncIterator]: async function* () {
            try {
              for await (const item of items) yield decode(item)
            } catch (error) {
              throw asRemote(error, method)
            }
          },
          cancel: () => items.cancel(),
        }
      }
      continue
    }
    methods[method] = async (request: unknown, callOptions: CallOptions = {}): Promise<unknown> => {
      let reply: Uint8Array
      try {
        reply = await session.call((def.request as { encode(value: unknown): Uint8Array }).encode(request), {
          subject: `${spec.name}.${method}`,
          ...(callOptions.signal === undefined ? {} : { signal: callOptions.signal }),
          ...(callOptions.timeout === undefined ? {} : { timeout: callOptions.timeout }),
        })
      } catch (error) {
        throw asRemote(error, method)
      }
      if (def.oneWay === true || def.response === undefined) return undefined
      return def.response.decode(reply) as unknown
    }
  }
  return Object.assign(methods, {
    close: () => session.close(),
    [Symbol.asyncDispose]: () => session.close(),
  }) as unknown as NatsRpcSession<S>
}
