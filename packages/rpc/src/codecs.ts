/**
 * Per-method codecs. A codec turns one value into a whole payload (`encode` / `decode`) and into
 * a self-delimiting field (`encodeField` / `decodeField`), the form used inside `codecs.tuple`
 * and, for every codec, by the basic-socket-rpc profile (so `codecs.string` is its `serialize_str`).
 *
 * @module
 */
import { Buffer } from 'node:buffer'
import { deserialize as v8Deserialize, serialize as v8Serialize } from 'node:v8'
import { decode as msgpackDecode, encode as msgpackEncode } from '@msgpack/msgpack'
import { RpcDecodeError } from './errors.js'

/** A value codec. `name` goes into the handshake fingerprint. */
export interface Codec<T> {
  /** Stable name, e.g. `'int32le'`, `'json'`, `'tuple(int32le,int32le)'`. */
  readonly name: string
  /** Refused over a network transport unless `allowInsecureCodecs` (v8). */
  readonly insecure?: boolean
  /** The value as a whole payload. */
  encode(value: T): Uint8Array
  /** A whole payload as a value; throws `RpcDecodeError` on short, long or malformed input. */
  decode(payload: Uint8Array): T
  /** The value as a self-delimiting field (fixed size, or u32le length + bytes). */
  encodeField(value: T): Uint8Array
  /** Read one field at `offset`; returns the value and the offset after it. */
  decodeField(bytes: Uint8Array, offset: number): [T, number]
}

/** The value type a codec carries. */
export type CodecValue<C> = C extends Codec<infer T> ? T : never

const EMPTY = new Uint8Array(0)
const utf8 = new TextDecoder('utf-8', { fatal: true })

function bad(name: string, why: string, cause?: unknown): RpcDecodeError {
  return new RpcDecodeError(`cannot decode ${name}: ${why}`, cause === undefined ? undefined : { cause })
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** Field form for variable-length codecs: u32le length + whole payload. */
function prefixed(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length)
  viewOf(out).setUint32(0, payload.length, true)
  out.set(payload, 4)
  return out
}

function readPrefixed(name: string, bytes: Uint8Array, offset: number): [Uint8Array, number] {
  if (bytes.length - offset < 4) throw bad(name, `need a 4-byte length at offset ${offset}, ${bytes.length - offset} bytes left`)
  const length = viewOf(bytes).getUint32(offset, true)
  const end = offset + 4 + length
  if (end > bytes.length) throw bad(name, `length ${length} at offset ${offset} runs past the end (${bytes.length - offset - 4} bytes left)`)
  return [bytes.subarray(offset + 4, end), end]
}

/** A variable-length codec from whole-payload functions; its field form is length-prefixed. */
function variable<T>(name: string, encode: (value: T) => Uint8Array, decode: (payload: Uint8Array) => T, insecure = false): Codec<T> {
  const safeDecode = (payload: Uint8Array): T => {
    try {
      return decode(payload)
    } catch (error) {
      if (error instanceof RpcDecodeError) throw error
      throw bad(name, error instanceof Error ? error.message : String(error), error)
    }
  }
  return {
    name,
    ...(insecure ? { insecure: true } : {}),
    encode,
    decode: safeDecode,
    encodeField: (value) => prefixed(encode(value)),
    decodeField: (bytes, offset) => {
      const [payload, end] = readPrefixed(name, bytes, offset)
      return [safeDecode(payload), end]
    },
  }
}

/** A fixed-size codec. */
function fixed<T>(name: string, size: number, write: (view: DataView, value: T) => void, read: (view: DataView, offset: number) => T): Codec<T> {
  const encode = (value: T): Uint8Array => {
    const out = new Uint8Array(size)
    write(viewOf(out), value)
    return out
  }
  return {
    name,
    encode,
    decode: (payload) => {
      if (payload.length !== size) throw bad(name, `expected ${size} bytes, got ${payload.length}`)
      return read(viewOf(payload), 0)
    },
    encodeField: encode,
    decodeField: (bytes, offset) => {
      if (bytes.length - offset < size) throw bad(name, `expected ${size} bytes at offset ${offset}, ${bytes.length - offset} left`)
      return [read(viewOf(bytes), offset), offset + size]
    },
  }
}

