// labwire bulk echo: TcpServer + ApplicationServer with FixedLengthBytesMarshaller(length), echoing each frame.
import { ApplicationServer, FixedLengthBytesMarshaller, TcpServer } from '../labwire.mjs'
import { serveIpc } from '../lib.mjs'

const length = Number(process.argv[2])
const fixed = new FixedLengthBytesMarshaller(length)
const app = new ApplicationServer(fixed.unmarshall, fixed.marshall, (payload) => payload)
const server = new TcpServer({ host: '127.0.0.1', port: 0, callback: app })
const { port } = await server.listen()
serveIpc({ close: () => server.close(), stats: () => ({ connections: server.connectionCount }) })
process.send({ type: 'ready', port })
