// Hand-written boundary cases and published vectors for each framer, checksum and codec.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ByteStream, ConnectionClosedError, decoderOf, FramingError, FrameTooLargeError, LabwireError } from '@labwire/core'
import {
  blockToValues,
  checksumCodec,
  CobsBytesMarshaller,
  cobsDecode,
  cobsEncode,
  compose,
  crc16CcittFalse,
  crc16Modbus,
  crc16Xmodem,
  crc32,
  crc8,
  DelimitedBytesMarshaller,
  IeeeBlockMarshaller,
  jsonCodec,
  LengthFieldBytesMarshaller,
  lrc8,
  mapMarshaller,
  msgpackCodec,
  SentinelBytesMarshaller,
  SlipBytesMarshaller,
  StartStopBytesMarshaller,
  sum8,
  textCodec,
  textMarshaller,
  valuesToBlock,
  xor8,
  type BlockValueType,
  type Checksum,
} from '@labwire/marshallers'
import { expectClosedWith, rejection } from '../../../test/compliance/marshaller.js'
import { byteAtATime, chunksOf, concat, fromChunks, utf8 } from '../../../test/helpers/chunks.js'

const hexBytes = (text: string): Uint8Array => Uint8Array.from(text.split(/\s+/).filter(Boolean), (h) => Number.parseInt(h, 16))
const ascii = (bytes: Uint8Array): string => Buffer.from(bytes).toString('latin1')
const splits = (wire: Uint8Array): Uint8Array[][] => [[wire], byteAtATime(wire), chunksOf(wire, [2, 3])]

describe('checksums', () => {
  const check = utf8('123456789')
  const published: [Checksum, number, string, 8 | 16 | 32][] = [
    [crc8, 0xf4, 'CRC-8/SMBUS', 8],
    [crc16Modbus, 0x4b37, 'CRC-16/MODBUS', 16],
    [crc16CcittFalse, 0x29b1, 'CRC-16/CCITT-FALSE', 16],
    [crc16Xmodem, 0x31c3, 'CRC-16/XMODEM', 16],
    [crc32, 0xcbf43926, 'CRC-32', 32],
    [sum8, 0xdd, 'SUM-8', 8],
    [xor8, 0x31, 'XOR-8', 8],
    [lrc8, 0x23, 'LRC-8', 8],
  ]
  for (const [algorithm, value, name, width] of published) {
    it(`${name}('123456789') is the published check value 0x${value.toString(16)}`, () => {
      expect(algorithm.compute(check)).toBe(value)
      expect(algorithm.check).toBe(value)
      expect(algorithm.name).toBe(name)
      expect(algorithm.width).toBe(width)
      expect(algorithm.compute(new Uint8Array(0))).toBeGreaterThanOrEqual(0)
    })
  }

  it('CRC-16/MODBUS of a Modbus RTU request (01 03 00 00 00 0A) is sent as C5 CD', () => {
    const codec = checksumCodec(crc16Modbus, { byteOrder: 'little' })
    expect(Array.from(codec.encode(hexBytes('01 03 00 00 00 0A')))).toEqual(Array.from(hexBytes('01 03 00 00 00 0A C5 CD')))
  })

  it('CRC-32 of 1 MiB matches node:zlib', async () => {
    const { crc32: zlibCrc32 } = (await import('node:zlib')) as unknown as { crc32?: (data: Uint8Array) => number }
    const data = Uint8Array.from({ length: 1 << 20 }, (_, i) => (i * 31 + (i >> 8)) & 0xff)
    if (zlibCrc32 === undefined) {
      console.warn('node:zlib has no crc32 on this Node version: comparing with a bitwise reference instead')
      let c = 0xffffffff
      for (const b of data) {
        c ^= b
        for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1
      }
      expect(crc32.compute(data)).toBe((c ^ 0xffffffff) >>> 0)
    } else {
      expect(crc32.compute(data)).toBe(zlibCrc32(data))
    }
  })

  it('LRC makes the bytes sum to zero modulo 256', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 50 }), (bytes) => (sum8.compute(bytes) + lrc8.compute(bytes)) % 256 === 0),
    )
  })

  it('checksumCodec appends (big- and little-endian binary, hex) and verifies and strips', () => {
    const body = utf8('123456789')
    expect(Array.from(checksumCodec(crc16Xmodem).encode(body).subarray(9))).toEqual([0x31, 0xc3])
    expect(Array.from(checksumCodec(crc16Xmodem, { byteOrder: 'little' }).encode(body).subarray(9))).toEqual([0xc3, 0x31])
    expect(Array.from(checksumCodec(crc32).encode(body).subarray(9))).toEqual([0xcb, 0xf4, 0x39, 0x26])
    expect(ascii(checksumCodec(crc8, { encoding: 'hex' }).encode(body).subarray(9))).toBe('F4')
    expect(ascii(checksumCodec(crc16Modbus, { encoding: 'hex' }).encode(body).subarray(9))).toBe('4B37')
    for (const options of [{}, { byteOrder: 'little' as const }, { encoding: 'hex' as const }]) {
      for (const algorithm of [crc8, crc16Modbus, crc16CcittFalse, crc16Xmodem, crc32, sum8, xor8, lrc8]) {
        const codec = checksumCodec(algorithm, options)
        expect(Array.from(codec.decode(codec.encode(body)))).toEqual(Array.from(body))
      }
    }
    // Hex digits are accepted in either case.
    expect(ascii(checksumCodec(crc16Modbus, { encoding: 'hex' }).decode(utf8('1234567894b37')))).toBe('123456789')
  })

  it('a mismatch is a recoverable FramingError naming the expected and actual values', () => {
    const codec = checksumCodec(crc16Modbus, { byteOrder: 'little' })
    const wire = codec.encode(utf8('123456789'))
    wire[0] = 0x30
    let error: unknown
    try {
      codec.decode(wire)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(FramingError)
    const framing = error as FramingError
    expect(framing.recoverable).toBe(true)
    expect(framing.message).toContain('CRC-16/MODBUS')
    expect(framing.message).toContain(`expected 0x${crc16Modbus.compute(wire.subarray(0, 9)).toString(16).toUpperCase().padStart(4, '0')}`)
    expect(framing.message).toContain('got 0x4B37')
    expect(() => codec.decode(Uint8Array.of(1))).toThrow(/too short/)
    expect(() => checksumCodec(crc8, { encoding: 'hex' }).decode(utf8('abcZZ'))).toThrow(FramingError)
  })

  it('rejects a bad algorithm or option with a typed error', () => {
    expect(() => checksumCodec({} as Checksum)).toThrow(TypeError)
    expect(() => checksumCodec(crc8, { encoding: 'base64' as 'hex' })).toThrow(RangeError)
    expect(() => checksumCodec(crc8, { byteOrder: 'middle' as 'big' })).toThrow(RangeError)
  })
})