function int(name: string, size: 1 | 2 | 4, signed: boolean, le: boolean): Codec<number> {
  const min = signed ? -(2 ** (size * 8 - 1)) : 0
  const max = signed ? 2 ** (size * 8 - 1) - 1 : 2 ** (size * 8) - 1
  const check = (value: number): void => {
    if (!Number.isInteger(value) || value < min || value > max) throw new RpcDecodeError(`cannot encode ${name}: ${String(value)} is not an integer in [${min}, ${max}]`)
  }
  const write = (view: DataView, value: number): void => {
    check(value)
    if (size === 1) {
      if (signed) view.setInt8(0, value)
      else view.setUint8(0, value)
    } else if (size === 2) {
      if (signed) view.setInt16(0, value, le)
      else view.setUint16(0, value, le)
    } else if (signed) view.setInt32(0, value, le)
    else view.setUint32(0, value, le)
  }
  const read = (view: DataView, offset: number): number =>
    size === 1
      ? signed
        ? view.getInt8(offset)
        : view.getUint8(offset)
      : size === 2
        ? signed
          ? view.getInt16(offset, le)
          : view.getUint16(offset, le)
        : signed
          ? view.getInt32(offset, le)
          : view.getUint32(offset, le)
  return fixed(name, size, write, read)
}

function int64(name: string, signed: boolean, le: boolean): Codec<bigint> {
  const min = signed ? -(2n ** 63n) : 0n
  const max = signed ? 2n ** 63n - 1n : 2n ** 64n - 1n
  return fixed(
    name,
    8,
    (view, value) => {
      if (typeof value !== 'bigint' || value < min || value > max) throw new RpcDecodeError(`cannot encode ${name}: ${String(value)} is not a bigint in [${min}, ${max}]`)
      if (signed) view.setBigInt64(0, value, le)
      else view.setBigUint64(0, value, le)
    },
    (view, offset) => (signed ? view.getBigInt64(offset, le) : view.getBigUint64(offset, le)),
  )
}

function float(name: string, size: 4 | 8, le: boolean): Codec<number> {
  return fixed(
    name,
    size,
    (view, value) => {
      if (typeof value !== 'number') throw new RpcDecodeError(`cannot encode ${name}: ${String(value)} is not a number`)
      if (size === 4) view.setFloat32(0, value, le)
      else view.setFloat64(0, value, le)
    },
    (view, offset) => (size === 4 ? view.getFloat32(offset, le) : view.getFloat64(offset, le)),
  )
}

type TupleValue<Cs extends readonly Codec<unknown>[]> = { -readonly [K in keyof Cs]: CodecValue<Cs[K]> }

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any codec; Codec<unknown> would reject them (encode is contravariant)
function tuple<const Cs extends readonly Codec<any>[]>(...items: Cs): Codec<TupleValue<Cs>> {
  const name = `tuple(${items.map((c) => c.name).join(',')})`
  const encode = (value: TupleValue<Cs>): Uint8Array => {
    if (!Array.isArray(value) || value.length !== items.length) throw new RpcDecodeError(`cannot encode ${name}: expected an array of ${items.length} items`)
    const parts = items.map((codec, i) => codec.encodeField((value as unknown[])[i]))
    return Buffer.concat(parts)
  }
  const decodeField = (bytes: Uint8Array, offset: number): [TupleValue<Cs>, number] => {
    const out: unknown[] = []
    let at = offset
    for (const codec of items) {
      const [value, next] = codec.decodeField(bytes, at) as [unknown, number]
      out.push(value)
      at = next
    }
    return [out as TupleValue<Cs>, at]
  }
  return {
    name,
    ...(items.some((c) => c.insecure === true) ? { insecure: true } : {}),
    encode,
    decode: (payload) => {
      const [value, end] = decodeField(payload, 0)
      if (end !== payload.length) throw bad(name, `${payload.length - end} trailing bytes`)
      return value
    },
    encodeField: encode,
    decodeField,
  }
}

