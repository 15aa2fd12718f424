/**
 * @packageDocumentation
 * labwire's typed RPC: a service spec shared by client and server ({@link defineService}),
 * per-method {@link codecs}, many calls in flight matched by call id, deadlines and cancellation
 * that reach the handler (`ctx.signal`), server streaming, a handshake that names mismatched
 * methods, and a `basic-socket-rpc` profile that talks to that Python library's clients and servers.
 * An {@link RpcServer} is a `ConnectionHandler`: pass it as any transport server's `callback`.
 *
 * @example
 * ```ts
 * import { RpcClient, RpcServer, codecs, defineService } from '@labwire/rpc'
 * import { TcpClient, TcpServer } from '@labwire/transport-tcp'
 *
 * const greet = defineService({ name: 'greet', methods: {
 *   hello: { id: 0, request: codecs.string, response: codecs.string },
 *   add: { id: 2, request: codecs.tuple(codecs.int32le, codecs.int32le), response: codecs.int32le },
 * } })
 * const server = new TcpServer({ port: 0, callback: new RpcServer(greet, {
 *   hello: (name) => `hello ${name}`,
 *   add: ([a, b]) => a + b,
 * }) })
 * const { port } = await server.listen()
 * await using s = await new RpcClient(greet, new TcpClient({ host: '127.0.0.1', port })).connect()
 * console.log(await s.hello('bob'), await s.add([2, 3], { timeout: 500 }))
 * await server.close()
 * ```
 */
export * from './errors.js'
export * from './codecs.js'
export * from './spec.js'
export { RpcClient, type RpcClientOptions, type RpcClientSession, type RpcProtocol, type RpcSessionControl } from './client.js'
export { RpcServer, type RpcServerOptions } from './server.js'
export { FrameType, BsrType, encodeFrame, frameDecoder, bsrDecoder, encodeBsr, bsrString, parseBsrException, type Frame, type BsrFrame } from './wire.js'
