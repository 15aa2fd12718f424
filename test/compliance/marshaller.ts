/**
 * The marshaller compliance suite: every framer, and every framer composed with codecs, must pass it.
 *
 * @example
 * ```ts
 * marshallerCompliance({
 *   name: 'SentinelBytesMarshaller("\\n")',
 *   create: () => new SentinelBytesMarshaller('\n'),
 *   samplePayloads: [utf8('*IDN?'), utf8('')],
 *   payload: fc.uint8Array().filter((p) => !p.includes(10)),
 *   oversize: () => ({ marshaller: new SentinelBytesMarshaller('\n', { maxLength: 4 }), wire: utf8('hello\n') }),
 * })
 * ```
 */
import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ByteStream, ConnectionClosedError, FrameTooLargeError, LabwireError } from '@labwire/core'
import { byteAtATime, chunksOf, concat, fromChunks } from '../helpers/chunks.js'

/**
 * A marshaller as the suite uses it: its methods are properties because they must work detached
 * (`const { marshall, unmarshall } = m`). A class with prototype methods still type-checks here;
 * the 'detached' test is what catches it.
 */
export interface DetachableMarshaller<T> {
  readonly marshall: (payload: T) => Uint8Array
  readonly unmarshall: (bytes: AsyncIterator<Uint8Array>) => Promise<T>
}

/** A bytes marshaller (a framer). */
export type DetachableBytesMarshaller = DetachableMarshaller<Uint8Array>

/** What the suite needs to know about one marshaller. */
export interface MarshallerComplianceSetup<T = Uint8Array> {
  /** Shown in the test names. */
  name: string
  /** A fresh marshaller; called once per test. */
  create(): DetachableMarshaller<T>
  /**
   * Hand-picked valid payloads (at least two, at least one non-empty), framed back to back in
   * several tests: include the boundary cases of the framer.
   */
  samplePayloads: readonly T[]
  /** Any valid payload: framed back to back, the frames must be unambiguous. */
  payload: fc.Arbitrary<T>
  /** A marshaller with a small limit and the wire bytes of one frame over it (or of a frame announcing more): must reject with `FrameTooLargeError`. */
  oversize?: () => { marshaller: DetachableMarshaller<T>; wire: Uint8Array }
  /** Bytes the garbage property favours (delimiters, markers, escapes), so near-misses are common. */
  alphabet?: readonly number[]
  /**
   * For framers whose frames end in silence (IdleGapBytesMarshaller): the sender pauses this long
   * after each frame; tests that need frames back to back in one chunk do not apply.
   */
  frameGapMs?: number
  /** Largest chunk the random chunking property uses. Default 64. */
  maxChunkSize?: number
  /** fast-check runs of the chunking property. Default 100. */
  numRuns?: number
}

/** Await `promise`, which must reject; return the reason. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected the promise to reject, but it resolved')
}

/** Expect a `ConnectionClosedError` whose `partial` is exactly `partial`. */
export function expectClosedWith(error: unknown, partial: Uint8Array): void {
  expect(error).toBeInstanceOf(ConnectionClosedError)
  const closed = error as ConnectionClosedError
  expect(closed.code).toBe('ERR_CONNECTION_CLOSED')
  expect(closed.partial).toBeInstanceOf(Uint8Array)
  expect(Array.from(closed.partial)).toEqual(Array.from(partial))
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)
}

function same(a: unknown, b: unknown): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return sameBytes(a, b)
  return isDeepStrictEqual(a, b)
}

function expectSame(actual: unknown, expected: unknown): void {
  if (!(expected instanceof Uint8Array)) {
    expect(actual).toStrictEqual(expected)
    return
  }
  expect(actual).toBeInstanceOf(Uint8Array)
  const bytes = actual as Uint8Array
  if (sameBytes(bytes, expected)) return
  expect(bytes.length).toBe(expected.length)
  // Short payloads compared whole; long ones by first difference (readable failures).
  if (expected.length <= 256) expect(Array.from(bytes)).toEqual(Array.from(expected))
  expect(bytes.findIndex((b, i) => b !== expected[i]), 'first differing byte').toBe(-1)
}

/** Longest a single unmarshall call may take in the garbage property before it counts as a hang. */
const HANG_LIMIT_MS = 2000

async function settledWithin<T>(promise: Promise<T>, ms: number): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  let timer: NodeJS.Timeout | undefined
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`unmarshall did not settle within ${ms} ms (a hang)`)), ms)
  })
  try {
    return { ok: true, value: await Promise.race([promise, hang]) }
  } catch (error) {
    if (error instanceof Error && error.message.includes('(a hang)')) throw error
    return { ok: false, error }
  } finally {
    clearTimeout(timer)
  }
}

