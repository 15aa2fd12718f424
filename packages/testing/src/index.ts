/**
 * @packageDocumentation
 * labwire's test harness: {@link scriptedDevice} plays a conversation (expect this request, send
 * that reply) so a driver can be tested without the instrument, over the memory transport or a
 * real socket; a wrong request fails with a readable diff. A script can come from a transcript
 * recorded by `labwire proxy --transcript`. Works with any test runner (vitest, node:test).
 *
 * @example
 * ```ts
 * import { ApplicationClient } from '@labwire/application'
 * import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
 * import { scriptedDevice } from '@labwire/testing'
 *
 * const device = scriptedDevice([{ expect: '*IDN?', reply: 'ACME,PSU,1,1.0' }, { expect: 'VOLT 5' }, { expect: 'VOLT?', reply: '5.000' }])
 * const lines = textMarshaller(new SentinelBytesMarshaller('\n'))
 * const session = await new ApplicationClient(device.client(), lines.marshall, lines.unmarshall).connect()
 * await session.sendReceive('*IDN?') // 'ACME,PSU,1,1.0'
 * await session.send('VOLT 5')
 * await session.sendReceive('VOLT?') // '5.000'
 * await session.close()
 * device.verify() // throws a diff on a wrong request, or lists the steps never reached
 * ```
 */
export * from './scripted.js'
export * from './errors.js'
