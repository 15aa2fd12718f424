// labwire line echo (as labwire-line-echo.mjs) with a @labwire/monitor subscribed to the serving
// kernel's diagnostics events and listening, registered for the server: what metrics collection costs.
import { ApplicationServer, SentinelBytesMarshaller, TcpServer } from '../labwire.mjs'
import { Monitor } from '../../packages/monitor/dist/index.js'
import { serveIpc } from '../lib.mjs'

const line = new SentinelBytesMarshaller('\r\n')
const app = new ApplicationServer(line.unmarshall, line.marshall, (payload) => payload)
const server = new TcpServer({ host: '127.0.0.1', port: 0, callback: app })
const monitor = new Monitor({ port: 0 })
monitor.addService({ name: 'echo', servers: [server], address: () => server.address })
await monitor.listen()
const { port } = await server.listen()
serveIpc({
  close: async () => {
    await server.close()
    await monitor.close()
  },
  stats: () => ({ connections: server.connectionCount }),
  handlers: { requests: async () => ({ text: await monitor.metrics.text() }) },
})
process.send({ type: 'ready', port })
