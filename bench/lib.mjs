// Shared helpers for the benchmarks: forked server children over IPC, interleaved repetitions,
// medians, bounded waits and the one-JSON-line-per-figure output.
import { fork } from 'node:child_process'
import { connect as netConnect } from 'node:net'
import { mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import process from 'node:process'
import { setTimeout, clearTimeout } from 'node:timers'
import { performance } from 'node:perf_hooks'

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url))
export const HOST = '127.0.0.1'
export const CRLF = Buffer.from('\r\n')

/** Repetitions per side (interleaved A/B). Override with LABWIRE_BENCH_REPS. */
export const REPS = Number(process.env.LABWIRE_BENCH_REPS ?? 5)

/**
 * When LABWIRE_BENCH_PROF is set to a directory, forked children run with --cpu-prof into it
 * (the parent is profiled by running `node --cpu-prof bench/run.mjs …` yourself).
 */
function profArgs(tag) {
  const dir = process.env.LABWIRE_BENCH_PROF
  if (dir === undefined || dir === '') return []
  mkdirSync(dir, { recursive: true })
  return ['--cpu-prof', '--cpu-prof-interval=100', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${tag}-${process.pid}-${Date.now()}.cpuprofile`]
}

/** Reject after `ms` with a message naming `what`; the timer is cleared when `promise` settles. */
export function bounded(promise, ms, what) {
  let timer
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms)
  })
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer))
}

const children = new Set()

/** Kill every child still running (used by the watchdog and on exit). */
export function killChildren() {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  children.clear()
}
process.on('exit', killChildren)

/**
 * Fork `bench/<script>` with `args`; resolves once it reports `{ type: 'ready', ... }`.
 * Returns `{ child, info, call(cmd, extra, ms), close() }`; `call` is a request/response over IPC.
 */
export async function forkChild(script, args = [], { execArgv = [], tag = script.replace(/\W+/g, '-'), readyMs = 15_000 } = {}) {
  const child = fork(join(BENCH_DIR, script), args.map(String), {
    execArgv: [...execArgv, ...profArgs(tag)],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  children.add(child)
  child.once('exit', () => children.delete(child))
  let nextId = 1
  const pending = new Map()
  const info = await bounded(
    new Promise((resolve, reject) => {
      child.once('error', reject)
      child.once('exit', (code) => reject(new Error(`${script} exited (${code}) before it was ready`)))
      child.on('message', (message) => {
        if (message.type === 'ready') resolve(message)
        else if (message.id !== undefined && pending.has(message.id)) {
          const { resolve: done, reject: fail } = pending.get(message.id)
          pending.delete(message.id)
          if (message.error !== undefined) fail(new Error(`${script}: ${message.error}`))
          else done(message)
        }
      })
    }),
    readyMs,
    `${script} ready`,
  )
  child.removeAllListeners('exit')
  child.once('exit', () => {
    children.delete(child)
    for (const { reject } of pending.values()) reject(new Error(`${script} exited`))
    pending.clear()
  })
  const call = (cmd, extra = {}, ms = 30_000) => {
    const id = nextId++
    const reply = new Promise((resolve, reject) => pending.set(id, { resolve, reject }))
    child.send({ ...extra, cmd, id })
    return bounded(reply, ms, `${script} ${cmd}`)
  }
  const close = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    try {
      await call('close', {}, 10_000)
      await bounded(exited, 10_000, `${script} exit`)
    } catch {
      child.kill('SIGKILL')
    }
  }
  return { child, info, call, close }
}

/**
 * The child side of the IPC protocol: `handlers[cmd](message)` answers requests; `stats` (with
 * optional gc) and `close` are built in. Exits when the parent goes away.
 */
export function serveIpc({ close, stats = () => ({}), handlers = {} }) {
  process.on('disconnect', () => process.exit(0))
  process.on('message', (message) => {
    const { cmd, id } = message
    const reply = (body) => process.send({ ...body, id })
    const fail = (error) => reply({ error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) })
    if (cmd === 'stats') {
      if (message.gc === true && typeof globalThis.gc === 'function') {
        globalThis.gc()
        globalThis.gc()
      }
      const usage = process.resourceUsage()
      const memory = process.memoryUsage()
      reply({ ...stats(), rss: memory.rss, maxRSS: usage.maxRSS * 1024, cpuUser: usage.userCPUTime, cpuSystem: usage.systemCPUTime, heapUsed: memory.heapUsed, external: memory.external, arrayBuffers: memory.arrayBuffers })
    } else if (cmd === 'close') {
      Promise.resolve(close()).then(
        () => {
          reply({})
          setTimeout(() => process.exit(0), 20).unref()
        },
        fail,
      )
    } else if (cmd === 'waitConnections') {
      // Resolve once stats().connections reaches message.count (checked in-process every 5 ms, no IPC per check).
      const started = Date.now()
      const check = () => {
        const connections = stats().connections ?? 0
        if (connections >= message.count) reply({ connections })
        else if (Date.now() - started > (message.ms ?? 60_000)) fail(new Error(`${connections} of ${message.count} connections after ${message.ms ?? 60_000} ms`))
        else setTimeout(check, 5)
      }
      check()
    } else if (handlers[cmd] !== undefined) {
      Promise.resolve()
        .then(() => handlers[cmd](message))
        .then((body) => reply(body ?? {}), fail)
    } else {
      fail(new Error(`unknown command ${cmd}`))
    }
  })
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

export const round = (value, digits = 3) => Number(value.toFixed(digits))

/** Time an async function in milliseconds. */
export async function time(fn) {
  const start = performance.now()
  const result = await fn()
  return { ms: performance.now() - start, result }
}

/**
 * Run `fn` once and measure it: elapsed milliseconds, and the CPU time (user + system, µs) this
 * process and the `server` child spent meanwhile (the child's through IPC, outside the timing).
 */
export async function measure(server, fn) {
  const before = await server.call('stats')
  const cpu = process.cpuUsage()
  const start = performance.now()
  await fn()
  const ms = performance.now() - start
  const clientCpu = process.cpuUsage(cpu)
  const after = await server.call('stats')
  return {
    ms,
    clientCpuUs: clientCpu.user + clientCpu.system,
    serverCpuUs: after.cpuUser + after.cpuSystem - before.cpuUser - before.cpuSystem,
  }
}

/**
 * Interleaved A/B repetitions: one untimed warm-up each, then `reps` timed runs per side, the
 * order alternating (AB BA AB …) so that neither side always runs first. Each side resolves with
 * a `measure()` result (or a number of milliseconds). Returns `{ side: [result, …] }`.
 */
export async function interleave(sides, reps = REPS, { warmup = 1 } = {}) {
  const names = Object.keys(sides)
  const samples = Object.fromEntries(names.map((name) => [name, []]))
  for (let w = 0; w < warmup; w++) for (const name of names) await sides[name]()
  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 === 0 ? names : [...names].reverse()
    for (const name of order) {
      const result = await sides[name]()
      samples[name].push(typeof result === 'number' ? { ms: result } : result)
    }
  }
  return samples
}

/**
 * Summarise interleaved samples of a labwire side `a` against a bare side `b`: medians, the
 * throughput ratio `median(b.ms) / median(a.ms)`, the median of the per-repetition ratios (each
 * labwire run against the bare run next to it, less sensitive to drifting load) and per-operation
 * CPU when measured (`cpu_ratio` = bare CPU / labwire CPU, client and server together). `ops` = operations per run (round trips, requests, bytes…).
 */
export function compare(samples, a, b, ops) {
  const ms = (side) => samples[side].map((s) => s.ms)
  const ratio = median(ms(b)) / median(ms(a))
  const perRep = samples[a].map((s, i) => samples[b][i].ms / s.ms)
  const paired = median(perRep)
  const out = {
    [`${a}_ms`]: round(median(ms(a)), 1),
    [`${b}_ms`]: round(median(ms(b)), 1),
    ratio: round(ratio),
    paired_ratio: round(paired),
    // The spread of the per-repetition ratios (each labwire run against the bare run next to it).
    paired_range: [round(Math.min(...perRep)), round(Math.max(...perRep))],
  }
  for (const side of [a, b]) {
    if (samples[side][0].clientCpuUs !== undefined) {
      out[`${side}_cpu_us_per_op`] = {
        client: round(median(samples[side].map((s) => s.clientCpuUs)) / ops, 2),
        server: round(median(samples[side].map((s) => s.serverCpuUs)) / ops, 2),
      }
    }
  }
  if (out[`${a}_cpu_us_per_op`] !== undefined && out[`${b}_cpu_us_per_op`] !== undefined) {
    const total = (side) => out[`${side}_cpu_us_per_op`].client + out[`${side}_cpu_us_per_op`].server
    // CPU spent by both processes per operation, bare over labwire: steadier than wall time on a loaded machine.
    out.cpu_ratio = round(total(b) / total(a))
  }
  out.samples_ms = { [a]: ms(a).map((v) => round(v, 1)), [b]: ms(b).map((v) => round(v, 1)) }
  return { ratio, paired, out }
}

const emitListeners = []

/** Call `listener(line)` with every figure line emitted from now on (run.mjs collects them for `--runs`). */
export function onEmit(listener) {
  emitListeners.push(listener)
}

/** Print one figure as one JSON line. */
export function emit(figure) {
  for (const listener of emitListeners) listener(figure)
  process.stdout.write(`${JSON.stringify({ date: new Date().toISOString().slice(0, 10), ...figure })}\n`)
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** `count` 16-byte payloads, `tag` + zero-padded index, in one buffer; returns the payloads and the 18-byte CRLF lines. */
export function makeLines(count, tag = 'p') {
  const lines = Buffer.allocUnsafe(count * 18)
  const payloads = new Array(count)
  for (let i = 0; i < count; i++) {
    const offset = i * 18
    lines.write(`${tag}${String(i).padStart(15, '0')}`.slice(-16), offset, 'latin1')
    lines[offset + 16] = 13
    lines[offset + 17] = 10
    payloads[i] = new Uint8Array(lines.buffer, lines.byteOffset + offset, 16)
  }
  return { lines, payloads }
}

/** Open a bare TCP socket (noDelay, like labwire's) to 127.0.0.1:port. */
export function bareConnect(port, ms = 10_000) {
  return bounded(
    new Promise((resolve, reject) => {
      const socket = netConnect({ host: HOST, port, noDelay: true })
      socket.once('connect', () => {
        socket.off('error', reject)
        resolve(socket)
      })
      socket.once('error', reject)
    }),
    ms,
    `connect to ${port}`,
  )
}

/** Close a bare socket and wait for it to be gone. */
export function bareClose(socket) {
  if (socket.destroyed) return Promise.resolve()
  return bounded(
    new Promise((resolve) => {
      socket.once('close', resolve)
      socket.end()
      socket.resume()
    }),
    5_000,
    'bare close',
  ).catch(() => socket.destroy())
}

/** Run `fn(i)` for i in [0, count) with at most `width` at a time; resolves with the results in order. */
export async function inBatches(count, width, fn) {
  const results = new Array(count)
  let next = 0
  const worker = async () => {
    while (next < count) {
      const i = next++
      results[i] = await fn(i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(width, count) }, worker))
  return results
}

export const MiB = 1024 * 1024

/**
 * A bare-socket exchange: `makeOnData(finish)` returns the 'data' handler, which calls `finish()`
 * (or `finish(error)`) when done; `start()` sends the first bytes. Listeners are removed on finish,
 * and an error or close of the socket before then rejects.
 */
export function socketExchange(socket, label, start, makeOnData) {
  return new Promise((resolve, reject) => {
    const finish = (error) => {
      socket.off('data', onData)
      socket.off('error', onError)
      socket.off('close', onClose)
      if (error === undefined) resolve()
      else reject(error)
    }
    const onData = makeOnData(finish)
    const onError = (error) => finish(error)
    const onClose = () => finish(new Error(`${label}: connection closed`))
    socket.on('data', onData)
    socket.on('error', onError)
    socket.on('close', onClose)
    start()
  })
}

/**
 * Run a bare node:net benchmark server in a forked child: noDelay sockets handled by `onSocket`,
 * listening on 127.0.0.1 port 0, closed over IPC, its port reported to the parent.
 */
export async function runBareServer(onSocket) {
  const { createServer } = await import('node:net')
  const sockets = new Set()
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
    onSocket(socket)
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: HOST, port: 0 }, resolve)
  })
  serveIpc({
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
    stats: () => ({ connections: sockets.size }),
  })
  process.send({ type: 'ready', port: server.address().port })
}
