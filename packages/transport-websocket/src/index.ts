/**
 * @packageDocumentation
 * labwire's WebSocket transport, on the `ws` library: {@link WebSocketClient} /
 * {@link WebSocketClientSession} and {@link WebSocketServer} with an endpoint path. Binary
 * messages are chunks of the connection's byte stream (their boundaries carry no meaning: framing
 * is the marshaller's job); backpressure follows `bufferedAmount` and pauses the socket.
 *
 * @example
 * ```ts
 * import { WebSocketClient, WebSocketServer } from '@labwire/transport-websocket'
 *
 * const server = new WebSocketServer({ port: 0, path: '/echo', callback: async (bytes) => (await bytes.next()).value })
 * await server.listen()
 * await using session = await new WebSocketClient({ url: server.url as string }).connect()
 * const reply = await session.request(new TextEncoder().encode('ping')).next()
 * await server.close()
 * ```
 */
export * from './client.js'
export * from './server.js'
