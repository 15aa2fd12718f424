// Run the benchmarks: `node bench/run.mjs` runs all, `node bench/run.mjs p1 p3` runs some
// (`tls`: TLS bulk vs bare node:tls; `uds`: Unix socket vs TCP lockstep).
// Each figure prints one JSON line (its ratio against bare node:net measured in the same run).
// `--runs N` (default 1, what `pnpm bench` uses) runs the chosen figures N times, round-robin
// (p1 p5 p1 p5 …, each run itself interleaving labwire and bare), then prints one summary line per
// figure: median and [min, max] over the N runs of every numeric field.
import process from 'node:process'
import { setTimeout, clearTimeout } from 'node:timers'
import { emit, killChildren, median, onEmit, round } from './lib.mjs'

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
  rpc: { load: () => import('./p-rpc.mjs').then((m) => m.pRpc), limitMs: 300_000 },
  framing: { load: () => import('./p-framing.mjs').then((m) => m.framing), limitMs: 300_000 },
  proxy: { load: () => import('./p-proxy.mjs').then((m) => m.pProxy), limitMs: 300_000 },
  nats: { load: () => import('./p-nats.mjs').then((m) => m.pNats), limitMs: 180_000 },
  idle: { load: () => import('./p-idle.mjs').then((m) => m.pIdle), limitMs: 600_000 },
  simpipe: { load: () => import('./p-sim-pipelined.mjs').then((m) => m.pSimPipelined), limitMs: 300_000 },
  monitor: { load: () => import('./p-monitor.mjs').then((m) => m.pMonitor), limitMs: 180_000 },
}

function parseArgs(argv) {
  const names = []
  let runs = 1
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const match = /^--runs(?:=(.*))?$/.exec(arg)
    if (match !== null) {
      const value = match[1] ?? argv[++i]
      runs = Number(value)
      if (!Number.isInteger(runs) || runs < 1 || runs > 50) {
        process.stderr.write(`--runs takes a whole number from 1 to 50, got ${String(value)}\n`)
        process.exit(2)
      }
    } else if (arg.startsWith('-')) {
      process.stderr.write(`unknown option ${arg}; usage: node bench/run.mjs [--runs N] [figure …]\n`)
      process.exit(2)
    } else {
      names.push(arg.toLowerCase())
    }
  }
  return { names, runs }
}

const { names: wanted, runs } = parseArgs(process.argv.slice(2))
const unknown = wanted.filter((name) => !(name in figures))
if (unknown.length > 0) {
  process.stderr.write(`unknown figure(s): ${unknown.join(', ')}; choose from ${Object.keys(figures).join(', ')}\n`)
  process.exit(2)
}
const chosen = wanted.length > 0 ? wanted : Object.keys(figures)

/** Lines emitted per figure name (the JSON's `figure`), in run order, for the `--runs` summary. */
const collected = new Map()
let round_ = 0
onEmit((line) => {
  if (runs === 1 || line.summary === true) return
  line.run = round_
  const key = line.figure
  if (!collected.has(key)) collected.set(key, [])
  collected.get(key).push(line)
})

/** Numeric fields of a figure line, nested objects flattened one level (`labwire_cpu_us_per_op.server`). */
function numericFields(line) {
  const fields = {}
  for (const [key, value] of Object.entries(line)) {
    if (key === 'run') continue
    if (typeof value === 'number') fields[key] = value
    else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      for (const [inner, v] of Object.entries(value)) if (typeof v === 'number') fields[`${key}.${inner}`] = v
    }
  }
  return fields
}

/** One summary line per figure: median [min, max] of each numeric field over the runs, and how many runs passed. */
function summarise() {
  for (const [figure, lines] of collected) {
    const ok = lines.filter((line) => line.error === undefined)
    const values = new Map()
    for (const line of ok) {
      for (const [key, value] of Object.entries(numericFields(line))) {
        if (!values.has(key)) values.set(key, [])
        values.get(key).push(value)
      }
    }
    const fields = {}
    for (const [key, list] of values) {
      fields[key] = { median: round(median(list), 4), min: round(Math.min(...list), 4), max: round(Math.max(...list), 4) }
    }
    const passes = ok.filter((line) => line.pass === true).length
    const ratioKeys = [...values.keys()].filter((key) => /ratio|per_idle|per_query|per_connection/.test(key) && !key.startsWith('samples'))
    const headline = ratioKeys.map((key) => `${key} ${fields[key].median} [${fields[key].min}–${fields[key].max}]`).join('; ')
    emit({
      figure,
      summary: true,
      runs: lines.length,
      errors: lines.length - ok.length,
      ...(ok.some((line) => line.pass !== undefined) ? { pass_runs: `${passes}/${ok.length}` } : {}),
      headline,
      fields,
    })
  }
}

let failed = false
for (round_ = 1; round_ <= runs; round_++) {
  for (const name of chosen) {
    const { load, limitMs } = figures[name]
    // Watchdog: a figure that overruns its limit is reported and its children killed.
    const watchdog = setTimeout(() => {
      emit({ figure: name.toUpperCase(), error: `timed out after ${limitMs} ms` })
      if (runs > 1) summarise()
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
}
if (runs > 1) summarise()
killChildren()
process.exit(failed ? 1 : 0)
