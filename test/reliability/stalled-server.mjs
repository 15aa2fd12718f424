// A labwire line server in its own process, so that its memory can be measured alone.
// Started by backpressure.test.ts over IPC; imports the built packages (run `pnpm build` first).
// Requests are '\n'-terminated lines: 'stall' never gets an answer (the callback never returns),
// anything else is answered upper-cased. Messages: { type: 'memory' } -> { type: 'memory', rss, heapUsed, arrayBuffers }.
import { ApplicationServer } from '../../packages/application/dist/index.js'
import { SentinelBytesMarshaller, textMarshaller } from '../../packages/marshallers/dist/index.js'
import { TcpServer } from '../../packages/transport-tcp/dist/index.js'

const bufferSize = Number(process.env.LABWIRE_BUFFER_SIZE ?? 64 * 1024)
const line = textMarshaller(new SentinelBytesMarshaller('\n'))
let stalled = 0
const app = new ApplicationServer(line.unmarshall, line.marshall, (request) => {
  if (request !== 'stall') return request.toUpperCase()
  stalled++
  return new Promise(() => undefined)
})
const server = new TcpServer({ port: 0, callback: app, bufferSize })
const { port } = await server.listen()

function memory() {
  globalThis.gc?.()
  const { rss, heapUsed, arrayBuffers } = process.memoryUsage()
  return { rss, heapUsed, arrayBuffers }
}

process.on('message', (message) => {
  if (message?.type === 'memory') process.send?.({ type: 'memory', stalled, ...memory() })
  if (message?.type === 'close') {
    void server.close().then(() => process.exit(0))
  }
})
process.on('disconnect', () => process.exit(0))
process.send?.({ type: 'listening', port, ...memory() })
