import { ApplicationClient, ApplicationServer } from '@labwire/application'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TelnetClient, TelnetServer } from '@labwire/transport-telnet'

// A simulated instrument behind Telnet (add `banner` and `prompt` for people at a `telnet` terminal).
const line = textMarshaller(new SentinelBytesMarshaller('\r\n'))
const dmm = new ApplicationServer(line.unmarshall, line.marshall, (command: string) =>
  command.toUpperCase() === '*IDN?' ? 'labwire,SIM-DMM,0001,0.1.0' : `ERR ${command}`,
)
const server = new TelnetServer({ port: 0, callback: dmm })
const { host, port } = await server.listen()

// Plain mode (the default): negotiation and 0xFF escaping happen underneath; the session carries data bytes only.
const client = new ApplicationClient(new TelnetClient({ host, port }), line.marshall, line.unmarshall, { timeout: 2_000 })
await using session = await client.connect({ signal: AbortSignal.timeout(2_000) })
console.log(await session.sendReceive('*IDN?')) // labwire,SIM-DMM,0001,0.1.0
console.log(await session.sendReceive('VOLT?')) // ERR VOLT?
await server.close()
