// P-MON — what the live monitor's metrics collection costs: P1 lockstep (20,000 round trips of a
// 16-byte line + CRLF) against the labwire line echo, with no subscriber (A) vs with a
// @labwire/monitor subscribed to the kernel's diagnostics events (B, counting every request into
// its per-service figures and the page's history). Same run, at least 5 interleaved rounds
// (A B, B A, …); the cost is quoted per round (1 - A_ms / B_ms of the round) as median and range.
// P-MON-SIM — the same for a simulated SCPI supply answering *IDN? (the monitor also labels each
// request with its command word and counts the device's commands).
// P-MON-CPU — the same cost without sockets, so a loaded machine's scheduling noise stays out: an
// in-process MemoryServer line echo answers batches of 1,000 buffered lines through the serving
// loop's synchronous path, with and without a Monitor subscribed (interleaved rounds, process CPU
// time). It gives the monitor's CPU per request in ns; divided by P-MON's bare round trip it
// estimates the P1 cost.
import { performance } from 'node:perf_hooks'
import { ApplicationServer, MemoryServer, SentinelBytesMarshaller } from './labwire.mjs'
import { Monitor } from '../packages/monitor/dist/index.js'
import { bareClose, bareConnect, compare, emit, forkChild, interleave, makeLines, measure, median, REPS, round, socketExchange } from './lib.mjs'
import { labwireClient, labwireLockstep } from './line-clients.mjs'

const ROUND_TRIPS = 20_000
const ROUNDS = Math.max(5, REPS)
const IDN = Buffer.from('labwire,SIM-PSU,0001,0.1.0\n')

/** Per-round cost in percent (monitored vs bare of the same round): median and range. */
function costs(samples) {
  const perRound = samples.monitored.map((m, i) => (1 - samples.plain[i].ms / m.ms) * 100)
  return {
    cost_percent: round(median(perRound), 1),
    cost_range_percent: [round(Math.min(...perRound), 1), round(Math.max(...perRound), 1)],
    cost_per_round_percent: perRound.map((v) => round(v, 1)),
    plain_ms_range: [round(Math.min(...samples.plain.map((s) => s.ms)), 1), round(Math.max(...samples.plain.map((s) => s.ms)), 1)],
    monitored_ms_range: [round(Math.min(...samples.monitored.map((s) => s.ms)), 1), round(Math.max(...samples.monitored.map((s) => s.ms)), 1)],
    rounds: perRound.length,
  }
}

/** Bare-socket lockstep against a '\n' device: write `request`, wait for `expected`, `count` times. */
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
        if (++i === count) {
          finish()
          return
        }
        socket.write(request)
      }
    }
  })
}

const BATCH = 1_000
const BATCHES = 100

/** CPU µs (user + system) of this process to echo BATCHES × BATCH lines through an in-memory server. */
async function memoryRound(server, batch) {
  const session = server.accept()
  const cpu = process.cpuUsage()
  const start = performance.now()
  for (let i = 0; i < BATCHES; i++) {
    const stream = session.request(batch)
    await stream.readExactly(batch.length)
  }
  const ms = performance.now() - start
  const used = process.cpuUsage(cpu)
  await session.close()
  return { ms, cpuUs: used.user + used.system }
}

async function cpuFigure() {
  const line = new SentinelBytesMarshaller('\r\n')
  const server = new MemoryServer({ callback: new ApplicationServer(line.unmarshall, line.marshall, (payload) => payload), capacity: 1024 * 1024 })
  const { lines } = makeLines(BATCH)
  let monitor
  try {
    const side = (watched) => async () => {
      if (watched) {
        monitor = new Monitor({ port: 0 })
        monitor.addService({ name: 'echo', servers: [server] })
        await monitor.listen()
      }
      try {
        return await memoryRound(server, lines)
      } finally {
        await monitor?.close()
        monitor = undefined
      }
    }
    const samples = await interleave({ monitored: side(true), plain: side(false) }, Math.max(9, ROUNDS), { warmup: 2 })
    const requests = BATCH * BATCHES
    const perRequest = (name) => samples[name].map((s) => (s.cpuUs * 1000) / requests)
    const extra = samples.monitored.map((s, i) => ((s.cpuUs - samples.plain[i].cpuUs) * 1000) / requests)
    return {
      plain_ns_per_request: round(median(perRequest('plain')), 0),
      monitored_ns_per_request: round(median(perRequest('monitored')), 0),
      monitor_ns_per_request: round(median(extra), 0),
      monitor_ns_range: [round(Math.min(...extra), 0), round(Math.max(...extra), 0)],
      rounds: extra.length,
    }
  } finally {
    await monitor?.close()
    await server.close()
  }
}

