// P-SIM — a simulated instrument answering *IDN? in lockstep, against the bare node:net line echo.
// sim: SimulatorServer serving devices/scpi-psu.yaml (pyvisa-sim file; *IDN? is a dialogue, 27-byte
//      answer + '\n'); the client writes '*IDN?\n' and waits for the '\n'-terminated answer.
// bare: bench/servers/bare-line-echo.mjs; the client writes '*IDN?\r\n' and waits for the echo.
// Both sides use the same bare node:net client loop, so the ratio measures the server side.
import { bareClose, bareConnect, compare, emit, forkChild, interleave, measure, round, socketExchange } from './lib.mjs'

export const ROUND_TRIPS = 20_000
const IDN = Buffer.from('labwire,SIM-PSU,0001,0.1.0\n')

/** Lockstep: write `request`, wait for `expected` (checked), `count` times. */
function lockstep(socket, request, expected, count, label) {
  return socketExchange(socket, label, () => socket.write(request), (finish) => {
    let i = 0
    let buffered = null
    return (chunk) => {
      buffered = buffered === null ? chunk : Buffer.concat([buffered, chunk])
      while (buffered !== null && buffered.length >= expected.length) {
        if (!buffered.subarray(0, expected.length).equals(expected)) {
          finish(new Error(`${label}: wrong response to request ${i}: ${JSON.stringify(buffered.toString('latin1'))}`))
          return
        }
        buffered = buffered.length === expected.length ? null : buffered.subarray(expected.length)
        i++
        if (i === count) {
          finish()
          return
        }
        socket.write(request)
      }
    }
  })
}

export async function pSim() {
  const simServer = await forkChild('servers/sim-psu.mjs')
  const bareServer = await forkChild('servers/bare-line-echo.mjs')
  try {
    const simRequest = Buffer.from('*IDN?\n')
    const bareRequest = Buffer.from('*IDN?\r\n')
    const samples = await interleave({
      sim: async () => {
        const socket = await bareConnect(simServer.info.port)
        const result = await measure(simServer, () => lockstep(socket, simRequest, IDN, ROUND_TRIPS, 'sim *IDN?'))
        await bareClose(socket)
        return result
      },
      bare: async () => {
        const socket = await bareConnect(bareServer.info.port)
        const result = await measure(bareServer, () => lockstep(socket, bareRequest, bareRequest, ROUND_TRIPS, 'bare echo'))
        await bareClose(socket)
        return result
      },
    })
    const { paired, out } = compare(samples, 'sim', 'bare', ROUND_TRIPS)
    emit({
      figure: 'P-SIM',
      what: 'simulated device (scpi-psu.yaml) answering *IDN? in lockstep vs bare node:net line echo, 20,000 round trips, 1 connection',
      ratio: out.ratio,
      paired_ratio: out.paired_ratio,
      target: 'paired_ratio >= 0.8',
      pass: paired >= 0.8,
      sim_rtt_us: round((out.sim_ms * 1000) / ROUND_TRIPS, 2),
      bare_rtt_us: round((out.bare_ms * 1000) / ROUND_TRIPS, 2),
      ...out,
    })
  } finally {
    await Promise.all([simServer.close(), bareServer.close()])
  }
}
