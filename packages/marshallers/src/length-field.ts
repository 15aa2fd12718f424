import { ConnectionClosedError, FramingError, FrameTooLargeError, NEED_MORE, type ByteStream, type FrameDecoder } from '@labwire/core'
import { checkMaxLength, checkTooLarge, describe, notBytes, unmarshallOf, type TooLargePolicy } from './framer.js'

/** Options for {@link LengthFieldBytesMarshaller}: Netty's `LengthFieldBasedFrameDecoder`, by the same names. */
export interface LengthFieldBytesMarshallerOptions {
  /** Where the length field starts in the frame. Default 0. */
  lengthFieldOffset?: number
  /** Bytes in the length field: 1, 2, 3, 4 or 8 (unsigned). */
  lengthFieldLength: 1 | 2 | 3 | 4 | 8
  /** Byte order of the length field. Default false (big-endian, network order). */
  littleEndian?: boolean
  /**
   * Added to the length field's value to get the number of bytes that follow the field: e.g. -2
   * when a 2-byte field counts itself, +2 when a 2-byte CRC after the body is not counted. Default 0.
   */
  lengthAdjustment?: number
  /** Bytes dropped from the start of each decoded frame (e.g. the header and length field). Default 0. */
  initialBytesToStrip?: number
  /**
   * Largest frame in bytes, counted as on the wire before stripping (Netty's `maxFrameLength`).
   * Default 1 MiB. A longer frame fails as soon as its length field is read, before its body arrives.
   */
  maxLength?: number
  /**
   * A frame over `maxLength`: `'fail'` (default, fail fast) or `'skip'`: its announced length is
   * discarded as it arrives, then the read rejects with a resynchronised `FrameTooLargeError`.
   */
  tooLarge?: TooLargePolicy
}

interface Discarding {
  readonly owner: FrameDecoder
  left: number
  total: number
}


/**
 * Length-prefixed frames with Netty's `LengthFieldBasedFrameDecoder` semantics: the frame is
 * `lengthFieldOffset + lengthFieldLength + value + lengthAdjustment` bytes long, and the decoded
 * frame is that with its first `initialBytesToStrip` bytes removed.
 *
 * `marshall` is the inverse where the layout allows: with `lengthFieldOffset: 0` and
 * `initialBytesToStrip: lengthFieldLength` it prepends the field to the payload; with
 * `initialBytesToStrip: 0` the payload is the whole frame (header included) and `marshall`
 * writes the right value into its length field. Other layouts decode but cannot marshall
 * (`FramingError`), since the stripped bytes are not in the payload.
 *
 * @example
 * ```ts
 * const frames = new LengthFieldBytesMarshaller({ lengthFieldLength: 2, initialBytesToStrip: 2 })
 * frames.marshall(Uint8Array.of(1, 2, 3)) // 00 03 01 02 03
 * await frames.unmarshall(stream)         // 01 02 03
 * ```
 */
export class LengthFieldBytesMarshaller {
  readonly lengthFieldOffset: number
  readonly lengthFieldLength: 1 | 2 | 3 | 4 | 8
  readonly littleEndian: boolean
  readonly lengthAdjustment: number
  readonly initialBytesToStrip: number
  /** Largest frame on the wire, in bytes. */
  readonly maxLength: number
  readonly tooLarge: TooLargePolicy
  /** The synchronous decoder behind `unmarshall`. */
  readonly decoder: FrameDecoder
  /** Read one frame. Rejects with `FrameTooLargeError` as soon as an over-long length is read, `FramingError` for an impossible length. */
  readonly unmarshall: (bytes: AsyncIterator<Uint8Array>) => Promise<Uint8Array>

  constructor(options: LengthFieldBytesMarshallerOptions) {
    const owner = 'LengthFieldBytesMarshaller'
    if (typeof options !== 'object' || options === null) throw new TypeError(`${owner}: pass an options object with lengthFieldLength`)
    const { lengthFieldLength } = options
    if (![1, 2, 3, 4, 8].includes(lengthFieldLength)) throw new RangeError(`${owner}: lengthFieldLength must be 1, 2, 3, 4 or 8, got ${String(lengthFieldLength)}`)
    const integer = (name: string, value: unknown, min: number): number => {
      if (value === undefined) return 0
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) throw new RangeError(`${owner}: ${name} must be an integer ≥ ${min}, got ${describe(value)}`)
      return value
    }
    this.lengthFieldOffset = integer('lengthFieldOffset', options.lengthFieldOffset, 0)
    this.lengthFieldLength = lengthFieldLength
    this.littleEndian = options.littleEndian === true
    this.lengthAdjustment = integer('lengthAdjustment', options.lengthAdjustment, Number.MIN_SAFE_INTEGER)
    this.initialBytesToStrip = integer('initialBytesToStrip', options.initialBytesToStrip, 0)
    this.maxLength = checkMaxLength(owner, options.maxLength)
    this.tooLarge = checkTooLarge(owner, options.tooLarge)
    this.decoder = lengthFieldDecoder(this)
    this.unmarshall = unmarshallOf(this.decoder)
  }

  /** The wire frame whose decoding is `payload` (see the class description). */
  readonly marshall = (payload: Uint8Array): Uint8Array => {
    if (!(payload instanceof Uint8Array)) throw notBytes('LengthFieldBytesMarshaller', payload)
    const offset = this.lengthFieldOffset
    const fieldEnd = offset + this.lengthFieldLength
    let frame: Uint8Array
    if (this.initialBytesToStrip === 0) {
      if (payload.length < fieldEnd) throw new FramingError(`payload has ${payload.length} bytes; frames start with ${fieldEnd} header bytes (initialBytesToStrip is 0)`)
      frame = payload.slice()
    } else if (offset === 0 && this.initialBytesToStrip === this.lengthFieldLength) {
      frame = new Uint8Array(fieldEnd + payload.length)
      frame.set(payload, fieldEnd)
    } else {
      throw new FramingError(`cannot marshall with lengthFieldOffset ${offset} and initialBytesToStrip ${this.initialBytesToStrip}: the stripped header is not in the payload`)
    }
    const value = frame.length - fieldEnd - this.lengthAdjustment
    const max = this.lengthFieldLength === 8 ? Number.MAX_SAFE_INTEGER : 2 ** (8 * this.lengthFieldLength) - 1
    if (value < 0 || value > max) throw new FramingError(`a ${this.lengthFieldLength}-byte length field cannot hold ${value} (frame of ${frame.length} bytes, lengthAdjustment ${this.lengthAdjustment})`)
    writeUnsigned(frame, offset, this.lengthFieldLength, value, this.littleEndian)
    return frame
  }
}

