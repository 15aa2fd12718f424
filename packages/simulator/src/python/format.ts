/**
 * Python's `str.format` and format-spec mini-language (3.11), byte-exact for the value kinds of
 * {@link PyValue}: fill/align, sign, `z`, `#`, `0`, width, `,`/`_` grouping, precision and the
 * types `b c d e E f F g G n o s x X %`. Floats are rounded exactly (half to even on the binary
 * value), as CPython does, not with JavaScript's `toFixed`.
 *
 * @module
 */
import { floatRepr, placePoint, PyException, pyRepr, pyStr, pyTypeName, type PyValue } from './values.js'

/** One piece of a parsed format string, as Python's `string.Formatter.parse` yields it. */
export interface FormatPiece {
  literal: string
  /** Field name, or `undefined` when the piece is only literal text. */
  field: string | undefined
  spec: string
  conversion: string | undefined
}

/** Python's `string.Formatter().parse(template)`. */
export function parseFormat(template: string): FormatPiece[] {
  const pieces: FormatPiece[] = []
  let literal = ''
  let i = 0
  const n = template.length
  while (i < n) {
    const c = template[i] as string
    if (c === '{') {
      if (template[i + 1] === '{') {
        literal += '{'
        i += 2
        continue
      }
      // A replacement field: find its end, honouring nested braces and [..] in the name.
      let depth = 1
      let j = i + 1
      let inBracket = false
      while (j < n) {
        const d = template[j]
        if (inBracket) {
          if (d === ']') inBracket = false
        } else if (d === '[') {
          inBracket = true
        } else if (d === '{') {
          depth++
        } else if (d === '}') {
          depth--
          if (depth === 0) break
        }
        j++
      }
      if (j >= n) throw new PyException('ValueError', "expected '}' before end of string")
      const body = template.slice(i + 1, j)
      // Split name / conversion / spec: the name ends at the first '!' or ':' outside brackets.
      let k = 0
      let bracket = false
      while (k < body.length) {
        const d = body[k]
        if (bracket) {
          if (d === ']') bracket = false
        } else if (d === '[') {
          bracket = true
        } else if (d === '!' || d === ':') {
          break
        }
        k++
      }
      const field = body.slice(0, k)
      let conversion: string | undefined
      let spec = ''
      if (body[k] === '!') {
        conversion = body[k + 1]
        if (conversion === undefined) throw new PyException('ValueError', 'end of string while looking for conversion specifier')
        const after = body[k + 2]
        if (after !== undefined && after !== ':') throw new PyException('ValueError', 'expected \':\' after conversion specifier')
        spec = after === ':' ? body.slice(k + 3) : ''
      } else if (body[k] === ':') {
        spec = body.slice(k + 1)
      }
      pieces.push({ literal, field, spec, conversion })
      literal = ''
      i = j + 1
      continue
    }
    if (c === '}') {
      if (template[i + 1] === '}') {
        literal += '}'
        i += 2
        continue
      }
      throw new PyException('ValueError', "Single '}' encountered in format string")
    }
    literal += c
    i++
  }
  if (literal.length > 0) pieces.push({ literal, field: undefined, spec: '', conversion: undefined })
  return pieces
}

/** The default {@link FormatOptions.maxWidth}: 1 MiB of characters. */
export const DEFAULT_MAX_FORMAT_WIDTH = 1024 * 1024

/** Limits of {@link pyFormat} and {@link formatValue}. */
export interface FormatOptions {
  /**
   * Largest field width and precision a format spec may ask for (`{:300000000d}` would allocate
   * 600 MB for a 3-byte query). Default {@link DEFAULT_MAX_FORMAT_WIDTH}; more throws
   * {@link FormatLimitError}. Python has no such limit; pyvisa-sim would answer.
   */
  maxWidth?: number
}

