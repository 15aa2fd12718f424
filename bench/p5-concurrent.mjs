// P5 — concurrency: 1,000 clients at once, 100 lockstep requests (16 B + CRLF) each, every response checked;
// labwire (ApplicationClient sessions, TcpServer + ApplicationServer line echo) vs bare node:net (line echo server,
// raw sockets). Target >= 0.85x (issue 15). Timed from all connected to all answered; connecting is reported apart.
// Server memory per idle connection and accept CPU are the IDLE figure (p-idle.mjs).
import { execFileSync } from 'node:child_process'
import { bareClose, bareConnect, compare, emit, forkChild, inBatches, interleave, makeLines, median, round } from './lib.mjs'
import { bareLockstep, bareLockstepPromise, labwireClient, labwireLockstep } from './line-clients.mjs'
import { performance } from 'node:perf_hooks'

const CLIENTS = 1_000
const REQUESTS = 100
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
  emit({
    figure: 'P5',
    what: '1,000 concurrent clients x 100 lockstep requests (idle memory and accept CPU: figure IDLE)',
    ratio: round(ratio),
    paired_ratio: round(paired),
    target: 'paired_ratio >= 0.85',
    pass: paired >= 0.85,
    labwire_ops_per_s: Math.round((CLIENTS * REQUESTS * 1000) / out.labwire_ms),
    bare_ops_per_s: Math.round((CLIENTS * REQUESTS * 1000) / out.bare_ms),
    ratio_vs_bare_promise: promiseRef.out.ratio,
    paired_ratio_vs_bare_promise: promiseRef.out.paired_ratio,
    labwire_connect_ms: round(median(samples.labwire.map((s) => s.connectMs)), 1),
    bare_connect_ms: round(median(samples.bare.map((s) => s.connectMs)), 1),
    ulimit_n: limit,
    ...out,
  })
}
