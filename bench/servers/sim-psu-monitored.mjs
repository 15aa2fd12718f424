// The simulated SCPI power supply of sim-psu.mjs with a @labwire/monitor watching it (per-command
// request labels, device command counts, the page's history): the monitored side of P-MON-SIM.
import { bundledDevice, loadDevice, SimulatorServer } from '@labwire/simulator'
import { Monitor } from '../../packages/monitor/dist/index.js'
import { serveIpc } from '../lib.mjs'

const device = await loadDevice(bundledDevice('scpi-psu'), { eom: 'TCPIP SOCKET' })
const server = new SimulatorServer({ device, host: '127.0.0.1', port: 0 })
const monitor = new Monitor({ port: 0 })
monitor.addService({ name: 'psu', simulator: server })
await monitor.listen()
const { port } = await server.listen()
serveIpc({
  close: async () => {
    await server.close()
    await monitor.close()
  },
  stats: () => ({ connections: server.connections.length }),
  handlers: { requests: async () => ({ text: await monitor.metrics.text() }) },
})
process.send({ type: 'ready', port })
