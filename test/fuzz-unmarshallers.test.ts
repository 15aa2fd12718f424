/**
 * Reliability case 7, marshaller half: random bytes, randomly chunked, into every unmarshaller.
 * Each call either returns a payload or rejects with a labwire error (never a raw Error or
 * TypeError), never hangs, and leaves no unhandled rejection. The outcome is also checked against
 * a reference model, which does not depend on the chunking.
 */
import fc from 'fast-check'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ConnectionClosedError, ConnectionError, FrameTooLargeError, LabwireError } from '@labwire/core'
import { DelimitedBytesMarshaller, FixedLengthBytesMarshaller, SentinelBytesMarshaller, StartStopBytesMarshaller, type BytesMarshaller } from '@labwire/marshallers'
import { chunksOf, utf8 } from './helpers/chunks.js'

type Ending = 'end' | 'raw-error' | 'type-error'

type Outcome =
  | { kind: 'payload'; bytes: Uint8Array }
  | { kind: 'too-large' }
  | { kind: 'closed'; partial: Uint8Array }
  | { kind: 'connection' }

interface Case {
  name: string
  create(): BytesMarshaller
  /** Bytes the random input favours (the sentinel's own), so near-misses are common. */
  alphabet: readonly number[]
  model(bytes: Uint8Array, ending: Ending): Outcome[]
}

function indexOf(bytes: Uint8Array, needle: Uint8Array, from: number): number {
  outer: for (let i = from; i + needle.length <= bytes.length; i++) {
    for (let k = 0; k < needle.length; k++) if (bytes[i + k] !== needle[k]) continue outer
    return i
  }
  return -1
}

function endOfStream(rest: Uint8Array, ending: Ending): Outcome {
  return ending === 'end' ? { kind: 'closed', partial: rest } : { kind: 'connection' }
}

function sentinelCase(sentinel: Uint8Array, maxLength: number, label: string): Case {
  return {
    name: `SentinelBytesMarshaller(${label}, { maxLength: ${maxLength} })`,
    create: () => new SentinelBytesMarshaller(sentinel, { maxLength }),
    alphabet: [...sentinel],
    model(bytes, ending) {
      const dl = sentinel.length
      const out: Outcome[] = []
      let pos = 0
      for (;;) {
        const i = indexOf(bytes, sentinel, pos)
        if (i >= 0) {
          if (i - pos > maxLength) return [...out, { kind: 'too-large' }]
          out.push({ kind: 'payload', bytes: bytes.slice(pos, i) })
          pos = i + dl
          continue
        }
        // No sentinel in the rest: too large once more bytes than maxLength + dl - 1 are buffered.
        if (bytes.length - pos - dl + 1 > maxLength) return [...out, { kind: 'too-large' }]
        return [...out, endOfStream(bytes.slice(pos), ending)]
      }
    },
  }
}

/** Several delimiters: the earliest start wins, ties go to the one listed first; at the end of the stream nothing more can arrive. */
function delimitedCase(delimiters: readonly Uint8Array[], maxLength: number, label: string): Case {
  const longest = Math.max(...delimiters.map((d) => d.length))
  return {
    name: `DelimitedBytesMarshaller(${label}, { maxLength: ${maxLength} })`,
    create: () => new DelimitedBytesMarshaller(delimiters, { maxLength }),
    alphabet: delimiters.flatMap((d) => [...d]),
    model(bytes, ending) {
      const out: Outcome[] = []
      let pos = 0
      for (;;) {
        let best = -1
        let length = 0
        for (const d of delimiters) {
          const i = indexOf(bytes, d, pos)
          if (i >= 0 && (best < 0 || i < best)) {
            best = i
            length = d.length
          }
        }
        if (best >= 0) {
          if (best - pos > maxLength) return [...out, { kind: 'too-large' }]
          out.push({ kind: 'payload', bytes: bytes.slice(pos, best) })
          pos = best + length
          continue
        }
        if (bytes.length - pos - longest + 1 > maxLength) return [...out, { kind: 'too-large' }]
        return [...out, endOfStream(bytes.slice(pos), ending)]
      }
    },
  }
}

/** STX…ETX with junk before the start marker discarded (one-byte markers). */
function startStopCase(start: number, stop: number, maxLength: number): Case {
  return {
    name: `StartStopBytesMarshaller(0x${start.toString(16)}, 0x${stop.toString(16)}, { maxLength: ${maxLength} })`,
    create: () => new StartStopBytesMarshaller(Uint8Array.of(start), Uint8Array.of(stop), { maxLength }),
    alphabet: [start, stop],
    model(bytes, ending) {
      const out: Outcome[] = []
      let pos = 0
      for (;;) {
        const s = bytes.indexOf(start, pos)
        if (s < 0) return [...out, endOfStream(new Uint8Array(0), ending)]
        const e = bytes.indexOf(stop, s + 1)
        if (e >= 0) {
          if (e - s - 1 > maxLength) return [...out, { kind: 'too-large' }]
          out.push({ kind: 'payload', bytes: bytes.slice(s + 1, e) })
          pos = e + 1
          continue
        }
        if (bytes.length - s - 1 > maxLength) return [...out, { kind: 'too-large' }]
        return [...out, endOfStream(bytes.slice(s), ending)]
      }
    },
  }
}

