/**
 * @packageDocumentation
 * labwire's service registry, speaking RPyC's registry protocol (brine-encoded
 * `("RPYC", command, args)` over UDP or TCP) so RPyC's `rpyc_registry` and registry clients
 * interoperate with it both ways. Beyond RPyC: a service may advertise its own host, stale
 * entries are pruned by a timer, a client may ask several registries, and everything binds
 * loopback unless told otherwise.
 *
 * @example
 * ```ts
 * import { RegistryClient, RegistryServer } from '@labwire/registry'
 *
 * await using registry = new RegistryServer({ port: 0, pruneTimeout: 10_000 })
 * const { port } = await registry.listen()
 * const client = new RegistryClient({ host: '127.0.0.1', port })
 * await client.register('scope', 5025)
 * console.log(await client.discover('SCOPE')) // [{ host: '127.0.0.1', port: 5025 }]
 * console.log(await client.list()) // ['SCOPE']
 * ```
 */
export * from './brine.js'
export * from './protocol.js'
export * from './server.js'
export * from './client.js'
export * from './registration.js'
export * from './discovered.js'