function writeUnsigned(out: Uint8Array, at: number, size: number, value: number, littleEndian: boolean): void {
  let v = value
  for (let i = 0; i < size; i++) {
    const byte = v % 256
    v = Math.floor(v / 256)
    out[littleEndian ? at + i : at + size - 1 - i] = byte
  }
}

/** Unsigned value of `size` bytes; 8-byte values past 2^53 come back as Infinity (too large either way). */
function readUnsigned(bytes: Uint8Array, at: number, size: number, littleEndian: boolean): number {
  let value = 0
  for (let i = 0; i < size; i++) {
    const byte = bytes[littleEndian ? at + size - 1 - i : at + i] as number
    value = value * 256 + byte
  }
  return size === 8 && value > Number.MAX_SAFE_INTEGER ? Infinity : value
}

function lengthFieldDecoder(o: LengthFieldBytesMarshaller): FrameDecoder {
  const offset = o.lengthFieldOffset
  const size = o.lengthFieldLength
  const fieldEnd = offset + size
  const { lengthAdjustment, initialBytesToStrip, maxLength, littleEndian } = o
  const skip = o.tooLarge === 'skip'
  const decoder: FrameDecoder = {
    decode(stream) {
      const discarding = stream.decoderState as Discarding | undefined
      if (discarding?.owner === decoder) return discard(stream, discarding)
      const buffered = stream.bufferedLength
      if (buffered < fieldEnd) return NEED_MORE
      const header = stream.view(fieldEnd)
      const value = readUnsigned(header, offset, size, littleEndian)
      const frameLength = value + lengthAdjustment + fieldEnd
      if (frameLength > maxLength) {
        if (!skip || !Number.isFinite(frameLength)) {
          throw new FrameTooLargeError(maxLength, `length field announces a frame of ${frameLength} bytes, over the maximum of ${maxLength}`)
        }
        const state: Discarding = { owner: decoder, left: frameLength, total: frameLength }
        stream.decoderState = state
        return discard(stream, state)
      }
      if (frameLength < fieldEnd) {
        throw new FramingError(`length field value ${value} with lengthAdjustment ${lengthAdjustment} gives a frame of ${frameLength} bytes, shorter than its ${fieldEnd}-byte header`)
      }
      if (initialBytesToStrip > frameLength) {
        throw new FramingError(`frame of ${frameLength} bytes is shorter than initialBytesToStrip (${initialBytesToStrip})`)
      }
      if (buffered < frameLength) {
        stream.expect(frameLength)
        return NEED_MORE
      }
      if (initialBytesToStrip > 0) stream.skip(initialBytesToStrip)
      return stream.take(frameLength - initialBytesToStrip)
    },
    describePartial(stream) {
      const buffered = stream.bufferedLength
      if (buffered < fieldEnd) return `${buffered} bytes received, length field incomplete`
      const frameLength = readUnsigned(stream.view(fieldEnd), offset, size, littleEndian) + lengthAdjustment + fieldEnd
      return `${buffered} of ${frameLength} bytes`
    },
  }

  function discard(stream: ByteStream, state: Discarding): typeof NEED_MORE {
    const n = Math.min(state.left, stream.bufferedLength)
    stream.skip(n)
    state.left -= n
    if (state.left === 0) {
      stream.decoderState = undefined
      throw new FrameTooLargeError(maxLength, `frame of ${state.total} bytes exceeded the maximum of ${maxLength}; skipped it`, { resynchronised: true })
    }
    if (stream.ended) {
      stream.decoderState = undefined
      throw new ConnectionClosedError(`${stream.label ?? 'the peer'} closed the connection while an oversized frame was being skipped (${state.left} bytes of it missing)`)
    }
    stream.wantMore()
    return NEED_MORE
  }

  return decoder
}
