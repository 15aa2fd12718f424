import { describe, expect, it } from 'vitest'
import { formatValue, pyFormat } from '../src/python/format.js'
import { floatRepr, PyException, type PyValue } from '../src/python/values.js'
import { findPython, runPythonJson } from './python.js'

const python = findPython()
if (python === undefined) console.warn('python3 >= 3.11 not found: the differential format tests against CPython are SKIPPED')

const FLOATS = [
  0, -0, 1, -1, 0.5, 0.125, 0.375, 2.5, 3.5, 1.005, 12.345, 100, 100.5, 123.456, 1e16, 1e15, 1.5e16, 1e-4, 1e-5, 1.5e-7, 123456789.123,
  0.1, 0.2, 0.30000000000000004, 1 / 3, 2 / 3, 9.995, 9.9999999, 99999.5, 5e-324, 1.7976931348623157e308, 6.02214076e23, -273.15, 1e22, 0.0001234,
  Infinity, -Infinity, NaN, 42, 1234567.0, 0.05, 0.15, 0.25, 0.35, 1e100,
]
const INTS = [0n, 1n, -1n, 42n, -42n, 255n, 1234567n, -9876543210n, 65n]
const STRINGS = ['', 'a', 'P6V', 'hello world', "it's", 'ünï']
const FLOAT_SPECS = [
  '', 'f', '.0f', '.1f', '.2f', '.3f', '.10f', 'e', '.0e', '.2e', '+.8E', '.3E', 'g', '.1g', '.2g', '.3g', '.10g', 'G', '#g', '#.3g', '.3', '.1', '.2',
  '10', '<10', '^10', '=+12.3f', '010.2f', '+', ' ', ',.2f', '_.1f', '012,.2f', '%', '.1%', 'z.1f', '#.0f', '#.0e', 'x>9.2f', '-^11.3e', 'n', '.12',
]
const INT_SPECS = ['', 'd', '5d', '05d', '+d', ' d', 'x', 'X', '#x', '#X', 'o', '#o', 'b', '#b', ',', '_', '_x', '08,d', 'c', '.2f', 'e', '+.8E', 'g', '%', '>6', '*^7', '=8', 'n', '', '.3', 's']
const STR_SPECS = ['', 's', '10', '<10', '>10', '^9', '.2', '.2s', '*^8.1', '05', 'd', '+']

interface Case {
  kind: 'float' | 'int' | 'str'
  value: string
  spec: string
}

function jsValue(c: Case): PyValue {
  if (c.kind === 'int') return BigInt(c.value)
  if (c.kind === 'float') return c.value === 'nan' ? NaN : c.value === 'inf' ? Infinity : c.value === '-inf' ? -Infinity : Number(c.value)
  return c.value
}

function jsResult(c: Case): string {
  try {
    return `ok:${formatValue(jsValue(c), c.spec)}`
  } catch (error) {
    if (error instanceof PyException) return `err:${error.pyType}`
    throw error
  }
}

const SCRIPT = String.raw`
import json, sys
cases = json.load(sys.stdin)
out = []
for c in cases:
    v = c['value']
    v = float(v) if c['kind'] == 'float' else int(v) if c['kind'] == 'int' else v
    try:
        out.append('ok:' + format(v, c['spec']))
    except Exception as e:
        out.append('err:' + type(e).__name__)
print(json.dumps(out))
`

describe('Python format spec (differential against CPython)', () => {
  it.skipIf(python === undefined)('formats floats, ints and strings exactly like CPython', () => {
    const cases: Case[] = []
    for (const f of FLOATS) for (const spec of FLOAT_SPECS) cases.push({ kind: 'float', value: Number.isNaN(f) ? 'nan' : Object.is(f, -0) ? '-0.0' : String(f), spec })
    for (const i of INTS) for (const spec of INT_SPECS) cases.push({ kind: 'int', value: i.toString(), spec })
    for (const s of STRINGS) for (const spec of STR_SPECS) cases.push({ kind: 'str', value: s, spec })
    // random doubles, random precisions
    let seed = 12345
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed / 2 ** 31
    }
    for (let i = 0; i < 400; i++) {
      const value = (rand() - 0.5) * 10 ** Math.floor(rand() * 30 - 12)
      const spec = `.${Math.floor(rand() * 12)}${['f', 'e', 'g', 'E', ''][Math.floor(rand() * 5)] ?? ''}`
      cases.push({ kind: 'float', value: String(value), spec })
    }
    const expected = runPythonJson(python as string, SCRIPT, cases) as string[]
    const mismatches = cases
      .map((c, i) => ({ ...c, python: expected[i], labwire: jsResult(c) }))
      .filter((m) => m.python !== m.labwire)
    expect(mismatches).toEqual([])
  })

  it('renders float repr like Python, not like JavaScript String()', () => {
    expect(floatRepr(1)).toBe('1.0')
    expect(floatRepr(1e16)).toBe('1e+16')
    expect(floatRepr(1e-5)).toBe('1e-05')
    expect(floatRepr(0.0001)).toBe('0.0001')
    expect(floatRepr(123456789012345680)).toBe('1.2345678901234568e+17')
    expect(pyFormat('{} {:.2f} {:+.8E} {:d} {:s}', [1.5, 0.125, 1, 7n, 'x'])).toBe('1.5 0.12 +1.00000000E+00 7 x')
    expect(pyFormat('{{literal}} {0} {0!r}', ['a'])).toBe("{literal} a 'a'")
    expect(pyFormat('CH {ch_id}:VOLT?', [], { ch_id: '2' })).toBe('CH 2:VOLT?')
  })
})