describe('DelimitedBytesMarshaller', () => {
  /** The frames of `input` given the whole stream (then its end): earliest start wins, tie goes to the one listed first. */
  function model(input: string, delimiters: readonly string[]): { frames: string[]; rest: string } {
    const frames: string[] = []
    let start = 0
    for (let i = 0; i < input.length; i++) {
      const d = delimiters.find((candidate) => input.startsWith(candidate, i))
      if (d !== undefined) {
        frames.push(input.slice(start, i))
        i += d.length - 1
        start = i + 1
      }
    }
    return { frames, rest: input.slice(start) }
  }

  it("['\\r\\n', '\\r', '\\n']: the frames do not depend on the chunking; a bare '\\r' waits for the next byte or the end", async () => {
    const delimiters = ['\r\n', '\r', '\n']
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom('a', 'b', '\r', '\n'), { maxLength: 30 }).map((a) => a.join('')),
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 8 }),
        async (input, sizes) => {
          const m = new DelimitedBytesMarshaller(delimiters)
          const { frames, rest } = model(input, delimiters)
          const bytes = fromChunks(chunksOf(utf8(input), sizes))
          for (const frame of frames) expect(ascii(await m.unmarshall(bytes))).toBe(frame)
          expectClosedWith(await rejection(m.unmarshall(bytes)), utf8(rest))
        },
      ),
      { numRuns: 300 },
    )
  })

  it('earliest start wins even when a later-listed delimiter starts first; ties go to the one listed first', async () => {
    const m = new DelimitedBytesMarshaller(['END', 'D'])
    // 'D' at 1 starts before 'END' at 3 would: earliest wins.
    for (const split of splits(utf8('xDyEND'))) {
      const bytes = fromChunks(split)
      expect(ascii(await m.unmarshall(bytes))).toBe('x')
      expect(ascii(await m.unmarshall(bytes))).toBe('y')
    }
    // A longer delimiter listed first, starting earlier than a complete shorter one, is waited for.
    const n = new DelimitedBytesMarshaller(['abcd', 'c'])
    const stream = new ByteStream()
    stream.push(utf8('xabc'))
    const first = n.unmarshall(stream)
    stream.push(utf8('d'))
    stream.push(utf8('yc'))
    stream.end()
    expect(ascii(await first)).toBe('x')
    expect(ascii(await n.unmarshall(stream))).toBe('y')
  })

  it("a trailing '\\r' completes at the end of the stream, and only then", async () => {
    const m = new DelimitedBytesMarshaller(['\r\n', '\r'])
    const stream = new ByteStream()
    stream.push(utf8('abc\r'))
    let settled = false
    const read = m.unmarshall(stream).finally(() => (settled = true))
    await new Promise((resolve) => setImmediate(resolve))
    expect(settled).toBe(false)
    stream.end()
    expect(ascii(await read)).toBe('abc')
  })

  it('marshall appends the first delimiter; keepDelimiter returns the delimiter that ended each frame', async () => {
    const m = new DelimitedBytesMarshaller(['\r\n', '\n'], { keepDelimiter: true })
    expect(ascii(m.marshall(utf8('x')))).toBe('x\r\n')
    const bytes = fromChunks([utf8('a\nb\r'), utf8('\nc\n')])
    expect(ascii(await m.unmarshall(bytes))).toBe('a\n')
    expect(ascii(await m.unmarshall(bytes))).toBe('b\r\n')
    expect(ascii(await m.unmarshall(bytes))).toBe('c\n')
  })

  it('accepts exactly maxLength and fails fast one byte over; the delimiter is not counted', async () => {
    const m = new DelimitedBytesMarshaller(['\r\n', '\n'], { maxLength: 5 })
    for (const split of splits(utf8('abcde\r\nabcdef\n'))) {
      const bytes = fromChunks(split)
      expect(ascii(await m.unmarshall(bytes))).toBe('abcde')
      const error = await rejection(m.unmarshall(bytes))
      expect(error).toBeInstanceOf(FrameTooLargeError)
      expect((error as FrameTooLargeError).recoverable).toBe(false)
    }
  })

  it("tooLarge: 'skip' discards an oversized frame through its delimiter, reports it, and delivers the next ones", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 6, max: 200 }), fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 8 }), async (size, sizes) => {
        const m = new DelimitedBytesMarshaller(['\r\n', '\n'], { maxLength: 5, tooLarge: 'skip' })
        const bytes = fromChunks(chunksOf(utf8(`ok\n${'x'.repeat(size)}\r\nnext\nlast\r\n`), sizes))
        expect(ascii(await m.unmarshall(bytes))).toBe('ok')
        const error = await rejection(m.unmarshall(bytes))
        expect(error).toBeInstanceOf(FrameTooLargeError)
        expect((error as FrameTooLargeError).resynchronised).toBe(true)
        expect((error as FrameTooLargeError).recoverable).toBe(true)
        expect(ascii(await m.unmarshall(bytes))).toBe('next')
        expect(ascii(await m.unmarshall(bytes))).toBe('last')
      }),
      { numRuns: 100 },
    )
  })

  it('scans in O(n): each delimiter search resumes where it stopped (bytes searched counted, 1 MiB in 1-KiB chunks, three delimiters)', async () => {
    const m = new DelimitedBytesMarshaller(['\r\n', '\n', '\r'], { maxLength: 4 << 20 })
    const stream = new ByteStream()
    let searched = 0
    let searches = 0
    const indexOf = stream.indexOf.bind(stream)
    stream.indexOf = (pattern, from) => {
      from ??= 0
      searches++
      searched += stream.bufferedLength - from
      return indexOf(pattern, from)
    }
    const size = 1 << 20
    const read = m.unmarshall(stream)
    const chunk = new Uint8Array(1024).fill(0x61)
    for (let sent = 0; sent < size; sent += chunk.length) {
      stream.push(chunk)
      await Promise.resolve()
    }
    stream.push(utf8('\r\nnext\n'))
    expect((await read).length).toBe(size)
    expect(ascii(await m.unmarshall(stream))).toBe('next')
    // Three delimiters, each searching every byte about once (plus a byte of overlap per chunk); rescanning would be ~1000× this.
    expect(searched).toBeLessThan(3 * size + 3 * 2 * (size / 1024) + 64)
    // …and the decoder did run as the chunks arrived, not once at the end.
    expect(searches).toBeGreaterThan(3 * (size / 1024) * 0.9)
  })

  it('rejects bad constructor arguments with RangeError', () => {
    expect(() => new DelimitedBytesMarshaller([])).toThrow(RangeError)
    expect(() => new DelimitedBytesMarshaller([''])).toThrow(RangeError)
    expect(() => new DelimitedBytesMarshaller([7 as unknown as string])).toThrow(RangeError)
    expect(() => new DelimitedBytesMarshaller(['\n'], { maxLength: -1 })).toThrow(RangeError)
    expect(() => new DelimitedBytesMarshaller(['\n'], { tooLarge: 'drop' as 'skip' })).toThrow(RangeError)
  })
})