function fixedCase(length: number): Case {
  return {
    name: `FixedLengthBytesMarshaller(${length})`,
    create: () => new FixedLengthBytesMarshaller(length),
    alphabet: [0x00, 0xff],
    model(bytes, ending) {
      const out: Outcome[] = []
      let pos = 0
      for (; pos + length <= bytes.length; pos += length) out.push({ kind: 'payload', bytes: bytes.slice(pos, pos + length) })
      return [...out, endOfStream(bytes.slice(pos), ending)]
    },
  }
}

const cases: Case[] = [
  sentinelCase(utf8('\n'), 4, "'\\n'"),
  sentinelCase(utf8('\r\n'), 6, "'\\r\\n'"),
  sentinelCase(utf8('aab'), 5, "'aab'"),
  sentinelCase(new Uint8Array([0xde, 0xad, 0xbe, 0xef]), 8, '0xdeadbeef'),
  sentinelCase(new Uint8Array([0x00]), 0, '0x00'),
  delimitedCase([utf8('\r\n'), utf8('\n')], 5, "['\\r\\n', '\\n']"),
  delimitedCase([utf8('ab'), utf8('b'), utf8('bc')], 4, "['ab', 'b', 'bc']"),
  startStopCase(0x02, 0x03, 4),
  fixedCase(1),
  fixedCase(3),
  fixedCase(7),
]

/** Longest a single unmarshall call may take before the run counts as a hang. */
const HANG_LIMIT_MS = 2000

class Hang extends Error {}

/** `promise`, or a rejection with `Hang` if it has not settled within the limit. */
async function bounded<T>(promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Hang(`unmarshall did not settle within ${HANG_LIMIT_MS} ms`))
    }, HANG_LIMIT_MS)
  })
  try {
    return await Promise.race([promise, limit])
  } finally {
    clearTimeout(timer)
  }
}

async function* source(chunks: readonly Uint8Array[], empties: boolean, asBuffer: boolean, ending: Ending): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) {
    await Promise.resolve()
    yield asBuffer ? Buffer.from(chunk) : chunk
    if (empties) yield new Uint8Array(0)
  }
  if (ending === 'raw-error') throw new Error('read ECONNRESET')
  // A programming error in a transport: still surfaces as a typed ConnectionError.
  if (ending === 'type-error') throw new TypeError('Cannot read properties of undefined')
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)
}

function describeOutcome(outcome: unknown): string {
  if (outcome instanceof Uint8Array) return `payload [${Array.from(outcome).join(',')}]`
  if (outcome instanceof Error) return `${outcome.constructor.name}: ${outcome.message}`
  return String(outcome)
}

function matches(actual: { ok: true; value: Uint8Array } | { ok: false; error: unknown }, expected: Outcome): boolean {
  if (expected.kind === 'payload') return actual.ok && sameBytes(actual.value, expected.bytes)
  if (actual.ok) return false
  const error = actual.error
  switch (expected.kind) {
    case 'too-large':
      return error instanceof FrameTooLargeError
    case 'closed':
      return error instanceof ConnectionClosedError && sameBytes(error.partial, expected.partial)
    case 'connection':
      return error instanceof ConnectionError
  }
}

describe('fuzz: random chunked bytes into every unmarshaller', () => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason)
  }

  beforeEach(() => {
    unhandled.length = 0
    process.on('unhandledRejection', onUnhandled)
  })

  afterEach(() => {
    process.off('unhandledRejection', onUnhandled)
  })

  for (const c of cases) {
    it(`${c.name}: every call returns a payload or rejects with a labwire error, as the model says`, async () => {
      const input = fc.record({
        bytes: fc.array(fc.oneof(fc.constantFrom(...c.alphabet), fc.integer({ min: 0, max: 255 })), { maxLength: 48 }).map((a) => Uint8Array.from(a)),
        sizes: fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 12 }),
        empties: fc.boolean(),
        asBuffer: fc.boolean(),
        ending: fc.constantFrom<Ending>('end', 'end', 'raw-error', 'type-error'),
      })
      await fc.assert(
        fc.asyncProperty(input, async ({ bytes, sizes, empties, asBuffer, ending }) => {
          const m = c.create()
          const iterator = source(chunksOf(bytes, sizes), empties, asBuffer, ending)
          const expected = c.model(bytes, ending)
          // The stream always ends in an error, so this loop always stops early; the bound guards a framer that never does.
          for (let call = 0; call < bytes.length + 2; call++) {
            let actual: { ok: true; value: Uint8Array } | { ok: false; error: unknown }
            try {
              actual = { ok: true, value: await bounded(m.unmarshall(iterator)) }
            } catch (error) {
              if (error instanceof Hang) throw error
              actual = { ok: false, error }
            }
            if (!actual.ok && !(actual.error instanceof LabwireError)) {
              throw new Error(`call ${call} rejected with a non-labwire error: ${describeOutcome(actual.error)}`, { cause: actual.error })
            }
            if (actual.ok && actual.value.constructor !== Uint8Array) throw new Error(`call ${call} returned a ${actual.value.constructor.name}`)
            const want = expected[call]
            if (want === undefined || !matches(actual, want)) {
              const got = actual.ok ? actual.value : actual.error
              throw new Error(`call ${call}: got ${describeOutcome(got)}, model expected ${JSON.stringify(want, (_, v: unknown) => (v instanceof Uint8Array ? Array.from(v) : v))}`)
            }
            if (!actual.ok) return
          }
          throw new Error('no error after every byte was consumed')
        }),
        { numRuns: 300 },
      )
      // Let any stray rejection surface before checking.
      await new Promise((resolve) => setImmediate(resolve))
      await new Promise((resolve) => setImmediate(resolve))
      expect(unhandled).toEqual([])
    })
  }
})