/** A format spec asks for a width or precision over {@link FormatOptions.maxWidth}. */
export class FormatLimitError extends Error {
  override readonly name = 'FormatLimitError'
  readonly code = 'ERR_FORMAT_LIMIT'
  constructor(
    /** Which part of the spec. */
    readonly what: 'width' | 'precision',
    /** What the spec asked for (`Infinity` when its digits do not fit a number). */
    readonly value: number,
    readonly limit: number,
  ) {
    super(`format spec ${what} ${value === Infinity ? 'too large' : String(value)} is over the limit of ${limit} (maxFormatWidth)`)
  }
}

/** Python `template.format(*args, **kwargs)`, with a width limit (see {@link FormatOptions}). */
export function pyFormat(template: string, args: readonly PyValue[] = [], kwargs: Readonly<Record<string, PyValue>> = {}, options: FormatOptions = {}): string {
  const state = { auto: 0, manual: false, automatic: false }
  return formatWith(template, args, kwargs, state, 2, options.maxWidth ?? DEFAULT_MAX_FORMAT_WIDTH)
}

function formatWith(
  template: string,
  args: readonly PyValue[],
  kwargs: Readonly<Record<string, PyValue>>,
  state: { auto: number; manual: boolean; automatic: boolean },
  depth: number,
  maxWidth: number,
): string {
  if (depth < 0) throw new PyException('ValueError', 'Max string recursion exceeded')
  let out = ''
  for (const piece of parseFormat(template)) {
    out += piece.literal
    if (piece.field === undefined) continue
    let value = resolveField(piece.field, args, kwargs, state)
    if (piece.conversion !== undefined) {
      if (piece.conversion === 'r' || piece.conversion === 'a') value = pyRepr(value)
      else if (piece.conversion === 's') value = pyStr(value)
      else throw new PyException('ValueError', `Unknown conversion specifier ${piece.conversion}`)
    }
    const spec = piece.spec.includes('{') ? formatWith(piece.spec, args, kwargs, state, depth - 1, maxWidth) : piece.spec
    out += formatValue(value, spec, { maxWidth })
  }
  return out
}

