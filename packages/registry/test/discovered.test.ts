// DiscoveredClient: find a TCP service by name in the registry, fail over to the next server.
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import { ConnectionError } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { DiscoveredClient, RegistryClient, RegistryServer } from '@labwire/registry'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { expect, it } from 'vitest'

const lines = textMarshaller(new SentinelBytesMarshaller('\n'))
const device = (tag: string): ApplicationServer<string, string> => new ApplicationServer(lines.unmarshall, lines.marshall, (command) => `${tag}:${command}`)

it('connects to the first registered server that accepts, and fails over when it is gone', async () => {
  await using registry = new RegistryServer({ port: 0 })
  const { port } = await registry.listen()
  const client = new RegistryClient({ port })
  const first = new TcpServer({ host: '127.0.0.1', port: 0, callback: device('first') })
  await using second = new TcpServer({ host: '127.0.0.1', port: 0, callback: device('second') })
  await client.register('psu', (await first.listen()).port)
  await client.register('psu', (await second.listen()).port)

  const app = new ApplicationClient(new DiscoveredClient({ registry: client, name: 'PSU', connect: (server) => new TcpClient({ ...server, connectTimeout: 1000 }) }), lines.marshall, lines.unmarshall, { timeout: 1000 })
  {
    await using session = await app.connect()
    expect(await session.sendReceive('*IDN?')).toBe('first:*IDN?')
  }
  await first.close() // still registered (not yet pruned): the client must skip it
  {
    await using session = await app.connect()
    expect(await session.sendReceive('*IDN?')).toBe('second:*IDN?')
  }
  const nobody = new DiscoveredClient({ registry: client, name: 'dmm', connect: (server) => new TcpClient(server) })
  await expect(nobody.connect()).rejects.toThrow(ConnectionError)
  await expect(nobody.connect()).rejects.toThrow(/no server of service "dmm"/)
})
