// Bare `ws` echo: every binary message is sent straight back (perMessageDeflate off, like labwire's).
// In lockstep each message is one CRLF-terminated line, so this is the least work a ws line echo can do.
import { WebSocketServer } from 'ws'
import { HOST, serveIpc } from '../lib.mjs'

const server = new WebSocketServer({ host: HOST, port: 0, path: '/echo', perMessageDeflate: false })
server.on('connection', (ws) => {
  ws.on('error', () => ws.terminate())
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
})
await new Promise((resolve, reject) => {
  server.once('error', reject)
  server.once('listening', resolve)
})
serveIpc({
  close: () =>
    new Promise((resolve) => {
      for (const ws of server.clients) ws.terminate()
      server.close(() => resolve())
    }),
  stats: () => ({ connections: server.clients.size }),
})
const { port } = server.address()
process.send({ type: 'ready', port, url: `ws://${HOST}:${port}/echo` })
