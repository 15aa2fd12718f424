/**
 * @packageDocumentation
 * labwire's TCP transport: {@link TcpClient} / {@link TcpClientSession} for talking to devices
 * (SCPI on port 5025 and the like) and {@link TcpServer} for simulating them. The same classes
 * speak TLS (the `tls` option: server certificate, mutual TLS, `servername`) and run over Unix
 * domain sockets (`path` instead of `host` + `port`).
 *
 * @example
 * ```ts
 * import { TcpClient, TcpServer } from '@labwire/transport-tcp'
 *
 * const server = new TcpServer({ port: 0, callback: async (bytes) => (await bytes.next()).value })
 * const { port } = await server.listen()
 * await using session = await new TcpClient({ host: '127.0.0.1', port }).connect()
 * const reply = await session.request(new TextEncoder().encode('ping')).next()
 * await server.close()
 * ```
 */
export { TcpClient, TcpClientSession, formatTarget, type TcpClientOptions } from './client.js'
export * from './server.js'
export { SocketIo, lingeringClose, replyWriter, socketErrorListener, type ReplyWriter } from './reply-writer.js'
export type { TcpClientTlsOptions, TcpServerTlsOptions } from './tls.js'
