import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { FramingError, FrameTooLargeError } from '@labwire/core'
import { FixedLengthBytesMarshaller, SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { expectClosedWith, marshallerCompliance, rejection } from './compliance/marshaller.js'
import { byteAtATime, chunksOf, concat, fromChunks, utf8 } from './helpers/chunks.js'

const DEADBEEF = new Uint8Array([0xde, 0xad, 0xbe, 0xef])

/**
 * Payloads that never contain `sentinel`: bytes drawn half the time from the sentinel's own bytes
 * (so partial sentinels are common), then every occurrence broken by flipping its last byte.
 * One left-to-right pass suffices: a flip only changes bytes after every window already checked.
 */
function payloadWithout(sentinel: Uint8Array, maxLength = 64): fc.Arbitrary<Uint8Array> {
  const byte = fc.oneof(fc.constantFrom(...sentinel), fc.integer({ min: 0, max: 255 }))
  return fc.array(byte, { maxLength }).map((values) => {
    const p = Uint8Array.from(values)
    const dl = sentinel.length
    for (let i = 0; i + dl <= p.length; i++) {
      if (sentinel.every((b, k) => p[i + k] === b)) p[i + dl - 1] = (p[i + dl - 1] as number) ^ 1
    }
    return p
  })
}

/** A payload of exactly `length` bytes, cheap to generate for large lengths. */
function payloadOfLength(length: number): fc.Arbitrary<Uint8Array> {
  return fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 255 })).map(([start, step]) => {
    const p = new Uint8Array(length)
    for (let i = 0; i < length; i++) p[i] = (start + i * step) & 0xff
    return p
  })
}

function pattern(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (seed + i * 7) & 0xff)
}

marshallerCompliance({
  name: "SentinelBytesMarshaller('\\n')",
  create: () => new SentinelBytesMarshaller('\n'),
  samplePayloads: [utf8('*IDN?'), utf8(''), utf8('MEAS:VOLT? (@1,2)\r'), new Uint8Array([0, 0xff, 0x0d, 0x0b]), utf8('')],
  payload: payloadWithout(utf8('\n')),
  oversize: () => ({ marshaller: new SentinelBytesMarshaller('\n', { maxLength: 4 }), wire: utf8('hello\n') }),
})

marshallerCompliance({
  name: "SentinelBytesMarshaller('\\r\\n')",
  create: () => new SentinelBytesMarshaller('\r\n'),
  samplePayloads: [utf8('hello'), utf8('\r'), utf8('\n\n'), utf8(''), utf8('a\rb\nc\r')],
  payload: payloadWithout(utf8('\r\n')),
  oversize: () => ({ marshaller: new SentinelBytesMarshaller('\r\n', { maxLength: 4 }), wire: utf8('hello\r\n') }),
})

marshallerCompliance({
  name: 'SentinelBytesMarshaller(0xdeadbeef)',
  create: () => new SentinelBytesMarshaller(DEADBEEF),
  samplePayloads: [
    new Uint8Array([0xde, 0xad, 0xbe]),
    new Uint8Array([0xde, 0xde, 0xad, 0xde, 0xad, 0xbe, 0x00]),
    new Uint8Array(0),
    pattern(300, 3),
  ],
  payload: payloadWithout(DEADBEEF),
  oversize: () => ({ marshaller: new SentinelBytesMarshaller(DEADBEEF, { maxLength: 2 }), wire: concat(utf8('abcdef'), DEADBEEF) }),
  alphabet: [...DEADBEEF],
})

for (const length of [1, 16, 10_000]) {
  marshallerCompliance({
    name: `FixedLengthBytesMarshaller(${length})`,
    create: () => new FixedLengthBytesMarshaller(length),
    // Two samples keep the every-byte-boundary test quick at 10 000 bytes.
    samplePayloads: [pattern(length, 1), new Uint8Array(length).fill(0x0a)],
    payload: payloadOfLength(length),
    maxChunkSize: length >= 1000 ? 4096 : 64,
    numRuns: length >= 1000 ? 30 : 100,
  })
}

