import { Readable } from 'node:stream'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ByteQueue, ByteStream, ConnectionClosedError, ConnectionError, FrameTooLargeError, TimeoutError, byteStreamOf } from '@labwire/core'
import { expectClosedWith, rejection } from './compliance/marshaller.js'
import { byteAtATime, chunksOf, concat, fromChunks, utf8 } from './helpers/chunks.js'

const NL = utf8('\n')
const CRLF = utf8('\r\n')
const DEADBEEF = new Uint8Array([0xde, 0xad, 0xbe, 0xef])

/** An iterator over `chunks` that counts how often it was pulled. */
function counted(chunks: readonly Uint8Array[]): { source: AsyncIterator<Uint8Array>; pulls: () => number } {
  let pulls = 0
  const inner = fromChunks(chunks)
  return {
    source: {
      next: () => {
        pulls++
        return inner.next()
      },
    },
    pulls: () => pulls,
  }
}

function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes)
}

describe('ByteStream.readUntil', () => {
  it('reads up to the delimiter and keeps the rest', async () => {
    const stream = new ByteStream(fromChunks([utf8('ab\ncd\nef')]))
    expect(text(await stream.readUntil(NL))).toBe('ab')
    expect(text(await stream.readUntil(NL))).toBe('cd')
    expect(text(stream.peek())).toBe('ef')
    expectClosedWith(await rejection(stream.readUntil(NL)), utf8('ef'))
  })

  it('finds a delimiter spread over several chunks', async () => {
    const stream = new ByteStream(fromChunks([utf8('ab\r'), utf8('\n'), utf8('x'), new Uint8Array([0xde]), new Uint8Array([0xad, 0xbe]), new Uint8Array([0xef])]))
    expect(text(await stream.readUntil(CRLF))).toBe('ab')
    expect(text(await stream.readUntil(DEADBEEF))).toBe('x')
  })

  it('does not pull from the source while a complete frame is buffered', async () => {
    const { source, pulls } = counted([utf8('a\nb\nc\n'), utf8('never read')])
    const stream = new ByteStream(source)
    expect(text(await stream.readUntil(NL))).toBe('a')
    expect(text(await stream.readUntil(NL))).toBe('b')
    expect(text(await stream.readUntil(NL))).toBe('c')
    expect(pulls()).toBe(1)
  })

  it('accepts maxLength bytes and rejects one more with FrameTooLargeError', async () => {
    expect(text(await new ByteStream(fromChunks([utf8('abc\n')])).readUntil(NL, { maxLength: 3 }))).toBe('abc')
    const error = await rejection(new ByteStream(fromChunks([utf8('abcd\n')])).readUntil(NL, { maxLength: 3 }))
    expect(error).toBeInstanceOf(FrameTooLargeError)
    expect((error as FrameTooLargeError).maxLength).toBe(3)
  })

  it('rejects an empty delimiter with RangeError', async () => {
    expect(await rejection(new ByteStream(fromChunks([utf8('a')])).readUntil(new Uint8Array(0)))).toBeInstanceOf(RangeError)
  })

  it('reads a 1 MiB frame from 1000 chunks of 1 KiB, pulling each chunk once', async () => {
    const chunks = Array.from({ length: 1000 }, (_, i) => new Uint8Array(1024).fill(0x41 + (i % 26)))
    const last = chunks[999] as Uint8Array
    last.set(DEADBEEF, 1024 - DEADBEEF.length)
    const { source, pulls } = counted(chunks)
    const stream = new ByteStream(source)
    const frame = await stream.readUntil(DEADBEEF, { maxLength: 1024 * 1024 })
    expect(pulls()).toBe(1000)
    expect(frame.length).toBe(1024 * 1000 - 4)
    expect(Buffer.from(frame).equals(concat(...chunks).subarray(0, frame.length))).toBe(true)
    expect(stream.bufferedLength).toBe(0)
  })

  // Delimiters longer than 8 bytes are searched with Buffer#indexOf, shorter ones by their first
  // byte with TypedArray#indexOf: both searches must resume where they stopped.
  const LONG = new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0xba, 0xbe])
  it.each([
    { name: 'a 12-byte delimiter (Buffer#indexOf)', delimiter: LONG, fill: 0xde, proto: Buffer.prototype as Uint8Array },
    { name: 'a 4-byte delimiter (first-byte search)', delimiter: DEADBEEF, fill: 0x41, proto: Uint8Array.prototype },
  ])('scans each byte once for $name, plus delimiter-length - 1 per chunk (no rescan)', async ({ delimiter, fill, proto }) => {
    const chunks = Array.from({ length: 1000 }, () => new Uint8Array(1024).fill(fill))
    ;(chunks[999] as Uint8Array).set(delimiter, 1024 - delimiter.length)
    const ours = new Set<ArrayBufferLike>(chunks.map((c) => c.buffer))
    const spy = vi.spyOn(proto, 'indexOf')
    try {
      const frame = await new ByteStream(fromChunks(chunks)).readUntil(delimiter)
      expect(frame.length).toBe(1024 * 1000 - delimiter.length)
      let scanned = 0
      let calls = 0
      spy.mock.calls.forEach((args, i) => {
        const self = spy.mock.contexts[i] as Uint8Array
        if (!ours.has(self.buffer)) return
        calls++
        scanned += self.length - (typeof args[1] === 'number' ? args[1] : 0)
      })
      // If the ByteStream stopped using this search, the test would prove nothing: fail loudly.
      expect(calls).toBeGreaterThanOrEqual(1000)
      expect(scanned).toBeLessThanOrEqual(1024 * 1000 + 1000 * (delimiter.length - 1))
    } finally {
      spy.mockRestore()
    }
  })

  // Regression: the scan used to walk the chunk list from the first chunk on every pull, so a
  // frame arriving one byte per chunk took quadratic time (a 40 000-byte line: 2.5 s; 1 MiB: ~30 min).
  it('frames a 128 KiB line arriving one byte per chunk in linear time (chunk list not rewalked)', { timeout: 10_000 }, async () => {
    const n = 128 * 1024
    const line = new Uint8Array(n + 2).fill(0x61)
    line.set(CRLF, n)
    const stream = new ByteStream(fromChunks(byteAtATime(line)))
    expect((await stream.readUntil(CRLF)).length).toBe(n)
  })
})

