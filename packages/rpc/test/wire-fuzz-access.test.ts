/**
 * The labwire frame layout byte by byte, the decoder under any chunking, hostile input at the
 * server (typed error frames, random frames), and the serving kernel's access policy with RPC clients.
 */
import { Buffer } from 'node:buffer'
import { AccessRefusedError, ByteStream, MemoryClient, MemoryServer, NEED_MORE, byteStreamOf, decodeFrom, type TransportClientSession } from '@labwire/core'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { FrameType, RpcClient, RpcProtocolError, RpcServer, encodeFrame, frameDecoder, type Frame } from '../src/index.js'
import { memory, tcp, within } from './fixtures.js'
import { handlers, svc, type Probe } from './service.js'

const WAIT = 5_000
const hex = (chunks: Uint8Array[]): string => Buffer.concat(chunks).toString('hex')

describe('labwire frame layout', () => {
  it('header: u32le length, type, flags, u16le method, u32le call, [u32le timeout], payload', () => {
    expect(hex(encodeFrame(FrameType.REQUEST, 0x0102, 7, new Uint8Array([0xaa, 0xbb])))).toBe('0a000000' + '10' + '00' + '0201' + '07000000' + 'aabb')
    expect(hex(encodeFrame(FrameType.REQUEST, 2, 1, new Uint8Array([0xaa]), { timeout: 500 }))).toBe('0d000000' + '10' + '01' + '0200' + '01000000' + 'f4010000' + 'aa')
    expect(hex(encodeFrame(FrameType.REQUEST, 6, 3, new Uint8Array(), { oneWay: true }))).toBe('08000000' + '10' + '02' + '0600' + '03000000')
    expect(hex(encodeFrame(FrameType.CANCEL, 5, 9, new Uint8Array()))).toBe('08000000' + '13' + '00' + '0500' + '09000000')
    // The README's example: add([2, 3]) as call 7 with a 500 ms timeout.
    const args = new Uint8Array([2, 0, 0, 0, 3, 0, 0, 0])
    expect(hex(encodeFrame(FrameType.REQUEST, 2, 7, args, { timeout: 500 }))).toBe('14000000' + '10' + '01' + '0200' + '07000000' + 'f4010000' + '02000000' + '03000000')
    // A large payload is a separate chunk, not copied into the header's buffer.
    const big = new Uint8Array(100_000)
    const chunks = encodeFrame(FrameType.RESPONSE, 1, 1, big)
    expect(chunks).toHaveLength(2)
    expect(chunks[1]).toBe(big)
  })

  it('property: any chunking of a run of frames decodes to the same frames', async () => {
    const frameArb = fc.record({ type: fc.integer({ min: 0, max: 255 }), method: fc.integer({ min: 0, max: 0xffff }), call: fc.integer({ min: 0, max: 0xffffffff }), payload: fc.uint8Array({ maxLength: 300 }), timeout: fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: undefined }) })
    await fc.assert(
      fc.asyncProperty(fc.array(frameArb, { minLength: 1, maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }), async (frames, cuts) => {
        const wire = Buffer.concat(frames.flatMap((f) => encodeFrame(f.type, f.method, f.call, f.payload, { timeout: f.timeout })))
        async function* chunks(): AsyncGenerator<Uint8Array> {
          let at = 0
          for (let i = 0; at < wire.length; i++) {
            const n = cuts[i % cuts.length] as number
            yield await Promise.resolve(wire.subarray(at, at + n))
            at += n
          }
        }
        const stream = new ByteStream(chunks())
        const decoder = frameDecoder()
        for (const f of frames) {
          const got = await decodeFrom(decoder, stream)
          expect([got.type, got.method, got.call, got.timeout, Buffer.from(got.payload).toString('hex')]).toEqual([f.type, f.method, f.call, f.timeout, Buffer.from(f.payload).toString('hex')])
        }
        expect(stream.bufferedLength).toBe(0)
      }),
      { numRuns: 100 },
    )
  })

  it('a frame over the limit or shorter than its header is an RpcProtocolError; a partial one needs more', () => {
    const stream = new ByteStream()
    stream.push(new Uint8Array([0x10, 0, 0, 0x01]))
    expect(() => frameDecoder(1024).decode(stream)).toThrow(RpcProtocolError)
    const short = new ByteStream()
    short.push(new Uint8Array([4, 0, 0, 0, 1, 0, 0, 0]))
    expect(() => frameDecoder().decode(short)).toThrow(/below the 8-byte header/)
    const partial = new ByteStream()
    partial.push(new Uint8Array([9, 0, 0, 0, 1]))
    expect(frameDecoder().decode(partial)).toBe(NEED_MORE)
    expect(partial.bufferedLength).toBe(5)
  })
})

