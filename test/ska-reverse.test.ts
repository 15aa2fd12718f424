/**
 * The SKA upstream scenario (ska_ser_devices.client_server's reverse test): requests are fixed-length
 * 10,000-byte frames, the server reverses them and answers with a `\n`-terminated frame.
 */
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import { FixedLengthBytesMarshaller, SentinelBytesMarshaller } from '@labwire/marshallers'
import { memorySetup, tcpSetup, type TransportSetup } from './helpers/fixtures.js'

const FRAME = 10_000
const NEWLINE = 0x0a

/** Random bytes without '\n' (a '\n' would end the sentinel-framed response early). */
function payload(): Uint8Array {
  const bytes = new Uint8Array(randomBytes(FRAME))
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === NEWLINE) bytes[i] = NEWLINE + 1
  return bytes
}

const reversed = (bytes: Uint8Array): Uint8Array => bytes.slice().reverse()

describe.each([memorySetup, tcpSetup])('SKA reverse server over $name', (setup: TransportSetup) => {
  const requests = new FixedLengthBytesMarshaller(FRAME)
  const responses = new SentinelBytesMarshaller('\n')

  async function withReverseServer(run: (client: ApplicationClient<Uint8Array, Uint8Array>) => Promise<void>): Promise<void> {
    const server = new ApplicationServer(requests.unmarshall, responses.marshall, reversed)
    const fixture = await setup.start(server)
    try {
      await run(new ApplicationClient(fixture.client, requests.marshall, responses.unmarshall, { timeout: 5_000 }))
    } finally {
      await fixture.close()
    }
  }

  async function threeRoundTrips(client: ApplicationClient<Uint8Array, Uint8Array>): Promise<void> {
    await using session = await client.connect({ signal: AbortSignal.timeout(5_000) })
    for (let i = 0; i < 3; i++) {
      const request = payload()
      const response = await session.sendReceive(request)
      expect(response).toHaveLength(FRAME)
      expect(response).toEqual(reversed(request))
    }
  }

  it('answers 3 round trips per session, 2 sessions one after the other', async () => {
    await withReverseServer(async (client) => {
      await threeRoundTrips(client)
      await threeRoundTrips(client)
    })
  })

  it('answers 3 round trips per session, 2 sessions at once', async () => {
    await withReverseServer(async (client) => {
      await Promise.all([threeRoundTrips(client), threeRoundTrips(client)])
    })
  })

  it('answers 3 concurrent calls on one session in order', async () => {
    await withReverseServer(async (client) => {
      await using session = await client.connect()
      const sent = [payload(), payload(), payload()]
      const answers = await Promise.all(sent.map((request) => session.sendReceive(request)))
      answers.forEach((answer, i) => expect(answer).toEqual(reversed(sent[i] as Uint8Array)))
    })
  })
})
