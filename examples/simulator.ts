import { ApplicationServer } from '@labwire/application'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpServer } from '@labwire/transport-tcp'

// A tiny instrument: answers *IDN?, remembers VOLT <v>, reports it on VOLT?; other lines get no reply.
const lines = textMarshaller(new SentinelBytesMarshaller('\n'))
let volts = 0
const device = new ApplicationServer(lines.unmarshall, lines.marshall, (command: string) => {
  if (command === '*IDN?') return 'ACME,Model 1,0001,1.0'
  if (command.startsWith('VOLT ')) volts = Number(command.slice(5))
  return command === 'VOLT?' ? volts.toFixed(3) : undefined
})
const server = new TcpServer({ host: '127.0.0.1', port: Number(process.argv[2] ?? 5025), callback: device })
const { host, port } = await server.listen()
console.log(`simulator listening on ${host}:${port}`)
process.once('SIGINT', () => void server.close())