describe('LengthFieldBytesMarshaller (the examples of Netty LengthFieldBasedFrameDecoder)', () => {
  const hello = utf8('HELLO, WORLD')
  const cases: { name: string; options: ConstructorParameters<typeof LengthFieldBytesMarshaller>[0]; wire: Uint8Array; frame: Uint8Array }[] = [
    { name: '2 bytes length field at offset 0, do not strip header', options: { lengthFieldLength: 2 }, wire: concat(hexBytes('00 0C'), hello), frame: concat(hexBytes('00 0C'), hello) },
    { name: '2 bytes length field at offset 0, strip header', options: { lengthFieldLength: 2, initialBytesToStrip: 2 }, wire: concat(hexBytes('00 0C'), hello), frame: hello },
    {
      name: '2 bytes length field at offset 0, represents the length of the whole message',
      options: { lengthFieldLength: 2, lengthAdjustment: -2 },
      wire: concat(hexBytes('00 0E'), hello),
      frame: concat(hexBytes('00 0E'), hello),
    },
    {
      name: '3 bytes length field at the end of 5 bytes header',
      options: { lengthFieldOffset: 2, lengthFieldLength: 3 },
      wire: concat(hexBytes('CA FE 00 00 0C'), hello),
      frame: concat(hexBytes('CA FE 00 00 0C'), hello),
    },
    {
      name: '3 bytes length field at the beginning of 5 bytes header',
      options: { lengthFieldLength: 3, lengthAdjustment: 2 },
      wire: concat(hexBytes('00 00 0C CA FE'), hello),
      frame: concat(hexBytes('00 00 0C CA FE'), hello),
    },
    {
      name: '2 bytes length field at offset 1 in the middle of 4 bytes header, strip the first header field and the length field',
      options: { lengthFieldOffset: 1, lengthFieldLength: 2, lengthAdjustment: 1, initialBytesToStrip: 3 },
      wire: concat(hexBytes('CA 00 0C FE'), hello),
      frame: concat(hexBytes('FE'), hello),
    },
    {
      name: '2 bytes length field at offset 1, represents the length of the whole message',
      options: { lengthFieldOffset: 1, lengthFieldLength: 2, lengthAdjustment: -3, initialBytesToStrip: 3 },
      wire: concat(hexBytes('CA 00 10 FE'), hello),
      frame: concat(hexBytes('FE'), hello),
    },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      const m = new LengthFieldBytesMarshaller(c.options)
      for (const split of splits(concat(c.wire, c.wire))) {
        const bytes = fromChunks(split)
        expect(Array.from(await m.unmarshall(bytes))).toEqual(Array.from(c.frame))
        expect(Array.from(await m.unmarshall(bytes))).toEqual(Array.from(c.frame))
        expectClosedWith(await rejection(m.unmarshall(bytes)), new Uint8Array(0))
      }
    })
  }

  it('fails fast on an over-long length as soon as the header is read, before any body byte', async () => {
    for (const lengthFieldLength of [1, 2, 3, 4, 8] as const) {
      const m = new LengthFieldBytesMarshaller({ lengthFieldLength, lengthFieldOffset: 1, maxLength: 100 })
      const header = new Uint8Array(1 + lengthFieldLength).fill(0xff)
      let yielded = 0
      const error = await rejection(
        m.unmarshall(
          (async function* () {
            for (const byte of header) {
              yielded++
              await Promise.resolve()
              yield Uint8Array.of(byte)
            }
            for (;;) {
              yielded++
              yield new Uint8Array(1024)
            }
          })(),
        ),
      )
      expect(error).toBeInstanceOf(FrameTooLargeError)
      expect(yielded).toBe(header.length)
    }
  })

  it("tooLarge: 'skip' discards exactly the announced frame and goes on", async () => {
    const m = new LengthFieldBytesMarshaller({ lengthFieldLength: 2, initialBytesToStrip: 2, maxLength: 10, tooLarge: 'skip' })
    const wire = concat(m.marshall(utf8('a')), hexBytes('00 20'), new Uint8Array(32).fill(0x0a), m.marshall(utf8('next')))
    for (const split of splits(wire)) {
      const bytes = fromChunks(split)
      expect(ascii(await m.unmarshall(bytes))).toBe('a')
      const error = await rejection(m.unmarshall(bytes))
      expect(error).toBeInstanceOf(FrameTooLargeError)
      expect((error as FrameTooLargeError).recoverable).toBe(true)
      expect(ascii(await m.unmarshall(bytes))).toBe('next')
    }
  })

  it('a length shorter than the header or than initialBytesToStrip is a FramingError; an 8-byte field past 2^53 is too large', async () => {
    const short = new LengthFieldBytesMarshaller({ lengthFieldLength: 2, lengthAdjustment: -4 })
    expect(await rejection(short.unmarshall(fromChunks([hexBytes('00 01 41')])))).toBeInstanceOf(FramingError)
    const strip = new LengthFieldBytesMarshaller({ lengthFieldLength: 1, initialBytesToStrip: 5 })
    expect(await rejection(strip.unmarshall(fromChunks([hexBytes('01 41')])))).toBeInstanceOf(FramingError)
    const wide = new LengthFieldBytesMarshaller({ lengthFieldLength: 8 })
    expect(await rejection(wide.unmarshall(fromChunks([hexBytes('FF FF FF FF FF FF FF FF')])))).toBeInstanceOf(FrameTooLargeError)
  })

  it('marshall prepends the field at offset 0 in either byte order, honouring lengthAdjustment', () => {
    expect(Array.from(new LengthFieldBytesMarshaller({ lengthFieldLength: 2, initialBytesToStrip: 2 }).marshall(utf8('abc')))).toEqual([0, 3, 97, 98, 99])
    expect(Array.from(new LengthFieldBytesMarshaller({ lengthFieldLength: 4, littleEndian: true, initialBytesToStrip: 4 }).marshall(utf8('ab')))).toEqual([2, 0, 0, 0, 97, 98])
    expect(Array.from(new LengthFieldBytesMarshaller({ lengthFieldLength: 3, initialBytesToStrip: 3, lengthAdjustment: -3 }).marshall(utf8('a')))).toEqual([0, 0, 4, 97])
    expect(() => new LengthFieldBytesMarshaller({ lengthFieldLength: 1, initialBytesToStrip: 1 }).marshall(new Uint8Array(256))).toThrow(FramingError)
    expect(() => new LengthFieldBytesMarshaller({ lengthFieldOffset: 1, lengthFieldLength: 1, initialBytesToStrip: 2 }).marshall(utf8('x'))).toThrow(FramingError)
  })

  it('rejects bad options with RangeError', () => {
    expect(() => new LengthFieldBytesMarshaller({ lengthFieldLength: 5 as 4 })).toThrow(RangeError)
    expect(() => new LengthFieldBytesMarshaller({ lengthFieldLength: 2, lengthFieldOffset: -1 })).toThrow(RangeError)
    expect(() => new LengthFieldBytesMarshaller({ lengthFieldLength: 2, initialBytesToStrip: 0.5 })).toThrow(RangeError)
  })
})

