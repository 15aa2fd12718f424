// Bare node:net SCPI-style server for P-SIM-PIPE: split the input at '\n', answer each `*IDN?` with the same
// 27-byte identification line as the simulated PSU (anything else: `ERR\n`), replies corked per read chunk
// (socket.cork / uncork around the chunk's writes). noDelay, like labwire's sockets.
import { runBareServer } from '../lib.mjs'

const NL = 0x0a
const QUERY = Buffer.from('*IDN?')
const IDN = Buffer.from('labwire,SIM-PSU,0001,0.1.0\n')
const ERR = Buffer.from('ERR\n')

await runBareServer((socket) => {
  let rest = null
  socket.on('data', (chunk) => {
    const buffer = rest === null ? chunk : Buffer.concat([rest, chunk])
    let start = 0
    let at = buffer.indexOf(NL, start)
    if (at !== -1) {
      socket.cork()
      while (at !== -1) {
        const line = buffer.subarray(start, at)
        socket.write(line.equals(QUERY) ? IDN : ERR)
        start = at + 1
        at = buffer.indexOf(NL, start)
      }
      socket.uncork()
    }
    rest = start < buffer.length ? buffer.subarray(start) : null
  })
})
