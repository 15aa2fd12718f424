// labwire bulk echo over TLS: TcpServer({ tls }) + ApplicationServer with FixedLengthBytesMarshaller(length).
// Arguments: frame length, certificate file, key file (a throwaway pair the parent made in a temp dir).
import { readFileSync } from 'node:fs'
import { ApplicationServer, FixedLengthBytesMarshaller, TcpServer } from '../labwire.mjs'
import { serveIpc } from '../lib.mjs'

const length = Number(process.argv[2])
const cert = readFileSync(process.argv[3], 'utf8')
const key = readFileSync(process.argv[4], 'utf8')
const fixed = new FixedLengthBytesMarshaller(length)
const app = new ApplicationServer(fixed.unmarshall, fixed.marshall, (payload) => payload)
const server = new TcpServer({ host: '127.0.0.1', port: 0, tls: { cert, key }, callback: app })
const { port } = await server.listen()
serveIpc({ close: () => server.close(), stats: () => ({ connections: server.connectionCount }) })
process.send({ type: 'ready', port })