const raw: Codec<Uint8Array> = variable(
  'raw',
  (value) => {
    if (!(value instanceof Uint8Array)) throw new RpcDecodeError('cannot encode raw: not a Uint8Array')
    return value
  },
  (payload) => payload,
)

const string: Codec<string> = variable(
  'string',
  (value) => {
    if (typeof value !== 'string') throw new RpcDecodeError('cannot encode string: not a string')
    return Buffer.from(value, 'utf8')
  },
  (payload) => utf8.decode(payload),
)

const bytes: Codec<Uint8Array> = {
  name: 'bytes',
  encode: (value) => raw.encodeField(value),
  decode: (payload) => {
    const [value, end] = readPrefixed('bytes', payload, 0)
    if (end !== payload.length) throw bad('bytes', `${payload.length - end} trailing bytes`)
    return value
  },
  encodeField: (value) => raw.encodeField(value),
  decodeField: (b, offset) => readPrefixed('bytes', b, offset),
}

const none: Codec<undefined> = {
  name: 'none',
  encode: () => EMPTY,
  decode: (payload) => {
    if (payload.length !== 0) throw bad('none', `expected no bytes, got ${payload.length}`)
    return undefined
  },
  encodeField: () => EMPTY,
  decodeField: (_bytes, offset) => [undefined, offset],
}

const bool: Codec<boolean> = fixed(
  'bool',
  1,
  (view, value) => view.setUint8(0, value ? 1 : 0),
  (view, offset) => {
    const byte = view.getUint8(offset)
    if (byte > 1) throw bad('bool', `byte ${byte} is neither 0 nor 1`)
    return byte === 1
  },
)

function json<T = unknown>(): Codec<T> {
  return variable<T>(
    'json',
    (value) => {
      const text = JSON.stringify(value)
      if (text === undefined) throw new RpcDecodeError('cannot encode json: value has no JSON form')
      // Buffer.from: a small text is encoded into Node's buffer pool (no ArrayBuffer per call).
      return Buffer.from(text, 'utf8')
    },
    (payload) => JSON.parse(utf8.decode(payload)) as T,
  )
}

function msgpack<T = unknown>(): Codec<T> {
  return variable<T>(
    'msgpack',
    (value) => msgpackEncode(value),
    (payload) => msgpackDecode(payload) as T,
  )
}

function v8<T = unknown>(): Codec<T> {
  return variable<T>(
    'v8',
    (value) => new Uint8Array(v8Serialize(value)),
    (payload) => v8Deserialize(payload) as T,
    true,
  )
}

/**
 * The codecs. Whole-payload forms: `raw` (the bytes as they are), `string` (UTF-8), `json`,
 * `msgpack`, `v8` (insecure: `node:v8` deserialize runs on what the peer sends), fixed-layout
 * numbers (`int8` … `float64be`; 64-bit ints are `bigint`), `bool` (one byte 0/1), `tuple(...)`
 * (its items' field forms back to back), `bytes` (u32le length + bytes) and `none` (no bytes).
 */
export const codecs = {
  raw,
  string,
  bytes,
  none,
  bool,
  json,
  msgpack,
  v8,
  tuple,
  int8: int('int8', 1, true, true),
  uint8: int('uint8', 1, false, true),
  int16le: int('int16le', 2, true, true),
  int16be: int('int16be', 2, true, false),
  uint16le: int('uint16le', 2, false, true),
  uint16be: int('uint16be', 2, false, false),
  int32le: int('int32le', 4, true, true),
  int32be: int('int32be', 4, true, false),
  uint32le: int('uint32le', 4, false, true),
  uint32be: int('uint32be', 4, false, false),
  int64le: int64('int64le', true, true),
  int64be: int64('int64be', true, false),
  uint64le: int64('uint64le', false, true),
  uint64be: int64('uint64be', false, false),
  float32le: float('float32le', 4, true),
  float32be: float('float32be', 4, false),
  float64le: float('float64le', 8, true),
  float64be: float('float64be', 8, false),
} as const
