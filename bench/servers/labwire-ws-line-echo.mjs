// labwire WebSocket line echo: WebSocketServer + ApplicationServer with SentinelBytesMarshaller('\r\n'), echoing each payload.
import { ApplicationServer, SentinelBytesMarshaller } from '../labwire.mjs'
import { WebSocketServer } from '@labwire/transport-websocket'
import { serveIpc } from '../lib.mjs'

const line = new SentinelBytesMarshaller('\r\n')
const app = new ApplicationServer(line.unmarshall, line.marshall, (payload) => payload)
const server = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/echo', callback: app })
const { port } = await server.listen()
serveIpc({ close: () => server.close(), stats: () => ({ connections: server.connectionCount }) })
process.send({ type: 'ready', port, url: server.url })