describe('SentinelBytesMarshaller', () => {
  it('finds a two-byte sentinel split across chunks', async () => {
    const m = new SentinelBytesMarshaller('\r\n')
    const bytes = fromChunks([utf8('abc\r'), utf8('\ndef\r'), utf8('\n')])
    expect(await m.unmarshall(bytes)).toEqual(utf8('abc'))
    expect(await m.unmarshall(bytes)).toEqual(utf8('def'))
  })

  it('does not take a lone sentinel prefix at a chunk end for the sentinel', async () => {
    const m = new SentinelBytesMarshaller('\r\n')
    const bytes = fromChunks([utf8('ab\r'), utf8('c\r'), utf8('\r\n')])
    expect(await m.unmarshall(bytes)).toEqual(utf8('ab\rc\r'))
  })

  it("finds a sentinel overlapping its own prefix ('aab' in 'aaab'), at every split", async () => {
    const m = new SentinelBytesMarshaller('aab')
    const wire = utf8('aaabxaab')
    for (let cut = 0; cut <= wire.length; cut++) {
      const bytes = fromChunks([wire.subarray(0, cut), wire.subarray(cut)])
      expect(await m.unmarshall(bytes)).toEqual(utf8('a'))
      expect(await m.unmarshall(bytes)).toEqual(utf8('x'))
    }
    const bytes = fromChunks(byteAtATime(wire))
    expect(await m.unmarshall(bytes)).toEqual(utf8('a'))
    expect(await m.unmarshall(bytes)).toEqual(utf8('x'))
  })

  it("finds a sentinel with a border ('abac' in 'ababac'), byte at a time", async () => {
    const m = new SentinelBytesMarshaller('abac')
    expect(await m.unmarshall(fromChunks(byteAtATime(utf8('ababac'))))).toEqual(utf8('ab'))
    expect(await m.unmarshall(fromChunks([utf8('aba'), utf8('bac')]))).toEqual(utf8('ab'))
  })

  it('accepts a frame of exactly maxLength and rejects one byte more with FrameTooLargeError', async () => {
    for (const sentinel of ['\n', '\r\n', DEADBEEF]) {
      const m = new SentinelBytesMarshaller(sentinel, { maxLength: 5 })
      const ok = m.marshall(utf8('abcde'))
      const tooLong = m.marshall(utf8('abcdef'))
      for (const split of [(b: Uint8Array) => [b], byteAtATime]) {
        expect(await m.unmarshall(fromChunks(split(ok)))).toEqual(utf8('abcde'))
        const error = await rejection(m.unmarshall(fromChunks(split(tooLong))))
        expect(error).toBeInstanceOf(FrameTooLargeError)
        expect(error).toBeInstanceOf(FramingError)
        expect((error as FrameTooLargeError).maxLength).toBe(5)
        expect((error as FrameTooLargeError).code).toBe('ERR_FRAME_TOO_LARGE')
      }
    }
  })

  it('accepts a maxLength-long frame after a previous frame left bytes buffered', async () => {
    const m = new SentinelBytesMarshaller('\r\n', { maxLength: 4 })
    const bytes = fromChunks([utf8('ab\r\nabcd\r'), utf8('\n')])
    expect(await m.unmarshall(bytes)).toEqual(utf8('ab'))
    expect(await m.unmarshall(bytes)).toEqual(utf8('abcd'))
  })

  it('rejects an unterminated stream growing past maxLength before the stream is exhausted (memory bounded)', async () => {
    for (const [sentinel, chunkSize] of [
      [utf8('\n'), 1],
      [utf8('\n'), 100],
      [utf8('\r\n'), 7],
      [DEADBEEF, 64],
    ] as const) {
      const maxLength = 1000
      let yielded = 0
      const safetyLimit = 100 * maxLength
      // "Forever", except for a safety limit so that a broken framer fails the test instead of hanging it.
      async function* endless(): AsyncGenerator<Uint8Array> {
        const chunk = new Uint8Array(chunkSize).fill(0x41)
        while (yielded < safetyLimit) {
          yielded += chunk.length
          await Promise.resolve()
          yield chunk
        }
      }
      const m = new SentinelBytesMarshaller(sentinel, { maxLength })
      const error = await rejection(m.unmarshall(endless()))
      expect(error).toBeInstanceOf(FrameTooLargeError)
      expect((error as FrameTooLargeError).maxLength).toBe(maxLength)
      // At most maxLength bytes, plus sentinel-length - 1 that may still start the sentinel, plus the chunk that crossed the line.
      expect(yielded).toBeLessThanOrEqual(maxLength + sentinel.length - 1 + chunkSize)
      expect(yielded).toBeGreaterThan(maxLength)
    }
  })

  it('defaults maxLength to 1 MiB', () => {
    expect(new SentinelBytesMarshaller('\n').maxLength).toBe(1024 * 1024)
  })

  it('rejects an empty sentinel and a bad maxLength with RangeError', () => {
    expect(() => new SentinelBytesMarshaller('')).toThrow(RangeError)
    expect(() => new SentinelBytesMarshaller(new Uint8Array(0))).toThrow(RangeError)
    expect(() => new SentinelBytesMarshaller('\n', { maxLength: -1 })).toThrow(RangeError)
    expect(() => new SentinelBytesMarshaller('\n', { maxLength: 1.5 })).toThrow(RangeError)
  })

  it("keeps its own copy of the sentinel (mutating the caller's array changes nothing)", async () => {
    const sentinel = Uint8Array.of(0x0a)
    const m = new SentinelBytesMarshaller(sentinel)
    sentinel[0] = 0x3b
    expect(m.marshall(utf8('x'))).toEqual(utf8('x\n'))
    expect(await m.unmarshall(fromChunks([utf8('a;b\n')]))).toEqual(utf8('a;b'))
  })
})

