import { describe, expect, it } from 'vitest'
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import { TimeoutError } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { applicationCompliance } from './compliance/application.js'
import { rejectionOf, tcpSetup } from './helpers/fixtures.js'

applicationCompliance(tcpSetup)

describe('a request the device never answers', () => {
  it('keeps its slot, so a later call times out naming the stuck request instead of taking a wrong reply', async () => {
    const line = textMarshaller(new SentinelBytesMarshaller('\n'))
    const app = new ApplicationServer(line.unmarshall, line.marshall, (cmd: string) => (cmd === 'DROP' ? undefined : `ok ${cmd}`))
    const fixture = await tcpSetup.start(app)
    try {
      const client = new ApplicationClient(fixture.client, line.marshall, line.unmarshall, { timeout: 100 })
      await using session = await client.connect()
      const first = await rejectionOf(session.sendReceive('DROP'))
      expect(first).toBeInstanceOf(TimeoutError)
      const second = await rejectionOf(session.sendReceive('A'))
      expect(second).toBeInstanceOf(TimeoutError)
      expect((second as TimeoutError).message).toMatch(/waiting behind 1 earlier request/)
    } finally {
      await fixture.close()
    }
  })
})