// Bare node:net line echo: split the input at CRLF and write each complete line back (writes corked per chunk
// read, as labwire's server does), keeping a partial line for the next chunk. noDelay, like labwire's sockets.
import { CRLF, runBareServer } from '../lib.mjs'

await runBareServer((socket) => {
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