describe('ByteStream.readExactly', () => {
  it('reads across chunks and keeps the overshoot', async () => {
    const stream = new ByteStream(fromChunks([utf8('ab'), utf8('cdef'), utf8('g')]))
    expect(text(await stream.readExactly(3))).toBe('abc')
    expect(stream.bufferedLength).toBe(3)
    expect(text(await stream.readExactly(4))).toBe('defg')
    expect(text(await stream.readExactly(0))).toBe('')
    expectClosedWith(await rejection(stream.readExactly(1)), new Uint8Array(0))
  })

  it('rejects with ConnectionClosedError holding what arrived when the source ends first', async () => {
    const stream = new ByteStream(fromChunks([utf8('ab'), utf8('c')]))
    const error = await rejection(stream.readExactly(5))
    expectClosedWith(error, utf8('abc'))
    expect((error as ConnectionClosedError).message).toMatch(/3 of 5/)
  })
})

describe('ByteStream.peek / unshift / discardBuffered', () => {
  it('peek returns a copy of the buffered bytes and consumes nothing', async () => {
    const { source, pulls } = counted([utf8('ab'), utf8('cd\n')])
    const stream = new ByteStream(source)
    expect(stream.peek().length).toBe(0)
    expect(pulls()).toBe(0)
    expect(await stream.waitForData()).toBe(true)
    const copy = stream.peek()
    copy[0] = 0x7a
    expect(text(stream.peek())).toBe('ab')
    expect(text(await stream.readUntil(NL))).toBe('abcd')
  })

  it('unshift puts bytes back in front of the buffered ones', async () => {
    const stream = new ByteStream(fromChunks([utf8('xy;cd;')]))
    expect(text(await stream.readUntil(utf8(';')))).toBe('xy')
    stream.unshift(utf8('ab'))
    stream.unshift(new Uint8Array(0))
    expect(stream.bufferedLength).toBe(5)
    expect(text(await stream.readUntil(utf8(';')))).toBe('abcd')
  })

  it('a delimiter may span unshifted and buffered bytes', async () => {
    const stream = new ByteStream(fromChunks([utf8('\nrest\r\n')]))
    expect(await stream.waitForData()).toBe(true)
    stream.unshift(utf8('\r'))
    expect(text(await stream.readUntil(CRLF))).toBe('')
    expect(text(await stream.readUntil(CRLF))).toBe('rest')
  })

  it('unshift before the first read is read first', async () => {
    const stream = new ByteStream(fromChunks([utf8('world\n')]))
    stream.unshift(utf8('hello '))
    expect(text(await stream.readUntil(NL))).toBe('hello world')
  })

  it('discardBuffered drops the buffered bytes and says how many', async () => {
    const stream = new ByteStream(fromChunks([utf8('junk'), utf8('ok\n')]))
    expect(await stream.waitForData()).toBe(true)
    expect(stream.discardBuffered()).toBe(4)
    expect(stream.bufferedLength).toBe(0)
    expect(text(await stream.readUntil(NL))).toBe('ok')
  })
})