/** Run the marshaller compliance suite for `setup`. */
export function marshallerCompliance<T = Uint8Array>(setup: MarshallerComplianceSetup<T>): void {
  const samples = setup.samplePayloads
  const maxChunk = setup.maxChunkSize ?? 64
  const numRuns = setup.numRuns ?? 100
  const gap = setup.frameGapMs
  const paced = gap !== undefined

  /**
   * The wire of `frames` (already marshalled), split by `split`. Back to back for ordinary
   * framers; for idle-gap framers each frame is split on its own and followed by a pause.
   */
  function feed(frames: readonly Uint8Array[], split: (wire: Uint8Array) => Uint8Array[]): AsyncGenerator<Uint8Array> {
    if (!paced) return fromChunks(split(concat(...frames)))
    return (async function* () {
      for (const frame of frames) {
        for (const chunk of split(frame)) {
          await Promise.resolve()
          yield chunk
        }
        await new Promise((resolve) => setTimeout(resolve, gap * 3))
      }
    })()
  }

  /** Unmarshall every sample in order from `bytes`, then expect a clean end of stream. */
  async function expectAllSamples(m: DetachableMarshaller<T>, bytes: AsyncIterator<Uint8Array>): Promise<void> {
    for (const payload of samples) expectSame(await m.unmarshall(bytes), payload)
    expectClosedWith(await rejection(m.unmarshall(bytes)), new Uint8Array(0))
  }

  describe(`marshaller compliance: ${setup.name}`, () => {
    it('has at least two sample payloads, one of them non-empty', () => {
      expect(samples.length).toBeGreaterThanOrEqual(2)
      expect(samples.some((p) => setup.create().marshall(p).length > 0)).toBe(true)
    })

    it('round-trips each sample payload', async () => {
      const m = setup.create()
      for (const payload of samples) {
        const wire = m.marshall(payload)
        expect(wire).toBeInstanceOf(Uint8Array)
        expectSame(await m.unmarshall(feed([wire], (w) => [w])), payload)
      }
    })

    it.skipIf(paced)('reads several frames from one chunk', async () => {
      const m = setup.create()
      const wire = concat(...samples.map((p) => m.marshall(p)))
      await expectAllSamples(m, fromChunks([wire]))
    })

    it('reads the frames whatever byte boundary the stream is split at', async () => {
      const m = setup.create()
      const frames = samples.map((p) => m.marshall(p))
      const longest = paced ? Math.max(...frames.map((f) => f.length)) : concat(...frames).length
      for (let cut = 1; cut < longest; cut++) {
        await expectAllSamples(m, feed(frames, (w) => [w.subarray(0, cut), w.subarray(cut)].filter((c) => c.length > 0)))
      }
    })

    it('reads the frames delivered one byte at a time', async () => {
      const m = setup.create()
      await expectAllSamples(m, feed(samples.map((p) => m.marshall(p)), byteAtATime))
    })

    it.skipIf(paced)('keeps leftover bytes across calls on the same plain async generator', async () => {
      const m = setup.create()
      const frames = samples.map((p) => m.marshall(p))
      // Every frame after the first starts in the chunk that ends the previous one.
      const chunks = frames.map((frame, i) => {
        const next = frames[i + 1]
        const head = next === undefined ? new Uint8Array(0) : next.subarray(0, Math.ceil(next.length / 2))
        const tail = i === 0 ? frame : frame.subarray(Math.ceil(frame.length / 2))
        return concat(tail, head)
      })
      await expectAllSamples(m, fromChunks(chunks))
    })

    it.skipIf(paced)('keeps leftover bytes across calls on a ByteStream, which holds them afterwards', async () => {
      const m = setup.create()
      const first = samples[0] as T
      const rest = concat(...samples.slice(1).map((p) => m.marshall(p)))
      const stream = new ByteStream(fromChunks([concat(m.marshall(first), rest)]))
      expectSame(await m.unmarshall(stream), first)
      expect(stream.bufferedLength).toBe(rest.length)
      expectSame(stream.peek(), rest)
      for (const payload of samples.slice(1)) expectSame(await m.unmarshall(stream), payload)
      expect(stream.bufferedLength).toBe(0)
      expectClosedWith(await rejection(m.unmarshall(stream)), new Uint8Array(0))
    })

    it('works with its methods detached', async () => {
      const { marshall, unmarshall } = setup.create()
      const bytes = feed(samples.map((p) => marshall(p)), (w) => chunksOf(w, [3, 1, 7]))
      for (const payload of samples) expectSame(await unmarshall(bytes), payload)
    })

    it('returns plain Uint8Array payloads when the source yields Buffers', async () => {
      const m = setup.create()
      const bytes = feed(samples.map((p) => m.marshall(p)), (w) => chunksOf(w, [5, 2]).map((c) => Buffer.from(c)))
      for (const payload of samples) {
        const got = await m.unmarshall(bytes)
        if (got instanceof Uint8Array) expect(got.constructor).toBe(Uint8Array)
        expectSame(got, payload)
      }
    })

    it('rejects with ConnectionClosedError holding the received bytes when the stream ends mid-frame', async () => {
      const m = setup.create()
      let checked = 0
      for (const payload of samples) {
        const wire = m.marshall(payload)
        const cuts = new Set([1, wire.length >> 1, wire.length - 1].filter((c) => c > 0 && c < wire.length))
        for (const cut of cuts) {
          const received = wire.slice(0, cut)
          // Whole in one chunk, and byte at a time (an idle-gap sender closes before its pause).
          expectClosedWith(await rejection(m.unmarshall(fromChunks([received]))), received)
          expectClosedWith(await rejection(m.unmarshall(fromChunks(byteAtATime(received)))), received)
          // After a complete frame, `partial` holds only the unfinished frame's bytes.
          const first = samples[0] as T
          const bytes = paced
            ? (async function* () {
                yield m.marshall(first)
                await new Promise((resolve) => setTimeout(resolve, (gap ?? 0) * 3))
                yield received
              })()
            : fromChunks([concat(m.marshall(first), received)])
          expectSame(await m.unmarshall(bytes), first)
          expectClosedWith(await rejection(m.unmarshall(bytes)), received)
          checked++
        }
      }
      // Only a framer whose every frame is one byte long cannot end mid-frame.
      expect(checked > 0 || samples.every((p) => m.marshall(p).length <= 1)).toBe(true)
    })

    it('rejects with ConnectionClosedError and an empty partial when the stream ends before any byte', async () => {
      const m = setup.create()
      expectClosedWith(await rejection(m.unmarshall(fromChunks([]))), new Uint8Array(0))
      // Empty chunks are no bytes either.
      expectClosedWith(await rejection(m.unmarshall(fromChunks([new Uint8Array(0), new Uint8Array(0)]))), new Uint8Array(0))
    })

    it.runIf(setup.oversize !== undefined)('rejects an oversized frame with FrameTooLargeError, whole or byte at a time, reading no further than needed', async () => {
      const { marshaller, wire } = (setup.oversize as NonNullable<typeof setup.oversize>)()
      for (const split of [(w: Uint8Array) => [w], (w: Uint8Array) => chunksOf(w, [1])]) {
        let yielded = 0
        const chunks = split(wire)
        const source = (async function* () {
          for (const chunk of chunks) {
            yielded += chunk.length
            await Promise.resolve()
            yield chunk
          }
          // Then a peer that never stops: a framer that does not fail fast would read forever.
          for (;;) {
            yielded++
            await Promise.resolve()
            yield Uint8Array.of(0x41)
          }
        })()
        const error = await settledWithin(marshaller.unmarshall(source), HANG_LIMIT_MS)
        expect(error.ok).toBe(false)
        expect((error as { error: unknown }).error).toBeInstanceOf(FrameTooLargeError)
        expect(yielded).toBeLessThanOrEqual(wire.length + 1)
      }
    })

    it('garbage: random bytes in random chunks give payloads or labwire errors, never a crash or a hang', async () => {
      const byte = setup.alphabet !== undefined && setup.alphabet.length > 0 ? fc.oneof(fc.constantFrom(...setup.alphabet), fc.integer({ min: 0, max: 255 })) : fc.integer({ min: 0, max: 255 })
      await fc.assert(
        fc.asyncProperty(
          fc.array(byte, { maxLength: 64 }).map((a) => Uint8Array.from(a)),
          fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 8 }),
          async (garbage, sizes) => {
            const m = setup.create()
            const bytes = fromChunks(chunksOf(garbage, sizes))
            for (let call = 0; call <= garbage.length + 1; call++) {
              const outcome = await settledWithin(m.unmarshall(bytes), HANG_LIMIT_MS)
              if (outcome.ok) continue
              if (!(outcome.error instanceof LabwireError)) throw new Error(`call ${call} rejected with a non-labwire error: ${String(outcome.error)}`, { cause: outcome.error })
              // A recoverable error consumed its frame: read on. Any other error ends the stream's use.
              if ((outcome.error as { recoverable?: unknown }).recoverable !== true) return true
            }
            // Every call returned a frame or a (recoverable) error until the bytes ran out: the last call must have ended it.
            return false
          },
        ),
        { numRuns: paced ? 15 : 150 },
      )
    })

    it('property: any chunking of back-to-back frames yields exactly the payloads', async () => {
      const m = setup.create()
      await fc.assert(
        fc.asyncProperty(
          fc.array(setup.payload, { maxLength: paced ? 3 : 8 }),
          fc.array(fc.integer({ min: 1, max: maxChunk }), { minLength: 1, maxLength: 16 }),
          async (payloads, sizes) => {
            const bytes = feed(payloads.map((p) => m.marshall(p)), (w) => chunksOf(w, sizes))
            for (const payload of payloads) {
              if (!same(await m.unmarshall(bytes), payload)) return false
            }
            const end = await rejection(m.unmarshall(bytes))
            return end instanceof ConnectionClosedError && end.partial.length === 0
          },
        ),
        { numRuns: paced ? 10 : numRuns },
      )
    })
  })
}
