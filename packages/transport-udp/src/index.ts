/**
 * @packageDocumentation
 * labwire's UDP transport: {@link UdpClient} / {@link UdpClientSession} for datagram instruments
 * and {@link UdpServer} for simulating them. Each datagram is one chunk of the byte stream, each
 * request and each reply one datagram; framers work on the stream as on TCP. UDP is lossy:
 * a timeout is the only sign of a lost datagram (see the README).
 *
 * @example
 * ```ts
 * import { UdpClient, UdpServer } from '@labwire/transport-udp'
 *
 * const server = new UdpServer({ port: 0, callback: async (bytes) => (await bytes.next()).value })
 * const { port } = await server.listen()
 * await using session = await new UdpClient({ host: '127.0.0.1', port, timeout: 1_000 }).connect()
 * const reply = await session.request(new TextEncoder().encode('ping')).next()
 * await server.close()
 * ```
 */
export * from './client.js'
export * from './server.js'
