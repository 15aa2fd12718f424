/**
 * The RPC compliance suite, run over every transport: memory, TCP, Unix socket, WebSocket.
 */
import { Buffer } from 'node:buffer'
import { AbortError, TimeoutError } from '@labwire/core'
import { describe, expect, it } from 'vitest'
import {
  RemoteError,
  RpcClient,
  RpcClosedError,
  RpcDecodeError,
  RpcInsecureCodecError,
  RpcServer,
  RpcSpecMismatchError,
  codecs,
  defineService,
} from '../src/index.js'
import { memory, tcp, unix, websocket, within, type RpcTransportSetup } from './fixtures.js'
import { handlers, svc, type Probe } from './service.js'

const WAIT = 5_000

/** One service per codec, each method echoes; with sample values. */
const codecCases = [
  ['raw', codecs.raw, new Uint8Array([0, 1, 255])],
  ['string', codecs.string, 'héllo ✓'],
  ['bytes', codecs.bytes, new Uint8Array([9, 8, 7])],
  ['none', codecs.none, undefined],
  ['bool', codecs.bool, true],
  ['json', codecs.json(), { a: [1, 'x', null] }],
  ['msgpack', codecs.msgpack(), { a: [1, 'x', null], b: new Uint8Array([1]) }],
  ['int8', codecs.int8, -128],
  ['uint8', codecs.uint8, 255],
  ['int16le', codecs.int16le, -32768],
  ['int16be', codecs.int16be, 32767],
  ['uint16le', codecs.uint16le, 65535],
  ['uint16be', codecs.uint16be, 258],
  ['int32le', codecs.int32le, -2147483648],
  ['int32be', codecs.int32be, 2147483647],
  ['uint32le', codecs.uint32le, 4294967295],
  ['uint32be', codecs.uint32be, 16909060],
  ['int64le', codecs.int64le, -(2n ** 63n)],
  ['int64be', codecs.int64be, 2n ** 63n - 1n],
  ['uint64le', codecs.uint64le, 2n ** 64n - 1n],
  ['uint64be', codecs.uint64be, 1n],
  ['float32le', codecs.float32le, 1.5],
  ['float32be', codecs.float32be, -0.25],
  ['float64le', codecs.float64le, Math.PI],
  ['float64be', codecs.float64be, -1e300],
  ['tuple', codecs.tuple(codecs.string, codecs.uint8, codecs.bytes), ['a', 7, new Uint8Array([1, 2])]],
] as const

const echoService = defineService({
  name: 'codecs',
  methods: Object.fromEntries(codecCases.map(([name, codec], i) => [name, { id: i, request: codec, response: codec }])),
})
const echoHandlers = Object.fromEntries(codecCases.map(([name]) => [name, (value: unknown) => value]))