async function echoFigure() {
  const plain = await forkChild('servers/labwire-line-echo.mjs')
  const monitored = await forkChild('servers/labwire-line-echo-monitored.mjs')
  try {
    const { payloads } = makeLines(ROUND_TRIPS)
    const run = (server) => async () => {
      const session = await labwireClient(server.info.port, { maxInFlight: 1 }).connect()
      const result = await measure(server, () => labwireLockstep(session, payloads))
      await session.close()
      return result
    }
    const samples = await interleave({ monitored: run(monitored), plain: run(plain) }, ROUNDS)
    const { paired, out } = compare(samples, 'monitored', 'plain', ROUND_TRIPS)
    const { text } = await monitored.call('requests')
    const counted = [...text.matchAll(/^labwire_requests_total\{service="echo"[^}]*outcome="ok"\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0)
    const cpu = await cpuFigure()
    const plainRttUs = (out.plain_ms * 1000) / ROUND_TRIPS
    emit({
      figure: 'P-MON-CPU',
      what: `monitor CPU per request without sockets (in-process MemoryServer line echo, ${BATCHES} batches of ${BATCH} lines, interleaved rounds); estimated P1 cost = monitor ns / P-MON bare round trip`,
      ...cpu,
      plain_rtt_us: round(plainRttUs, 2),
      estimated_p1_cost_percent: round((cpu.monitor_ns_per_request / 1000 / plainRttUs) * 100, 2),
      target: 'estimated_p1_cost_percent <= 3',
      pass: cpu.monitor_ns_per_request / 1000 / plainRttUs <= 0.03,
    })
    emit({
      figure: 'P-MON',
      what: `P1 lockstep with a monitor subscribed vs none (labwire line echo, ${ROUND_TRIPS} round trips, ${ROUNDS} interleaved rounds)`,
      ...costs(samples),
      target: 'cost <= 3 % (median per-round cost)',
      pass: paired >= 0.97,
      requests_counted: counted,
      ...out,
    })
  } finally {
    await Promise.all([plain.close(), monitored.close()])
  }
}

async function simFigure() {
  const plain = await forkChild('servers/sim-psu.mjs')
  const monitored = await forkChild('servers/sim-psu-monitored.mjs')
  try {
    const request = Buffer.from('*IDN?\n')
    const run = (server) => async () => {
      const socket = await bareConnect(server.info.port)
      const result = await measure(server, () => lockstep(socket, request, IDN, ROUND_TRIPS, '*IDN?'))
      await bareClose(socket)
      return result
    }
    const samples = await interleave({ monitored: run(monitored), plain: run(plain) }, ROUNDS)
    const { paired, out } = compare(samples, 'monitored', 'plain', ROUND_TRIPS)
    const { text } = await monitored.call('requests')
    const counted = Number(/^labwire_requests_total\{service="psu",command="\*IDN\?",outcome="ok"\} (\d+)/m.exec(text)?.[1] ?? 0)
    emit({
      figure: 'P-MON-SIM',
      what: `simulated scpi-psu answering *IDN? in lockstep, monitored (per-command labels) vs not, ${ROUND_TRIPS} round trips, ${ROUNDS} interleaved rounds`,
      ...costs(samples),
      target: 'informational (P-MON is the 3 % figure)',
      paired_ratio: out.paired_ratio,
      pass: paired > 0,
      idn_requests_counted: counted,
      ...out,
    })
  } finally {
    await Promise.all([plain.close(), monitored.close()])
  }
}

export async function pMonitor() {
  await echoFigure()
  await simFigure()
}
