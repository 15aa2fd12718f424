// Bare node:net echo: every chunk written straight back (noDelay, like labwire's sockets).
// With a frame length argument it stores and forwards instead: collect `length` bytes, concatenate once, write them back
// (the same shape of work as labwire's fixed-length echo; a diagnostic for P3).
import { runBareServer } from '../lib.mjs'

const frameLength = process.argv[2] === undefined ? 0 : Number(process.argv[2])
await runBareServer((socket) => {
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
