/**
 * The inverse of `str.format`, with the matching rules of Python's `stringparser` module (which
 * pyvisa-sim uses for setters): each replacement field becomes a regular expression chosen by its
 * type (`{:d}` digits, `{:f}` at least two digits with an optional point, `{}` anything, …);
 * width, precision and alignment are ignored; the whole text must match.
 *
 * @module
 */
import { parseFormat } from './format.js'
import { pyFloat, pyInt, pyIntBase, PyException, type PyDict, type PyValue } from './values.js'

type Converter = (text: string) => PyValue

// Python's '.' matches anything but '\n'.
const ANY = '[^\\n]*?'

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

function fmtToRegex(fmt: string): [string, Converter] {
  const m = FMT.exec(fmt)
  const sign = m?.[3]
  const alternate = m?.[4]
  const type = m?.[9] ?? ''
  const entry = REGEX_BY_TYPE[type]
  if (entry === undefined) throw new PyException('ValueError', `${type} is not an valid type`)
  let [regex] = entry
  const [, convert] = entry
  if (alternate !== undefined) {
    if (type === 'o' || type === 'x' || type === 'X' || type === 'b') regex = `0${type}${regex}`
    else throw new PyException('ValueError', `Alternate form (#) not allowed in ${type} type`)
  }
  if (sign === '-' || sign === undefined) regex = `[-]?${regex}`
  else if (sign === '+') regex = `[-+]${regex}`
  else regex = `[- ]${regex}`
  return [regex, convert]
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
  readonly regex: RegExp
  readonly fields: readonly ParserField[]

  constructor(pattern: string) {
    this.pattern = pattern
    let source = ''
    let number = 0
    const fields: ParserField[] = []
    for (const piece of parseFormat(pattern)) {
      source += escapeRegex(piece.literal)
      if (piece.field === undefined) continue
      const [regex, convert] = piece.spec === '' ? (REGEX_BY_TYPE.s as [string, Converter]) : fmtToRegex(piece.spec)
      let field = piece.field
      if (field === '_') {
        source += `(?:${regex})`
        continue
      }
      if (field === '' || field.startsWith('.') || field.startsWith('[')) {
        field = String(number) + field
        number++
      }
      source += `(${regex})`
      fields.push({ name: field, convert })
    }
    // Python's '$' also matches just before a final '\n'.
    this.regex = new RegExp(`^${source}(?:\\n)?$`, 'u')
    this.fields = fields
  }

  /** The named values, or `undefined` when the text does not match. Converters may throw {@link PyException}. */
  fieldValues(text: string): Map<string, PyValue> | undefined {
    const m = this.regex.exec(text)
    if (m === null) return undefined
    const out = new Map<string, PyValue>()
    this.fields.forEach((field, i) => {
      out.set(field.name, field.convert(m[i + 1] ?? ''))
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
