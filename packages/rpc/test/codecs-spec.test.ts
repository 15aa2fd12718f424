/** Codecs (byte layouts, bounds, malformed input), defineService checks, type inference, fingerprints. */
import fc from 'fast-check'
import { describe, expect, expectTypeOf, it } from 'vitest'
import { RpcDecodeError, RpcSpecError, codecs, compareFingerprints, defineService, type ClientMethods, type RpcStream } from '../src/index.js'

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')

describe('codecs: byte layouts', () => {
  it('fixed-layout numbers in both byte orders', () => {
    expect(hex(codecs.int16le.encode(-2))).toBe('feff')
    expect(hex(codecs.int16be.encode(-2))).toBe('fffe')
    expect(hex(codecs.uint32be.encode(0x01020304))).toBe('01020304')
    expect(hex(codecs.uint32le.encode(0x01020304))).toBe('04030201')
    expect(hex(codecs.int64be.encode(-1n))).toBe('ffffffffffffffff')
    expect(hex(codecs.uint64le.encode(1n))).toBe('0100000000000000')
    expect(hex(codecs.float32be.encode(1))).toBe('3f800000')
    expect(hex(codecs.float64le.encode(1))).toBe('000000000000f03f')
    expect(hex(codecs.bool.encode(true))).toBe('01')
    expect(hex(codecs.none.encode(undefined))).toBe('')
  })

  it('string is UTF-8 as a payload and u32le length + UTF-8 as a field; bytes always length-prefixed', () => {
    expect(hex(codecs.string.encode('hé'))).toBe('68c3a9')
    expect(hex(codecs.string.encodeField('hé'))).toBe('0300000068c3a9')
    expect(hex(codecs.bytes.encode(new Uint8Array([7])))).toBe('0100000007')
    expect(hex(codecs.tuple(codecs.string, codecs.uint8).encode(['a', 9]))).toBe('010000006109')
    expect(codecs.tuple(codecs.string, codecs.uint8).name).toBe('tuple(string,uint8)')
  })

  it('malformed input is a typed RpcDecodeError', () => {
    const cases: Array<() => unknown> = [
      () => codecs.int32le.decode(new Uint8Array(3)),
      () => codecs.bool.decode(new Uint8Array([2])),
      () => codecs.none.decode(new Uint8Array([0])),
      () => codecs.string.decode(new Uint8Array([0xff])),
      () => codecs.json().decode(new TextEncoder().encode('{')),
      () => codecs.msgpack().decode(new Uint8Array([0xc1])),
      () => codecs.bytes.decode(new Uint8Array([5, 0, 0, 0, 1])),
      () => codecs.tuple(codecs.uint8).decode(new Uint8Array([1, 2])),
      () => codecs.v8().decode(new Uint8Array([0xff, 0x0f, 0x99])),
      () => codecs.uint8.encode(256),
      () => codecs.int32le.encode(1.5),
      () => codecs.int64le.encode(2 ** 70 as never),
      () => codecs.json().encode(undefined),
      () => codecs.raw.encode('x' as never),
    ]
    for (const run of cases) expect(run).toThrow(RpcDecodeError)
  })

  it('property: tuples of every field kind round-trip, whole and as a field inside another', () => {
    const t = codecs.tuple(codecs.string, codecs.int32be, codecs.bytes, codecs.float64le, codecs.bool, codecs.json<unknown>(), codecs.uint64be)
    fc.assert(
      fc.property(
        fc.tuple(fc.string(), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.uint8Array(), fc.double({ noNaN: true }), fc.boolean(), fc.jsonValue(), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
        (value) => {
          const v = value as unknown as Parameters<typeof t.encode>[0]
          // Decoding gives back a value that encodes to the same bytes (JSON drops -0 and the like).
          expect(hex(t.encode(t.decode(t.encode(v))))).toBe(hex(t.encode(v)))
          const outer = codecs.tuple(t, codecs.uint8)
          const [inner, tail] = outer.decode(outer.encode([v, 5]))
          expect(tail).toBe(5)
          expect(codecs.tuple(t).encode([inner])).toEqual(codecs.tuple(t).encode([v]))
        },
      ),
      { numRuns: 200 },
    )
  })
})

describe('defineService', () => {
  it('refuses duplicate ids, ids out of range, reserved names, bad codecs and flags, naming the method', () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ a: { id: 1, request: codecs.none }, b: { id: 1, request: codecs.none } }, /method b: id 1 is already used by a/],
      [{ a: { id: 65536, request: codecs.none } }, /method a: id must be an integer in 0 … 65535/],
      [{ a: { id: -1, request: codecs.none } }, /method a: id/],
      [{ a: { id: 1.5, request: codecs.none } }, /method a: id/],
      [{ close: { id: 1, request: codecs.none } }, /method close: the name is reserved/],
      [{ a: { id: 1, request: {} } }, /method a: request is not a codec/],
      [{ a: { id: 1, request: codecs.none, stream: true, oneWay: true } }, /both stream and oneWay/],
      [{ a: { id: 1, request: codecs.none, response: codecs.string, oneWay: true } }, /oneWay method has no response/],
    ]
    for (const [methods, message] of bad) expect(() => defineService({ name: 's', methods: methods as never })).toThrow(message)
    expect(() => defineService({ name: 's', methods: { a: { id: 1, request: codecs.none } } })).not.toThrow()
    expect(() => defineService({ name: '', methods: {} })).toThrow(RpcSpecError)
  })

  it('fingerprints compare method by method', () => {
    const a = defineService({ name: 's', methods: { add: { id: 2, request: codecs.msgpack(), response: codecs.int32le } } })
    const b = defineService({ name: 's', methods: { add: { id: 2, request: codecs.json(), response: codecs.int32le }, more: { id: 3, request: codecs.none } } })
    expect(compareFingerprints(a.fingerprint, b.fingerprint)).toEqual(['add: client codec msgpack, server json'])
    expect(compareFingerprints(b.fingerprint, b.fingerprint)).toEqual([])
  })
})

