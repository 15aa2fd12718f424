// Streamed RPC methods over NATS, on a real three-node cluster: the service on node 1, the caller
// on node 3. Items in order, big items cut and rejoined, credit-paced (bounded buffering), cancel
// by break / abort / deadline reaching the handler's signal, errors mid-stream, plain NATS callers.
import { AbortError, TimeoutError } from '@labwire/core'
import { NatsServer, NatsServiceError, connectNatsRpc, rpcEndpoints, type NatsRpcSession } from '@labwire/nats'
import { RemoteError, codecs, defineService, type RpcContext } from '@labwire/rpc'
import { connect, type NatsConnection } from 'nats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NATS_SERVER, startCluster, type NatsNode } from './cluster.js'

if (NATS_SERVER === undefined) {
  console.warn('SKIPPED: @labwire/nats stream tests — nats-server is not installed (apt-get install nats-server)')
  it.skip('@labwire/nats stream tests: SKIPPED, nats-server is missing (apt-get install nats-server)', () => undefined)
}

const spec = defineService({
  name: 'streams',
  methods: {
    ramp: { id: 1, request: codecs.json<{ n: number; size?: number }>(), response: codecs.raw, stream: true },
    counter: { id: 2, request: codecs.none, response: codecs.uint32le, stream: true },
    broken: { id: 3, request: codecs.uint32le, response: codecs.uint32le, stream: true },
    hello: { id: 4, request: codecs.string, response: codecs.string },
  },
})

/** What the `counter` handler did, for the assertions. */
const seen = { produced: 0, aborted: undefined as unknown, finished: false, deadline: undefined as number | undefined }
let signalled: () => void = () => undefined

const wait = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Resolves when `check` holds (polled), rejects after `ms`. */
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const limit = Date.now() + ms
  while (!check()) {
    if (Date.now() > limit) throw new Error(`${what}: not within ${ms} ms`)
    await wait(10)
  }
}

