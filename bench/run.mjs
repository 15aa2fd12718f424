// Run the benchmarks: `node bench/run.mjs` runs all, `node bench/run.mjs p1 p3` runs some
// (`tls`: TLS bulk vs bare node:tls; `uds`: Unix socket vs TCP lockstep).
// Each figure prints one JSON line (its ratio against bare node:net measured in the same run).
import process from 'node:process'
import { setTimeout, clearTimeout } from 'node:timers'
import { emit, killChildren } from './lib.mjs'

const figures = {
  p1: { load: () => import('./p1-lockstep.mjs').then((m) => m.p1), limitMs: 180_000 },
  p2: { load: () => import('./p2-pipelined.mjs').then((m) => m.p2), limitMs: 300_000 },
  p3: { load: () => import('./p3-bulk.mjs').then((m) => m.p3), limitMs: 180_000 },
  p4: { load: () => import('./p4-scaling.mjs').then((m) => m.p4), limitMs: 600_000 },
  p5: { load: () => import('./p5-concurrent.mjs').then((m) => m.p5), limitMs: 600_000 },
  p6: { load: () => import('./p6-telnet.mjs').then((m) => m.p6), limitMs: 180_000 },
  pws: { load: () => import('./p-ws.mjs').then((m) => m.pws), limitMs: 180_000 },
  sim: { load: () => import('./p-sim.mjs').then((m) => m.pSim), limitMs: 180_000 },
  tls: { load: () => import('./p-tls.mjs').then((m) => m.pTls), limitMs: 180_000 },
  uds: { load: () => import('./p-uds.mjs').then((m) => m.pUds), limitMs: 180_000 },
  framing: { load: () => import('./p-framing.mjs').then((m) => m.framing), limitMs: 300_000 },
  proxy: { load: () => import('./p-proxy.mjs').then((m) => m.pProxy), limitMs: 300_000 },
  nats: { load: () => import('./p-nats.mjs').then((m) => m.pNats), limitMs: 180_000 },
  monitor: { load: () => import('./p-monitor.mjs').then((m) => m.pMonitor), limitMs: 180_000 },
}

const wanted = process.argv.slice(2).map((name) => name.toLowerCase())
const unknown = wanted.filter((name) => !(name in figures))
if (unknown.length > 0) {
  process.stderr.write(`unknown figure(s): ${unknown.join(', ')}; choose from ${Object.keys(figures).join(', ')}\n`)
  process.exit(2)
}

let failed = false
for (const name of wanted.length > 0 ? wanted : Object.keys(figures)) {
  const { load, limitMs } = figures[name]
  // Watchdog: a figure that overruns its limit is reported and its children killed.
  const watchdog = setTimeout(() => {
    emit({ figure: name.toUpperCase(), error: `timed out after ${limitMs} ms` })
    killChildren()
    process.exit(1)
  }, limitMs)
  try {
    const run = await load()
    await run()
  } catch (error) {
    failed = true
    emit({ figure: name.toUpperCase(), error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) })
  } finally {
    clearTimeout(watchdog)
  }
}
killChildren()
process.exit(failed ? 1 : 0)
