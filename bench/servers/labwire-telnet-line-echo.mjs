// labwire Telnet line echo: TelnetServer + ApplicationServer with SentinelBytesMarshaller('\r\n'), echoing each payload.
import { ApplicationServer, SentinelBytesMarshaller, TelnetServer } from '../labwire.mjs'
import { serveIpc } from '../lib.mjs'

const line = new SentinelBytesMarshaller('\r\n')
const app = new ApplicationServer(line.unmarshall, line.marshall, (payload) => payload)
const server = new TelnetServer({ host: '127.0.0.1', port: 0, callback: app })
const { port } = await server.listen()
serveIpc({ close: () => server.close(), stats: () => ({ connections: server.connectionCount }) })
process.send({ type: 'ready', port })
