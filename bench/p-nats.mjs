// P-NATS — one RPC-style call over NATS (client → nats-server → service and back: one hop through
// the broker each way) vs the same call over direct TCP, in the same run. One forked server
// process serves the same ApplicationServer (SentinelBytesMarshaller('\r\n') echo) on a TcpServer
// and as a NatsServer; the client calls it with ApplicationClient over TcpClient and over
// NatsClient, lockstep (maxInFlight 1), then pipelined (maxInFlight 16), interleaved A/B.
// ratio = TCP time / NATS time (below 1: NATS is slower). CPU per call counts the client, the
// service and, for NATS, the nats-server process (from /proc).
// P-NATS-STREAM: a streamed RPC method (`stream: true`, 64 B items) over NATS (rpcEndpoints +
// connectNatsRpc: one message per item, paced by the caller's credit, window 16 or
// LABWIRE_NATS_WINDOW) vs the same method from RpcServer over direct TCP (RpcClient), items per second.
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

// @labwire/nats and @labwire/rpc are not re-exported by labwire.mjs: load their builds directly.
const { NatsClient, NatsServer, connectNatsRpc, rpcEndpoints } = await import('../packages/nats/dist/index.js')
const { RpcClient, RpcServer, codecs, defineService } = await import('../packages/rpc/dist/index.js')

const LOCKSTEP = 5_000
const PIPELINED = 20_000
const STREAM_ITEMS = 20_000
const ITEM = new Uint8Array(64).fill(0x61)
const streamSpec = defineService({ name: 'bench-stream', methods: { ramp: { id: 1, request: codecs.uint32le, response: codecs.raw, stream: true } } })
const rampHandlers = {
  ramp: function* (n) {
    for (let i = 0; i < n; i++) yield ITEM
  },
}
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
  const rpcTcp = new TcpServer({ host: HOST, port: 0, callback: new RpcServer(streamSpec, rampHandlers) })
  const rpcAddress = await rpcTcp.listen()
  const rpcNats = new NatsServer({ servers: natsUrl, name: streamSpec.name, endpoints: rpcEndpoints(streamSpec, rampHandlers) })
  await rpcNats.listen()
  serveIpc({ close: async () => Promise.all([tcp.close(), nats.close(), rpcTcp.close(), rpcNats.close()]) })
  process.send({ type: 'ready', ...address, rpcPort: rpcAddress.port })
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
    // Streamed RPC: items per second.
    const drain = async (stream) => {
      let n = 0
      for await (const item of stream) n += item.length > 0 ? 1 : 0
      if (n !== STREAM_ITEMS) throw new Error(`stream: ${n} items, expected ${STREAM_ITEMS}`)
    }
    const window = Number(process.env.LABWIRE_NATS_WINDOW ?? 16)
    const natsRpc = await connectNatsRpc(streamSpec, { servers: url, timeout: 10_000, window })
    const tcpRpc = await new RpcClient(streamSpec, new TcpClient({ host: HOST, port: server.info.rpcPort })).connect()
    try {
      const samples = await interleave({
        nats: () => withBroker('nats', () => drain(natsRpc.ramp(STREAM_ITEMS))),
        tcp: () => withBroker('tcp', () => drain(tcpRpc.ramp(STREAM_ITEMS))),
      })
      const { out } = compare(samples, 'nats', 'tcp', STREAM_ITEMS)
      emit({
        figure: 'P-NATS-STREAM',
        what: `streamed RPC method, ${STREAM_ITEMS} items of 64 B: over NATS (one message per item, credit window ${window}) vs RpcServer over direct TCP`,
        window,
        ratio_tcp_over_nats: out.ratio,
        paired_ratio_tcp_over_nats: out.paired_ratio,
        nats_items_per_s: round(STREAM_ITEMS / (out.nats_ms / 1000), 0),
        tcp_items_per_s: round(STREAM_ITEMS / (out.tcp_ms / 1000), 0),
        nats_server_cpu_us_per_item: round(median(samples.nats.map((s) => s.brokerCpuUs)) / STREAM_ITEMS, 2),
        ...out,
      })
    } finally {
      await natsRpc.close()
      await tcpRpc.close()
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
