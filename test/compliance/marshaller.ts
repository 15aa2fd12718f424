/**
 * The marshaller compliance suite: every bytes marshaller (a framer) must pass it.
 *
 * @example
 * ```ts
 * marshallerCompliance({
 *   name: 'SentinelBytesMarshaller("\\n")',
 *   create: () => new SentinelBytesMarshaller('\n'),
 *   samplePayloads: [utf8('*IDN?'), utf8('')],
 *   payload: fc.uint8Array().filter((p) => !p.includes(10)),
 * })
 * ```
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ByteStream, ConnectionClosedError } from '@labwire/core'
import { byteAtATime, chunksOf, concat, fromChunks } from '../helpers/chunks.js'

/**
 * A bytes marshaller as the suite uses it: its methods are properties because they must work
 * detached (`const { marshall, unmarshall } = m`). A class with prototype methods still type-checks
 * here; the 'detached' test is what catches it.
 */
export interface DetachableBytesMarshaller {
  readonly marshall: (payload: Uint8Array) => Uint8Array
  readonly unmarshall: (bytes: AsyncIterator<Uint8Array>) => Promise<Uint8Array>
}

/** What the suite needs to know about one marshaller. */
export interface MarshallerComplianceSetup {
  /** Shown in the test names. */
  name: string
  /** A fresh marshaller; called once per test. */
  create(): DetachableBytesMarshaller
  /**
   * Hand-picked valid payloads (at least two, at least one non-empty), framed back to back in
   * several tests: include the boundary cases of the framer.
   */
  samplePayloads: readonly Uint8Array[]
  /** Any valid payload: framed back to back, the frames must be unambiguous. */
  payload: fc.Arbitrary<Uint8Array>
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

function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual).toBeInstanceOf(Uint8Array)
  if (sameBytes(actual, expected)) return
  expect(actual.length).toBe(expected.length)
  // Short payloads compared whole; long ones by first difference (readable failures).
  if (expected.length <= 256) expect(Array.from(actual)).toEqual(Array.from(expected))
  expect(actual.findIndex((b, i) => b !== expected[i]), 'first differing byte').toBe(-1)
}

/** Run the marshaller compliance suite for `setup`. */
export function marshallerCompliance(setup: MarshallerComplianceSetup): void {
  const samples = setup.samplePayloads
  const maxChunk = setup.maxChunkSize ?? 64
  const numRuns = setup.numRuns ?? 100

  /** Unmarshall every sample in order from `bytes`, then expect a clean end of stream. */
  async function expectAllSamples(m: DetachableBytesMarshaller, bytes: AsyncIterator<Uint8Array>): Promise<void> {
    for (const payload of samples) expectBytes(await m.unmarshall(bytes), payload)
    expectClosedWith(await rejection(m.unmarshall(bytes)), new Uint8Array(0))
  }

  describe(`marshaller compliance: ${setup.name}`, () => {
    it('has at least two sample payloads, one of them non-empty', () => {
      expect(samples.length).toBeGreaterThanOrEqual(2)
      expect(samples.some((p) => p.length > 0)).toBe(true)
    })

    it('round-trips each sample payload', async () => {
      const m = setup.create()
      for (const payload of samples) {
        const wire = m.marshall(payload)
        expect(wire).toBeInstanceOf(Uint8Array)
        expectBytes(await m.unmarshall(fromChunks([wire])), payload)
      }
    })

    it('reads several frames from one chunk', async () => {
      const m = setup.create()
      const wire = concat(...samples.map((p) => m.marshall(p)))
      await expectAllSamples(m, fromChunks([wire]))
    })

    it('reads the frames whatever byte boundary the stream is split at', async () => {
      const m = setup.create()
      const wire = concat(...samples.map((p) => m.marshall(p)))
      for (let cut = 1; cut < wire.length; cut++) {
        await expectAllSamples(m, fromChunks([wire.subarray(0, cut), wire.subarray(cut)]))
      }
    })

    it('reads the frames delivered one byte at a time', async () => {
      const m = setup.create()
      const wire = concat(...samples.map((p) => m.marshall(p)))
      await expectAllSamples(m, fromChunks(byteAtATime(wire)))
    })

    it('keeps leftover bytes across calls on the same plain async generator', async () => {
      const m = setup.create()
      const frames = samples.map((p) => m.marshall(p))
      // Every frame after the first starts in the chunk that ends the previous one.
      const chunks = frames.map((frame, i) => {
        const next = frames[i + 1]
        const head = next === undefined ? new Uint8Array(0) : next.subarray(0, Math.ceil(next.length / 2))
        const tail = i === 0 ? frame : frame.subarray(Math.ceil(frame.length / 2))
        return concat(tail, head)
      })
      const bytes = fromChunks(chunks)
      await expectAllSamples(m, bytes)
    })

    it('keeps leftover bytes across calls on a ByteStream, which holds them afterwards', async () => {
      const m = setup.create()
      const first = samples[0] as Uint8Array
      const rest = concat(...samples.slice(1).map((p) => m.marshall(p)))
      const stream = new ByteStream(fromChunks([concat(m.marshall(first), rest)]))
      expectBytes(await m.unmarshall(stream), first)
      expect(stream.bufferedLength).toBe(rest.length)
      expectBytes(stream.peek(), rest)
      for (const payload of samples.slice(1)) expectBytes(await m.unmarshall(stream), payload)
      expect(stream.bufferedLength).toBe(0)
      expectClosedWith(await rejection(m.unmarshall(stream)), new Uint8Array(0))
    })

    it('works with its methods detached', async () => {
      const { marshall, unmarshall } = setup.create()
      const wire = concat(...samples.map((p) => marshall(p)))
      const bytes = fromChunks(chunksOf(wire, [3, 1, 7]))
      for (const payload of samples) expectBytes(await unmarshall(bytes), payload)
    })

    it('returns plain Uint8Array payloads when the source yields Buffers', async () => {
      const m = setup.create()
      const wire = concat(...samples.map((p) => m.marshall(p)))
      const bytes = fromChunks(chunksOf(wire, [5, 2]).map((c) => Buffer.from(c)))
      for (const payload of samples) {
        const got = await m.unmarshall(bytes)
        expect(got.constructor).toBe(Uint8Array)
        expectBytes(got, payload)
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
          // Whole in one chunk, and byte at a time.
          expectClosedWith(await rejection(m.unmarshall(fromChunks([received]))), received)
          expectClosedWith(await rejection(m.unmarshall(fromChunks(byteAtATime(received)))), received)
          // After a complete frame, `partial` holds only the unfinished frame's bytes.
          const first = samples[0] as Uint8Array
          const bytes = fromChunks([concat(m.marshall(first), received)])
          expectBytes(await m.unmarshall(bytes), first)
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

    it('property: any chunking of back-to-back frames yields exactly the payloads', async () => {
      const m = setup.create()
      await fc.assert(
        fc.asyncProperty(
          fc.array(setup.payload, { maxLength: 8 }),
          fc.array(fc.integer({ min: 1, max: maxChunk }), { minLength: 1, maxLength: 16 }),
          async (payloads, sizes) => {
            const wire = concat(...payloads.map((p) => m.marshall(p)))
            const bytes = fromChunks(chunksOf(wire, sizes))
            for (const payload of payloads) {
              if (!sameBytes(await m.unmarshall(bytes), payload)) return false
            }
            const end = await rejection(m.unmarshall(bytes))
            return end instanceof ConnectionClosedError && end.partial.length === 0
          },
        ),
        { numRuns },
      )
    })
  })
}
