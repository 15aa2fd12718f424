/**
 * The decoder contract (core): framers are synchronous decoders over a connection's ByteStream.
 * Byte at a time, random chunkings (fast-check), and "need more" never consumes.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ApplicationServer } from '@labwire/application'
import {
  ByteStream,
  ConnectionClosedError,
  FrameTooLargeError,
  NEED_MORE,
  decodeFrom,
  decoderOf,
  delimiterDecoder,
  exactDecoder,
  serveConnection,
  silentLogger,
  unmarshallerOf,
  type FrameDecoder,
  type ServedConnection,
} from '@labwire/core'
import { FixedLengthBytesMarshaller, SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'

const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
const dec = (b: Uint8Array): string => new TextDecoder().decode(b)

function chunksOf(data: Uint8Array, sizes: number[]): Uint8Array[] {
  const out: Uint8Array[] = []
  let offset = 0
  let i = 0
  while (offset < data.length) {
    const size = Math.max(1, sizes[i++ % sizes.length] ?? 1)
    out.push(data.slice(offset, offset + size))
    offset += size
  }
  return out
}

/** Push `chunks` one by one, decoding after each; checks that NEED_MORE consumes nothing. */
function decodeAll<T>(decoder: FrameDecoder<T>, chunks: Uint8Array[]): T[] {
  const stream = new ByteStream(undefined, { highWaterMark: 1 << 30 })
  const frames: T[] = []
  for (const chunk of chunks) {
    stream.push(chunk)
    for (;;) {
      const consumed = stream.consumed
      const buffered = stream.bufferedLength
      const frame = decoder.decode(stream)
      if (frame === NEED_MORE) {
        expect(stream.consumed).toBe(consumed)
        expect(stream.bufferedLength).toBe(buffered)
        break
      }
      frames.push(frame)
    }
  }
  return frames
}

