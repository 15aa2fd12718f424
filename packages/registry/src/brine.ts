/**
 * A bounded encoder/decoder for the subset of RPyC's *brine* serialisation that the registry
 * protocol uses: `None`, `bool`, `int`, `float`, `str`, `bytes` and tuples of those.
 *
 * Written from the format (a one-byte tag, then a fixed or length-prefixed body, big-endian);
 * every read is bounds-checked and every failure is a typed error.
 *
 * @module
 */
import { FrameTooLargeError, FramingError } from '@labwire/core'

/**
 * A value brine can carry here. Tuples are arrays; Python `int` decodes to a `number` when it is a
 * safe integer and to a `bigint` otherwise; `float` decodes to a {@link BrineFloat} (so a
 * round trip keeps the type); `str` is a `string`, `bytes` a `Uint8Array`. Safe-integer numbers
 * encode as `int`, other finite-or-not numbers as `float`.
 */
export type BrineValue = null | boolean | number | bigint | string | Uint8Array | BrineFloat | readonly BrineValue[]

/** A number to encode as a Python `float` even when its value is integral. */
export class BrineFloat {
  constructor(readonly value: number) {}
}

/** Why a brine payload could not be decoded. */
export type BrineDecodeReason = 'truncated' | 'unknown-tag' | 'unsupported-tag' | 'bad-int' | 'bad-utf8' | 'too-deep' | 'trailing-bytes'

/**
 * The bytes are not a valid brine value (of the supported subset). `reason` says why; `offset` is
 * where decoding stopped. `'truncated'` means more bytes could complete it (a stream reader waits).
 */
export class BrineDecodeError extends FramingError {
  override readonly name = 'BrineDecodeError'
  readonly reason: BrineDecodeReason
  readonly offset: number

  constructor(reason: BrineDecodeReason, offset: number, message: string) {
    super(`brine: ${message} (at byte ${offset})`)
    this.reason = reason
    this.offset = offset
  }
}

/** A value cannot be encoded by brine (a type it does not carry, a lone surrogate, a cycle, too deep). */
export class BrineEncodeError extends TypeError {
  override readonly name = 'BrineEncodeError'
  readonly code = 'ERR_BRINE_ENCODE' as const
}

/** Limits for {@link decodeBrine}. */
export interface BrineDecodeOptions {
  /** Largest input accepted, in bytes (default 64 KiB); larger is a `FrameTooLargeError`. */
  maxLength?: number
  /** Deepest tuple nesting accepted (default 32). */
  maxDepth?: number
}

const TAG_NONE = 0x00
const TAG_EMPTY_STR = 0x01
const TAG_EMPTY_TUPLE = 0x02
const TAG_TRUE = 0x03
const TAG_FALSE = 0x04
const TAG_UNICODE = 0x08
const TAG_STR1 = 0x0a // .. TAG_STR4 = 0x0d
const TAG_STR_L1 = 0x0e
const TAG_STR_L4 = 0x0f
const TAG_TUP1 = 0x10 // .. TAG_TUP4 = 0x13
const TAG_TUP_L1 = 0x14
const TAG_TUP_L4 = 0x15
const TAG_INT_L1 = 0x16
const TAG_INT_L4 = 0x17
const TAG_FLOAT = 0x18
/** Small ints -0x30..0x9f are one byte: value + 0x50. */
const IMM_MIN = -0x30
const IMM_MAX = 0x9f
const IMM_OFFSET = 0x50
/** Tags of Python types outside this subset (NotImplemented, Ellipsis, slice, frozenset, complex, py2 long). */
const UNSUPPORTED: ReadonlySet<number> = new Set([0x05, 0x06, 0x09, 0x19, 0x1a, 0x1b])
/** Python 3.11+ refuses int() of more than 4300 digits; so do we. */
const MAX_INT_DIGITS = 4300
const INT_TEXT = /^-?[0-9]+$/

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const encoder = new TextEncoder()