function rpcCompliance(setup: RpcTransportSetup): void {
  describe(`RPC over ${setup.name}`, () => {
    const serve = async (options: ConstructorParameters<typeof RpcServer>[2] = {}) => {
      const probe: Probe = { notes: [], stopped: [] }
      const served = await setup.start(new RpcServer(svc, handlers(probe), options))
      const client = new RpcClient(svc, served.client(), { allowInsecureCodecs: true })
      return { probe, served, client, [Symbol.asyncDispose]: () => served.close() }
    }

    it('typed calls, and answers out of order matched by call id', async () => {
      await using f = await serve()
      await using s = await f.client.connect()
      expect(await s.hello('bob')).toBe('hello bob')
      expect(await s.add([2, -5])).toBe(-3)
      const order: string[] = []
      const slow = s.sleep(150).then((r) => order.push(r))
      const fast = s.sleep(5).then((r) => order.push(r))
      await within(Promise.all([slow, fast]), WAIT, 'sleeps')
      expect(order).toEqual(['slept 5', 'slept 150'])
    })

    it('64 calls in flight on one session', async () => {
      await using f = await serve()
      await using s = await f.client.connect()
      const sums = await within(Promise.all(Array.from({ length: 64 }, (_, i) => s.add([i, 1000]))), WAIT, 'adds')
      expect(sums).toEqual(Array.from({ length: 64 }, (_, i) => i + 1000))
      expect(await s.ping()).toBeGreaterThanOrEqual(0)
    })

    it('every codec round-trips', async () => {
      await using served = await setup.start(new RpcServer(echoService, echoHandlers as never))
      await using s = await new RpcClient(echoService, served.client()).connect()
      for (const [name, , value] of codecCases) {
        const call = (s as unknown as Record<string, (v: unknown) => Promise<unknown>>)[name] as (v: unknown) => Promise<unknown>
        expect(await call(value), name).toEqual(value)
      }
    })

    it('streams: all chunks then the end; a 1 MiB raw argument echoes', async () => {
      await using f = await serve()
      await using s = await f.client.connect()
      const chunks: number[] = []
      for await (const chunk of s.ramp({ n: 300 })) chunks.push(chunk[0] as number)
      expect(chunks).toEqual(Array.from({ length: 300 }, (_, i) => i & 0xff))
      const big = new Uint8Array(1024 * 1024)
      for (let i = 0; i < big.length; i++) big[i] = i % 251
      const back = await s.echo(big)
      expect(back.length).toBe(big.length)
      expect(Buffer.compare(back, big)).toBe(0)
    })

    it('breaking out of a stream cancels it: the handler stops', async () => {
      await using f = await serve()
      await using s = await f.client.connect()
      const stopped = new Promise((resolve) => (f.probe.onStop = resolve))
      let seen = 0
      for await (const n of s.forever()) {
        seen = n
        if (n >= 5) break
      }
      expect(seen).toBe(5)
      expect(await within(stopped, WAIT, 'handler stop')).toBeInstanceOf(AbortError)
    })

    it('the deadline travels with the request: client TimeoutError, handler aborted with TimeoutError', async () => {
      await using f = await serve()
      await using s = await f.client.connect()
      const stopped = new Promise((resolve) => (f.probe.onStop = resolve))
      const started = Date.now()
      await expect(s.sleep(10_000, { timeout: 80 })).rejects.toBeInstanceOf(TimeoutError)
      expect(await within(stopped, WAIT, 'handler stop')).toBeInstanceOf(TimeoutError)
      expect(Date.now() - started).toBeLessThan(2_000)
      // The session goes on; the late nothing is never taken for the next answer.
      expect(await s.hello('after')).toBe('hello after')
    })

    it('abort sends a cancel frame: client AbortError (cause = reason), the handler stops', async () => {
      await using f = await serve()
      await using s = await f.client.connect()
      const stopped = new Promise((resolve) => (f.probe.onStop = resolve))
      const controller = new AbortController()
      const call = s.sleep(10_000, { signal: controller.signal })
      setTimeout(() => controller.abort('enough'), 30)
      const error = await call.catch((e: unknown) => e)
      expect(error).toBeInstanceOf(AbortError)
      expect((error as AbortError).cause).toBe('enough')
      expect(await within(stopped, WAIT, 'handler stop')).toBeInstanceOf(AbortError)
    })

    it('a dropped connection aborts the handler; pending calls reject with RpcClosedError; calls after close too', async () => {
      await using f = await serve()
      const s = await f.client.connect()
      const stopped = new Promise((resolve) => (f.probe.onStop = resolve))
      const call = s.sleep(10_000).catch((e: unknown) => e)
      await new Promise((resolve) => setTimeout(resolve, 30))
      await s.close()
      expect(await call).toBeInstanceOf(RpcClosedError)
      await within(stopped, WAIT, 'handler stop')
      expect(s.closed).toBe(true)
      await expect(s.hello('x')).rejects.toBeInstanceOf(RpcClosedError)
      await s.close()
    })

    it('a handler throw reaches the caller as RemoteError (remoteName, message, code; stack only with exposeStack)', async () => {
      {
        await using f = await serve()
        await using s = await f.client.connect()
        const error = (await s.fail(['ValueError', 'bad range']).catch((e: unknown) => e)) as RemoteError
        expect(error).toBeInstanceOf(RemoteError)
        expect([error.remoteName, error.message, error.remoteCode, error.code, error.method]).toEqual(['ValueError', 'bad range', 'E_DEVICE', 'ERR_RPC_REMOTE', 'fail'])
        expect(error.remoteStack).toBeUndefined()
      }
      await using f = await serve({ exposeStack: true })
      await using s = await f.client.connect()
      const error = (await s.fail(['RangeError', 'x']).catch((e: unknown) => e)) as RemoteError
      expect(error.remoteStack).toContain('RangeError: x')
    })

    it('a value that does not fit its codec is a typed RpcDecodeError before anything is sent', async () => {
      await using f = await serve()
      await using s = await f.client.connect()
      await expect(s.add([1, 2.5])).rejects.toBeInstanceOf(RpcDecodeError)
      await expect(s.add([2 ** 31, 0])).rejects.toBeInstanceOf(RpcDecodeError)
      expect(await s.add([1, 2])).toBe(3)
    })

    it('one-way calls reach the handler with no reply', async () => {
      await using f = await serve()
      await using s = await f.client.connect()
      const got = new Promise((resolve) => (f.probe.onNote = resolve))
      await s.note({ text: 'fire' })
      expect(await within(got, WAIT, 'note')).toBe('fire')
    })

    it('handshake mismatch names each mismatched method', async () => {
      await using f = await serve()
      const other = defineService({
        name: 'test',
        methods: {
          hello: { id: 0, request: codecs.string, response: codecs.string },
          add: { id: 2, request: codecs.msgpack<[number, number]>(), response: codecs.int32le },
          ramp: { id: 5, request: codecs.json<{ n: number }>(), response: codecs.raw },
          extra: { id: 99, request: codecs.none },
        },
      })
      const error = (await new RpcClient(other, f.served.client()).connect().catch((e: unknown) => e)) as RpcSpecMismatchError
      expect(error).toBeInstanceOf(RpcSpecMismatchError)
      expect(error.mismatches).toEqual([
        'add: client codec msgpack, server tuple(int32le,int32le)',
        'ramp: client stream false, server true',
        'extra: id 99 missing on the server',
      ])
    })

    it(`v8 codec: ${setup.network ? 'refused over a network transport unless allowInsecureCodecs' : 'allowed in memory'}`, async () => {
      const v8svc = defineService({ name: 'v8', methods: { put: { id: 1, request: codecs.v8<Map<string, number>>(), response: codecs.v8<Map<string, number>>() } } })
      {
        await using served = await setup.start(new RpcServer(v8svc, { put: (m) => m }))
        const connecting = new RpcClient(v8svc, served.client(), { allowInsecureCodecs: true }).connect()
        if (setup.network) {
          const error = (await connecting.catch((e: unknown) => e)) as Error
          expect(error).toBeInstanceOf(RpcInsecureCodecError)
          expect(error.message).toMatch(/put.*allowInsecureCodecs/)
        } else {
          await using s = await connecting
          expect(await s.put(new Map([['a', 1]]))).toEqual(new Map([['a', 1]]))
        }
      }
      await using served = await setup.start(new RpcServer(v8svc, { put: (m) => m }, { allowInsecureCodecs: true }))
      await using s = await new RpcClient(v8svc, served.client(), { allowInsecureCodecs: true }).connect()
      expect(await s.put(new Map([['b', 2]]))).toEqual(new Map([['b', 2]]))
    })
  })
}

for (const setup of [memory, tcp, unix, websocket]) rpcCompliance(setup)

describe('client-side checks', () => {
  it('v8 over a network transport is refused by the client without allowInsecureCodecs', async () => {
    const v8svc = defineService({ name: 'v8', methods: { put: { id: 1, request: codecs.v8() } } })
    const { TcpClient } = await import('@labwire/transport-tcp')
    expect(() => new RpcClient(v8svc, new TcpClient({ host: '127.0.0.1', port: 1 }))).toThrow(RpcInsecureCodecError)
  })
})
