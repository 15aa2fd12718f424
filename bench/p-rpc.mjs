// PRPC — @labwire/rpc against labwire's own line ping-pong and bare node:net, measured in the same run.
// lockstep: 5,000 small JSON calls ({ i, s }) one at a time over TCP, vs ApplicationClient line
//           ping-pong (16 B + CRLF, maxInFlight 1) against the labwire line echo server.
// inflight: the same 5,000 calls with 64 in flight on one session, vs the line client with maxInFlight 64.
// bulk:     one call with a 64 MiB `raw` argument (the server answers its length), vs a bare node:net
//           client writing 64 MiB to a bare server that assembles them in one buffer (one copy, like
//           labwire) and answers once it has them all.
// Each pair runs interleaved (A B, B A, …) for at least 5 rounds (LABWIRE_BENCH_REPS raises it); every
// ratio is reported as the median of the per-round ratios with its [min, max] range.
// Servers run in a child process (this file with `serve`); the RPC package is imported from its dist
// (LABWIRE_RPC_DIST=path/to/index.js picks another build, e.g. a baseline, for before/after runs).
import { createServer } from 'node:net'
import { resolve } from 'node:path'
import process from 'node:process'
import { pathToFileURL } from 'node:url'
import { ApplicationClient, SentinelBytesMarshaller, TcpClient, TcpServer } from './labwire.mjs'
import { BENCH_DIR, bareClose, bareConnect, compare, emit, equalBytes, forkChild, inBatches, interleave, makeLines, measure, median, MiB, REPS, round, serveIpc } from './lib.mjs'

const CALLS = 5_000
const BULK = 64 * MiB
const ROUNDS = Math.max(5, REPS)
const RPC_DIST = process.env.LABWIRE_RPC_DIST ? resolve(process.env.LABWIRE_RPC_DIST) : resolve(BENCH_DIR, '../packages/rpc/dist/index.js')
const rpcModule = () => import(pathToFileURL(RPC_DIST).href)

/** Per-round ratios `b / a` (a = labwire side): median and [min, max]. */
function spread(samples, a, b) {
  const ratios = samples[a].map((s, i) => samples[b][i].ms / s.ms)
  return { median: round(median(ratios)), range: [round(Math.min(...ratios)), round(Math.max(...ratios))] }
}

async function spec() {
  const { codecs, defineService } = await rpcModule()
  return defineService({
    name: 'bench',
    methods: {
      echo: { id: 1, request: codecs.json(), response: codecs.json() },
      sink: { id: 2, request: codecs.raw, response: codecs.uint32le },
    },
  })
}

async function serve() {
  const { RpcServer } = await rpcModule()
  const rpc = new RpcServer(await spec(), { echo: (value) => value, sink: (bytes) => bytes.length })
  const server = new TcpServer({ host: '127.0.0.1', port: 0, callback: rpc })
  const { port } = await server.listen()
  // Bare sink: reads a u32le length, then assembles that many bytes in one buffer (what a handler
  // needs to be handed: one copy, as labwire does), answers 4 bytes.
  const bare = createServer({ noDelay: true }, (socket) => {
    let want = -1
    let got = 0
    let head = Buffer.alloc(0)
    let body
    socket.on('data', (chunk) => {
      if (want < 0) {
        head = Buffer.concat([head, chunk])
        if (head.length < 4) return
        want = head.readUInt32LE(0)
        body = Buffer.allocUnsafe(want)
        got = head.copy(body, 0, 4)
      } else got += chunk.copy(body, got)
      if (got >= want) {
        socket.write(Buffer.from([1, 2, 3, 4]))
        want = -1
        got = 0
        head = Buffer.alloc(0)
      }
    })
    socket.on('error', () => socket.destroy())
  })
  await new Promise((resolve) => bare.listen(0, '127.0.0.1', resolve))
  serveIpc({ close: () => Promise.all([server.close(), new Promise((resolve) => bare.close(resolve))]) })
  process.send({ type: 'ready', port, barePort: bare.address().port })
}

function bareBulk(socket, payload) {
  return new Promise((resolve, reject) => {
    const onData = () => {
      socket.off('data', onData)
      socket.off('error', reject)
      resolve()
    }
    socket.on('data', onData)
    socket.once('error', reject)
    const head = Buffer.alloc(4)
    head.writeUInt32LE(payload.length, 0)
    socket.write(head)
    socket.write(payload)
  })
}

