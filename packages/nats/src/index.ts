/**
 * @packageDocumentation
 * labwire past one machine: {@link NatsServer} publishes any `ByteHandler` (an `ApplicationServer`,
 * a simulated device, an instrument gateway) as a NATS micro service (ADR-32: `$SRV.PING|INFO|STATS`,
 * queue group `q`, errors in `Nats-Service-Error` headers); {@link NatsClient} is a
 * `TransportClient` that reaches it by name through any node of the cluster.
 *
 * @example
 * ```ts
 * import { ApplicationClient, ApplicationServer } from '@labwire/application'
 * import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
 * import { NatsClient, NatsServer } from '@labwire/nats'
 *
 * const lines = textMarshaller(new SentinelBytesMarshaller('\n'))
 * const device = new ApplicationServer(lines.unmarshall, lines.marshall, (cmd) => (cmd === '*IDN?' ? 'ACME,NATS-1,0,1.0' : undefined))
 * await using service = new NatsServer({ servers: 'nats://127.0.0.1:4222', name: 'psu', callback: device })
 * await service.listen()
 * const client = new ApplicationClient(new NatsClient({ servers: 'nats://127.0.0.1:4222', name: 'psu' }), lines.marshall, lines.unmarshall)
 * await using session = await client.connect()
 * console.log(await session.sendReceive('*IDN?')) // ACME,NATS-1,0,1.0
 * ```
 */
export * from './protocol.js'
export * from './server.js'
export * from './client.js'
export * from './rpc.js'