describe('StartStopBytesMarshaller', () => {
  it('discards junk before the start marker, under any chunking, holding at most start-length − 1 bytes of it', async () => {
    const m = new StartStopBytesMarshaller('<<', '>>')
    for (const split of splits(utf8('noise<x<<one>>zz<<two>>'))) {
      const bytes = fromChunks(split)
      expect(ascii(await m.unmarshall(bytes))).toBe('one')
      expect(ascii(await m.unmarshall(bytes))).toBe('two')
    }
    const stream = new ByteStream()
    stream.push(new Uint8Array(10_000).fill(0x3c).map((b, i) => (i % 2 === 0 ? b : 0x41)))
    const read = m.unmarshall(stream)
    await new Promise((resolve) => setImmediate(resolve))
    expect(stream.bufferedLength).toBeLessThanOrEqual(1)
    stream.push(utf8('<<ok>>'))
    expect(ascii(await read)).toBe('ok')
  })

  it("tooLarge: 'skip' skips an oversized frame through its stop marker; 'fail' fails fast", async () => {
    const skip = new StartStopBytesMarshaller(Uint8Array.of(2), Uint8Array.of(3), { maxLength: 4, tooLarge: 'skip' })
    for (const split of splits(hexBytes('02 41 42 43 44 45 46 03 02 47 03'))) {
      const bytes = fromChunks(split)
      const error = await rejection(skip.unmarshall(bytes))
      expect(error).toBeInstanceOf(FrameTooLargeError)
      expect((error as FrameTooLargeError).resynchronised).toBe(true)
      expect(ascii(await skip.unmarshall(bytes))).toBe('G')
    }
    const fail = new StartStopBytesMarshaller(Uint8Array.of(2), Uint8Array.of(3), { maxLength: 4 })
    expect(await rejection(fail.unmarshall(fromChunks([hexBytes('02 41 42 43 44 45')])))).toBeInstanceOf(FrameTooLargeError)
  })
})

