/**
 * The inverse of `str.format`, with the matching rules of Python's `stringparser` module (which
 * pyvisa-sim uses for setters): each replacement field becomes a regular expression chosen by its
 * type (`{:d}` digits, `{:f}` at least two digits with an optional point, `{}` anything, …);
 * width, precision and alignment are ignored; the whole text must match.
 *
 * @module
 */
import { parseFormat } from './format.js'
import { LinearMatcher, P, type Pattern } from './matcher.js'
import { pyFloat, pyInt, pyIntBase, PyException, type PyDict, type PyValue } from './values.js'

type Converter = (text: string) => PyValue

// Python's '.' matches anything but '\n'.
const ANY = '[^\\n]*?'

// The same language as trees for the linear matcher (the regex text is kept for messages).
const DIGITS = P.range('09')
const FLOAT = P.seq(P.plus(DIGITS), P.opt(P.oneOf('.')), P.plus(DIGITS))
const exponent = (e: string): Pattern => P.opt(P.seq(P.oneOf(e), P.opt(P.oneOf('-+')), P.plus(DIGITS)))
const PATTERN_BY_TYPE: Record<string, Pattern> = {
  '': P.star(P.cls((cp) => cp !== 0x0a), false),
  s: P.star(P.cls((cp) => cp !== 0x0a), false),
  d: P.plus(DIGITS, false),
  b: P.plus(P.range('01'), false),
  o: P.plus(P.range('07'), false),
  x: P.plus(P.range('09af'), false),
  X: P.plus(P.range('09AF'), false),
  e: P.seq(FLOAT, exponent('e')),
  E: P.seq(FLOAT, exponent('E')),
  f: FLOAT,
  F: FLOAT,
  g: P.seq(FLOAT, exponent('eE')),
  G: P.seq(FLOAT, exponent('eE')),
  '%': P.seq(FLOAT, P.oneOf('%')),
}

const REGEX_BY_TYPE: Record<string, [string, Converter]> = {
  '': [ANY, (s) => s],
  s: [ANY, (s) => s],
  d: ['[0-9]+?', (s) => pyInt(s)],
  b: ['[0-1]+?', (s) => pyIntBase(s, 2)],
  o: ['[0-7]+?', (s) => pyIntBase(s, 8)],
  x: ['[0-9a-f]+?', (s) => pyIntBase(s, 16)],
  X: ['[0-9A-F]+?', (s) => pyIntBase(s, 16)],
  e: ['[0-9]+\\.?[0-9]+(?:e[-+]?[0-9]+)?', (s) => pyFloat(s)],
  E: ['[0-9]+\\.?[0-9]+(?:E[-+]?[0-9]+)?', (s) => pyFloat(s)],
  f: ['[0-9]+\\.?[0-9]+', (s) => pyFloat(s)],
  F: ['[0-9]+\\.?[0-9]+', (s) => pyFloat(s)],
  g: ['[0-9]+\\.?[0-9]+(?:[eE][-+]?[0-9]+)?', (s) => pyFloat(s)],
  G: ['[0-9]+\\.?[0-9]+(?:[eE][-+]?[0-9]+)?', (s) => pyFloat(s)],
  '%': ['[0-9]+\\.?[0-9]+%', (s) => pyFloat(s.slice(0, -1)) / 100],
}