describe('decoder contract', () => {
  it('a delimiter decoder returns each frame, byte at a time, and keeps the leftover', () => {
    const data = enc('ab\r\ncd\r\n\r\ne')
    const bytewise = chunksOf(data, [1])
    const frames = decodeAll(delimiterDecoder(enc('\r\n')), bytewise).map(dec)
    expect(frames).toEqual(['ab', 'cd', ''])
  })

  it('any chunking of the input yields the same frames (delimiter of 1–3 bytes, fixed length)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ maxLength: 12 }).map((s) => s.replace(/[|#]/g, '')), { maxLength: 10 }),
        fc.constantFrom('\n', '\r\n', '|#|'),
        fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 8 }),
        (payloads, delimiter, sizes) => {
          const wire = enc(payloads.map((p) => p + delimiter).join(''))
          const frames = decodeAll(delimiterDecoder(enc(delimiter)), chunksOf(wire, sizes)).map(dec)
          expect(frames).toEqual(payloads.map((p) => p.split(delimiter)[0]))
          const fixed = decodeAll(exactDecoder(3), chunksOf(wire, sizes))
          expect(fixed.length).toBe(Math.floor(wire.length / 3))
          expect(dec(Uint8Array.from(fixed.flatMap((f) => [...f])))).toBe(dec(wire.slice(0, fixed.length * 3)))
        },
      ),
      { numRuns: 300 },
    )
  })

  it('a frame over maxLength fails fast, without waiting for the delimiter', () => {
    const stream = new ByteStream(undefined)
    stream.push(enc('12345'))
    expect(() => delimiterDecoder(enc('\n'), { maxLength: 4 }).decode(stream)).toThrow(FrameTooLargeError)
  })

  it('the shared adapter reads a plain async iterator and a push stream alike, and reports a mid-frame end with its partial bytes', async () => {
    async function* source(): AsyncGenerator<Uint8Array> {
      await Promise.resolve()
      yield enc('he')
      yield enc('llo\nwor')
    }
    const decoder = delimiterDecoder(enc('\n'))
    const iterator = source()
    expect(dec(await decodeFrom(decoder, iterator))).toBe('hello')
    const error = await decodeFrom(decoder, iterator).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ConnectionClosedError)
    expect(dec((error as ConnectionClosedError).partial)).toBe('wor')

    const stream = new ByteStream(undefined, { label: '127.0.0.1:5025' })
    const pending = decodeFrom(exactDecoder(4), stream)
    stream.push(enc('ab'))
    stream.push(enc('cdef'))
    expect(dec(await pending)).toBe('abcd')
    stream.end()
    const closed = await decodeFrom(exactDecoder(4), stream).catch((e: unknown) => e)
    expect(closed).toBeInstanceOf(ConnectionClosedError)
    expect((closed as Error).message).toMatch(/127\.0\.0\.1:5025 closed the connection in the middle of a frame \(2 of 4 bytes\)/)
  })

  it('framers and mapped marshallers carry their decoder, detached', () => {
    const line = new SentinelBytesMarshaller('\n')
    const { unmarshall } = line
    expect(decoderOf(unmarshall)).toBe(line.decoder)
    expect(decoderOf(new FixedLengthBytesMarshaller(2).unmarshall)).toBeDefined()
    const text = textMarshaller(line)
    const decoder = decoderOf<string>(text.unmarshall)
    expect(decoder).toBeDefined()
    expect(decodeAll(decoder as FrameDecoder<string>, [enc('a\nb'), enc('c\n')])).toEqual(['a', 'bc'])
    expect(decoderOf(() => Promise.resolve(1))).toBeUndefined()
    expect(decoderOf(unmarshallerOf(exactDecoder(1)))).toBeDefined()
  })

  it('the server loop answers a burst of buffered requests synchronously, in order, from one data event', async () => {
    const text = textMarshaller(new SentinelBytesMarshaller('\n'))
    let calls = 0
    const app = new ApplicationServer(text.unmarshall, text.marshall, (request: string) => {
      calls++
      return request.toUpperCase()
    })
    expect(app.handleBuffered).toBeDefined()
    const stream = new ByteStream(undefined)
    const written: string[] = []
    const conn: ServedConnection = {
      peer: 'test',
      busy: false,
      write: (bytes) => {
        written.push(dec(bytes))
        return undefined
      },
      flush: () => undefined,
      close: () => undefined,
    }
    const done = serveConnection(stream, app, conn, silentLogger)
    stream.push(enc(Array.from({ length: 100 }, (_, i) => `r${i}\n`).join('')))
    // Synchronously, in the push itself: every request answered, no await in between.
    expect(calls).toBe(100)
    expect(written.join('')).toBe(Array.from({ length: 100 }, (_, i) => `R${i}\n`).join(''))
    stream.end()
    await done
  })
})

describe('ByteStream edge cases', () => {
  it('takeFrame(0, 0) on an empty buffer returns an empty frame (regression: it read a missing head chunk)', () => {
    const stream = new ByteStream(undefined)
    expect(stream.takeFrame(0, 0)).toHaveLength(0)
  })

  it('a connection whose write throws is closed and logged, not an unhandled error', async () => {
    const text = textMarshaller(new SentinelBytesMarshaller('\n'))
    const app = new ApplicationServer(text.unmarshall, text.marshall, (request: string) => request)
    const stream = new ByteStream(undefined)
    const errors: unknown[] = []
    let closed = false
    const conn: ServedConnection = {
      peer: 'test',
      busy: false,
      write: () => {
        throw new Error('write failed on purpose')
      },
      flush: () => undefined,
      close: () => {
        closed = true
      },
    }
    const logger = { ...silentLogger, error: (context: object) => errors.push(context) }
    const done = serveConnection(stream, app, conn, logger)
    stream.push(enc('hello\n'))
    await done
    expect(closed).toBe(true)
    expect(errors).toHaveLength(1)
  })
})