describe('FixedLengthBytesMarshaller', () => {
  it('marshall with a wrong length throws FramingError naming both lengths', () => {
    const m = new FixedLengthBytesMarshaller(4)
    for (const wrong of [3, 5, 0]) {
      let thrown: unknown
      try {
        m.marshall(new Uint8Array(wrong))
      } catch (error) {
        thrown = error
      }
      expect(thrown).toBeInstanceOf(FramingError)
      expect((thrown as FramingError).code).toBe('ERR_FRAMING')
      expect((thrown as FramingError).message).toMatch(new RegExp(`\\b${wrong}\\b`))
      expect((thrown as FramingError).message).toMatch(/\b4\b/)
    }
  })

  it('keeps the overshoot of a read for the next call', async () => {
    const m = new FixedLengthBytesMarshaller(4)
    const bytes = fromChunks([utf8('abcdefg'), utf8('h'), utf8('ijklmnopq')])
    expect(await m.unmarshall(bytes)).toEqual(utf8('abcd'))
    expect(await m.unmarshall(bytes)).toEqual(utf8('efgh'))
    expect(await m.unmarshall(bytes)).toEqual(utf8('ijkl'))
    expect(await m.unmarshall(bytes)).toEqual(utf8('mnop'))
    expectClosedWith(await rejection(m.unmarshall(bytes)), utf8('q'))
  })

  it('rejects a negative or fractional length with RangeError', () => {
    expect(() => new FixedLengthBytesMarshaller(-1)).toThrow(RangeError)
    expect(() => new FixedLengthBytesMarshaller(2.5)).toThrow(RangeError)
  })
})

describe('textMarshaller', () => {
  const text = 'µ-Ω € 𝄞 ok'

  it('round-trips UTF-8 text with multi-byte characters split across chunks', async () => {
    const lines = textMarshaller(new SentinelBytesMarshaller('\n'))
    const wire = concat(lines.marshall(text), lines.marshall(''), lines.marshall('Ünïcødé'))
    expect(wire.length).toBeGreaterThan(text.length)
    for (let cut = 1; cut < wire.length; cut++) {
      const bytes = fromChunks([wire.subarray(0, cut), wire.subarray(cut)])
      expect(await lines.unmarshall(bytes)).toBe(text)
      expect(await lines.unmarshall(bytes)).toBe('')
      expect(await lines.unmarshall(bytes)).toBe('Ünïcødé')
    }
    const bytes = fromChunks(byteAtATime(wire))
    expect(await lines.unmarshall(bytes)).toBe(text)
  })

  it('works over a fixed-length framer and with detached methods', async () => {
    const encoded = utf8(text)
    const { marshall, unmarshall } = textMarshaller(new FixedLengthBytesMarshaller(encoded.length))
    const bytes = fromChunks(chunksOf(concat(marshall(text), marshall(text)), [3, 2]))
    expect(await unmarshall(bytes)).toBe(text)
    expect(await unmarshall(bytes)).toBe(text)
  })
})
