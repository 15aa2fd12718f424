// A node:test file using @labwire/testing (built): run by scripted.test.ts with `node --test`.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { decodeFrom } from '@labwire/core'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { scriptedDevice } from '../dist/index.js'

const lines = new SentinelBytesMarshaller('\n')

async function ask(session, command) {
  const stream = session.request(new TextEncoder().encode(`${command}\n`))
  return new TextDecoder().decode(await decodeFrom(lines.decoder, stream))
}

test('a driver talks to a scripted device over the memory transport', async () => {
  const device = scriptedDevice([{ expect: '*IDN?', reply: 'ACME,PSU,1,1.0' }, { expect: 'VOLT?', reply: '5.000' }])
  await device.run(async () => {
    const session = await device.client().connect()
    assert.equal(await ask(session, '*IDN?'), 'ACME,PSU,1,1.0')
    assert.equal(await ask(session, process.env.WRONG === '1' ? 'VOLT? MAX' : 'VOLT?'), '5.000')
    await session.close()
  })
  await device.close()
})
