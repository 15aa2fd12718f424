import { ConnectionError, type ByteHandlerFunction } from '@labwire/core'
import { RemoteError, RpcSpecError, type CallOptions, type ClientMethods, type Handlers, type MethodDef, type RpcContext, type ServiceSpec } from '@labwire/rpc'
import { NatsClient, type NatsClientSession } from './client.js'
import { NatsServiceError, type NatsConnectOptions } from './protocol.js'
import type { NatsEndpoint } from './server.js'

const EMPTY = new Uint8Array(0)

async function readAll(bytes: AsyncIterator<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  for (;;) {
    const result = await bytes.next()
    if (result.done === true) break
    parts.push(result.value)
  }
  return parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts)
}

function methodsOf(spec: ServiceSpec): [string, MethodDef][] {
  return Object.entries(spec.methods)
}

/**
 * An `@labwire/rpc` service as NATS micro-service endpoints, one per method (subject
 * `SERVICE.METHOD`): the request payload is the method's request codec, the reply its response
 * codec, a thrown error goes back in the ADR-32 headers. Any NATS client can call it
 * (`nats req greet.hello bob` for a string method). Pass to `new NatsServer({ name: spec.name, endpoints })`.
 *
 * Stream methods are not served over NATS yet (RangeError); one-way methods answer an empty reply.
 */
export function rpcEndpoints<S extends ServiceSpec>(spec: S, handlers: Handlers<S>, options: { allowInsecureCodecs?: boolean } = {}): NatsEndpoint[] {
  return methodsOf(spec).map(([method, def]) => {
    if (def.stream === true) throw new RangeError(`rpcEndpoints: ${spec.name}.${method} is a stream method; stream methods are not served over NATS yet`)
    if ((def.request.insecure === true || def.response?.insecure === true) && options.allowInsecureCodecs !== true) {
      throw new RpcSpecError(`rpcEndpoints: ${spec.name}.${method} uses an insecure codec over NATS; pass allowInsecureCodecs: true`)
    }
    const handler = (handlers as unknown as Record<string, (request: unknown, ctx: RpcContext) => unknown>)[method]
    if (typeof handler !== 'function') throw new RpcSpecError(`rpcEndpoints: no handler function for method ${method}`)
    const callback: ByteHandlerFunction = async (bytes) => {
      const request: unknown = def.request.decode(await readAll(bytes))
      const controller = new AbortController()
      const ctx: RpcContext = { signal: controller.signal, deadline: undefined, peer: 'nats', session: new Map(), method }
      const result = await handler(request, ctx)
      if (def.oneWay === true || def.response === undefined) return EMPTY
      return (def.response as { encode(value: unknown): Uint8Array }).encode(result)
    }
    return { name: method, callback, metadata: { id: String(def.id), request: def.request.name, response: def.response?.name ?? 'none' } }
  })
}

/** An RPC client over NATS: the spec's methods, plus `close()` and `await using`. */
export type NatsRpcSession<S extends ServiceSpec> = ClientMethods<S> & AsyncDisposable & { close(): Promise<void> }

/**
 * Call an `@labwire/rpc` service published with {@link rpcEndpoints} by name: each method goes to
 * `SERVICE.METHOD` as one NATS request (chunked past `max_payload`, retried while no instance is
 * subscribed, in-flight calls independent of each other). A thrown handler error arrives as
 * `RemoteError`; `NoRespondersError`, `TimeoutError` as for {@link NatsClient}.
 */
export async function connectNatsRpc<S extends ServiceSpec>(spec: S, options: NatsConnectOptions & { timeout?: number }): Promise<NatsRpcSession<S>> {
  const session: NatsClientSession = await new NatsClient({ ...options, name: spec.name }).connect()
  const methods: Record<string, unknown> = {}
  for (const [method, def] of methodsOf(spec)) {
    if (def.stream === true) {
      methods[method] = () => {
        throw new RangeError(`${spec.name}.${method} is a stream method; stream methods are not served over NATS yet`)
      }
      continue
    }
    methods[method] = async (request: unknown, callOptions: CallOptions = {}): Promise<unknown> => {
      if (callOptions.signal?.aborted === true) throw new ConnectionError(`${spec.name}.${method}: aborted before it was sent`, { cause: callOptions.signal.reason })
      let reply: Uint8Array
      try {
        reply = await session.call((def.request as { encode(value: unknown): Uint8Array }).encode(request), { subject: `${spec.name}.${method}` })
      } catch (error) {
        if (error instanceof NatsServiceError && error.statusCode === 500) {
          throw new RemoteError(error.description, { remoteName: error.remoteName ?? 'Error', method, cause: error })
        }
        throw error
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
