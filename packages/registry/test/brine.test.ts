import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { FrameTooLargeError } from '@labwire/core'
import { BrineDecodeError, BrineEncodeError, BrineFloat, decodeBrine, encodeBrine, type BrineValue } from '@labwire/registry'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')
const unhex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'))

describe('brine codec', () => {
  it('encodes the registry messages byte for byte as RPyC does', () => {
    // ("RPYC", "QUERY", ("FOO",)) as dumped by rpyc 5.3 brine.
    expect(hex(encodeBrine(['RPYC', 'QUERY', ['FOO']]))).toBe('12' + '080d52505943' + '08' + '0e05' + '5155455259' + '10' + '080c464f4f')
    expect(hex(encodeBrine('OK'))).toBe('080b4f4b')
    expect(hex(encodeBrine([]))).toBe('02')
    expect(hex(encodeBrine(null))).toBe('00')
  })

  it('small ints are one byte, others decimal text; bigints and floats keep their type', () => {
    expect(hex(encodeBrine(0))).toBe('50')
    expect(hex(encodeBrine(-48))).toBe('20')
    expect(hex(encodeBrine(159))).toBe('ef')
    expect(hex(encodeBrine(160))).toBe('1603313630')
    expect(hex(encodeBrine(-49))).toBe('16032d3439')
    expect(decodeBrine(encodeBrine(18811))).toBe(18811)
    expect(decodeBrine(encodeBrine(2n ** 80n))).toBe(2n ** 80n)
    expect(decodeBrine(encodeBrine(1.5))).toEqual(new BrineFloat(1.5))
    expect(decodeBrine(encodeBrine(new BrineFloat(2)))).toEqual(new BrineFloat(2))
  })

  it('bytes and str of every length class', () => {
    for (const n of [0, 1, 2, 3, 4, 5, 255, 256, 70_000]) {
      const bytes = new Uint8Array(n).fill(0x41)
      expect(decodeBrine(encodeBrine(bytes), { maxLength: 1 << 20 })).toEqual(bytes)
      const text = 'é'.repeat(n)
      expect(decodeBrine(encodeBrine(text), { maxLength: 1 << 20 })).toBe(text)
    }
  })

  it('tuples of every length class', () => {
    for (const n of [0, 1, 4, 5, 255, 256, 300]) {
      const tuple = Array.from({ length: n }, (_, i) => i)
      expect(decodeBrine(encodeBrine(tuple))).toEqual(tuple)
    }
  })

  it('bad input is a typed error, never a crash or a hang', () => {
    const reason = (text: string, maxDepth?: number): string => {
      try {
        decodeBrine(unhex(text), maxDepth === undefined ? {} : { maxDepth })
      } catch (error) {
        expect(error).toBeInstanceOf(BrineDecodeError)
        return (error as BrineDecodeError).reason
      }
      return 'decoded'
    }
    expect(reason('')).toBe('truncated')
    expect(reason('12')).toBe('truncated') // a 3-tuple with nothing in it
    expect(reason('15ffffffff')).toBe('truncated') // 4 billion items announced
    expect(reason('0f00000010')).toBe('truncated') // 16 bytes announced
    expect(reason('07')).toBe('unknown-tag')
    expect(reason('f0')).toBe('unknown-tag')
    expect(reason('06')).toBe('unsupported-tag') // Ellipsis
    expect(reason('1a02')).toBe('unsupported-tag') // frozenset
    expect(reason('1602a1b2')).toBe('bad-int')
    expect(reason('16032b3132')).toBe('bad-int') // '+12': Python dumps never carry a sign +
    expect(reason('080aff')).toBe('bad-utf8')
    expect(reason('0850')).toBe('bad-utf8') // a str must wrap bytes
    expect(reason('5050')).toBe('trailing-bytes')
    expect(reason('10'.repeat(40) + '00')).toBe('too-deep')
    expect(reason('101000', 1)).toBe('too-deep')
    expect(() => decodeBrine(new Uint8Array(100), { maxLength: 10 })).toThrow(FrameTooLargeError)
  })

  it('refuses what brine cannot carry with BrineEncodeError', () => {
    expect(() => encodeBrine({} as unknown as BrineValue)).toThrow(BrineEncodeError)
    expect(() => encodeBrine('\ud800')).toThrow(BrineEncodeError)
    expect(() => encodeBrine(2 ** 60)).toThrow(BrineEncodeError)
    const cycle: BrineValue[] = []
    cycle.push(cycle)
    expect(() => encodeBrine(cycle)).toThrow(BrineEncodeError)
  })

  const value: fc.Arbitrary<BrineValue> = fc.letrec<{ v: BrineValue }>((tie) => ({
    v: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.constant(null),
      fc.boolean(),
      fc.integer({ min: -1_000_000, max: 1_000_000 }),
      fc.bigInt({ min: -(2n ** 100n), max: 2n ** 100n }).filter((n) => n < BigInt(Number.MIN_SAFE_INTEGER) || n > BigInt(Number.MAX_SAFE_INTEGER)),
      fc.double({ noNaN: true }).map((f) => new BrineFloat(f)),
      fc.string({ unit: 'grapheme', maxLength: 20 }),
      fc.uint8Array({ maxLength: 300 }),
      fc.array(tie('v'), { maxLength: 6 }),
    ),
  })).v

  it('round-trips any value (property)', () => {
    fc.assert(
      fc.property(value, (v) => {
        expect(decodeBrine(encodeBrine(v))).toEqual(v)
      }),
      { numRuns: 500 },
    )
  })

  it('random bytes only ever fail with a typed error (fuzz)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          decodeBrine(bytes)
        } catch (error) {
          expect(error).toBeInstanceOf(BrineDecodeError)
        }
      }),
      { numRuns: 5000 },
    )
  })

  it('mutated valid payloads only ever fail with a typed error (fuzz)', () => {
    fc.assert(
      fc.property(value, fc.nat(), fc.integer({ min: 0, max: 255 }), (v, at, byte) => {
        const bytes = encodeBrine(v).slice()
        if (bytes.length > 0) bytes[at % bytes.length] = byte
        try {
          encodeBrine(decodeBrine(bytes))
        } catch (error) {
          expect(error).toBeInstanceOf(BrineDecodeError)
        }
      }),
      { numRuns: 2000 },
    )
  })
})