describe('IeeeBlockMarshaller', () => {
  it('reads definite blocks holding newlines and #, with a header before the # discarded', async () => {
    const m = new IeeeBlockMarshaller()
    const wire = concat(utf8(':CURV #15a\n#\nb\n'), utf8('#10\n'), utf8('#0indefinite\n'))
    for (const split of splits(wire)) {
      const bytes = fromChunks(split)
      expect(ascii(await m.unmarshall(bytes))).toBe('a\n#\nb')
      expect(ascii(await m.unmarshall(bytes))).toBe('')
      expect(ascii(await m.unmarshall(bytes))).toBe('indefinite')
      expectClosedWith(await rejection(m.unmarshall(bytes)), new Uint8Array(0))
    }
  })

  it('marshall writes #<n><len><data> and the terminator', () => {
    expect(ascii(new IeeeBlockMarshaller().marshall(utf8('hello')))).toBe('#15hello\n')
    expect(ascii(new IeeeBlockMarshaller({ terminator: '\r\n' }).marshall(new Uint8Array(1234)).subarray(0, 6))).toBe('#41234')
    expect(ascii(new IeeeBlockMarshaller({ terminator: null }).marshall(new Uint8Array(0)))).toBe('#10')
  })

  it('a terminated line without a block is consumed and rejected as a recoverable FramingError quoting it', async () => {
    const m = new IeeeBlockMarshaller()
    for (const split of splits(utf8('-113,"Undefined header"\n#13abc\n'))) {
      const bytes = fromChunks(split)
      const error = await rejection(m.unmarshall(bytes))
      expect(error).toBeInstanceOf(FramingError)
      expect((error as FramingError).recoverable).toBe(true)
      expect((error as FramingError).message).toContain('Undefined header')
      expect(ascii(await m.unmarshall(bytes))).toBe('abc')
    }
  })

  it('a malformed header or a missing terminator is a FramingError; an over-long block fails at its header', async () => {
    const m = new IeeeBlockMarshaller({ maxLength: 1000 })
    expect(await rejection(m.unmarshall(fromChunks([utf8('#x12')])))).toBeInstanceOf(FramingError)
    expect(await rejection(m.unmarshall(fromChunks([utf8('#2a1')])))).toBeInstanceOf(FramingError)
    const missing = await rejection(m.unmarshall(fromChunks([utf8('#13abcX')])))
    expect(missing).toBeInstanceOf(FramingError)
    expect((missing as FramingError).message).toMatch(/not its terminator/)
    let yielded = 0
    const error = await rejection(
      m.unmarshall(
        (async function* () {
          yielded += 6
          await Promise.resolve()
          yield utf8('#41001')
          for (;;) {
            yielded += 1024
            yield new Uint8Array(1024)
          }
        })(),
      ),
    )
    expect(error).toBeInstanceOf(FrameTooLargeError)
    expect(yielded).toBe(6)
  })

  it('an indefinite block without a terminator runs to the end of the stream', async () => {
    const m = new IeeeBlockMarshaller({ terminator: null })
    expect(ascii(await m.unmarshall(fromChunks([utf8('#0abc'), utf8('\ndef')])))).toBe('abc\ndef')
  })

  it('typed-array helpers round-trip every type in both byte orders, and read big-endian int16 as instruments send it', () => {
    const values: Record<BlockValueType, number[]> = {
      int8: [-128, -1, 0, 127],
      uint8: [0, 1, 255],
      int16: [-32768, -2, 0, 1, 32767],
      uint16: [0, 258, 65535],
      int32: [-2147483648, -3, 0, 2147483647],
      uint32: [0, 0x01020304, 0xffffffff],
      float32: [0, -1.5, 3.25, Infinity],
      float64: [Math.PI, -0.1, 1e300],
    }
    for (const [type, list] of Object.entries(values) as [BlockValueType, number[]][]) {
      for (const byteOrder of ['little', 'big'] as const) {
        expect(Array.from(blockToValues(valuesToBlock(list, type, { byteOrder }), type, { byteOrder }))).toEqual(list)
      }
    }
    expect(Array.from(blockToValues(hexBytes('01 02 FF FE'), 'int16', { byteOrder: 'big' }))).toEqual([0x0102, -2])
    expect(Array.from(blockToValues(hexBytes('01 02 FF FE'), 'int16'))).toEqual([0x0201, -257])
    expect(Array.from(valuesToBlock([0x01020304], 'uint32', { byteOrder: 'big' }))).toEqual([1, 2, 3, 4])
    // A view at an odd offset works (the data is copied).
    const odd = hexBytes('00 00 01 00 02').subarray(1)
    expect(Array.from(blockToValues(odd, 'uint16'))).toEqual([256, 512])
    expect(() => blockToValues(Uint8Array.of(1, 2, 3), 'int16')).toThrow(FramingError)
    expect(() => blockToValues(Uint8Array.of(1), 'int12' as 'int8')).toThrow(RangeError)
  })
})