function resolveField(
  field: string,
  args: readonly PyValue[],
  kwargs: Readonly<Record<string, PyValue>>,
  state: { auto: number; manual: boolean; automatic: boolean },
): PyValue {
  const match = /^([^.[]*)(.*)$/s.exec(field)
  const first = match?.[1] ?? ''
  let rest = match?.[2] ?? ''
  let value: PyValue
  if (first === '') {
    if (state.manual) throw new PyException('ValueError', 'cannot switch from manual field specification to automatic field numbering')
    state.automatic = true
    const index = state.auto++
    if (index >= args.length) throw new PyException('IndexError', `Replacement index ${index} out of range for positional args tuple`)
    value = args[index] as PyValue
  } else if (/^\d+$/.test(first)) {
    if (state.automatic) throw new PyException('ValueError', 'cannot switch from automatic field numbering to manual field specification')
    state.manual = true
    const index = Number(first)
    if (index >= args.length) throw new PyException('IndexError', `Replacement index ${index} out of range for positional args tuple`)
    value = args[index] as PyValue
  } else {
    if (!Object.hasOwn(kwargs, first)) throw new PyException('KeyError', pyRepr(first))
    value = kwargs[first] as PyValue
  }
  while (rest.length > 0) {
    const item = /^\[([^\]]*)\](.*)$/s.exec(rest)
    if (item !== null) {
      const key = item[1] ?? ''
      rest = item[2] ?? ''
      value = getItem(value, /^\d+$/.test(key) ? Number(key) : key)
      continue
    }
    const attr = /^\.([^.[]+)(.*)$/s.exec(rest)
    if (attr !== null) throw new PyException('TypeError', `'${pyTypeName(value)}' object has no attribute '${attr[1] ?? ''}'`)
    throw new PyException('ValueError', 'Only \'.\' or \'[\' may follow \']\' in format field specifier')
  }
  return value
}

function getItem(value: PyValue, key: number | string): PyValue {
  if (Array.isArray(value) && typeof key === 'number') {
    if (key >= value.length) throw new PyException('IndexError', 'list index out of range')
    return value[key] as PyValue
  }
  if (typeof value === 'string' && typeof key === 'number') {
    const chars = Array.from(value)
    if (key >= chars.length) throw new PyException('IndexError', 'string index out of range')
    return chars[key] as string
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const k = String(key)
    if (!Object.hasOwn(value, k)) throw new PyException('KeyError', pyRepr(key))
    return value[k] as PyValue
  }
  throw new PyException('TypeError', `'${pyTypeName(value)}' object is not subscriptable`)
}

interface Spec {
  fill: string
  align: '<' | '>' | '=' | '^' | undefined
  sign: '+' | '-' | ' ' | undefined
  z: boolean
  alternate: boolean
  zero: boolean
  width: number
  grouping: ',' | '_' | undefined
  precision: number | undefined
  type: string | undefined
}

const SPEC = /^(?:([\s\S])?([<>=^]))?([+\- ])?(z)?(#)?(0)?(\d+)?([,_])?(?:\.(\d+))?([bcdeEfFgGnosxX%])?$/u

function parseSpec(spec: string, maxWidth: number): Spec {
  const m = SPEC.exec(spec)
  if (m === null) throw new PyException('ValueError', 'Invalid format specifier')
  if (spec.includes('.') && m[9] === undefined && /\.(?![\d])/.test(spec.slice((m[1] ?? '').length)))
    throw new PyException('ValueError', 'Format specifier missing precision')
  const width = m[7] === undefined ? 0 : Number(m[7])
  if (width > maxWidth) throw new FormatLimitError('width', width, maxWidth)
  const precision = m[9] === undefined ? undefined : Number(m[9])
  if (precision !== undefined && precision > maxWidth) throw new FormatLimitError('precision', precision, maxWidth)
  return {
    fill: m[1] ?? ' ',
    align: m[2] as Spec['align'],
    sign: m[3] as Spec['sign'],
    z: m[4] !== undefined,
    alternate: m[5] !== undefined,
    zero: m[6] !== undefined,
    width,
    grouping: m[8] as Spec['grouping'],
    precision,
    type: m[10],
  }
}

/** Python `format(value, spec)`, with a width limit (see {@link FormatOptions}). */
export function formatValue(value: PyValue, spec: string, options: FormatOptions = {}): string {
  const maxWidth = options.maxWidth ?? DEFAULT_MAX_FORMAT_WIDTH
  if (typeof value === 'string') return formatString(value, spec, maxWidth)
  if (typeof value === 'bigint') return formatInt(value, spec, maxWidth)
  if (typeof value === 'boolean') return spec === '' ? (value ? 'True' : 'False') : formatInt(value ? 1n : 0n, spec, maxWidth)
  if (typeof value === 'number') return formatFloat(value, spec, maxWidth)
  if (spec === '') return pyStr(value)
  throw new PyException('TypeError', `unsupported format string passed to ${pyTypeName(value)}.__format__`)
}

function pad(body: string, spec: Spec, defaultAlign: '<' | '>', signPrefix = ''): string {
  let align = spec.align
  let fill = spec.fill
  if (align === undefined && spec.zero) {
    fill = '0'
    align = defaultAlign === '>' ? '=' : '<'
  }
  align ??= defaultAlign
  const total = Array.from(signPrefix + body).length
  const missing = spec.width - total
  if (missing <= 0) return signPrefix + body
  switch (align) {
    case '<':
      return signPrefix + body + fill.repeat(missing)
    case '>':
      return fill.repeat(missing) + signPrefix + body
    case '^': {
      const left = Math.floor(missing / 2)
      return fill.repeat(left) + signPrefix + body + fill.repeat(missing - left)
    }
    case '=':
      return signPrefix + fill.repeat(missing) + body
  }
}

function formatString(value: string, specText: string, maxWidth: number): string {
  if (specText === '') return value
  const spec = parseSpec(specText, maxWidth)
  if (spec.type !== undefined && spec.type !== 's') throw new PyException('ValueError', `Unknown format code '${spec.type}' for object of type 'str'`)
  if (spec.sign !== undefined) throw new PyException('ValueError', 'Sign not allowed in string format specifier')
  if (spec.alternate) throw new PyException('ValueError', 'Alternate form (#) not allowed in string format specifier')
  if (spec.z) throw new PyException('ValueError', 'Negative zero coercion (z) not allowed in format specifier')
  if (spec.grouping !== undefined) throw new PyException('ValueError', `Cannot specify '${spec.grouping}' with 's'.`)
  if (spec.align === '=') throw new PyException('ValueError', "'=' alignment not allowed in string format specifier")
  const body = spec.precision === undefined ? value : Array.from(value).slice(0, spec.precision).join('')
  return pad(body, spec, '<')
}

function group(digits: string, separator: string | undefined, every: number): string {
  if (separator === undefined || digits.length <= every) return digits
  const head = digits.length % every || every
  const parts = [digits.slice(0, head)]
  for (let i = head; i < digits.length; i += every) parts.push(digits.slice(i, i + every))
  return parts.join(separator)
}

function signOf(negative: boolean, spec: Spec): string {
  if (negative) return '-'
  if (spec.sign === '+') return '+'
  if (spec.sign === ' ') return ' '
  return ''
}

function formatInt(value: bigint, specText: string, maxWidth: number): string {
  if (specText === '') return value.toString()
  const spec = parseSpec(specText, maxWidth)
  const type = spec.type ?? 'd'
  if ('eEfFgG%'.includes(type)) return formatFloat(Number(value), specText, maxWidth)
  if (spec.precision !== undefined) throw new PyException('ValueError', 'Precision not allowed in integer format specifier')
  if (spec.z) throw new PyException('ValueError', 'Negative zero coercion (z) not allowed in integer format specifier')
  if (type === 's') throw new PyException('ValueError', "Unknown format code 's' for object of type 'int'")
  const negative = value < 0n
  const magnitude = negative ? -value : value
  if (type === 'c') {
    if (spec.sign !== undefined) throw new PyException('ValueError', "Sign not allowed with integer format specifier 'c'")
    if (spec.alternate) throw new PyException('ValueError', "Alternate form (#) not allowed with integer format specifier 'c'")
    if (value < 0n || value > 0x10ffffn) throw new PyException('OverflowError', '%c arg not in range(0x110000)')
    return pad(String.fromCodePoint(Number(value)), spec, '<')
  }
  const radix = type === 'b' ? 2 : type === 'o' ? 8 : type === 'x' || type === 'X' ? 16 : 10
  if (spec.grouping === ',' && radix !== 10) throw new PyException('ValueError', `Cannot specify ',' with '${type}'.`)
  if (spec.grouping !== undefined && type === 'n') throw new PyException('ValueError', `Cannot specify '${spec.grouping}' with 'n'.`)
  let digits = magnitude.toString(radix)
  if (type === 'X') digits = digits.toUpperCase()
  const prefix = spec.alternate ? (radix === 2 ? '0b' : radix === 8 ? '0o' : radix === 16 ? (type === 'X' ? '0X' : '0x') : '') : ''
  const every = radix === 10 ? 3 : 4
  const sign = signOf(negative, spec)
  if (spec.grouping !== undefined && spec.zero && spec.align === undefined) {
    // Zero padding with grouping: the padding zeros are grouped too.
    return sign + prefix + groupPadded(digits, spec.grouping, every, spec.width - sign.length - prefix.length)
  }
  return pad(group(digits, spec.grouping, every), spec, '>', sign + prefix)
}

/**
 * Zero-pad `digits` with grouping so that the result is at least `width` characters: the fewest
 * digits n ≥ digits.length whose grouped length n + ⌊(n − 1) / every⌋ reaches `width` (so the
 * result never starts with a separator, as in CPython). Linear in the width.
 */
function groupPadded(digits: string, separator: string, every: number, width: number): string {
  const groupedLength = (n: number): number => n + Math.floor((n - 1) / every) * separator.length
  let n = Math.max(digits.length, Math.floor((width * every) / (every + separator.length)) - 1)
  while (n > digits.length && groupedLength(n - 1) >= width) n--
  while (groupedLength(n) < width) n++
  return group(digits.padStart(n, '0'), separator || undefined, every)
}

/** The exact decimal expansion of a finite positive double: value = digits × 10^exponent. */
function exactDecimal(value: number): { digits: bigint; exponent: number } {
  const view = new DataView(new ArrayBuffer(8))
  view.setFloat64(0, value)
  const hi = view.getUint32(0)
  const lo = view.getUint32(4)
  const biased = (hi >>> 20) & 0x7ff
  let mantissa = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo)
  let exp2: number
  if (biased === 0) {
    exp2 = -1074
  } else {
    mantissa |= 1n << 52n
    exp2 = biased - 1075
  }
  if (exp2 >= 0) return { digits: mantissa << BigInt(exp2), exponent: 0 }
  return { digits: mantissa * 5n ** BigInt(-exp2), exponent: exp2 }
}

/** Decimal places and significant digits past which a double's exact expansion is all zeros. */
const EXACT_PLACES = 1100
const EXACT_SIGNIFICANT = 800

/** Divide by 10^shift, rounding half to even. */
function roundShift(n: bigint, shift: number): bigint {
  if (shift <= 0) return n * 10n ** BigInt(-shift)
  const divisor = 10n ** BigInt(shift)
  const q = n / divisor
  const r = n % divisor
  const twice = r * 2n
  if (twice > divisor || (twice === divisor && q % 2n === 1n)) return q + 1n
  return q
}

/** |value| rounded to `decimals` places, as a digit string with the point placed. */
function fixedDigits(value: number, decimals: number): string {
  if (value === 0) return decimals > 0 ? `0.${'0'.repeat(decimals)}` : '0'
  // A double's exact decimal expansion ends within 1074 places: past that, only zeros (no rounding).
  if (decimals > EXACT_PLACES) return fixedDigits(value, EXACT_PLACES) + '0'.repeat(decimals - EXACT_PLACES)
  const { digits, exponent } = exactDecimal(value)
  const n = roundShift(digits, -(exponent + decimals))
  const s = n.toString().padStart(decimals + 1, '0')
  return decimals > 0 ? `${s.slice(0, s.length - decimals)}.${s.slice(s.length - decimals)}` : s
}

/** |value| rounded to `significant` digits: the digit string and the decimal exponent of its first digit. */
function significantDigits(value: number, significant: number): { digits: string; exp: number } {
  if (value === 0) return { digits: '0'.repeat(significant), exp: 0 }
  // A double has at most 767 significant decimal digits: past that, only zeros (no rounding).
  if (significant > EXACT_SIGNIFICANT) {
    const { digits, exp } = significantDigits(value, EXACT_SIGNIFICANT)
    return { digits: digits + '0'.repeat(significant - EXACT_SIGNIFICANT), exp }
  }
  const { digits, exponent } = exactDecimal(value)
  const length = digits.toString().length
  let exp = length - 1 + exponent
  let n = roundShift(digits, length - significant)
  let s = n.toString()
  if (s.length > significant) {
    n = n / 10n
    s = n.toString()
    exp++
  }
  return { digits: s, exp }
}

function sciFrom(digits: string, exp: number, upper: boolean, keepPoint: boolean): string {
  const mantissa = digits.length > 1 || keepPoint ? `${digits[0] ?? '0'}.${digits.slice(1)}` : digits
  const e = `${upper ? 'E' : 'e'}${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`
  return mantissa + e
}

function stripZeros(text: string): string {
  if (!text.includes('.')) return text
  return text.replace(/0+$/, '').replace(/\.$/, '')
}

function formatFloat(value: number, specText: string, maxWidth: number): string {
  if (specText === '') return floatRepr(value)
  const spec = parseSpec(specText, maxWidth)
  const type = spec.type
  if (type !== undefined && !'eEfFgGn%'.includes(type)) throw new PyException('ValueError', `Unknown format code '${type}' for object of type 'float'`)
  if (spec.grouping !== undefined && type === 'n') throw new PyException('ValueError', `Cannot specify '${spec.grouping}' with 'n'.`)
  let negative = value < 0 || Object.is(value, -0)
  const magnitude = Math.abs(value)
  const upper = type === 'E' || type === 'F' || type === 'G'
  let body: string
  if (Number.isNaN(value) || !Number.isFinite(value)) {
    body = Number.isNaN(value) ? 'nan' : 'inf'
    if (Number.isNaN(value)) negative = false
    if (upper) body = body.toUpperCase()
    if (type === '%') body += '%'
  } else {
    switch (type) {
      case 'f':
      case 'F':
        body = fixedDigits(magnitude, spec.precision ?? 6)
        if (spec.alternate && !body.includes('.')) body += '.'
        break
      case '%':
        if (!Number.isFinite(magnitude * 100)) {
          body = 'inf%'
          break
        }
        body = fixedDigits(magnitude * 100, spec.precision ?? 6)
        if (spec.alternate && !body.includes('.')) body += '.'
        body += '%'
        break
      case 'e':
      case 'E': {
        const precision = spec.precision ?? 6
        const { digits, exp } = significantDigits(magnitude, precision + 1)
        body = sciFrom(digits, exp, upper, spec.alternate)
        break
      }
      case 'g':
      case 'G':
      case 'n':
        body = generalFormat(magnitude, spec.precision ?? 6, upper, spec.alternate, false)
        break
      default:
        // No type: repr when there is no precision, else 'g' that always shows a digit after the point.
        if (spec.precision === undefined) {
          body = floatRepr(magnitude)
        } else {
          body = generalFormat(magnitude, spec.precision, false, spec.alternate, true)
        }
    }
    if (spec.z && negative && /^[0.]*$/.test(body.replace(/e.*$/i, '').replace('%', ''))) negative = false
  }
  const sign = signOf(negative, spec)
  if (spec.grouping !== undefined && Number.isFinite(value)) {
    const m = /^(\d+)(.*)$/s.exec(body)
    if (m !== null) {
      const intPart = m[1] ?? ''
      const tail = m[2] ?? ''
      if (spec.zero && spec.align === undefined) {
        const width = spec.width - sign.length - tail.length
        return sign + groupPadded(intPart, spec.grouping, 3, width) + tail
      }
      body = group(intPart, spec.grouping, 3) + tail
    }
  }
  return pad(body, spec, '>', sign)
}

function generalFormat(magnitude: number, precisionIn: number, upper: boolean, alternate: boolean, addDotZero: boolean): string {
  const precision = precisionIn === 0 ? 1 : precisionIn
  const { digits, exp } = significantDigits(magnitude, precision)
  const decpt = exp + 1
  const useExp = decpt <= -4 || decpt > (addDotZero ? precision - 1 : precision)
  let body: string
  if (useExp) {
    const mantissaDigits = alternate ? digits : digits.replace(/0+$/, '') || '0'
    body = sciFrom(mantissaDigits, magnitude === 0 ? 0 : exp, upper, alternate)
  } else {
    body = placePoint(digits, exp, false)
    if (!alternate) body = stripZeros(body)
    else if (!body.includes('.')) body += '.'
    if (addDotZero && !body.includes('.')) body += '.0'
  }
  return body
}
