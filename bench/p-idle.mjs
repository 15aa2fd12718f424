// IDLE — what a connection costs the server while it is accepted and then left idle, labwire against bare node:net.
// Per repetition and side (labwire and bare interleaved AB BA …): a fresh server child (--expose-gc; the P5 line echo
// servers), its RSS and JS heap after a double gc(), then a holder child opens IDLE connections (10,000, or what
// `ulimit -n` allows) at most 100 connecting at once, the server's CPU (user + system, process.resourceUsage) is read
// the moment it has accepted them all (accept CPU), and RSS and heap again after gc (idle memory). Targets (issue 15):
// labwire RSS per idle connection <= 1.3 x bare, accept CPU <= 1.2 x bare (cost ratios: labwire / bare, lower is better).
import { execFileSync } from 'node:child_process'
import { emit, forkChild, interleave, median, round } from './lib.mjs'

const WANTED = 10_000
const CONNECT_WIDTH = 100
const KiB = 1024

function openFileLimit() {
  try {
    return Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim())
  } catch {
    return Number.NaN
  }
}

/** One fresh server child: accept `count` connections from a holder child, measure, close both. */
async function idleRun(script, count) {
  const server = await forkChild(script, [], { execArgv: ['--expose-gc'] })
  const holder = await forkChild('clients/idle-holder.mjs', [server.info.port, count, CONNECT_WIDTH])
  try {
    const before = await server.call('stats', { gc: true })
    const accepted = server.call('waitConnections', { count, ms: 120_000 }, 130_000)
    await holder.call('open', {}, 120_000)
    await accepted
    const cpu = await server.call('stats')
    const after = await server.call('stats', { gc: true })
    if (after.connections !== count) throw new Error(`${script}: ${after.connections} connections open, expected ${count}`)
    return {
      ms: 0,
      acceptCpuUs: (cpu.cpuUser + cpu.cpuSystem - before.cpuUser - before.cpuSystem) / count,
      rss: (after.rss - before.rss) / count,
      heap: (after.heapUsed - before.heapUsed) / count,
    }
  } finally {
    await holder.close()
    await server.close()
  }
}

/** Median and [min, max] of the per-repetition cost ratios labwire / bare (pairs as interleaved). */
function costRatio(samples, field) {
  const perRep = samples.labwire.map((s, i) => s[field] / samples.bare[i][field])
  return { median: round(median(perRep)), range: [round(Math.min(...perRep)), round(Math.max(...perRep))] }
}

export async function pIdle() {
  const limit = openFileLimit()
  const count = Math.min(WANTED, Number.isFinite(limit) ? limit - 500 : 1000)
  if (count < 1000) throw new Error(`ulimit -n is ${limit}; IDLE needs at least 1,500 (raise it: ulimit -n 20000)`)
  const samples = await interleave(
    {
      labwire: () => idleRun('servers/labwire-line-echo.mjs', count),
      bare: () => idleRun('servers/bare-line-echo.mjs', count),
    },
    undefined,
    { warmup: 0 },
  )
  const med = (side, field) => median(samples[side].map((s) => s[field]))
  const rss = costRatio(samples, 'rss')
  const heap = costRatio(samples, 'heap')
  const accept = costRatio(samples, 'acceptCpuUs')
  emit({
    figure: 'IDLE',
    what: `server cost of ${count.toLocaleString('en')} idle connections: accept CPU and RSS / JS heap per connection, labwire TcpServer + ApplicationServer vs bare node:net (cost ratios, labwire / bare)`,
    rss_cost_ratio: rss.median,
    accept_cpu_cost_ratio: accept.median,
    target: 'rss_cost_ratio <= 1.3 and accept_cpu_cost_ratio <= 1.2 (medians of the per-repetition ratios); labwire RSS per idle connection <= 16 KiB',
    pass: rss.median <= 1.3 && accept.median <= 1.2 && med('labwire', 'rss') <= 16 * KiB,
    connections: count,
    labwire_rss_per_idle_connection_kib: round(med('labwire', 'rss') / KiB, 2),
    bare_rss_per_idle_connection_kib: round(med('bare', 'rss') / KiB, 2),
    rss_cost_range: rss.range,
    labwire_heap_per_idle_connection_kib: round(med('labwire', 'heap') / KiB, 2),
    bare_heap_per_idle_connection_kib: round(med('bare', 'heap') / KiB, 2),
    heap_cost_ratio: heap.median,
    heap_cost_range: heap.range,
    labwire_accept_cpu_us_per_connection: round(med('labwire', 'acceptCpuUs'), 2),
    bare_accept_cpu_us_per_connection: round(med('bare', 'acceptCpuUs'), 2),
    accept_cpu_cost_range: accept.range,
    samples_accept_cpu_us: { labwire: samples.labwire.map((s) => round(s.acceptCpuUs, 2)), bare: samples.bare.map((s) => round(s.acceptCpuUs, 2)) },
    samples_rss_kib: { labwire: samples.labwire.map((s) => round(s.rss / KiB, 2)), bare: samples.bare.map((s) => round(s.rss / KiB, 2)) },
    ulimit_n: limit,
  })
}
