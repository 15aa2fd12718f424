// P-NATS — one RPC-style call over NATS (client → nats-server → service and back: one hop through
// the broker each way) vs the same call over direct TCP, in the same run. One forked server
// process serves the same ApplicationServer (SentinelBytesMarshaller('\r\n') echo) on a TcpServer
// and as a NatsServer; the client calls it with ApplicationClient over TcpClient and over
// NatsClient, lockstep (maxInFlight 1), then pipelined (maxInFlight 16), interleaved A/B.
// ratio = TCP time / NATS time (below 1: NATS is slower). CPU per call counts the client, the
// service and, for NATS, the nats-server process (from /proc).
//
//   pnpm build && node bench/p-nats.mjs         (needs nats-server: Debian package nats-server)
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import process from 'node:process'
import { fileURLToPath } from 'node:url'
import { ApplicationClient, ApplicationServer, SentinelBytesMarshaller, TcpClient, TcpServer } from './labwire.mjs'
import { HOST, compare, emit, forkChild, interleave, killChildren, makeLines, measure, median, round, serveIpc } from './lib.mjs'
import { labwireLockstep, labwirePipelined } from './line-clients.mjs'

// @labwire/nats is not re-exported by labwire.mjs: load its build directly.
const { NatsClient, NatsServer } = await import('../packages/nats/dist/index.js')

const LOCKSTEP = 5_000
const PIPELINED = 20_000
const WINDOW = 16
const NATS_SERVER = ['/usr/sbin/nats-server', '/usr/bin/nats-server'].find((path) => existsSync(path))
const line = new SentinelBytesMarshaller('\r\n')

/** The child: the same echo on TCP and on NATS. */
async function serve(natsUrl) {
  const app = new ApplicationServer(line.unmarshall, line.marshall, (payload) => payload)
  const tcp = new TcpServer({ host: HOST, port: 0, callback: app })
  const address = await tcp.listen()
  const nats = new NatsServer({ servers: natsUrl, name: 'bench-echo', callback: app })
  await nats.listen()
  serveIpc({ close: async () => Promise.all([tcp.close(), nats.close()]) })
  process.send({ type: 'ready', ...address })
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, HOST, () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** CPU time (user + system) of a process, µs, from /proc (10 ms resolution). */
function procCpuUs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / 100
}

export async function pNats() {
  if (NATS_SERVER === undefined) {
    emit({ figure: 'P-NATS', skipped: 'nats-server is not installed (apt-get install nats-server)' })
    return
  }
  const port = await freePort()
  const broker = spawn(NATS_SERVER, ['-a', HOST, '-p', String(port)], { stdio: 'ignore' })
  const url = `nats://${HOST}:${port}`
  let server
  try {
    for (let i = 0; ; i++) {
      try {
        server = await forkChild('p-nats.mjs', ['serve', url])
        break
      } catch (error) {
        if (i === 20) throw error
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
    const tcp = new ApplicationClient(new TcpClient({ host: HOST, port: server.info.port }), line.marshall, line.unmarshall, { maxInFlight: WINDOW })
    const nats = new ApplicationClient(new NatsClient({ servers: url, name: 'bench-echo', timeout: 10_000 }), line.marshall, line.unmarshall, { maxInFlight: WINDOW })
    const withBroker = async (side, fn) => {
      const before = side === 'nats' ? procCpuUs(broker.pid) : 0
      const result = await measure(server, fn)
      if (side === 'nats') {
        result.brokerCpuUs = procCpuUs(broker.pid) - before
        result.serverCpuUs += result.brokerCpuUs
      }
      return result
    }
    const run = (client, side, kind) => async () => {
      const session = await client.connect()
      try {
        if (kind === 'lockstep') {
          const { payloads } = makeLines(LOCKSTEP)
          return await withBroker(side, () => labwireLockstep(session, payloads))
        }
        const { payloads } = makeLines(PIPELINED)
        return await withBroker(side, () => labwirePipelined(session, payloads, WINDOW))
      } finally {
        await session.close()
      }
    }
    for (const [kind, count] of [['lockstep', LOCKSTEP], ['pipelined', PIPELINED]]) {
      const samples = await interleave({ nats: run(nats, 'nats', kind), tcp: run(tcp, 'tcp', kind) })
      const { out } = compare(samples, 'nats', 'tcp', count)
      emit({
        figure: `P-NATS-${kind.toUpperCase()}`,
        what: `labwire echo call, 16 B + CRLF, ${count} calls, ${kind === 'lockstep' ? 'one at a time' : `${WINDOW} in flight`}: via nats-server (one broker hop each way) vs direct TCP`,
        ratio_tcp_over_nats: out.ratio,
        paired_ratio_tcp_over_nats: out.paired_ratio,
        nats_us_per_call: round((out.nats_ms * 1000) / count, 2),
        tcp_us_per_call: round((out.tcp_ms * 1000) / count, 2),
        hop_cost_us_per_call: round(((out.nats_ms - out.tcp_ms) * 1000) / count, 2),
        nats_server_cpu_us_per_call: round(median(samples.nats.map((s) => s.brokerCpuUs)) / count, 2),
        ...out,
      })
    }
  } finally {
    await server?.close()
    if (broker.exitCode === null && broker.pid !== undefined) process.kill(broker.pid, 'SIGKILL')
  }
}

if (process.argv[2] === 'serve') await serve(process.argv[3])
else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    await pNats()
  } finally {
    killChildren()
  }
  process.exit(0)
}