describe('ByteStream as an AsyncIterator', () => {
  it('next() yields the buffered bytes first, as one chunk, then the source chunks, then done', async () => {
    const stream = new ByteStream(fromChunks([utf8('a\nb'), utf8('c'), utf8('d'), utf8('e')]))
    expect(text(await stream.readUntil(NL))).toBe('a')
    // 'b' is buffered; with '>' put back in front the buffer spans two chunks, handed out as one.
    stream.unshift(utf8('>'))
    const first = await stream.next()
    expect(first.done).toBe(false)
    expect(text(first.value as Uint8Array)).toBe('>b')
    const rest: string[] = []
    for await (const chunk of stream) rest.push(text(chunk))
    expect(rest).toEqual(['c', 'd', 'e'])
    expect((await stream.next()).done).toBe(true)
    expect(stream.done).toBe(true)
  })

  it('byteStreamOf keeps one stream per iterator and returns a ByteStream as is', async () => {
    const gen = fromChunks([utf8('a\nb\n')])
    const s1 = byteStreamOf(gen)
    expect(byteStreamOf(gen)).toBe(s1)
    expect(byteStreamOf(s1)).toBe(s1)
    expect(text(await s1.readUntil(NL))).toBe('a')
    expect(text(await byteStreamOf(gen).readUntil(NL))).toBe('b')
    expect(byteStreamOf(fromChunks([]))).not.toBe(s1)
  })

  it('reads from an AsyncIterable such as a Node Readable, handing out plain Uint8Arrays', async () => {
    const stream = new ByteStream(Readable.from([Buffer.from('one\ntw'), Buffer.from('o\n')]))
    const one = await stream.readUntil(NL)
    expect(one.constructor).toBe(Uint8Array)
    expect(text(one)).toBe('one')
    expect(text(await stream.readUntil(NL))).toBe('two')
  })
})

describe('ByteStream.waitForData', () => {
  it('resolves true without pulling when bytes are buffered', async () => {
    const { source, pulls } = counted([utf8('a\nb'), utf8('c')])
    const stream = new ByteStream(source)
    expect(text(await stream.readUntil(NL))).toBe('a')
    expect(await stream.waitForData()).toBe(true)
    expect(pulls()).toBe(1)
    expect(stream.bufferedLength).toBe(1)
  })

  it('pulls past empty chunks until a byte arrives, and consumes nothing', async () => {
    const { source, pulls } = counted([new Uint8Array(0), new Uint8Array(0), utf8('x')])
    const stream = new ByteStream(source)
    expect(await stream.waitForData()).toBe(true)
    expect(pulls()).toBe(3)
    expect(text(stream.peek())).toBe('x')
  })

  it('resolves false at the end of the source with nothing buffered', async () => {
    const stream = new ByteStream(fromChunks([new Uint8Array(0)]))
    expect(await stream.waitForData()).toBe(false)
    expect(stream.done).toBe(true)
  })
})

