// The simulated SCPI power supply (packages/simulator/devices/scpi-psu.yaml, a pyvisa-sim device
// file) served by @labwire/simulator's SimulatorServer: the device behind P-SIM.
import { bundledDevice, loadDevice, SimulatorServer } from '@labwire/simulator'
import { serveIpc } from '../lib.mjs'

const device = await loadDevice(bundledDevice('scpi-psu'), { eom: 'TCPIP SOCKET' })
const server = new SimulatorServer({ device, host: '127.0.0.1', port: 0 })
const { port } = await server.listen()
serveIpc({ close: () => server.close(), stats: () => ({ connections: server.connections.length }) })
process.send({ type: 'ready', port })
