import { FramingError, FrameTooLargeError, NEED_MORE, toBytes, toText, type ByteStream, type FrameDecoder } from '@labwire/core'
import { checkMaxLength, hex, notBytes, unmarshallOf } from './framer.js'

/** Options for {@link IeeeBlockMarshaller}. */
export interface IeeeBlockMarshallerOptions {
  /** What follows each block: default `'\n'`; `null` for nothing (then an indefinite block `#0…` runs to the end of the stream). */
  terminator?: string | Uint8Array | null
  /** Maximum data length in bytes. Default 1 MiB. A longer definite block fails as soon as its header is read. */
  maxLength?: number
}

const HASH = 0x23
const ZERO = 0x30

/**
 * IEEE 488.2 arbitrary block data, as SCPI instruments send waveforms and files: a definite block
 * `#<n><len><data>` (n digits of length, then exactly len bytes, which may contain any byte,
 * newline included) or an indefinite block `#0<data>` that ends at the terminator; the
 * terminator (default `'\n'`) is expected after every block.
 *
 * Bytes before the `#` (a response header such as `:CURV `) are discarded, as PyVISA's
 * `from_ieee_block` does; a whole terminated line without any `#` (an instrument's error text)
 * is consumed and rejected with a recoverable `FramingError` quoting it. `marshall` writes a
 * definite block plus the terminator. See {@link blockToValues} / {@link valuesToBlock} for waveforms.
 *
 * @example
 * ```ts
 * const blocks = new IeeeBlockMarshaller()
 * blocks.marshall(Uint8Array.of(10, 20)) // '#12' 0a 14 '\n'
 * const samples = blockToValues(await blocks.unmarshall(stream), 'int16', { byteOrder: 'big' })
 * ```
 */
export class IeeeBlockMarshaller {
  /** The terminator after each block, or `null`. */
  readonly terminator: Uint8Array | null
  /** Maximum data length in bytes. */
  readonly maxLength: number
  /** The synchronous decoder behind `unmarshall`. */
  readonly decoder: FrameDecoder
  /** Read one block; resolve with its data. */
  readonly unmarshall: (bytes: AsyncIterator<Uint8Array>) => Promise<Uint8Array>

  constructor(options: IeeeBlockMarshallerOptions = {}) {
    const terminator = options.terminator === undefined ? '\n' : options.terminator
    this.terminator = terminator === null ? null : toBytes(terminator).slice()
    if (this.terminator !== null && this.terminator.length === 0) throw new RangeError("IeeeBlockMarshaller: terminator must not be empty (use null for none)")
    this.maxLength = checkMaxLength('IeeeBlockMarshaller', options.maxLength)
    this.decoder = blockDecoder(this.terminator, this.maxLength)
    this.unmarshall = unmarshallOf(this.decoder)
  }

  /** A definite block `#<n><len><data>` followed by the terminator. */
  readonly marshall = (payload: Uint8Array): Uint8Array => {
    if (!(payload instanceof Uint8Array)) throw notBytes('IeeeBlockMarshaller', payload)
    const digits = String(payload.length)
    if (digits.length > 9) throw new FramingError(`an IEEE 488.2 definite block holds at most 999999999 bytes, got ${payload.length}`)
    const term = this.terminator ?? new Uint8Array(0)
    const head = 2 + digits.length
    const out = new Uint8Array(head + payload.length + term.length)
    out[0] = HASH
    out[1] = ZERO + digits.length
    for (let i = 0; i < digits.length; i++) out[2 + i] = digits.charCodeAt(i)
    out.set(payload, head)
    out.set(term, head + payload.length)
    return out
  }
}

