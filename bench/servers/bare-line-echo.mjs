// Bare node:net line echo: split the input at CRLF and write each complete line back (writes corked per chunk
// read, as labwire's server does), keeping a partial line for the next chunk. noDelay, like labwire's sockets.
import { createServer } from 'node:net'
import { CRLF, serveIpc } from '../lib.mjs'

const sockets = new Set()
const server = createServer({ noDelay: true }, (socket) => {
  sockets.add(socket)
  socket.on('close', () => sockets.delete(socket))
  socket.on('error', () => socket.destroy())
  let rest = null
  socket.on('data', (chunk) => {
    const buffer = rest === null ? chunk : Buffer.concat([rest, chunk])
    let start = 0
    let at = buffer.indexOf(CRLF, start)
    if (at !== -1) {
      socket.cork()
      while (at !== -1) {
        socket.write(buffer.subarray(start, at + 2))
        start = at + 2
        at = buffer.indexOf(CRLF, start)
      }
      socket.uncork()
    }
    rest = start < buffer.length ? buffer.subarray(start) : null
  })
})
await new Promise((resolve, reject) => {
  server.once('error', reject)
  server.listen({ host: '127.0.0.1', port: 0 }, resolve)
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