describe('ByteStream timeout option', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('rejects a stalled read with TimeoutError holding the partial bytes, which stay buffered for a later read', async () => {
    vi.useFakeTimers()
    const queue = new ByteQueue()
    const stream = new ByteStream(queue, { timeout: 100 })
    queue.push(utf8('abc'))
    const stalled = rejection(stream.readUntil(NL))
    await vi.advanceTimersByTimeAsync(100)
    const error = await stalled
    expect(error).toBeInstanceOf(TimeoutError)
    expect((error as TimeoutError).code).toBe('ERR_TIMEOUT')
    expect(text((error as TimeoutError).partial)).toBe('abc')
    expect(stream.bufferedLength).toBe(3)
    // The bytes arriving after the timeout are not lost either.
    queue.push(utf8('def\n'))
    expect(text(await stream.readUntil(NL))).toBe('abcdef')
  })

  it('times out readExactly and waitForData too', async () => {
    vi.useFakeTimers()
    const queue = new ByteQueue()
    const stream = new ByteStream(queue, { timeout: 50 })
    const waiting = rejection(stream.waitForData())
    await vi.advanceTimersByTimeAsync(50)
    const error = await waiting
    expect(error).toBeInstanceOf(TimeoutError)
    expect((error as TimeoutError).partial.length).toBe(0)
    queue.push(utf8('ab'))
    const exact = rejection(stream.readExactly(3))
    await vi.advanceTimersByTimeAsync(50)
    expect(text(((await exact) as TimeoutError).partial)).toBe('ab')
    queue.push(utf8('c'))
    expect(text(await stream.readExactly(3))).toBe('abc')
  })

  it('is an inactivity limit: a frame trickling in faster than the timeout is read whole', async () => {
    vi.useFakeTimers()
    const queue = new ByteQueue()
    const stream = new ByteStream(queue, { timeout: 100 })
    const reading = stream.readUntil(NL)
    for (const c of 'abcdef') {
      await vi.advanceTimersByTimeAsync(60)
      queue.push(utf8(c))
    }
    await vi.advanceTimersByTimeAsync(60)
    queue.push(NL)
    expect(text(await reading)).toBe('abcdef')
  })

  it('does not time out while a complete frame is buffered', async () => {
    vi.useFakeTimers()
    const queue = new ByteQueue()
    const stream = new ByteStream(queue, { timeout: 10 })
    queue.push(utf8('a\nb\n'))
    expect(text(await stream.readUntil(NL))).toBe('a')
    expect(text(await stream.readUntil(NL))).toBe('b')
    expect(vi.getTimerCount()).toBe(0)
  })
})

describe('ByteStream source failures', () => {
  async function* failing(chunks: readonly Uint8Array[], error: unknown): AsyncGenerator<Uint8Array> {
    for (const chunk of chunks) {
      await Promise.resolve()
      yield chunk
    }
    throw error
  }

  it('a raw Error from the source becomes a ConnectionError (cause kept) after the buffered frames are read', async () => {
    const boom = new Error('boom')
    const stream = new ByteStream(failing([utf8('a\nb\nc')], boom))
    expect(text(await stream.readUntil(NL))).toBe('a')
    expect(text(await stream.readUntil(NL))).toBe('b')
    const error = await rejection(stream.readUntil(NL))
    expect(error).toBeInstanceOf(ConnectionError)
    expect((error as ConnectionError).code).toBe('ERR_CONNECTION')
    expect((error as ConnectionError).cause).toBe(boom)
    expect((error as ConnectionError).message).toMatch(/boom/)
    // The unfinished bytes are still there; the failure is sticky.
    expect(text(stream.peek())).toBe('c')
    expect(await rejection(stream.readExactly(5))).toBe(error)
  })

  it('next() yields the buffered bytes before the typed failure', async () => {
    const stream = new ByteStream(failing([utf8('x\nyz')], 'a string, not an Error'))
    expect(text(await stream.readUntil(NL))).toBe('x')
    const buffered = await stream.next()
    expect(text(buffered.value as Uint8Array)).toBe('yz')
    const error = await rejection(stream.next())
    expect(error).toBeInstanceOf(ConnectionError)
    expect((error as ConnectionError).cause).toBe('a string, not an Error')
  })

  it('a labwire error from the source passes through unchanged', async () => {
    const closed = new ConnectionClosedError('peer went away', { partial: utf8('zz') })
    const stream = new ByteStream(failing([utf8('q')], closed))
    expect(await rejection(stream.readUntil(NL))).toBe(closed)
  })

  it('a TypeError thrown by the source is wrapped as well', async () => {
    const stream = new ByteStream(failing([], new TypeError('bad')))
    const error = await rejection(stream.waitForData())
    expect(error).toBeInstanceOf(ConnectionError)
    expect((error as ConnectionError).cause).toBeInstanceOf(TypeError)
  })

  it('chunks of any size from a failing source still frame correctly up to the failure', async () => {
    const wire = utf8('one\r\ntwo\r\nthr')
    for (const sizes of [[1], [2], [3, 1], [100]]) {
      const stream = new ByteStream(failing(chunksOf(wire, sizes), new Error('reset')))
      expect(text(await stream.readUntil(CRLF))).toBe('one')
      expect(text(await stream.readUntil(CRLF))).toBe('two')
      expect(await rejection(stream.readUntil(CRLF))).toBeInstanceOf(ConnectionError)
      expect(text(stream.peek())).toBe('thr')
    }
  })
})

