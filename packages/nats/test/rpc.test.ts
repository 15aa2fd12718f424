// @labwire/rpc over NATS: one ADR-32 endpoint per method, typed calls by service name.
import { AbortError, TimeoutError } from '@labwire/core'
import { NatsServer, connectNatsRpc, rpcEndpoints } from '@labwire/nats'
import { RemoteError, codecs, defineService } from '@labwire/rpc'
import { connect, type ServiceInfo } from 'nats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NATS_SERVER, startCluster, type NatsNode } from './cluster.js'

if (NATS_SERVER === undefined) {
  console.warn('SKIPPED: @labwire/nats RPC test — nats-server is not installed (apt-get install nats-server)')
  it.skip('@labwire/nats RPC test: SKIPPED, nats-server is missing (apt-get install nats-server)', () => undefined)
}

const greet = defineService({
  name: 'greet',
  methods: {
    hello: { id: 0, request: codecs.string, response: codecs.string },
    add: { id: 2, request: codecs.tuple(codecs.int32le, codecs.int32le), response: codecs.int32le },
    blob: { id: 3, request: codecs.raw, response: codecs.int32le },
    fail: { id: 4, request: codecs.string, response: codecs.string },
    note: { id: 6, request: codecs.json<{ text: string }>(), oneWay: true },
  },
})

describe.skipIf(NATS_SERVER === undefined)('RPC over NATS, one endpoint per method', () => {
  let node: NatsNode | undefined
  beforeAll(async () => {
    node = (await startCluster(1))[0]
  }, 20_000)
  afterAll(() => node?.kill())

  it('typed calls by name; errors as RemoteError; big arguments; ADR-32 INFO lists the methods', async () => {
    const servers = (node as NatsNode).url
    const notes: string[] = []
    const endpoints = rpcEndpoints(greet, {
      hello: (name) => `hello ${name}`,
      add: ([a, b]) => a + b,
      blob: (bytes) => bytes.length,
      fail: (why) => {
        throw new RangeError(`failing: ${why}`)
      },
      note: ({ text }) => {
        notes.push(text)
      },
    })
    await using server = new NatsServer({ servers, name: greet.name, endpoints })
    await server.listen()
    await using rpc = await connectNatsRpc(greet, { servers, timeout: 5000 })
    expect(await rpc.hello('bob')).toBe('hello bob')
    expect(await Promise.all([rpc.add([2, 3]), rpc.add([40, 2]), rpc.hello('ann')])).toEqual([5, 42, 'hello ann'])
    expect(await rpc.blob(new Uint8Array(3 * 1024 * 1024))).toBe(3 * 1024 * 1024)
    const error = await rpc.fail('on purpose').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(RemoteError)
    expect(error).toMatchObject({ remoteName: 'RangeError', method: 'fail', message: 'failing: on purpose' })
    expect(await rpc.hello('after')).toBe('hello after') // an error fails that call only
    await rpc.note({ text: 'hi' })
    expect(notes).toEqual(['hi'])
    expect(server.stats().endpoints.map((e) => [e.name, e.num_requests, e.num_errors])).toEqual([
      ['hello', 3],
      ['add', 2],
      ['blob', 1],
      ['fail', 1],
      ['note', 1],
    ].map(([name, n]) => [name, n, name === 'fail' ? 1 : 0]))

    // Any NATS client: INFO lists one endpoint per method; a string method answers `nats req`.
    const nc = await connect({ servers })
    try {
      const infos: ServiceInfo[] = []
      for await (const info of await nc.services.client({ strategy: 'timer' as never, maxWait: 300 }).info('greet')) infos.push(info)
      expect(infos[0]?.endpoints.map((e) => e.subject)).toEqual(['greet.hello', 'greet.add', 'greet.blob', 'greet.fail', 'greet.note'])
      const reply = await nc.request('greet.hello', codecs.string.encode('plain nats'), { timeout: 2000 })
      expect(codecs.string.decode(reply.data)).toBe('hello plain nats')
    } finally {
      await nc.close()
    }
  })

  it('per-call timeout and abort signal: TimeoutError / AbortError for that call, the session goes on', async () => {
    const servers = (node as NatsNode).url
    const slow = defineService({ name: 'slowpoke', methods: { wait: { id: 1, request: codecs.uint32le, response: codecs.uint32le } } })
    const seen: { deadline: number | undefined; reason: unknown }[] = []
    let ended: () => void = () => undefined
    await using server = new NatsServer({
      servers,
      name: slow.name,
      endpoints: rpcEndpoints(slow, {
        wait: (ms, ctx) =>
          new Promise((resolve, reject) => {
            const entry = { deadline: ctx.deadline, reason: undefined as unknown }
            seen.push(entry)
            const timer = setTimeout(() => resolve(ms), ms)
            ctx.signal.addEventListener('abort', () => {
              clearTimeout(timer)
              entry.reason = ctx.signal.reason as unknown
              ended()
              reject(ctx.signal.reason as Error)
            })
          }),
      }),
    })
    await server.listen()
    await using rpc = await connectNatsRpc(slow, { servers, timeout: 5000 })
    let started = Date.now()
    let handlerStopped = new Promise<void>((resolve) => (ended = resolve))
    await expect(rpc.wait(8000, { timeout: 100 })).rejects.toBeInstanceOf(TimeoutError)
    expect(Date.now() - started).toBeLessThan(3000) // long before the handler's 8 s
    // The time limit travelled as the handler's deadline, which aborted its signal.
    await Promise.race([handlerStopped, new Promise((_, reject) => setTimeout(() => reject(new Error('handler not stopped at its deadline')), 2000))])
    expect(seen[0]?.deadline).toBeGreaterThanOrEqual(started)
    expect(seen[0]?.deadline).toBeLessThanOrEqual(started + 3000)
    expect(seen[0]?.reason).toBeInstanceOf(TimeoutError)
    handlerStopped = new Promise<void>((resolve) => (ended = resolve))
    const controller = new AbortController()
    started = Date.now()
    const aborted = rpc.wait(8000, { signal: controller.signal })
    setTimeout(() => controller.abort(new Error('operator')), 50)
    const error = await aborted.catch((e: unknown) => e)
    expect(error).toBeInstanceOf(AbortError)
    expect((error as AbortError).cause).toMatchObject({ message: 'operator' })
    expect(Date.now() - started).toBeLessThan(3000)
    // The cancel reached the instance running it: the handler's signal aborted.
    await Promise.race([handlerStopped, new Promise((_, reject) => setTimeout(() => reject(new Error('handler not cancelled')), 2000))])
    expect(seen[1]?.reason).toBeInstanceOf(AbortError)
    expect(seen[1]?.deadline).toBeGreaterThan(started) // the session's default 5000 ms travelled too
    await expect(rpc.wait(1, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(AbortError)
    expect(await rpc.wait(5)).toBe(5)
  })
})