describe('types: the client is inferred from the spec (pnpm typecheck checks the @ts-expect-error lines)', () => {
  const spec = defineService({
    name: 'greet',
    methods: {
      hello: { id: 0, request: codecs.string, response: codecs.string },
      add: { id: 2, request: codecs.tuple(codecs.int32le, codecs.int32le), response: codecs.int32le },
      ramp: { id: 5, request: codecs.json<{ n: number }>(), response: codecs.raw, stream: true },
      note: { id: 6, request: codecs.json(), oneWay: true },
      tick: { id: 7, request: codecs.none, response: codecs.uint64le },
    },
  })
  type Client = ClientMethods<typeof spec>

  it('call signatures', () => {
    expectTypeOf<Client['hello']>().parameters.toEqualTypeOf<[request: string, options?: import('../src/index.js').CallOptions]>()
    expectTypeOf<ReturnType<Client['hello']>>().toEqualTypeOf<Promise<string>>()
    expectTypeOf<ReturnType<Client['add']>>().toEqualTypeOf<Promise<number>>()
    expectTypeOf<ReturnType<Client['ramp']>>().toEqualTypeOf<RpcStream<Uint8Array>>()
    expectTypeOf<ReturnType<Client['note']>>().toEqualTypeOf<Promise<void>>()
    expectTypeOf<ReturnType<Client['tick']>>().toEqualTypeOf<Promise<bigint>>()
    const typed = (c: Client): void => {
      void c.hello('bob', { timeout: 5 })
      void c.add([1, 2])
      void c.tick()
      // @ts-expect-error — a number is not a string
      void c.hello(42)
      // @ts-expect-error — a tuple of two int32s, not three
      void c.add([1, 2, 3])
      // @ts-expect-error — { n: number } expected
      void c.ramp({ m: 1 })
      // @ts-expect-error — no such method
      void c.missing()
    }
    expect(typeof typed).toBe('function')
  })
})
