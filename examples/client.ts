import { ApplicationClient } from '@labwire/application'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpClient } from '@labwire/transport-tcp'

// Talk to a line-based instrument (SCPI over raw TCP, port 5025 by default).
const lines = textMarshaller(new SentinelBytesMarshaller('\n'))
const transport = new TcpClient({ host: process.argv[2] ?? '127.0.0.1', port: Number(process.argv[3] ?? 5025) })
const client = new ApplicationClient(transport, lines.marshall, lines.unmarshall, { timeout: 2_000 })
await using session = await client.connect()
console.log(await session.sendReceive('*IDN?'))
await session.send('VOLT 1.5')
console.log(await session.sendReceive('VOLT?'))