describe('SLIP and COBS', () => {
  it('SLIP escapes END and ESC (RFC 1055) and skips empty frames', async () => {
    const m = new SlipBytesMarshaller()
    expect(Array.from(m.marshall(hexBytes('01 C0 DB 02')))).toEqual(Array.from(hexBytes('C0 01 DB DC DB DD 02 C0')))
    const bytes = fromChunks([hexBytes('C0 C0 C0 41 C0 C0 42 DB DC C0')])
    expect(Array.from(await m.unmarshall(bytes))).toEqual([0x41])
    expect(Array.from(await m.unmarshall(bytes))).toEqual([0x42, 0xc0])
    expect(() => m.marshall(new Uint8Array(0))).toThrow(FramingError)
  })

  it('SLIP: a bad escape is a recoverable FramingError and the next frame is read', async () => {
    const m = new SlipBytesMarshaller()
    const bytes = fromChunks([hexBytes('C0 41 DB 42 C0 43 C0')])
    const error = await rejection(m.unmarshall(bytes))
    expect(error).toBeInstanceOf(FramingError)
    expect((error as FramingError).recoverable).toBe(true)
    expect(Array.from(await m.unmarshall(bytes))).toEqual([0x43])
  })

  it('COBS matches the published examples (minimal encoding)', () => {
    const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)
    const examples: [number[], number[]][] = [
      [[0x00], [0x01, 0x01, 0x00]],
      [[0x00, 0x00], [0x01, 0x01, 0x01, 0x00]],
      [[0x00, 0x11, 0x00], [0x01, 0x02, 0x11, 0x01, 0x00]],
      [[0x11, 0x22, 0x00, 0x33], [0x03, 0x11, 0x22, 0x02, 0x33, 0x00]],
      [[0x11, 0x22, 0x33, 0x44], [0x05, 0x11, 0x22, 0x33, 0x44, 0x00]],
      [[0x11, 0x00, 0x00, 0x00], [0x02, 0x11, 0x01, 0x01, 0x01, 0x00]],
      [range(0x01, 0xfe), [0xff, ...range(0x01, 0xfe), 0x00]],
      [[0x00, ...range(0x01, 0xfe)], [0x01, 0xff, ...range(0x01, 0xfe), 0x00]],
      [range(0x01, 0xff), [0xff, ...range(0x01, 0xfe), 0x02, 0xff, 0x00]],
      [[...range(0x02, 0xff), 0x00], [0xff, ...range(0x02, 0xff), 0x01, 0x01, 0x00]],
      [[...range(0x03, 0xff), 0x00, 0x01], [0xfe, ...range(0x03, 0xff), 0x02, 0x01, 0x00]],
    ]
    const m = new CobsBytesMarshaller()
    for (const [raw, encoded] of examples) {
      expect(Array.from(m.marshall(Uint8Array.from(raw)))).toEqual(encoded)
      expect(Array.from(cobsDecode(Uint8Array.from(encoded.slice(0, -1))))).toEqual(raw)
    }
    // A non-minimal encoding (an empty last block) still decodes.
    expect(Array.from(cobsDecode(Uint8Array.from([0xff, ...range(0x01, 0xfe), 0x01])))).toEqual(range(0x01, 0xfe))
    fc.assert(fc.property(fc.uint8Array({ maxLength: 1000 }), (p) => Buffer.from(cobsDecode(cobsEncode(p))).equals(p) && !cobsEncode(p).includes(0)))
  })

  it('COBS: a code running past the frame is a recoverable FramingError and the next frame is read', async () => {
    const m = new CobsBytesMarshaller()
    const bytes = fromChunks([hexBytes('05 11 22 00 00 03 11 22 00')])
    const error = await rejection(m.unmarshall(bytes))
    expect(error).toBeInstanceOf(FramingError)
    expect((error as FramingError).recoverable).toBe(true)
    expect(Array.from(await m.unmarshall(bytes))).toEqual([0x11, 0x22])
  })
})

