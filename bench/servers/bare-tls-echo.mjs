// Bare node:tls echo: every decrypted chunk written straight back (noDelay, like labwire's sockets).
// Arguments: certificate file, key file (a throwaway pair the parent made in a temp dir), and
// optionally a frame length: then it stores and forwards (collect `length` bytes, concatenate once,
// write them back), the shape of labwire's fixed-length echo; a diagnostic, as in P3.
import { readFileSync } from 'node:fs'
import { createServer } from 'node:tls'
import { HOST, serveIpc } from '../lib.mjs'

const cert = readFileSync(process.argv[2], 'utf8')
const key = readFileSync(process.argv[3], 'utf8')
const frameLength = process.argv[4] === undefined ? 0 : Number(process.argv[4])
const sockets = new Set()
const server = createServer({ cert, key, noDelay: true }, (socket) => {
  sockets.add(socket)
  socket.setNoDelay(true)
  socket.on('close', () => sockets.delete(socket))
  socket.on('error', () => socket.destroy())
  if (frameLength === 0) {
    socket.on('data', (chunk) => socket.write(chunk))
    return
  }
  let chunks = []
  let length = 0
  socket.on('data', (chunk) => {
    chunks.push(chunk)
    length += chunk.length
    while (length >= frameLength) {
      const all = Buffer.concat(chunks, length)
      socket.write(all.subarray(0, frameLength))
      const rest = all.subarray(frameLength)
      chunks = rest.length > 0 ? [rest] : []
      length = rest.length
    }
  })
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
