// P-SIM-PIPE — a simulated instrument answering pipelined queries: the client writes QUERIES `*IDN?\n` at once on
// one connection and reads the answers (every byte checked), against a bare node:net server that answers the same
// query with the same 27-byte line and corks its replies per read chunk (servers/bare-idn.mjs).
// Measured: the server's CPU (user + system) per query; cpu_ratio_server = bare / labwire (1.0 = as cheap as bare).
// Target (issue 15): >= 0.8. labwire and bare interleaved AB BA …, one warm-up each.
import { bareClose, bareConnect, emit, forkChild, interleave, measure, median, round, socketExchange } from './lib.mjs'

export const QUERIES = 200_000
const IDN = Buffer.from('labwire,SIM-PSU,0001,0.1.0\n')

/** Write every query at once, wait for QUERIES answers, check each byte against the expected line. */
function pipelined(socket, label) {
  const request = Buffer.from('*IDN?\n'.repeat(QUERIES))
  const total = QUERIES * IDN.length
  return socketExchange(socket, label, () => socket.write(request), (finish) => {
    let received = 0
    return (chunk) => {
      for (let i = 0; i < chunk.length; i++) {
        if (chunk[i] !== IDN[(received + i) % IDN.length]) {
          finish(new Error(`${label}: wrong byte at ${received + i} of the answers`))
          return
        }
      }
      received += chunk.length
      if (received > total) finish(new Error(`${label}: ${received} bytes, more than ${total}`))
      else if (received === total) finish()
    }
  })
}

export async function pSimPipelined() {
  const simServer = await forkChild('servers/sim-psu.mjs')
  const bareServer = await forkChild('servers/bare-idn.mjs')
  try {
    const run = (server, label) => async () => {
      const socket = await bareConnect(server.info.port)
      const result = await measure(server, () => pipelined(socket, label))
      await bareClose(socket)
      return result
    }
    const samples = await interleave({ sim: run(simServer, 'sim *IDN? pipelined'), bare: run(bareServer, 'bare *IDN? pipelined') })
    const perQuery = (side) => samples[side].map((s) => s.serverCpuUs / QUERIES)
    const perRep = perQuery('sim').map((us, i) => perQuery('bare')[i] / us)
    const ratio = median(perRep)
    emit({
      figure: 'P-SIM-PIPE',
      what: `simulated device (scpi-psu.yaml) answering ${QUERIES.toLocaleString('en')} pipelined *IDN? on one connection vs a bare node:net server that corks its replies per read chunk: server CPU per query`,
      cpu_ratio_server: round(ratio),
      target: 'cpu_ratio_server >= 0.8 (bare server CPU per query / labwire simulator CPU per query, median of the per-repetition ratios)',
      pass: ratio >= 0.8,
      cpu_ratio_server_range: [round(Math.min(...perRep)), round(Math.max(...perRep))],
      sim_server_cpu_us_per_query: round(median(perQuery('sim')), 3),
      bare_server_cpu_us_per_query: round(median(perQuery('bare')), 3),
      sim_ms: round(median(samples.sim.map((s) => s.ms)), 1),
      bare_ms: round(median(samples.bare.map((s) => s.ms)), 1),
      wall_paired_ratio: round(median(samples.sim.map((s, i) => samples.bare[i].ms / s.ms))),
      samples_server_cpu_us_per_query: { sim: perQuery('sim').map((v) => round(v, 3)), bare: perQuery('bare').map((v) => round(v, 3)) },
    })
  } finally {
    await Promise.all([simServer.close(), bareServer.close()])
  }
}
