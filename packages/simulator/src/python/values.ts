/**
 * Python values as pyvisa-sim sees them, and the few Python builtins the device files rely on:
 * `int()`, `float()`, `str()`, `repr()`, equality and ordering.
 *
 * A Python `int` is a `bigint`, a Python `float` a `number`, a `str` a `string`; lists and dicts
 * come from stringparser results.
 *
 * @module
 */

/** A Python value: `bigint` = int, `number` = float, `string` = str, `null` = None. */
export type PyValue = string | number | bigint | boolean | null | PyValue[] | PyDict

/** A Python dict with string keys (what stringparser builds for named fields). */
export interface PyDict {
  [key: string]: PyValue
}

/** The Python exception a builtin would raise: `ValueError`, `TypeError`, `KeyError`, `IndexError`. */
export class PyException extends Error {
  override readonly name = 'PyException'
  constructor(
    readonly pyType: 'ValueError' | 'TypeError' | 'KeyError' | 'IndexError' | 'OverflowError' | 'Exception',
    message: string,
  ) {
    super(`${pyType}: ${message}`)
  }
}

/** Python's type name of a value, for messages. */
export function pyTypeName(value: PyValue): string {
  if (value === null) return 'NoneType'
  if (typeof value === 'bigint') return 'int'
  if (typeof value === 'number') return 'float'
  if (typeof value === 'string') return 'str'
  if (typeof value === 'boolean') return 'bool'
  if (Array.isArray(value)) return 'list'
  return 'dict'
}

// Python's str.strip() with no argument strips whitespace; this covers ASCII and the common Unicode spaces.
// eslint-disable-next-line no-control-regex -- Python's str.strip() removes the ASCII separators too
const PY_SPACE_CHAR = /[\s\u001c-\u001f\u0085]/

/**
 * Python's `str.strip()`. A loop, not `/^\s+|\s+$/g`: that regex is quadratic on a long run of
 * spaces followed by anything else (60,000 spaces: 2 s), and setter captures are peer input.
 */
function pyStrip(text: string): string {
  let start = 0
  let end = text.length
  while (start < end && PY_SPACE_CHAR.test(text[start] as string)) start++
  while (end > start && PY_SPACE_CHAR.test(text[end - 1] as string)) end--
  return start === 0 && end === text.length ? text : text.slice(start, end)
}

