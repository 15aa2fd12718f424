// P5 — concurrency: 1,000 clients at once, 100 lockstep requests (16 B + CRLF) each, every response checked;
// labwire (ApplicationClient sessions, TcpServer + ApplicationServer line echo) vs bare node:net (line echo server,
// raw sockets). Target >= 0.8x. Timed from all connected to all answered; connecting is reported apart.
// Then server memory per idle connection: a fresh server child (--expose-gc), RSS after GC before and after 5,000
// connections are opened (by a holder child) and left idle, divided by 5,000. Target <= 16 KiB for labwire; the bare
// server is measured too, for context.
import { execFileSync } from 'node:child_process'
import { bareClose, bareConnect, bounded, compare, emit, forkChild, inBatches, interleave, makeLines, median, round } from './lib.mjs'
import { bareLockstep, bareLockstepPromise, labwireClient, labwireLockstep } from './line-clients.mjs'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'

const CLIENTS = 1_000
const REQUESTS = 100
const IDLE = 5_000
const CONNECT_WIDTH = 100

function openFileLimit() {
  try {
    return Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim())
  } catch {
    return Number.NaN
  }
}

async function concurrent(server, connect, run, close) {
  const start = performance.now()
  const conns = await inBatches(CLIENTS, CONNECT_WIDTH, (i) => connect(i))
  const connectMs = performance.now() - start
  const before = await server.call('stats')
  const cpu = process.cpuUsage()
  const t0 = performance.now()
  await Promise.all(conns.map((conn, i) => run(conn, i)))
  const ms = performance.now() - t0
  const clientCpu = process.cpuUsage(cpu)
  const after = await server.call('stats')
  await inBatches(CLIENTS, CONNECT_WIDTH, (i) => close(conns[i]))
  return {
    ms,
    connectMs,
    clientCpuUs: clientCpu.user + clientCpu.system,
    serverCpuUs: after.cpuUser + after.cpuSystem - before.cpuUser - before.cpuSystem,
  }
}

async function idleCost(script) {
  const server = await forkChild(script, [], { execArgv: ['--expose-gc'] })
  const holder = await forkChild('clients/idle-holder.mjs', [server.info.port, IDLE, CONNECT_WIDTH])
  try {
    const before = await server.call('stats', { gc: true })
    await holder.call('open', {}, 120_000)
    // Wait (bounded) until the server has accepted all of them.
    await bounded(
      (async () => {
        while ((await server.call('stats')).connections < IDLE) await sleep(50)
      })(),
      60_000,
      `${script}: ${IDLE} connections accepted`,
    )
    const after = await server.call('stats', { gc: true })
    return { rss: (after.rss - before.rss) / IDLE, heap: (after.heapUsed - before.heapUsed) / IDLE }
  } finally {
    await holder.close()
    await server.close()
  }
}

export async function p5() {
  const limit = openFileLimit()
  if (!(limit >= CLIENTS + 200)) throw new Error(`ulimit -n is ${limit}; ${CLIENTS} concurrent clients need more (raise it: ulimit -n 8192)`)
  const labwireServer = await forkChild('servers/labwire-line-echo.mjs')
  const bareServer = await forkChild('servers/bare-line-echo.mjs')
  let samples
  try {
    // Each client its own payloads (tag = client number), so a response delivered to the wrong client fails the check.
    const perClient = Array.from({ length: CLIENTS }, (_, i) => makeLines(REQUESTS, `${i}-`))
    const client = labwireClient(labwireServer.info.port)
    samples = await interleave({
      labwire: () =>
        concurrent(
          labwireServer,
          () => client.connect(),
          (session, i) => labwireLockstep(session, perClient[i].payloads),
          (session) => session.close(),
        ),
      bare: () =>
        concurrent(
          bareServer,
          () => bareConnect(bareServer.info.port, 30_000),
          (socket, i) => bareLockstep(socket, perClient[i].lines, REQUESTS),
          (socket) => bareClose(socket),
        ),
      bare_promise: () =>
        concurrent(
          bareServer,
          () => bareConnect(bareServer.info.port, 30_000),
          (socket, i) => bareLockstepPromise(socket, perClient[i].lines, REQUESTS),
          (socket) => bareClose(socket),
        ),
    })
  } finally {
    await Promise.all([labwireServer.close(), bareServer.close()])
  }
  const { ratio, paired, out } = compare(samples, 'labwire', 'bare', CLIENTS * REQUESTS)
  const promiseRef = compare(samples, 'labwire', 'bare_promise', CLIENTS * REQUESTS)
  const idleLabwire = await idleCost('servers/labwire-line-echo.mjs')
  const idleBare = await idleCost('servers/bare-line-echo.mjs')
  const KiB = 1024
  emit({
    figure: 'P5',
    what: '1,000 concurrent clients x 100 lockstep requests; server RSS per idle connection (5,000 idle)',
    ratio: round(ratio),
    paired_ratio: round(paired),
    labwire_rss_per_idle_connection_kib: round(idleLabwire.rss / KiB, 2),
    target: 'paired_ratio >= 0.8 and labwire server RSS per idle connection <= 16 KiB',
    pass: paired >= 0.8 && idleLabwire.rss <= 16 * KiB,
    labwire_ops_per_s: Math.round((CLIENTS * REQUESTS * 1000) / out.labwire_ms),
    bare_ops_per_s: Math.round((CLIENTS * REQUESTS * 1000) / out.bare_ms),
    ratio_vs_bare_promise: promiseRef.out.ratio,
    paired_ratio_vs_bare_promise: promiseRef.out.paired_ratio,
    labwire_connect_ms: round(median(samples.labwire.map((s) => s.connectMs)), 1),
    bare_connect_ms: round(median(samples.bare.map((s) => s.connectMs)), 1),
    labwire_heap_per_idle_connection_kib: round(idleLabwire.heap / KiB, 2),
    bare_rss_per_idle_connection_kib: round(idleBare.rss / KiB, 2),
    bare_heap_per_idle_connection_kib: round(idleBare.heap / KiB, 2),
    ulimit_n: limit,
    ...out,
  })
}
