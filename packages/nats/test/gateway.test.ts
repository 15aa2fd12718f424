// The README's instrument gateway: a TCP line instrument re-served as a NATS service, one request
// at a time on the instrument's connection, reached by name from another NATS connection.
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { NatsClient, NatsServer } from '@labwire/nats'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NATS_SERVER, startCluster, type NatsNode } from './cluster.js'

if (NATS_SERVER === undefined) {
  console.warn('SKIPPED: @labwire/nats gateway test — nats-server is not installed (apt-get install nats-server)')
  it.skip('@labwire/nats gateway test: SKIPPED, nats-server is missing (apt-get install nats-server)', () => undefined)
}

describe.skipIf(NATS_SERVER === undefined)('instrument gateway over NATS', () => {
  let node: NatsNode | undefined
  beforeAll(async () => {
    node = (await startCluster(1))[0]
  }, 20_000)
  afterAll(() => node?.kill())

  it('re-serves a TCP instrument as a NATS service; queries and writes keep their order', async () => {
    const lines = textMarshaller(new SentinelBytesMarshaller('\n'))
    // The instrument: a power supply with a voltage setting, on TCP.
    let volts = '0.000'
    let busy = 0
    let overlapped = false
    const psu = new ApplicationServer(lines.unmarshall, lines.marshall, async (command) => {
      if (++busy > 1) overlapped = true
      await new Promise((resolve) => setTimeout(resolve, 2))
      busy--
      if (command === '*IDN?') return 'ACME,PSU-1,0001,1.0'
      if (command.startsWith('VOLT ')) volts = Number(command.slice(5)).toFixed(3)
      if (command === 'VOLT?') return volts
      return undefined
    })
    await using instrumentServer = new TcpServer({ host: '127.0.0.1', port: 0, callback: psu })
    const { port } = await instrumentServer.listen()

    // The gateway, as in the README.
    const instrument = await new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), lines.marshall, lines.unmarshall, { timeout: 2_000 }).connect()
    const gateway = new ApplicationServer(lines.unmarshall, lines.marshall, (command) =>
      command.includes('?') ? instrument.sendReceive(command) : instrument.send(command).then(() => undefined),
    )
    const servers = (node as NatsNode).url
    await using service = new NatsServer({ servers, name: 'psu', callback: gateway })
    await service.listen()

    // Clients elsewhere on NATS.
    const client = new ApplicationClient(new NatsClient({ servers, name: 'psu' }), lines.marshall, lines.unmarshall, { timeout: 2_000 })
    await using one = await client.connect()
    await using two = await client.connect()
    expect(await one.sendReceive('*IDN?')).toBe('ACME,PSU-1,0001,1.0')
    await one.send('VOLT 3.3')
    expect(await one.sendReceive('VOLT?')).toBe('3.300')
    // Two clients at once: the instrument still sees one request at a time.
    const answers = await Promise.all([...Array.from({ length: 10 }, () => one.sendReceive('*IDN?')), ...Array.from({ length: 10 }, () => two.sendReceive('VOLT?'))])
    expect(answers.slice(0, 10)).toEqual(Array(10).fill('ACME,PSU-1,0001,1.0'))
    expect(answers.slice(10)).toEqual(Array(10).fill('3.300'))
    expect(overlapped).toBe(false)
    await instrument.close()
  })
})
