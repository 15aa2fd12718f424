// labwire line echo: TcpServer + ApplicationServer with SentinelBytesMarshaller('\r\n'), echoing each payload.
import { ApplicationServer, SentinelBytesMarshaller, TcpServer } from '../labwire.mjs'
import { serveIpc } from '../lib.mjs'

// LABWIRE_BENCH_SUBSCRIBE=1: one counting subscriber on labwire:server:request (the cost of observing).
if (process.env.LABWIRE_BENCH_SUBSCRIBE) {
  const { subscribe } = await import('node:diagnostics_channel')
  let requests = 0
  subscribe('labwire:server:request', () => {
    requests++
  })
  process.on('exit', () => process.stderr.write(requests > 0 ? '' : 'subscriber saw no request\n'))
}
const line = new SentinelBytesMarshaller('\r\n')
const app = new ApplicationServer(line.unmarshall, line.marshall, (payload) => payload)
const server = new TcpServer({ host: '127.0.0.1', port: 0, callback: app })
const { port } = await server.listen()
serveIpc({ close: () => server.close(), stats: () => ({ connections: server.connectionCount }) })
process.send({ type: 'ready', port })