describe.skipIf(NATS_SERVER === undefined)('stream methods over NATS (three-node cluster)', () => {
  let nodes: NatsNode[] = []
  let server: NatsServer
  let rpc: NatsRpcSession<typeof spec>
  let plain: NatsConnection

  beforeAll(async () => {
    nodes = await startCluster(3)
    const endpoints = rpcEndpoints(spec, {
      ramp: function* ({ n, size }) {
        for (let i = 0; i < n; i++) yield new Uint8Array(size ?? 4).fill(i & 0xff)
      },
      counter: async function* (_none, ctx: RpcContext) {
        seen.produced = 0
        seen.aborted = undefined
        seen.finished = false
        seen.deadline = ctx.deadline
        ctx.signal.addEventListener('abort', () => {
          seen.aborted = ctx.signal.reason
          signalled()
        })
        try {
          for (let i = 0; !ctx.signal.aborted; i++) {
            seen.produced++
            yield i
            await wait(1)
          }
        } finally {
          seen.finished = true
        }
      },
      broken: function* (count) {
        for (let i = 0; i < count; i++) yield i
        throw new RangeError(`broke after ${count}`)
      },
      hello: (name) => `hello ${name}`,
    })
    server = new NatsServer({ servers: (nodes[0] as NatsNode).url, name: spec.name, endpoints })
    await server.listen()
    const node3 = (nodes[2] as NatsNode).url
    rpc = await connectNatsRpc(spec, { servers: node3, timeout: 5000, natsOptions: { noRandomize: true, ignoreClusterUpdates: true } })
    plain = await connect({ servers: node3, noRandomize: true, ignoreClusterUpdates: true })
    // Bounded wait until node 3 routes to the service on node 1.
    const limit = Date.now() + 10_000
    for (;;) {
      const ok = await rpc.hello('x').then(() => true, () => false)
      if (ok) break
      if (Date.now() > limit) throw new Error('the cluster did not route to the service within 10 s')
      await wait(100)
    }
  }, 30_000)

  afterAll(async () => {
    await rpc?.close()
    await plain?.close().catch(() => undefined)
    await server?.close()
    for (const node of nodes) node.kill()
  })

  it('items arrive in order, across the cluster; items over max_payload are cut and rejoined', async () => {
    const before = server.stats().endpoints.find((e) => e.name === 'ramp')?.num_requests ?? 0
    const small: number[] = []
    for await (const item of rpc.ramp({ n: 200 })) small.push(item[0] as number)
    expect(small).toEqual(Array.from({ length: 200 }, (_, i) => i & 0xff))
    const big: Uint8Array[] = []
    for await (const item of rpc.ramp({ n: 3, size: 2.5 * 1024 * 1024 })) big.push(item)
    expect(big.map((b) => [b.length, b[0], b[b.length - 1]])).toEqual([0, 1, 2].map((i) => [2.5 * 1024 * 1024, i, i]))
    const stats = server.stats().endpoints.find((e) => e.name === 'ramp')
    expect(stats?.num_requests).toBe(before + 2) // a stream counts once
    expect(stats?.num_errors).toBe(0)
  })

  it('credit bounds buffering: a slow consumer holds the producer back', async () => {
    await using paced = await connectNatsRpc(spec, { servers: (nodes[2] as NatsNode).url, window: 4, timeout: 5000 })
    let consumed = 0
    let maxAhead = 0
    for await (const value of paced.counter()) {
      expect(value).toBe(consumed)
      consumed++
      await wait(20)
      maxAhead = Math.max(maxAhead, seen.produced - consumed)
      if (consumed === 25) break
    }
    // window 4 in flight + the one the generator is about to yield
    expect(maxAhead).toBeLessThanOrEqual(5)
    await until(() => seen.finished, 3000, 'handler stopped after break')
    expect(seen.aborted).toBeInstanceOf(Error)
  })

  it('break out of the loop: the handler signal aborts, the generator finishes', async () => {
    const aborted = new Promise<void>((resolve) => (signalled = resolve))
    let n = 0
    for await (const value of rpc.counter()) if (++n === 3 || value > 100) break
    await Promise.race([aborted, wait(3000).then(() => Promise.reject(new Error('handler not cancelled within 3 s')))])
    await until(() => seen.finished, 3000, 'generator finished')
    const produced = seen.produced
    await wait(100)
    expect(seen.produced).toBe(produced) // nothing more is produced
    expect(await rpc.hello('still')).toBe('hello still')
  })

  it('an aborted signal stops the stream with AbortError and cancels the handler', async () => {
    const controller = new AbortController()
    const aborted = new Promise<void>((resolve) => (signalled = resolve))
    const got: number[] = []
    const error = await (async () => {
      for await (const value of rpc.counter(undefined, { signal: controller.signal })) {
        got.push(value)
        if (got.length === 5) controller.abort(new Error('operator stop'))
      }
    })().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(AbortError)
    expect(got).toEqual([0, 1, 2, 3, 4])
    await Promise.race([aborted, wait(3000).then(() => Promise.reject(new Error('handler not cancelled within 3 s')))])
  })

  it('a timeout travels as the handler deadline: TimeoutError at the caller, the handler stopped', async () => {
    const started = Date.now()
    const error = await (async () => {
      for await (const value of rpc.counter(undefined, { timeout: 300 })) await wait(value >= 0 ? 5 : 0)
    })().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(TimeoutError)
    expect(Date.now() - started).toBeLessThan(3000)
    expect(seen.deadline).toBeGreaterThan(started)
    await until(() => seen.finished, 3000, 'handler stopped at its deadline')
  })

  it('closing the session mid-stream cancels the handler at once (not after the credit timeout)', async () => {
    const aborted = new Promise<void>((resolve) => (signalled = resolve))
    const session = await connectNatsRpc(spec, { servers: (nodes[2] as NatsNode).url, timeout: 5000 })
    const got: number[] = []
    const iterating = (async () => {
      for await (const value of session.counter()) {
        got.push(value)
        if (got.length === 3) await session.close()
      }
    })().catch((e: unknown) => e)
    await Promise.race([aborted, wait(3000).then(() => Promise.reject(new Error('handler not cancelled within 3 s of close()')))])
    expect(await iterating).toBeInstanceOf(Error)
    await until(() => seen.finished, 3000, 'generator finished')
  })

  it('the service closing mid-stream: the caller gets NatsServiceError 503, not a hang', async () => {
    const extra = new NatsServer({ servers: (nodes[1] as NatsNode).url, name: 'streams2', endpoints: rpcEndpoints({ ...spec, name: 'streams2' }, {
      ramp: function* () {
        yield new Uint8Array(1)
      },
      counter: async function* (_none, ctx: RpcContext) {
        for (let i = 0; !ctx.signal.aborted; i++) {
          yield i
          await wait(5)
        }
      },
      broken: function* () {
        yield 0
      },
      hello: (name) => name,
    }) })
    await extra.listen()
    const spec2 = { ...spec, name: 'streams2' }
    await using session = await connectNatsRpc(spec2, { servers: (nodes[2] as NatsNode).url, timeout: 5000 })
    let limit = Date.now() + 5000
    while (!(await session.hello('x').then(() => true, () => false))) {
      if (Date.now() > limit) throw new Error('streams2 not reachable')
      await wait(50)
    }
    const got: number[] = []
    limit = Date.now()
    const error = await (async () => {
      for await (const value of session.counter()) {
        got.push(value)
        if (got.length === 3) void extra.close()
      }
    })().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(NatsServiceError)
    expect((error as NatsServiceError).statusCode).toBe(503)
    expect(Date.now() - limit).toBeLessThan(3000)
  })

  it('a handler that throws mid-stream: the items before it, then RemoteError; counted in num_errors', async () => {
    const got: number[] = []
    const error = await (async () => {
      for await (const value of rpc.broken(3)) got.push(value)
    })().catch((e: unknown) => e)
    expect(got).toEqual([0, 1, 2])
    expect(error).toBeInstanceOf(RemoteError)
    expect(error).toMatchObject({ remoteName: 'RangeError', message: 'broke after 3', method: 'broken' })
    expect(server.stats().endpoints.find((e) => e.name === 'broken')).toMatchObject({ num_requests: 1, num_errors: 1, last_error: 'broke after 3' })
  })

  it('a plain NATS client: the first reply is the first item; requestMany gets them all, then the empty end', async () => {
    const first = await plain.request('streams.ramp', new TextEncoder().encode('{"n":3}'), { timeout: 3000 })
    expect([...first.data]).toEqual([0, 0, 0, 0])
    const all: number[][] = []
    for await (const msg of await plain.requestMany('streams.ramp', new TextEncoder().encode('{"n":3}'), { maxWait: 3000, strategy: 'sentinel' as never })) {
      if (msg.data.length === 0) break
      all.push([...msg.data])
    }
    expect(all).toEqual([0, 1, 2].map((i) => [i, i, i, i]))
  })

  it('a plain NATS client cannot cancel: its endless stream ends after creditTimeout with error 408', async () => {
    let stopped: unknown
    await using endless = new NatsServer({
      servers: (nodes[0] as NatsNode).url,
      name: 'endless',
      creditTimeout: 300,
      endpoints: [
        {
          name: 'ticks',
          stream: async function* (_request, ctx) {
            ctx.signal.addEventListener('abort', () => {
              stopped = ctx.signal.reason as unknown
            })
            for (let i = 0; !ctx.signal.aborted; i++) {
              yield new Uint8Array([i & 0xff])
              await wait(10)
            }
          },
        },
      ],
    })
    await endless.listen()
    // Bounded wait until node 3 sees the new service (interest travels over the routes).
    const limit = Date.now() + 10_000
    while (!(await plain.request('$SRV.PING.endless', new Uint8Array(0), { timeout: 500 }).then(() => true, () => false))) {
      if (Date.now() > limit) throw new Error('endless not visible from node 3 within 10 s')
      await wait(50)
    }
    const started = Date.now()
    let items = 0
    let code = ''
    for await (const msg of await plain.requestMany('endless.ticks', new Uint8Array(0), { maxWait: 5000, strategy: 'sentinel' as never })) {
      code = msg.headers?.get('Nats-Service-Error-Code') ?? ''
      if (code !== '' || msg.data.length === 0) break
      items++
    }
    expect(code).toBe('408')
    expect(items).toBeGreaterThan(3)
    expect(Date.now() - started).toBeLessThan(5000)
    expect(stopped).toBeInstanceOf(TimeoutError)
    expect(endless.stats().endpoints[0]).toMatchObject({ num_requests: 1, num_errors: 1 })
  })

  it('$SRV.INFO marks stream methods', async () => {
    const info = await plain.request('$SRV.INFO.streams', new Uint8Array(0), { timeout: 3000 })
    const body = JSON.parse(new TextDecoder().decode(info.data)) as { endpoints: { name: string; metadata: Record<string, string> }[] }
    expect(body.endpoints.find((e) => e.name === 'ramp')?.metadata).toMatchObject({ id: '1', stream: 'true' })
    expect(body.endpoints.find((e) => e.name === 'hello')?.metadata.stream).toBeUndefined()
  })
})