const PYTHON = '/usr/bin/python3'
const PEER = fileURLToPath(new URL('./rpyc_peer.py', import.meta.url))
const run = promisify(execFile)
const hasRpyc = existsSync(PYTHON) && (await run(PYTHON, ['-c', 'import rpyc']).then(() => true, () => false))
if (!hasRpyc) console.warn('SKIPPED: brine cross-check with python3-rpyc — /usr/bin/python3 cannot import rpyc (apt-get install python3-rpyc)')

describe.skipIf(!hasRpyc)('brine against RPyC 5.3 (python3-rpyc)', () => {
  const tagged = (v: BrineValue): unknown => {
    if (v instanceof Uint8Array) return { b: hex(v) }
    if (v instanceof BrineFloat) return { f: Object.is(v.value, -0) ? '-0' : String(v.value) }
    if (typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v))) return { i: String(v) }
    if (Array.isArray(v)) return (v as readonly BrineValue[]).map(tagged)
    return v
  }
  const samples: BrineValue[] = [
    ['RPYC', 'REGISTER', [['SCOPE', 'DMM'], 18861]],
    ['RPYC', 'LIST', [[null]]],
    [['127.0.0.1', 5025], ['10.0.0.2', 65535]],
    [true, false, null, 0, -48, 159, 160, -49, 2n ** 70n, -(2n ** 70n)],
    [new BrineFloat(1.25), new BrineFloat(-0), new BrineFloat(1e300), 'ünï©ødé ✓', '', new Uint8Array([0, 255, 1])],
    [new Uint8Array(300), 'x'.repeat(256), Array.from({ length: 260 }, (_, i) => i)],
  ]

  it('labwire encodes exactly what RPyC dumps', async () => {
    const { stdout } = await run(PYTHON, [PEER, 'brine', JSON.stringify(samples.map(tagged))], { timeout: 10_000 })
    const dumped = JSON.parse(stdout) as string[]
    expect(samples.map((v) => hex(encodeBrine(v)))).toEqual(dumped)
  })

  it('RPyC loads what labwire encodes', async () => {
    const { stdout } = await run(PYTHON, [PEER, 'load', ...samples.map((v) => hex(encodeBrine(v)))], { timeout: 10_000 })
    const floats = (_key: string, v: unknown): unknown => (typeof v === 'object' && v !== null && 'f' in v ? { f: Number((v as { f: string }).f) } : v)
    expect(JSON.parse(stdout, floats)).toEqual(JSON.parse(JSON.stringify(samples.map(tagged)), floats))
  })
})