describe('ByteStream.readExactly of large frames (copied into the frame as chunks arrive)', () => {
  const pattern = (length: number, seed = 0): Uint8Array => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff)

  it('reads a 1 MiB frame from 64 KiB chunks and keeps the overshoot for the next read', async () => {
    const frame = pattern(1024 * 1024)
    const next = pattern(1000, 7)
    const stream = new ByteStream(fromChunks(chunksOf(concat(frame, next), [64 * 1024 + 3])))
    expect(Buffer.from(await stream.readExactly(frame.length)).equals(frame)).toBe(true)
    expect(Buffer.from(await stream.readExactly(next.length)).equals(next)).toBe(true)
  })

  it('a source that ends mid-frame rejects ConnectionClosedError carrying every byte received', async () => {
    const received = pattern(300 * 1024)
    const stream = new ByteStream(fromChunks(chunksOf(received, [40_000])))
    const error = await rejection(stream.readExactly(512 * 1024))
    expect(error).toBeInstanceOf(ConnectionClosedError)
    expect(Buffer.from((error as ConnectionClosedError).partial).equals(received)).toBe(true)
  })

  it('a timeout mid-frame rejects TimeoutError with the partial bytes, which stay buffered for a retry', async () => {
    const frame = pattern(400 * 1024)
    const queue = new ByteQueue({ highWaterMark: 1024 * 1024 })
    const stream = new ByteStream(queue, { timeout: 50 })
    queue.push(frame.slice(0, 100 * 1024))
    const error = await rejection(stream.readExactly(frame.length))
    expect(error).toBeInstanceOf(TimeoutError)
    expect(Buffer.from((error as TimeoutError).partial).equals(frame.subarray(0, 100 * 1024))).toBe(true)
    expect(stream.bufferedLength).toBe(100 * 1024)
    queue.push(frame.slice(100 * 1024))
    expect(Buffer.from(await stream.readExactly(frame.length)).equals(frame)).toBe(true)
  })
})

describe('ByteStream.pushCopy (a producer that reuses one buffer)', () => {
  it('frames taken from copied reads stay intact while the buffer is reused, across many reads', () => {
    const stream = new ByteStream()
    const reused = new Uint8Array(64)
    const frames: Uint8Array[] = []
    // 2,000 reads of 18 bytes each: several coalescing slabs' worth (8 KiB each).
    for (let i = 0; i < 2000; i++) {
      const line = utf8(`line-${String(i).padStart(10, '0')}\r\n`)
      reused.set(line)
      stream.pushCopy(reused.subarray(0, line.length))
      reused.fill(0x58)
      const end = stream.indexOf(utf8('\r\n'))
      frames.push(stream.takeFrame(end, 2))
    }
    expect(stream.bufferedLength).toBe(0)
    frames.forEach((frame, i) => expect(new TextDecoder().decode(frame)).toBe(`line-${String(i).padStart(10, '0')}`))
  })

  it('a frame split over copied reads, after an empty buffer, comes out whole', () => {
    const stream = new ByteStream()
    const reused = new Uint8Array(8)
    const out: string[] = []
    for (const part of ['ab', 'cd\r', '\nef', 'g\r\n']) {
      const bytes = utf8(part)
      reused.set(bytes)
      stream.pushCopy(reused.subarray(0, bytes.length))
      reused.fill(0)
      for (let end = stream.indexOf(utf8('\r\n')); end >= 0; end = stream.indexOf(utf8('\r\n'))) out.push(new TextDecoder().decode(stream.takeFrame(end, 2)))
    }
    expect(out).toEqual(['abcd', 'efg'])
  })
})
