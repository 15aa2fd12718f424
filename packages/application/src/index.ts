/**
 * @packageDocumentation
 * The application layer: {@link ApplicationClient} and {@link ApplicationServer} wrap any
 * labwire transport with a request marshaller and a response unmarshaller.
 *
 * @example
 * ```ts
 * import { ApplicationClient } from '@labwire/application'
 * import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
 * import { TcpClient } from '@labwire/transport-tcp'
 *
 * const scpi = textMarshaller(new SentinelBytesMarshaller('\n'))
 * const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port: 5025 }), scpi.marshall, scpi.unmarshall)
 * await using session = await client.connect()
 * console.log(await session.sendReceive('*IDN?'))
 * ```
 */
export * from './client.js'
export * from './server.js'