const INT_LITERAL = /^[+-]?\d(?:_?\d)*$/
const FLOAT_LITERAL = /^[+-]?(?:(?:\d(?:_?\d)*)(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?$/
const FLOAT_SPECIAL = /^([+-]?)(inf|infinity|nan)$/i

/** Python `int(value)`. */
export function pyInt(value: PyValue): bigint {
  if (typeof value === 'bigint') return value
  if (typeof value === 'boolean') return value ? 1n : 0n
  if (typeof value === 'number') {
    if (Number.isNaN(value)) throw new PyException('ValueError', 'cannot convert float NaN to integer')
    if (!Number.isFinite(value)) throw new PyException('ValueError', 'cannot convert float infinity to integer')
    return BigInt(Math.trunc(value))
  }
  if (typeof value === 'string') {
    const text = pyStrip(value)
    if (!INT_LITERAL.test(text)) throw new PyException('ValueError', `invalid literal for int() with base 10: ${pyRepr(value)}`)
    return BigInt(text.replaceAll('_', ''))
  }
  throw new PyException('TypeError', `int() argument must be a string, a bytes-like object or a real number, not '${pyTypeName(value)}'`)
}

/** Python `int(text, base)` for bases 2, 8, 16 (stringparser's b/o/x converters). */
export function pyIntBase(text: string, base: 2 | 8 | 16): bigint {
  let body = text.trim()
  let negative = false
  if (body.startsWith('-') || body.startsWith('+')) {
    negative = body.startsWith('-')
    body = body.slice(1)
  }
  const prefix = base === 2 ? /^0[bB]/ : base === 8 ? /^0[oO]/ : /^0[xX]/
  body = body.replace(prefix, '').replaceAll('_', '')
  const digits = base === 2 ? /^[01]+$/ : base === 8 ? /^[0-7]+$/ : /^[0-9a-fA-F]+$/
  if (!digits.test(body)) throw new PyException('ValueError', `invalid literal for int() with base ${base}: ${pyRepr(text)}`)
  const magnitude = BigInt((base === 2 ? '0b' : base === 8 ? '0o' : '0x') + body)
  return negative ? -magnitude : magnitude
}

/** Python `float(value)`. */
export function pyFloat(value: PyValue): number {
  if (typeof value === 'number') return value
  if (typeof value === 'bigint') return Number(value)
  if (typeof value === 'boolean') return value ? 1 : 0
  if (typeof value === 'string') {
    const text = pyStrip(value)
    const special = FLOAT_SPECIAL.exec(text)
    if (special !== null) {
      const sign = special[1] === '-' ? -1 : 1
      return (special[2] ?? '').toLowerCase() === 'nan' ? NaN : sign * Infinity
    }
    if (!FLOAT_LITERAL.test(text)) throw new PyException('ValueError', `could not convert string to float: ${pyRepr(value)}`)
    return Number(text.replaceAll('_', ''))
  }
  throw new PyException('TypeError', `float() argument must be a string or a real number, not '${pyTypeName(value)}'`)
}

/** Python `repr(float)`: the shortest round-trip digits, Python's notation. */
export function floatRepr(value: number): string {
  if (Number.isNaN(value)) return 'nan'
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf'
  if (value === 0) return Object.is(value, -0) ? '-0.0' : '0.0'
  const sign = value < 0 ? '-' : ''
  const [mantissa = '0', exponent = '0'] = Math.abs(value).toExponential().split('e')
  const digits = mantissa.replace('.', '')
  const exp = Number(exponent)
  if (exp >= -5 + 1 && exp < 16) return sign + placePoint(digits, exp, true)
  const rest = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits
  return `${sign}${rest}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`
}

/** Digits `d1d2d3…` with the leading digit at 10^exp, in fixed notation. */
export function placePoint(digits: string, exp: number, addDotZero: boolean): string {
  let out: string
  if (exp < 0) {
    out = `0.${'0'.repeat(-exp - 1)}${digits}`
  } else if (digits.length <= exp + 1) {
    out = digits + '0'.repeat(exp + 1 - digits.length)
    if (addDotZero) out += '.0'
  } else {
    out = `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`
  }
  return out
}

/** Python `str(value)`. */
export function pyStr(value: PyValue): string {
  if (typeof value === 'string') return value
  return pyRepr(value)
}

/** Python `repr(value)`. */
export function pyRepr(value: PyValue): string {
  if (value === null) return 'None'
  if (typeof value === 'boolean') return value ? 'True' : 'False'
  if (typeof value === 'bigint') return value.toString()
  if (typeof value === 'number') return floatRepr(value)
  if (typeof value === 'string') return strRepr(value)
  if (Array.isArray(value)) return `[${value.map(pyRepr).join(', ')}]`
  return `{${Object.entries(value)
    .map(([key, item]) => `${strRepr(key)}: ${pyRepr(item)}`)
    .join(', ')}}`
}

function strRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'"
  let out = quote
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0
    if (char === quote || char === '\\') out += `\\${char}`
    else if (char === '\n') out += '\\n'
    else if (char === '\r') out += '\\r'
    else if (char === '\t') out += '\\t'
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`
    else if (code >= 0x80 && code < 0xa0) out += `\\x${code.toString(16).padStart(2, '0')}`
    else out += char
  }
  return out + quote
}

/** Python `==` for the value kinds pyvisa-sim compares (numbers across int/float, strings). */
export function pyEquals(a: PyValue, b: PyValue): boolean {
  if (isNumeric(a) && isNumeric(b)) {
    if (typeof a === 'bigint' && typeof b === 'bigint') return a === b
    return numericValue(a) === numericValue(b)
  }
  if (typeof a !== typeof b) return false
  if (Array.isArray(a) || Array.isArray(b) || (typeof a === 'object' && a !== null)) return pyRepr(a) === pyRepr(b)
  return a === b
}

/** Python `<` (numbers or strings); other kinds raise TypeError. */
export function pyLess(a: PyValue, b: PyValue): boolean {
  if (isNumeric(a) && isNumeric(b)) {
    if (typeof a === 'bigint' && typeof b === 'bigint') return a < b
    return numericValue(a) < numericValue(b)
  }
  if (typeof a === 'string' && typeof b === 'string') return comparePyStrings(a, b) < 0
  throw new PyException('TypeError', `'<' not supported between instances of '${pyTypeName(a)}' and '${pyTypeName(b)}'`)
}

function comparePyStrings(a: string, b: string): number {
  const ca = Array.from(a, (c) => c.codePointAt(0) ?? 0)
  const cb = Array.from(b, (c) => c.codePointAt(0) ?? 0)
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    const d = (ca[i] ?? 0) - (cb[i] ?? 0)
    if (d !== 0) return d
  }
  return ca.length - cb.length
}

function isNumeric(value: PyValue): value is number | bigint | boolean {
  return typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean'
}

function numericValue(value: number | bigint | boolean): number {
  return typeof value === 'number' ? value : Number(value)
}

/** A key for Python dict semantics: 1, 1.0 and True are one key; '1' is another. */
export function pyKey(value: PyValue): string {
  if (isNumeric(value)) {
    const n = typeof value === 'bigint' ? value : typeof value === 'boolean' ? (value ? 1n : 0n) : value
    if (typeof n === 'number' && Number.isInteger(n)) return `n:${BigInt(n).toString()}`
    return `n:${typeof n === 'bigint' ? n.toString() : floatRepr(n)}`
  }
  return `${pyTypeName(value)}:${pyRepr(value)}`
}

/** A Python value as JSON (ints become numbers when they fit). */
export function pyToJson(value: PyValue): unknown {
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString()
  if (typeof value === 'number' && !Number.isFinite(value)) return floatRepr(value)
  if (Array.isArray(value)) return value.map(pyToJson)
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, pyToJson(v)]))
  return value
}
