/**
 * @packageDocumentation
 * labwire's Telnet transport: {@link TelnetClient} / {@link TelnetClientSession} for instruments
 * and CLI-style devices behind Telnet, {@link TelnetServer} for simulating them, and the
 * streaming IAC codec ({@link TelnetCodec}) both use. Telnet is labwire's TCP transport plus this
 * codec: timeouts, abort, close and errors behave as with TCP.
 *
 * @example
 * ```ts
 * import { TelnetClient, TelnetServer } from '@labwire/transport-telnet'
 *
 * const server = new TelnetServer({ port: 0, callback: async (bytes) => (await bytes.next()).value })
 * const { port } = await server.listen()
 * await using session = await new TelnetClient({ host: '127.0.0.1', port }).connect()
 * const reply = await session.request(Uint8Array.of(0x00, 0xff, 0x0d, 0x0a)).next() // every byte value survives
 * await server.close()
 * ```
 */
export * from './iac.js'
export * from './client.js'
export * from './server.js'
export { telnetClientFilter, telnetServerFilter, type TelnetClientFilterOptions, type TelnetServerFilterOptions, type TelnetNegotiationOptions } from './filter.js'
export { TelnetLoginError, type LoginFailure, type LoginOptions } from './login.js'