describe('compose and codecs', () => {
  it('is a synchronous decoder when the framer is one, and its codecs run in order', async () => {
    const m = compose(new SentinelBytesMarshaller('\n'), checksumCodec(crc8, { encoding: 'hex' }), textCodec(), { encode: (n: number) => String(n), decode: Number })
    expect(decoderOf(m.unmarshall)).toBeDefined()
    const wire = m.marshall(42)
    expect(ascii(wire)).toBe(`42${crc8.compute(utf8('42')).toString(16).toUpperCase().padStart(2, '0')}\n`)
    expect(await m.unmarshall(fromChunks([wire]))).toBe(42)
  })

  it('a codec that throws on decode rejects that read with a recoverable FramingError (cause kept); the stream stays in step', async () => {
    const m = compose(new SentinelBytesMarshaller('\n'), jsonCodec())
    const bytes = fromChunks([utf8('{"a":1}\n{broken\n[2]\n')])
    expect(await m.unmarshall(bytes)).toEqual({ a: 1 })
    const error = await rejection(m.unmarshall(bytes))
    expect(error).toBeInstanceOf(FramingError)
    expect((error as FramingError).recoverable).toBe(true)
    expect((error as FramingError).cause).toBeInstanceOf(SyntaxError)
    expect(await m.unmarshall(bytes)).toEqual([2])
    const plain = mapMarshaller(new SentinelBytesMarshaller('\n'), (n: number) => utf8(String(n)), () => {
      throw new TypeError('nope')
    })
    const mapped = await rejection(plain.unmarshall(fromChunks([utf8('1\n')])))
    expect(mapped).toBeInstanceOf(LabwireError)
    expect((mapped as FramingError).recoverable).toBe(true)
  })

  it('works over a framer without a decoder (an async user unmarshaller)', async () => {
    const inner = new SentinelBytesMarshaller('\n')
    const m = compose({ marshall: inner.marshall, unmarshall: (bytes) => inner.unmarshall(bytes) }, textCodec())
    expect(decoderOf(m.unmarshall)).toBeUndefined()
    expect(await m.unmarshall(fromChunks([utf8('hi\n')]))).toBe('hi')
  })

  it("textCodec: latin1 keeps every byte; ascii refuses bit 7 instead of dropping it; utf-8 'fatal' refuses malformed input", () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i)
    const latin1 = textCodec('latin1')
    expect(Array.from(latin1.encode(latin1.decode(all)))).toEqual(Array.from(all))
    const ascii7 = textCodec('ascii')
    expect(ascii7.decode(utf8('VOLT 1.5'))).toBe('VOLT 1.5')
    expect(() => ascii7.decode(Uint8Array.of(0x41, 0xb5))).toThrow(/0xb5 at offset 1 is not ASCII/)
    expect(() => ascii7.encode('µ')).toThrow(FramingError)
    expect(() => latin1.encode('€')).toThrow(FramingError)
    expect(textCodec().decode(Uint8Array.of(0xff))).toBe('\ufffd')
    expect(() => textCodec('utf-8', { fatal: true }).decode(Uint8Array.of(0xff))).toThrow()
    expect(() => textCodec('utf-16' as 'utf-8')).toThrow(RangeError)
    expect(() => textCodec().encode(5 as unknown as string)).toThrow(TypeError)
  })

  it('msgpackCodec round-trips binary and nested values; malformed input is a recoverable FramingError', () => {
    const codec = msgpackCodec()
    const value = { wave: Uint8Array.of(1, 2, 3), n: -1.5, list: [null, true, 'x'] }
    expect(codec.decode(codec.encode(value))).toEqual(value)
    let error: unknown
    try {
      codec.decode(Uint8Array.of(0xc1))
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(FramingError)
    expect((error as FramingError).recoverable).toBe(true)
  })

  it('msgpackCodec refuses a __proto__ map key with a recoverable FramingError and pollutes nothing', () => {
    const codec = msgpackCodec()
    // fixmap of 1: fixstr "__proto__" -> fixmap of 1: fixstr "polluted" -> true
    const wire = Uint8Array.of(0x81, 0xa9, ...utf8('__proto__'), 0x81, 0xa8, ...utf8('polluted'), 0xc3)
    let error: unknown
    try {
      codec.decode(wire)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(FramingError)
    expect((error as FramingError).recoverable).toBe(true)
    expect((error as Error).message).toMatch(/__proto__/)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('textMarshaller and mapMarshaller are thin uses of compose and keep their behaviour', async () => {
    const lines = textMarshaller(new SentinelBytesMarshaller('\n'))
    expect(decoderOf(lines.unmarshall)).toBeDefined()
    expect(() => lines.marshall(3 as unknown as string)).toThrow(TypeError)
    expect(await lines.unmarshall(fromChunks([utf8('ü\n')]))).toBe('ü')
  })

  it('rejects a non-framer or non-codec argument with TypeError', () => {
    expect(() => compose({} as unknown as SentinelBytesMarshaller)).toThrow(TypeError)
    expect(() => compose(new SentinelBytesMarshaller('\n'), {} as ReturnType<typeof textCodec>)).toThrow(TypeError)
  })
})

describe('end of stream while skipping', () => {
  it('is a ConnectionClosedError, not a hang', async () => {
    const m = new DelimitedBytesMarshaller(['\n'], { maxLength: 2, tooLarge: 'skip' })
    expect(await rejection(m.unmarshall(fromChunks([utf8('abcdef')])))).toBeInstanceOf(ConnectionClosedError)
    const s = new StartStopBytesMarshaller('<', '>', { maxLength: 2, tooLarge: 'skip' })
    expect(await rejection(s.unmarshall(fromChunks([utf8('<abcdef')])))).toBeInstanceOf(ConnectionClosedError)
    const l = new LengthFieldBytesMarshaller({ lengthFieldLength: 1, maxLength: 2, tooLarge: 'skip' })
    expect(await rejection(l.unmarshall(fromChunks([hexBytes('09 01 02')])))).toBeInstanceOf(ConnectionClosedError)
  })
})

describe('the README worked example: header byte, length, body, CRC-16/MODBUS, built with compose', () => {
  const HEADER = 0xa5
  const frames = new LengthFieldBytesMarshaller({ lengthFieldOffset: 1, lengthFieldLength: 1, lengthAdjustment: 2, maxLength: 2 + 255 + 2 })
  const header = {
    encode: (body: Uint8Array) => Uint8Array.of(HEADER, body.length, ...body),
    decode: (frame: Uint8Array) => {
      if (frame[0] !== HEADER) throw new FramingError(`bad header byte 0x${(frame[0] ?? 0).toString(16)}`, { recoverable: true })
      return frame.subarray(2)
    },
  }
  const device = compose(frames, checksumCodec(crc16Modbus, { byteOrder: 'little' }), header)

  it('marshalls A5 len body crc-lo crc-hi, and reads it back under any chunking', async () => {
    const wire = device.marshall(Uint8Array.of(0x01, 0x02))
    const crc = crc16Modbus.compute(Uint8Array.of(0xa5, 0x02, 0x01, 0x02))
    expect(Array.from(wire)).toEqual([0xa5, 0x02, 0x01, 0x02, crc & 0xff, crc >>> 8])
    expect(decoderOf(device.unmarshall)).toBeDefined()
    for (const split of splits(concat(wire, device.marshall(new Uint8Array(255).fill(7)), device.marshall(new Uint8Array(0))))) {
      const bytes = fromChunks(split)
      expect(Array.from(await device.unmarshall(bytes))).toEqual([1, 2])
      expect((await device.unmarshall(bytes)).length).toBe(255)
      expect((await device.unmarshall(bytes)).length).toBe(0)
    }
  })

  it('a bad CRC or header fails that read only (recoverable, naming expected and actual); the next frame is read', async () => {
    const good = device.marshall(utf8('ok'))
    const badCrc = device.marshall(utf8('xy'))
    badCrc[badCrc.length - 1] = (badCrc[badCrc.length - 1] as number) ^ 0xff
    const badHeader = device.marshall(utf8('hd'))
    badHeader[0] = 0x5a
    const bytes = fromChunks(chunksOf(concat(badCrc, badHeader, good), [3]))
    const crcError = (await rejection(device.unmarshall(bytes))) as FramingError
    expect(crcError).toBeInstanceOf(FramingError)
    expect(crcError.recoverable).toBe(true)
    expect(crcError.message).toMatch(/CRC-16\/MODBUS mismatch: expected 0x[0-9A-F]{4}, got 0x[0-9A-F]{4}/)
    const headerError = (await rejection(device.unmarshall(bytes))) as FramingError
    expect(headerError.message).toContain('CRC-16/MODBUS')
    expect(ascii(await device.unmarshall(bytes))).toBe('ok')
    expect(() => device.marshall(new Uint8Array(256))).toThrow(FramingError)
  })
})
