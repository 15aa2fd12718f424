// labwire line echo on a Unix socket (argument: its path) or, without an argument, on 127.0.0.1 port 0:
// TcpServer + ApplicationServer with SentinelBytesMarshaller('\r\n'), echoing each payload.
import { ApplicationServer, SentinelBytesMarshaller, TcpServer } from '../labwire.mjs'
import { serveIpc } from '../lib.mjs'

const path = process.argv[2]
const line = new SentinelBytesMarshaller('\r\n')
const app = new ApplicationServer(line.unmarshall, line.marshall, (payload) => payload)
const server = new TcpServer(path === undefined ? { host: '127.0.0.1', port: 0, callback: app } : { path, callback: app })
const address = await server.listen()
serveIpc({ close: () => server.close(), stats: () => ({ connections: server.connectionCount }) })
process.send({ type: 'ready', ...address })
