// Bare node:tls echo: every decrypted chunk written straight back (noDelay, like labwire's sockets).
// Arguments: certificate file, key file (a throwaway pair the parent made in a temp dir).
import { readFileSync } from 'node:fs'
import { createServer } from 'node:tls'
import { HOST, serveIpc } from '../lib.mjs'

const cert = readFileSync(process.argv[2], 'utf8')
const key = readFileSync(process.argv[3], 'utf8')
const sockets = new Set()
const server = createServer({ cert, key, noDelay: true }, (socket) => {
  sockets.add(socket)
  socket.setNoDelay(true)
  socket.on('close', () => sockets.delete(socket))
  socket.on('error', () => socket.destroy())
  socket.on('data', (chunk) => socket.write(chunk))
})
await new Promise((resolve, reject) => {
  server.once('error', reject)
  server.listen({ host: HOST, port: 0 }, resolve)
})
serveIpc({
  close: () =>
    new Promise((resolve) => {
      for (const socket of sockets) socket.destroy()
      server.close(() => resolve())
    }),
  stats: () => ({ connections: sockets.size }),
})
process.send({ type: 'ready', port: server.address().port })
