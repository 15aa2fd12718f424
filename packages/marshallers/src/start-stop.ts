import { ConnectionClosedError, FrameTooLargeError, NEED_MORE, toBytes, type ByteStream, type FrameDecoder, type NeedMore } from '@labwire/core'
import { checkMaxLength, checkTooLarge, notBytes, unmarshallOf, type FramerOptions, type TooLargePolicy } from './framer.js'

/** Options for {@link StartStopBytesMarshaller}. */
export interface StartStopBytesMarshallerOptions extends FramerOptions {
  /** A frame over `maxLength`: fail fast (default) or skip it through its stop marker. See {@link TooLargePolicy}. */
  tooLarge?: TooLargePolicy
}

interface SkipState {
  readonly owner: FrameDecoder
  discarded: number
}

/**
 * Frames between a start and a stop marker, e.g. STX (0x02) … ETX (0x03). Bytes before a start
 * marker belong to no frame and are discarded (line noise, a device's power-on garbage); the
 * payload is what lies between the markers. `marshall` writes start + payload + stop.
 *
 * @example
 * ```ts
 * const stx = new StartStopBytesMarshaller(Uint8Array.of(0x02), Uint8Array.of(0x03))
 * stx.marshall(toBytes('R1'))     // 02 'R' '1' 03
 * await stx.unmarshall(stream)    // the bytes between the next 02 and 03
 * ```
 */
export class StartStopBytesMarshaller {
  readonly start: Uint8Array
  readonly stop: Uint8Array
  /** Maximum payload length in bytes (markers excluded). */
  readonly maxLength: number
  readonly tooLarge: TooLargePolicy
  /** The synchronous decoder behind `unmarshall`. */
  readonly decoder: FrameDecoder
  /** Read one frame: discard bytes up to a start marker, return the bytes up to the stop marker. */
  readonly unmarshall: (bytes: AsyncIterator<Uint8Array>) => Promise<Uint8Array>

  constructor(start: Uint8Array | string, stop: Uint8Array | string, options: StartStopBytesMarshallerOptions = {}) {
    this.start = toBytes(start).slice()
    this.stop = toBytes(stop).slice()
    if (this.start.length === 0 || this.stop.length === 0) throw new RangeError('StartStopBytesMarshaller: start and stop markers must not be empty')
    this.maxLength = checkMaxLength('StartStopBytesMarshaller', options.maxLength)
    this.tooLarge = checkTooLarge('StartStopBytesMarshaller', options.tooLarge)
    this.decoder = startStopDecoder(this.start, this.stop, this.maxLength, this.tooLarge)
    this.unmarshall = unmarshallOf(this.decoder)
  }

  /** start + payload + stop. */
  readonly marshall = (payload: Uint8Array): Uint8Array => {
    if (!(payload instanceof Uint8Array)) throw notBytes('StartStopBytesMarshaller', payload)
    const out = new Uint8Array(this.start.length + payload.length + this.stop.length)
    out.set(this.start, 0)
    out.set(payload, this.start.length)
    out.set(this.stop, this.start.length + payload.length)
    return out
  }
}

function startStopDecoder(start: Uint8Array, stop: Uint8Array, maxLength: number, tooLarge: TooLargePolicy): FrameDecoder {
  const sl = start.length
  const el = stop.length
  const startPattern = sl === 1 ? (start[0] as number) : start
  const stopPattern = el === 1 ? (stop[0] as number) : stop
  const decoder: FrameDecoder = {
    decode(stream) {
      const skipping = stream.decoderState as SkipState | undefined
      if (skipping?.owner === decoder) return skipThrough(stream, skipping)
      // Junk before the start marker is discarded, keeping what may be the start of a marker.
      if (stream.scanOffset < sl) {
        const at = stream.indexOf(startPattern, 0)
        if (at < 0) {
          const drop = stream.bufferedLength - Math.min(stream.bufferedLength, sl - 1)
          if (drop > 0) stream.skip(drop)
          return NEED_MORE
        }
        if (at > 0) stream.skip(at)
      }
      const buffered = stream.bufferedLength
      const end = stream.indexOf(stopPattern, Math.max(sl, stream.scanOffset))
      if (end >= 0) {
        const length = end - sl
        if (length > maxLength) return overLimit(stream, end + el)
        stream.skip(sl)
        return stream.takeFrame(length, el)
      }
      if (buffered - sl - el + 1 > maxLength) return overLimit(stream, -1)
      stream.scanOffset = Math.max(sl, buffered - el + 1)
      return NEED_MORE
    },
    describePartial(stream) {
      return `${stream.bufferedLength} bytes received, no stop marker yet`
    },
  }

  function overLimit(stream: ByteStream, through: number): NeedMore {
    if (tooLarge === 'fail') throw stream.tooLargeError(maxLength, through < 0 ? 'no stop marker' : 'before its stop marker')
    if (through >= 0) {
      stream.skip(through)
      throw new FrameTooLargeError(maxLength, `frame exceeded the maximum length of ${maxLength} bytes; skipped ${through} bytes through its stop marker`, { resynchronised: true })
    }
    const state: SkipState = { owner: decoder, discarded: 0 }
    stream.decoderState = state
    return skipThrough(stream, state)
  }

  function skipThrough(stream: ByteStream, state: SkipState): NeedMore {
    const at = stream.indexOf(stopPattern, 0)
    if (at >= 0) {
      stream.skip(at + el)
      stream.decoderState = undefined
      throw new FrameTooLargeError(maxLength, `frame exceeded the maximum length of ${maxLength} bytes; skipped ${state.discarded + at + el} bytes through its stop marker`, {
        resynchronised: true,
      })
    }
    const drop = stream.bufferedLength - Math.min(stream.bufferedLength, el - 1)
    stream.skip(drop)
    state.discarded += drop
    if (stream.ended) {
      stream.decoderState = undefined
      throw new ConnectionClosedError(`${stream.label ?? 'the peer'} closed the connection while an oversized frame was being skipped (${state.discarded} bytes skipped)`, {
        partial: stream.peek().slice(),
      })
    }
    stream.wantMore()
    return NEED_MORE
  }

  return decoder
}