/** A raw memory session past the handshake: write any bytes, read frames. */
async function rawSession(server: MemoryServer): Promise<{ session: TransportClientSession; stream: ByteStream; send: (chunks: Uint8Array[]) => void; next: () => Promise<Frame> }> {
  const session = await new MemoryClient(server).connect()
  const hello = new TextEncoder().encode(JSON.stringify({ v: 1, service: svc.name, methods: svc.fingerprint }))
  const stream = byteStreamOf(session.request(Buffer.concat(encodeFrame(FrameType.HELLO, 0, 0, hello))))
  const decoder = frameDecoder()
  const next = (): Promise<Frame> => within(decodeFrom(decoder, stream), WAIT, 'frame')
  expect((await next()).type).toBe(FrameType.HELLO_OK)
  return { session, stream, send: (chunks) => void session.request(Buffer.concat(chunks)), next }
}

describe('hostile input at the server', () => {
  const serve = (): { server: MemoryServer; probe: Probe } => {
    const probe: Probe = { notes: [], stopped: [] }
    return { server: new MemoryServer({ callback: new RpcServer(svc, handlers(probe)) }), probe }
  }
  const errorOf = (frame: Frame): { code?: string; name: string; message: string } => JSON.parse(Buffer.from(frame.payload).toString()) as never

  it('unknown method and undecodable payload: typed error frames; the session goes on', async () => {
    const { server } = serve()
    const raw = await rawSession(server)
    raw.send(encodeFrame(FrameType.REQUEST, 999, 1, new Uint8Array()))
    const unknown = await raw.next()
    expect([unknown.type, unknown.call, errorOf(unknown).code]).toEqual([FrameType.ERROR, 1, 'ERR_RPC_UNKNOWN_METHOD'])
    raw.send(encodeFrame(FrameType.REQUEST, 2, 2, new Uint8Array([1, 2, 3])))
    const undecodable = await raw.next()
    expect([undecodable.type, undecodable.call, errorOf(undecodable).code]).toEqual([FrameType.ERROR, 2, 'ERR_RPC_DECODE'])
    raw.send(encodeFrame(FrameType.PING, 0, 3, new Uint8Array()))
    expect((await raw.next()).type).toBe(FrameType.PONG)
    await server.close()
  })

  it('the same call id on two sessions: each gets its own answer (no cross-session data)', async () => {
    const { server } = serve()
    const a = await rawSession(server)
    const b = await rawSession(server)
    a.send(encodeFrame(FrameType.REQUEST, 0, 1, new TextEncoder().encode('ann')))
    b.send(encodeFrame(FrameType.REQUEST, 0, 1, new TextEncoder().encode('bob')))
    expect(Buffer.from((await a.next()).payload).toString()).toBe('hello ann')
    expect(Buffer.from((await b.next()).payload).toString()).toBe('hello bob')
    await server.close()
  })

  it('requests before the handshake and a wrong frame type close that connection only', async () => {
    const { server } = serve()
    const session = await new MemoryClient(server).connect()
    const stream = byteStreamOf(session.request(Buffer.concat(encodeFrame(FrameType.REQUEST, 0, 1, new Uint8Array()))))
    await expect(within(stream.waitForData(), WAIT, 'close')).resolves.toBe(false)
    await using s = await new RpcClient(svc, new MemoryClient(server)).connect()
    expect(await s.hello('still')).toBe('hello still')
    await server.close()
  })

  it('fuzz: random frames and random bytes never crash the server; a bystander session keeps working', async () => {
    for (const setup of [memory, tcp]) {
      const probe: Probe = { notes: [], stopped: [] }
      await using served = await setup.start(new RpcServer(svc, handlers(probe), { maxFrameLength: 64 * 1024 }))
      await using bystander = await new RpcClient(svc, served.client()).connect()
      const frameArb = fc.record({ type: fc.constantFrom(0x01, 0x10, 0x13, 0x20, 0x11, 0x7f), method: fc.integer({ min: 0, max: 12 }), call: fc.integer({ min: 0, max: 4 }), payload: fc.uint8Array({ maxLength: 40 }), timeout: fc.option(fc.integer({ min: 0, max: 50 }), { nil: undefined }) })
      await fc.assert(
        fc.asyncProperty(fc.array(frameArb, { maxLength: 12 }), fc.uint8Array({ maxLength: 64 }), async (frames, junk) => {
          const session = await served.client().connect()
          const hello = new TextEncoder().encode(JSON.stringify({ v: 1, methods: svc.fingerprint }))
          const stream = session.request(Buffer.concat(encodeFrame(FrameType.HELLO, 0, 0, hello)))
          for (const f of frames) session.request(Buffer.concat(encodeFrame(f.type, f.method, f.call, f.payload, { timeout: f.timeout })))
          if (junk.length > 0) session.request(junk)
          // Read whatever comes back for a moment, then leave.
          const drain = (async () => {
            for (;;) if ((await stream.next()).done === true) return
          })().catch(() => undefined)
          await Promise.race([drain, new Promise((r) => setTimeout(r, 5))])
          await session.close()
        }),
        { numRuns: setup === memory ? 150 : 40 },
      )
      expect(await bystander.add([20, 22])).toBe(42)
    }
  })
})