function blockDecoder(terminator: Uint8Array | null, maxLength: number): FrameDecoder {
  const tl = terminator === null ? 0 : terminator.length
  const termPattern = terminator === null ? 0 : tl === 1 ? (terminator[0] as number) : terminator
  /** The first terminator before `limit` (searching from `from`), or -1. */
  const terminatorBefore = (stream: ByteStream, from: number, limit: number): number => {
    if (terminator === null) return -1
    const at = stream.indexOf(termPattern, from)
    return at >= 0 && at < limit ? at : -1
  }
  return {
    decode(stream) {
      const buffered = stream.bufferedLength
      const scanned = stream.scanOffset
      // Once a block has started at 0, scanOffset belongs to the block's own terminator search.
      const hash = stream.byteAt(0) === HASH ? 0 : stream.indexOf(HASH, scanned)
      // A terminated line before any '#' is text, not a block (searched only while no block has started).
      const text = hash === 0 ? -1 : terminatorBefore(stream, Math.max(0, scanned - tl + 1), hash < 0 ? buffered : hash)
      if (text >= 0) {
        const line = stream.take(text)
        stream.skip(tl)
        throw new FramingError(`expected an IEEE 488.2 block, got a line without '#': '${toText(line.subarray(0, 80))}'`, { recoverable: true })
      }
      if (hash < 0) {
        if (buffered > maxLength) throw stream.tooLargeError(maxLength, "no '#' block header")
        stream.scanOffset = buffered
        return NEED_MORE
      }
      if (hash > 0) stream.skip(hash)
      const available = stream.bufferedLength
      if (available < 2) return NEED_MORE
      const n = (stream.byteAt(1) as number) - ZERO
      if (n < 0 || n > 9) {
        throw new FramingError(`malformed IEEE 488.2 block header: '#' followed by 0x${((stream.byteAt(1) as number)).toString(16)}, not a digit`)
      }
      if (n === 0) return indefinite(stream)
      if (available < 2 + n) return NEED_MORE
      const header = stream.view(2 + n)
      let length = 0
      for (let i = 2; i < 2 + n; i++) {
        const digit = (header[i] as number) - ZERO
        if (digit < 0 || digit > 9) throw new FramingError(`malformed IEEE 488.2 block header: '${toText(header)}' (length digits expected)`)
        length = length * 10 + digit
      }
      if (length > maxLength) throw new FrameTooLargeError(maxLength, `IEEE 488.2 block announces ${length} bytes, over the maximum of ${maxLength}`)
      const total = 2 + n + length + tl
      if (available < total) {
        stream.expect(total)
        return NEED_MORE
      }
      if (terminator !== null) {
        for (let i = 0; i < tl; i++) {
          if (stream.byteAt(2 + n + length + i) !== terminator[i]) {
            const after = stream.copy(2 + n + length, total)
            stream.skip(2 + n + length)
            throw new FramingError(`IEEE 488.2 block of ${length} bytes is followed by ${hex(after)}, not its terminator ${hex(terminator)}`)
          }
        }
      }
      stream.skip(2 + n)
      // take(), not takeFrame(length, 0): takeFrame reads the head chunk even when nothing is buffered.
      return tl > 0 ? stream.takeFrame(length, tl) : stream.take(length)
    },
    describePartial(stream) {
      return `${stream.bufferedLength} bytes of an IEEE 488.2 block received`
    },
  }

  function indefinite(stream: ByteStream): Uint8Array | typeof NEED_MORE {
    const buffered = stream.bufferedLength
    if (terminator === null) {
      if (buffered - 2 > maxLength) throw stream.tooLargeError(maxLength, 'indefinite block')
      if (!stream.ended) return NEED_MORE
      stream.skip(2)
      return stream.take(buffered - 2)
    }
    const at = stream.indexOf(termPattern, Math.max(2, stream.scanOffset))
    if (at < 0) {
      if (buffered - 2 - tl + 1 > maxLength) throw stream.tooLargeError(maxLength, 'indefinite block without its terminator')
      stream.scanOffset = Math.max(2, buffered - tl + 1)
      return NEED_MORE
    }
    if (at - 2 > maxLength) throw stream.tooLargeError(maxLength, 'indefinite block')
    stream.skip(2)
    return stream.takeFrame(at - 2, tl)
  }
}

/** Element types of waveform data in a block. */
export type BlockValueType = 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64'

/** The typed array for each {@link BlockValueType}. */
export interface BlockValueArrays {
  int8: Int8Array
  uint8: Uint8Array
  int16: Int16Array
  uint16: Uint16Array
  int32: Int32Array
  uint32: Uint32Array
  float32: Float32Array
  float64: Float64Array
}

/** Options for {@link blockToValues} and {@link valuesToBlock}. */
export interface BlockValueOptions {
  /** Byte order of the values in the block. Default `'little'` (PyVISA's default; many instruments send `'big'`: check `FORM:BORD`). */
  byteOrder?: 'little' | 'big'
}

const ARRAYS = {
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  float32: Float32Array,
  float64: Float64Array,
} as const

const HOST_LITTLE = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1

function checkType(type: unknown): BlockValueType {
  if (typeof type !== 'string' || !Object.hasOwn(ARRAYS, type)) throw new RangeError(`unknown block value type ${String(type)}; use one of ${Object.keys(ARRAYS).join(', ')}`)
  return type as BlockValueType
}

function swapInPlace(bytes: Uint8Array, size: number): void {
  for (let i = 0; i + size <= bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a] as number
      bytes[a] = bytes[b] as number
      bytes[b] = t
    }
  }
}

/**
 * Block data as numbers: e.g. `blockToValues(data, 'int16', { byteOrder: 'big' })`. Throws
 * `FramingError` when the data length is not a whole number of values.
 */
export function blockToValues<K extends BlockValueType>(data: Uint8Array, type: K, options: BlockValueOptions = {}): BlockValueArrays[K] {
  const Array_ = ARRAYS[checkType(type)]
  const size = Array_.BYTES_PER_ELEMENT
  if (data.length % size !== 0) throw new FramingError(`block of ${data.length} bytes is not a whole number of ${type} values (${size} bytes each)`)
  const copy = data.slice()
  if (size > 1 && (options.byteOrder ?? 'little') === 'little' !== HOST_LITTLE) swapInPlace(copy, size)
  return new Array_(copy.buffer, 0, data.length / size) as BlockValueArrays[K]
}

/** Numbers as block data (the inverse of {@link blockToValues}); pass the result to `IeeeBlockMarshaller.marshall`. */
export function valuesToBlock(values: ArrayLike<number>, type: BlockValueType, options: BlockValueOptions = {}): Uint8Array {
  const Array_ = ARRAYS[checkType(type)]
  const typed = Array_.from(values)
  const bytes = new Uint8Array(typed.buffer, 0, typed.byteLength)
  if (Array_.BYTES_PER_ELEMENT > 1 && (options.byteOrder ?? 'little') === 'little' !== HOST_LITTLE) swapInPlace(bytes, Array_.BYTES_PER_ELEMENT)
  return bytes
}