// stringparser's spec regex; searched (not anchored at the end), so trailing junk is ignored.
const FMT = /(([^{}])?[<>=^])?([+\- ])?(#)?(0)?([0-9]+)?([,])?(\.[0-9]+)?([bcdeEfFgGnosxX%]+)?/u

function fmtToRegex(fmt: string): [string, Converter, Pattern] {
  const m = FMT.exec(fmt)
  const sign = m?.[3]
  const alternate = m?.[4]
  const type = m?.[9] ?? ''
  const entry = REGEX_BY_TYPE[type]
  if (entry === undefined) throw new PyException('ValueError', `${type} is not an valid type`)
  let [regex] = entry
  const [, convert] = entry
  let pattern = PATTERN_BY_TYPE[type] as Pattern
  if (alternate !== undefined) {
    if (type === 'o' || type === 'x' || type === 'X' || type === 'b') {
      regex = `0${type}${regex}`
      pattern = P.seq(P.literal(`0${type}`), pattern)
    } else throw new PyException('ValueError', `Alternate form (#) not allowed in ${type} type`)
  }
  if (sign === '-' || sign === undefined) {
    regex = `[-]?${regex}`
    pattern = P.seq(P.opt(P.oneOf('-')), pattern)
  } else if (sign === '+') {
    regex = `[-+]${regex}`
    pattern = P.seq(P.oneOf('-+'), pattern)
  } else {
    regex = `[- ]${regex}`
    pattern = P.seq(P.oneOf('- '), pattern)
  }
  return [regex, convert, pattern]
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')
}

/** One field of a pattern: its name (`'0'`, `'1'` for unnamed ones) and converter. */
export interface ParserField {
  name: string
  convert: Converter
}

/**
 * A compiled pattern. {@link Parser.parse} gives stringparser's result (a single value, a list or
 * a dict); {@link Parser.fields} gives each field by name.
 */
export class Parser {
  readonly pattern: string
  /**
   * The pattern as a regular expression (what stringparser compiles; for messages). Matching
   * does not use it: {@link Parser.fieldValues} runs a linear-time matcher with the same
   * results, so a long line costs time proportional to its length, never a backtracking blow-up.
   */
  readonly regex: RegExp
  readonly fields: readonly ParserField[]
  private readonly matcher: LinearMatcher
  /** Literal text every match starts with (a cheap first test). */
  private readonly prefix: string

  constructor(pattern: string) {
    this.pattern = pattern
    let source = ''
    let number = 0
    const fields: ParserField[] = []
    const tree: Pattern[] = []
    const pieces = parseFormat(pattern)
    this.prefix = pieces[0]?.literal ?? ''
    for (const piece of pieces) {
      source += escapeRegex(piece.literal)
      tree.push(P.literal(piece.literal))
      if (piece.field === undefined) continue
      const [regex, convert, fieldTree] = piece.spec === '' ? ([...(REGEX_BY_TYPE.s as [string, Converter]), PATTERN_BY_TYPE.s as Pattern] as const) : fmtToRegex(piece.spec)
      let field = piece.field
      if (field === '_') {
        source += `(?:${regex})`
        tree.push(fieldTree)
        continue
      }
      if (field === '' || field.startsWith('.') || field.startsWith('[')) {
        field = String(number) + field
        number++
      }
      source += `(${regex})`
      tree.push(P.group(fields.length, fieldTree))
      fields.push({ name: field, convert })
    }
    // Python's '$' also matches just before a final '\n'.
    this.regex = new RegExp(`^${source}(?:\\n)?$`, 'u')
    this.fields = fields
    this.matcher = new LinearMatcher(P.seq(...tree), fields.length)
  }

  /** The named values, or `undefined` when the text does not match. Converters may throw {@link PyException}. */
  fieldValues(text: string): Map<string, PyValue> | undefined {
    if (!text.startsWith(this.prefix)) return undefined
    const caps = this.matcher.match(text)
    if (caps === undefined) return undefined
    const out = new Map<string, PyValue>()
    this.fields.forEach((field, i) => {
      const start = caps[i * 2] ?? -1
      out.set(field.name, field.convert(start < 0 ? '' : text.slice(start, caps[i * 2 + 1])))
    })
    return out
  }

  /**
   * stringparser's `Parser(pattern)(text)`: a single value for one unnamed field, a list for
   * several unnamed fields, a dict when any field is named. Throws `PyException('ValueError')`
   * when the text does not match.
   */
  parse(text: string): PyValue {
    const values = this.fieldValues(text)
    if (values === undefined) throw new PyException('ValueError', `Could not parse '${text}' with '${this.regex.source}'`)
    const names = [...values.keys()]
    const numeric = names.map((name) => (/^\s*[+-]?\d+\s*$/.test(name) ? Number(name) : NaN))
    const asList =
      names.length > 0 &&
      numeric.every((n) => !Number.isNaN(n)) &&
      Math.min(...numeric) === 0 &&
      Math.max(...numeric) === names.length - 1
    if (asList) {
      const list = [...numeric].sort((a, b) => a - b).map((n) => values.get(String(n)) as PyValue)
      return list.length === 1 ? (list[0] as PyValue) : list
    }
    const dict: PyDict = {}
    for (const [name, value] of values) dict[name] = value
    return dict
  }
}