describe('maxConcurrentCalls', () => {
  it('past the limit the server stops reading until a call ends; every call still completes', async () => {
    const probe: Probe = { notes: [], stopped: [] }
    let active = 0
    let peak = 0
    const base = handlers(probe)
    const server = new MemoryServer({
      callback: new RpcServer(svc, {
        ...base,
        sleep: async (ms, ctx) => {
          active++
          peak = Math.max(peak, active)
          try {
            return await base.sleep(ms, ctx)
          } finally {
            active--
          }
        },
      }, { maxConcurrentCalls: 2 }),
    })
    await using s = await new RpcClient(svc, new MemoryClient(server)).connect()
    const results = await within(Promise.all(Array.from({ length: 6 }, () => s.sleep(20))), WAIT, 'sleeps')
    expect(results).toEqual(Array.from({ length: 6 }, () => 'slept 20'))
    expect(peak).toBe(2)
    await server.close()
  })
})

describe('access policy (the serving kernel’s access option) with RPC clients', () => {
  for (const setup of [memory, tcp]) {
    it(`${setup.name}: exclusive 'refuse' turns the second client away with AccessRefusedError`, async () => {
      await using served = await setup.start(new RpcServer(svc, handlers({ notes: [], stopped: [] })), { access: { exclusive: 'refuse' } })
      await using first = await new RpcClient(svc, served.client()).connect()
      expect(await first.hello('one')).toBe('hello one')
      const error = await new RpcClient(svc, served.client()).connect().catch((e: unknown) => e)
      expect(error).toBeInstanceOf(AccessRefusedError)
      expect(await first.hello('still')).toBe('hello still')
    })

    it(`${setup.name}: exclusive 'queue' makes the second client wait for the first to close`, async () => {
      await using served = await setup.start(new RpcServer(svc, handlers({ notes: [], stopped: [] })), { access: { exclusive: 'queue', queueTimeout: 3_000 } })
      const first = await new RpcClient(svc, served.client()).connect()
      let secondConnected = false
      const second = new RpcClient(svc, served.client()).connect().then((s) => {
        secondConnected = true
        return s
      })
      await new Promise((r) => setTimeout(r, 100))
      expect(secondConnected).toBe(false)
      await first.close()
      await using s2 = await within(second, WAIT, 'queued client')
      expect(await s2.hello('two')).toBe('hello two')
    })
  }

  it('tcp: a queued client past queueTimeout gets AccessTimeoutError', async () => {
    await using served = await tcp.start(new RpcServer(svc, handlers({ notes: [], stopped: [] })), { access: { exclusive: 'queue', queueTimeout: 100 } })
    await using first = await new RpcClient(svc, served.client()).connect()
    const error = await new RpcClient(svc, served.client()).connect().catch((e: unknown) => e)
    expect((error as Error).name).toBe('AccessTimeoutError')
    expect(await first.hello('x')).toBe('hello x')
  })
})

