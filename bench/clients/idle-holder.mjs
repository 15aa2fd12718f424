// The idle-connection holder (P5, IDLE): open `count` TCP connections to 127.0.0.1:port (at most `width` connecting at
// once), keep them open and silent, report when all are up; close them on command.
import { serveIpc, bareConnect, inBatches } from '../lib.mjs'

const port = Number(process.argv[2])
const count = Number(process.argv[3])
const width = Number(process.argv[4] ?? 100)
const sockets = []
serveIpc({
  close: () => {
    for (const socket of sockets) socket.destroy()
  },
  handlers: {
    async open() {
      await inBatches(count, width, async () => {
        const socket = await bareConnect(port, 30_000)
        socket.on('error', () => undefined)
        sockets.push(socket)
      })
      return { open: sockets.length }
    },
  },
})
process.send({ type: 'ready' })
