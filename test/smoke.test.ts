import { describe, expect, it } from 'vitest'
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'

describe('smoke', () => {
  it('round-trips lines over TCP', async () => {
    const line = textMarshaller(new SentinelBytesMarshaller('\r\n'))
    const app = new ApplicationServer(line.unmarshall, line.marshall, (s: string) => s.toUpperCase())
    await using server = new TcpServer({ port: 0, callback: app })
    const { port } = await server.listen()
    const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), line.marshall, line.unmarshall, { maxInFlight: 4 })
    await using session = await client.connect()
    expect(await session.sendReceive('hello')).toBe('HELLO')
    const all = await Promise.all(Array.from({ length: 100 }, (_, i) => session.sendReceive(`x${i}`)))
    expect(all).toEqual(Array.from({ length: 100 }, (_, i) => `X${i}`))
  })
})