export async function pRpc() {
  const { RpcClient } = await rpcModule()
  const service = await spec()
  const rpcServer = await forkChild('p-rpc.mjs', ['serve'])
  const lineServer = await forkChild('servers/labwire-line-echo.mjs')
  try {
    const { payloads } = makeLines(CALLS)
    const values = Array.from({ length: CALLS }, (_, i) => ({ i, s: 'abcd' }))
    const line = new SentinelBytesMarshaller('\r\n')
    const rpcTransport = new TcpClient({ host: '127.0.0.1', port: rpcServer.info.port })
    const lineClient = (maxInFlight) => new ApplicationClient(new TcpClient({ host: '127.0.0.1', port: lineServer.info.port }), line.marshall, line.unmarshall, { maxInFlight })
    const rpcRun = (width) => async () => {
      const session = await new RpcClient(service, rpcTransport).connect()
      const result = await measure(rpcServer, () =>
        inBatches(CALLS, width, async (i) => {
          const back = await session.echo(values[i])
          if (back.i !== i) throw new Error(`rpc: wrong answer to call ${i}`)
        }),
      )
      await session.close()
      return result
    }
    const lineRun = (width) => async () => {
      const session = await lineClient(width).connect()
      const result = await measure(lineServer, () =>
        inBatches(CALLS, width, async (i) => {
          const back = await session.sendReceive(payloads[i])
          if (!equalBytes(back, payloads[i])) throw new Error(`line: wrong answer to request ${i}`)
        }),
      )
      await session.close()
      return result
    }
    const lock = await interleave({ rpc: rpcRun(1), line: lineRun(1) }, ROUNDS)
    const lockCmp = compare(lock, 'rpc', 'line', CALLS)
    const fly = await interleave({ rpc: rpcRun(64), line: lineRun(64) }, ROUNDS)
    const flyCmp = compare(fly, 'rpc', 'line', CALLS)

    const big = new Uint8Array(BULK)
    for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff
    const bulk = await interleave(
      {
        rpc: async () => {
          const session = await new RpcClient(service, rpcTransport).connect()
          const result = await measure(rpcServer, async () => {
            if ((await session.sink(big)) !== BULK) throw new Error('rpc bulk: wrong length')
          })
          await session.close()
          return result
        },
        bare: async () => {
          const socket = await bareConnect(rpcServer.info.barePort)
          const result = await measure(rpcServer, () => bareBulk(socket, big))
          await bareClose(socket)
          return result
        },
      },
      ROUNDS,
    )
    const bulkCmp = compare(bulk, 'rpc', 'bare', 1)
    emit({
      figure: 'PRPC',
      what: `small JSON call over TCP, ${CALLS} calls: lockstep and 64 in flight vs labwire line ping-pong; 64 MiB raw argument vs bare node:net`,
      rounds: ROUNDS,
      rpc_dist: RPC_DIST,
      lockstep: spread(lock, 'rpc', 'line'),
      inflight64: spread(fly, 'rpc', 'line'),
      bulk: spread(bulk, 'rpc', 'bare'),
      lockstep_ratio: lockCmp.out.ratio,
      lockstep_paired_ratio: lockCmp.out.paired_ratio,
      lockstep_target: 'paired_ratio >= 0.85',
      lockstep_pass: lockCmp.paired >= 0.85,
      // CPU of both processes per call, line over rpc: steadier than wall time on a loaded machine.
      lockstep_cpu_ratio: lockCmp.out.cpu_ratio,
      // CPU µs per call, client and server process: where the remaining gap is.
      lockstep_cpu_us_per_call: { rpc: lockCmp.out.rpc_cpu_us_per_op, line: lockCmp.out.line_cpu_us_per_op },
      inflight64_cpu_us_per_call: { rpc: flyCmp.out.rpc_cpu_us_per_op, line: flyCmp.out.line_cpu_us_per_op },
      rpc_lockstep_us_per_call: round((lockCmp.out.rpc_ms * 1000) / CALLS, 2),
      line_lockstep_us_per_call: round((lockCmp.out.line_ms * 1000) / CALLS, 2),
      inflight64_ratio: flyCmp.out.ratio,
      inflight64_paired_ratio: flyCmp.out.paired_ratio,
      inflight64_cpu_ratio: flyCmp.out.cpu_ratio,
      rpc_inflight64_calls_per_s: round(CALLS / (flyCmp.out.rpc_ms / 1000), 0),
      bulk_ratio: bulkCmp.out.ratio,
      bulk_paired_ratio: bulkCmp.out.paired_ratio,
      bulk_target: 'paired_ratio >= 0.8',
      bulk_pass: bulkCmp.paired >= 0.8,
      bulk_cpu_ratio: bulkCmp.out.cpu_ratio,
      rpc_bulk_mib_per_s: round(64 / (bulkCmp.out.rpc_ms / 1000), 1),
      bare_bulk_mib_per_s: round(64 / (bulkCmp.out.bare_ms / 1000), 1),
      samples_ms: { lockstep: lockCmp.out.samples_ms, inflight64: flyCmp.out.samples_ms, bulk: bulkCmp.out.samples_ms },
    })
  } finally {
    await Promise.all([rpcServer.close(), lineServer.close()])
  }
}

if (process.argv[2] === 'serve') await serve()