/** Decode one brine value that must span all of `bytes`. Throws {@link BrineDecodeError} or `FrameTooLargeError`. */
export function decodeBrine(bytes: Uint8Array, options: BrineDecodeOptions = {}): BrineValue {
  const maxLength = options.maxLength ?? 64 * 1024
  if (bytes.length > maxLength) throw new FrameTooLargeError(maxLength, `brine payload of ${bytes.length} bytes exceeds the maximum of ${maxLength}`)
  const reader = new Reader(bytes, options.maxDepth ?? 32)
  const value = reader.value(0)
  if (reader.pos !== bytes.length) throw new BrineDecodeError('trailing-bytes', reader.pos, `${bytes.length - reader.pos} byte(s) after the value`)
  return value
}

class Reader {
  pos = 0
  private readonly view: DataView

  constructor(
    private readonly bytes: Uint8Array,
    private readonly maxDepth: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  private need(n: number): void {
    if (this.bytes.length - this.pos < n) throw new BrineDecodeError('truncated', this.pos, `need ${n} more byte(s), have ${this.bytes.length - this.pos}`)
  }

  private u8(): number {
    this.need(1)
    return this.bytes[this.pos++] as number
  }

  private u32(): number {
    this.need(4)
    const n = this.view.getUint32(this.pos)
    this.pos += 4
    return n
  }

  private take(n: number): Uint8Array {
    this.need(n)
    const out = this.bytes.slice(this.pos, this.pos + n)
    this.pos += n
    return out
  }

  value(depth: number): BrineValue {
    const at = this.pos
    const tag = this.u8()
    if (tag >= IMM_MIN + IMM_OFFSET && tag <= IMM_MAX + IMM_OFFSET) return tag - IMM_OFFSET
    switch (tag) {
      case TAG_NONE:
        return null
      case TAG_EMPTY_STR:
        return new Uint8Array(0)
      case TAG_EMPTY_TUPLE:
        return []
      case TAG_TRUE:
        return true
      case TAG_FALSE:
        return false
      case TAG_STR1:
      case TAG_STR1 + 1:
      case TAG_STR1 + 2:
      case TAG_STR1 + 3:
        return this.take(tag - TAG_STR1 + 1)
      case TAG_STR_L1:
        return this.take(this.u8())
      case TAG_STR_L4:
        return this.take(this.u32())
      case TAG_UNICODE: {
        const inner = this.pos
        const body = this.value(depth + 1)
        if (!(body instanceof Uint8Array)) throw new BrineDecodeError('bad-utf8', inner, 'a str must wrap bytes')
        try {
          return utf8.decode(body)
        } catch (cause) {
          throw Object.assign(new BrineDecodeError('bad-utf8', inner, 'str is not valid UTF-8'), { cause })
        }
      }
      case TAG_TUP1:
      case TAG_TUP1 + 1:
      case TAG_TUP1 + 2:
      case TAG_TUP1 + 3:
        return this.tuple(tag - TAG_TUP1 + 1, depth, at)
      case TAG_TUP_L1:
        return this.tuple(this.u8(), depth, at)
      case TAG_TUP_L4:
        return this.tuple(this.u32(), depth, at)
      case TAG_INT_L1:
        return this.int(this.u8())
      case TAG_INT_L4:
        return this.int(this.u32())
      case TAG_FLOAT: {
        this.need(8)
        const f = this.view.getFloat64(this.pos)
        this.pos += 8
        return new BrineFloat(f)
      }
      default:
        if (UNSUPPORTED.has(tag)) throw new BrineDecodeError('unsupported-tag', at, `tag 0x${tag.toString(16).padStart(2, '0')} is a Python type outside the registry subset`)
        throw new BrineDecodeError('unknown-tag', at, `unknown tag 0x${tag.toString(16).padStart(2, '0')}`)
    }
  }

  private tuple(count: number, depth: number, at: number): BrineValue[] {
    if (depth >= this.maxDepth) throw new BrineDecodeError('too-deep', at, `tuples nested deeper than ${this.maxDepth}`)
    // Every item takes at least one byte: a count beyond what is left cannot be satisfied.
    this.need(count)
    const items: BrineValue[] = []
    for (let i = 0; i < count; i++) items.push(this.value(depth + 1))
    return items
  }

  private int(length: number): number | bigint {
    const at = this.pos
    const body = this.take(length)
    if (length > MAX_INT_DIGITS + 1) throw new BrineDecodeError('bad-int', at, `int of ${length} characters exceeds ${MAX_INT_DIGITS} digits`)
    let text = ''
    for (const byte of body) text += String.fromCharCode(byte)
    if (!INT_TEXT.test(text)) throw new BrineDecodeError('bad-int', at, 'int body is not decimal digits')
    const big = BigInt(text)
    return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big
  }
}

/** Encode `value` as brine. Throws {@link BrineEncodeError} for what brine cannot carry. */
export function encodeBrine(value: BrineValue): Uint8Array {
  const parts: Uint8Array[] = []
  encodeInto(value, parts, 0)
  let length = 0
  for (const part of parts) length += part.length
  const out = new Uint8Array(length)
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

const MAX_ENCODE_DEPTH = 64
const LONE_SURROGATE = /\p{Cs}/u

function u32be(n: number): Uint8Array {
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, n)
  return out
}

function encodeBytes(bytes: Uint8Array, parts: Uint8Array[]): void {
  const n = bytes.length
  if (n === 0) parts.push(Uint8Array.of(TAG_EMPTY_STR))
  else if (n <= 4) parts.push(Uint8Array.of(TAG_STR1 + n - 1))
  else if (n < 256) parts.push(Uint8Array.of(TAG_STR_L1, n))
  else parts.push(Uint8Array.of(TAG_STR_L4), u32be(n))
  if (n > 0) parts.push(bytes)
}

function encodeInt(value: number | bigint, parts: Uint8Array[]): void {
  if (typeof value === 'number' && value >= IMM_MIN && value <= IMM_MAX) {
    parts.push(Uint8Array.of(value + IMM_OFFSET))
    return
  }
  const text = encoder.encode(typeof value === 'bigint' ? value.toString(10) : BigInt(value).toString(10))
  if (text.length < 256) parts.push(Uint8Array.of(TAG_INT_L1, text.length), text)
  else parts.push(Uint8Array.of(TAG_INT_L4), u32be(text.length), text)
}

function encodeInto(value: BrineValue, parts: Uint8Array[], depth: number): void {
  if (value === null) parts.push(Uint8Array.of(TAG_NONE))
  else if (value === true) parts.push(Uint8Array.of(TAG_TRUE))
  else if (value === false) parts.push(Uint8Array.of(TAG_FALSE))
  else if (typeof value === 'bigint') {
    if (value >= BigInt(IMM_MIN) && value <= BigInt(IMM_MAX)) encodeInt(Number(value), parts)
    else encodeInt(value, parts)
  } else if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) encodeInt(value, parts)
    else if (Number.isInteger(value)) throw new BrineEncodeError(`brine: ${value} is beyond Number.MAX_SAFE_INTEGER; pass a bigint for an int or a BrineFloat for a float`)
    else encodeFloat(value, parts)
  } else if (value instanceof BrineFloat) encodeFloat(value.value, parts)
  else if (typeof value === 'string') {
    if (LONE_SURROGATE.test(value)) throw new BrineEncodeError('brine: a str with a lone UTF-16 surrogate cannot be UTF-8 encoded')
    parts.push(Uint8Array.of(TAG_UNICODE))
    encodeBytes(encoder.encode(value), parts)
  } else if (value instanceof Uint8Array) encodeBytes(value, parts)
  else if (Array.isArray(value)) {
    if (depth >= MAX_ENCODE_DEPTH) throw new BrineEncodeError(`brine: tuples nested deeper than ${MAX_ENCODE_DEPTH} (a cycle?)`)
    const items = value as readonly BrineValue[]
    const n = items.length
    if (n === 0) parts.push(Uint8Array.of(TAG_EMPTY_TUPLE))
    else if (n <= 4) parts.push(Uint8Array.of(TAG_TUP1 + n - 1))
    else if (n < 256) parts.push(Uint8Array.of(TAG_TUP_L1, n))
    else parts.push(Uint8Array.of(TAG_TUP_L4), u32be(n))
    for (const item of items) encodeInto(item, parts, depth + 1)
  } else {
    throw new BrineEncodeError(`brine: cannot encode a value of type ${typeof value === 'object' ? (Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null)?.constructor?.name ?? 'object' : typeof value}`)
  }
}

function encodeFloat(value: number, parts: Uint8Array[]): void {
  const out = new Uint8Array(9)
  out[0] = TAG_FLOAT
  new DataView(out.buffer).setFloat64(1, value)
  parts.push(out)
}
