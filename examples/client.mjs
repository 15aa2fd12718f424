import { ApplicationClient } from '@labwire/application'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpClient } from '@labwire/transport-tcp'

// examples/client.ts in plain JavaScript: Node 20 cannot parse `await using`, so close in finally.
const lines = textMarshaller(new SentinelBytesMarshaller('\n'))
const transport = new TcpClient({ host: process.argv[2] ?? '127.0.0.1', port: Number(process.argv[3] ?? 5025) })
const client = new ApplicationClient(transport, lines.marshall, lines.unmarshall, { timeout: 2_000 })
const session = await client.connect()
try {
  console.log(await session.sendReceive('*IDN?'))
  await session.send('VOLT 1.5')
  console.log(await session.sendReceive('VOLT?'))
} finally {
  await session.close()
}
