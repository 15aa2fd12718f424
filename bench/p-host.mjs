// P-HOST: `labwire serve` with a line service in cluster mode (2 workers) vs in-process (1
// process), under 200 concurrent lockstep clients, same run, alternating. Two services: `upper`
// (almost no work per request) and `cpu` (~200 µs of JavaScript per request).
//
//   node bench/p-host.mjs            (needs the built CLI: pnpm build)
//
// Prints one JSON line per service: requests/s of each mode and the ratio cluster/in-process.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const CLI = fileURLToPath(new URL('../packages/cli/dist/cli.js', import.meta.url))
if (!existsSync(CLI)) {
  process.stderr.write(`${CLI} is missing: run pnpm build first\n`)
  process.exit(2)
}
const CLIENTS = Number(process.env.LABWIRE_BENCH_CLIENTS ?? 200)
const SECONDS = Number(process.env.LABWIRE_BENCH_SECONDS ?? 3)
const REPS = Number(process.env.LABWIRE_BENCH_REPS ?? 2)

const dir = await mkdtemp(join(tmpdir(), 'labwire-p-host-'))
await writeFile(join(dir, 'upper.mjs'), 'export default (text) => text.toUpperCase()\n')
await writeFile(join(dir, 'cpu.mjs'), "export default (text) => { let h = 0; for (let i = 0; i < 40000; i++) h = (h * 31 + i) | 0; return text + ' ' + (h & 0xff) }\n")

/** Start `labwire serve` on one service; resolves with its port and the child. */
async function start(service, mode) {
  const file = join(dir, `${service}-${mode}.ini`)
  await writeFile(file, `[${service}]\nimport_from = ${service}.mjs\nframer = line\n${mode === 'cluster' ? 'min_proc_num = 2\nmax_proc_num = 2\n' : ''}`)
  const child = spawn(process.execPath, [CLI, 'serve', file, '--mode', mode, '-q'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`labwire serve (${mode}) not ready: ${out}`)), 30_000)
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      out += chunk
      const m = /listening \S+ tcp:\/\/127\.0\.0\.1:(\d+)[\s\S]*\nready\n/.exec(out)
      if (m !== null) {
        clearTimeout(timer)
        resolve(Number(m[1]))
      }
    })
  })
  return { port, child }
}

async function stop(child) {
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
}

/** 200 raw node:net clients, lockstep (one line out, wait for its reply line), for SECONDS. Returns requests/s. */
async function load(port) {
  const sockets = await Promise.all(
    [...Array(CLIENTS).keys()].map(
      () =>
        new Promise((resolve, reject) => {
          const s = net.connect(port, '127.0.0.1', () => resolve(s))
          s.once('error', reject)
        }),
    ),
  )
  let count = 0
  let running = true
  const done = sockets.map(
    (socket, i) =>
      new Promise((resolve) => {
        const request = `client ${i} asks\n`
        let buffered = ''
        socket.setNoDelay(true)
        socket.setEncoding('utf8')
        socket.on('data', (chunk) => {
          buffered += chunk
          let nl
          while ((nl = buffered.indexOf('\n')) >= 0) {
            buffered = buffered.slice(nl + 1)
            count++
            if (running) socket.write(request)
            else {
              socket.end()
              resolve()
              return
            }
          }
        })
        socket.on('close', resolve)
        socket.write(request)
      }),
  )
  const started = performance.now()
  await new Promise((r) => setTimeout(r, 300)) // warm-up
  const base = count
  const t0 = performance.now()
  await new Promise((r) => setTimeout(r, SECONDS * 1000))
  const measured = count - base
  const elapsed = (performance.now() - t0) / 1000
  running = false
  await Promise.race([Promise.all(done), new Promise((r) => setTimeout(r, 3_000))])
  for (const s of sockets) s.destroy()
  void started
  return measured / elapsed
}

try {
  for (const service of ['upper', 'cpu']) {
    const rates = { inprocess: [], cluster: [] }
    for (let rep = 0; rep < REPS; rep++) {
      for (const mode of rep % 2 === 0 ? ['inprocess', 'cluster'] : ['cluster', 'inprocess']) {
        const { port, child } = await start(service, mode)
        try {
          rates[mode].push(await load(port))
        } finally {
          await stop(child)
        }
      }
    }
    const median = (values) => values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)]
    const inprocess = median(rates.inprocess)
    const cluster = median(rates.cluster)
    process.stdout.write(
      `${JSON.stringify({ figure: 'P-HOST', service, clients: CLIENTS, seconds: SECONDS, reps: REPS, inprocessPerSec: Math.round(inprocess), cluster2PerSec: Math.round(cluster), ratio: Number((cluster / inprocess).toFixed(2)) })}\n`,
    )
  }
} finally {
  await rm(dir, { recursive: true, force: true })
}
