import { ConnectionClosedError, FrameTooLargeError, NEED_MORE, toBytes, type ByteStream, type FrameDecoder, type NeedMore } from '@labwire/core'
import { checkMaxLength, checkTooLarge, notBytes, unmarshallOf, type FramerOptions, type TooLargePolicy } from './framer.js'

/** Options for {@link DelimitedBytesMarshaller}. */
export interface DelimitedBytesMarshallerOptions extends FramerOptions {
  /** Return each frame with the delimiter that ended it. Default false. `maxLength` never counts the delimiter. */
  keepDelimiter?: boolean
  /** A frame over `maxLength`: fail fast (default) or skip it through its delimiter. See {@link TooLargePolicy}. */
  tooLarge?: TooLargePolicy
}

/**
 * Per-stream scan state: for each delimiter, where its next match starts or how far it is known
 * absent, as absolute offsets (`stream.consumed` + index), so consuming a frame does not force a
 * rescan. (`ByteStream.unshift` in the middle of a frame would invalidate it; nothing in labwire does that.)
 */
interface ScanState {
  readonly owner: FrameDecoder
  readonly next: number[]
  readonly scanned: number[]
  skipping: boolean
  discarded: number
}

/**
 * Frames that end at any of several delimiters, e.g. `['\r\n', '\n', '\r']` for devices that are
 * not consistent about line ends.
 *
 * A frame ends at the delimiter that starts earliest; when two start at the same byte, the one
 * listed first wins (so list `'\r\n'` before `'\r'`). This holds whatever the chunking: with
 * `['\r\n', '\r']` a frame whose last byte so far is `'\r'` completes only once the next byte (or
 * the end of the stream) shows that no `'\n'` follows. `marshall` appends the first delimiter.
 * Scanning is O(n): each delimiter's search resumes where it stopped.
 *
 * @example
 * ```ts
 * const lines = new DelimitedBytesMarshaller(['\r\n', '\n', '\r'], { maxLength: 4096 })
 * lines.marshall(bytes)          // bytes + '\r\n'
 * await lines.unmarshall(stream) // one line, whichever end it had
 * ```
 */
export class DelimitedBytesMarshaller {
  /** The delimiters, as bytes, in priority order. */
  readonly delimiters: readonly Uint8Array[]
  /** Maximum payload length in bytes (delimiter excluded). */
  readonly maxLength: number
  /** What happens to a frame over `maxLength`. */
  readonly tooLarge: TooLargePolicy
  /** The synchronous decoder behind `unmarshall`. */
  readonly decoder: FrameDecoder
  /** Read one frame (see the class description). Rejects with `FrameTooLargeError`, or `ConnectionClosedError` with `partial`. */
  readonly unmarshall: (bytes: AsyncIterator<Uint8Array>) => Promise<Uint8Array>

  constructor(delimiters: readonly (string | Uint8Array)[], options: DelimitedBytesMarshallerOptions = {}) {
    if (!Array.isArray(delimiters) || delimiters.length === 0) throw new RangeError('DelimitedBytesMarshaller: give at least one delimiter')
    this.delimiters = delimiters.map((d: unknown) => {
      if (typeof d !== 'string' && !(d instanceof Uint8Array)) throw new RangeError('DelimitedBytesMarshaller: a delimiter must be a non-empty string or Uint8Array')
      const bytes = toBytes(d)
      if (bytes.length === 0) throw new RangeError('DelimitedBytesMarshaller: a delimiter must be a non-empty string or Uint8Array')
      return bytes.slice()
    })
    this.maxLength = checkMaxLength('DelimitedBytesMarshaller', options.maxLength)
    this.tooLarge = checkTooLarge('DelimitedBytesMarshaller', options.tooLarge)
    this.decoder = multiDelimiterDecoder(this.delimiters, this.maxLength, this.tooLarge, options.keepDelimiter === true)
    this.unmarshall = unmarshallOf(this.decoder)
  }

  /** The payload followed by the first delimiter. */
  readonly marshall = (payload: Uint8Array): Uint8Array => {
    if (!(payload instanceof Uint8Array)) throw notBytes('DelimitedBytesMarshaller', payload)
    const delimiter = this.delimiters[0] as Uint8Array
    const out = new Uint8Array(payload.length + delimiter.length)
    out.set(payload, 0)
    out.set(delimiter, payload.length)
    return out
  }
}

/** True when the buffered bytes from `at` to the end are a proper prefix of `pattern`. */
function tailIsPrefix(stream: ByteStream, at: number, pattern: Uint8Array): boolean {
  const end = stream.bufferedLength
  for (let i = at; i < end; i++) if (stream.byteAt(i) !== pattern[i - at]) return false
  return true
}

function multiDelimiterDecoder(delimiters: readonly Uint8Array[], maxLength: number, tooLarge: TooLargePolicy, keep: boolean): FrameDecoder {
  const count = delimiters.length
  const lengths = delimiters.map((d) => d.length)
  const longest = Math.max(...lengths)
  const patterns = delimiters.map((d) => (d.length === 1 ? (d[0] as number) : d))
  const decoder: FrameDecoder = {
    decode(stream) {
      let state = stream.decoderState as ScanState | undefined
      if (state?.owner !== decoder) {
        state = { owner: decoder, next: new Array<number>(count).fill(-1), scanned: new Array<number>(count).fill(0), skipping: false, discarded: 0 }
        stream.decoderState = state
      }
      const consumed = stream.consumed
      const buffered = stream.bufferedLength
      let best = -1
      let which = -1
      for (let j = 0; j < count; j++) {
        let at = state.next[j] as number
        if (at < consumed) {
          const scanned = state.scanned[j] as number
          const index = stream.indexOf(patterns[j] as Uint8Array | number, scanned > consumed ? scanned - consumed : 0)
          if (index < 0) {
            state.next[j] = -1
            const from = buffered - (lengths[j] as number) + 1
            state.scanned[j] = consumed + (from > 0 ? from : 0)
            continue
          }
          at = consumed + index
          state.next[j] = at
        }
        const relative = at - consumed
        if (best < 0 || relative < best) {
          best = relative
          which = j
        }
      }
      if (best >= 0 && !stream.ended && best > buffered - longest) {
        // A delimiter that would win (starts earlier, or at the same byte and is listed first) may still be arriving.
        for (let m = 0; m < count; m++) {
          const length = lengths[m] as number
          for (let p = Math.max(0, buffered - length + 1); p < buffered; p++) {
            if (p > best || (p === best && m >= which)) continue
            if (tailIsPrefix(stream, p, delimiters[m] as Uint8Array)) return NEED_MORE
          }
        }
      }
      if (best >= 0) {
        const dl = lengths[which] as number
        if (state.skipping) {
          stream.skip(best + dl)
          const discarded = state.discarded + best + dl
          state.skipping = false
          state.discarded = 0
          throw new FrameTooLargeError(maxLength, `frame exceeded the maximum length of ${maxLength} bytes; skipped ${discarded} bytes through its delimiter`, { resynchronised: true })
        }
        if (best > maxLength) return overLimit(stream, state, best + dl)
        if (keep) return stream.take(best + dl)
        return stream.takeFrame(best, dl)
      }
      // No delimiter: any later match starts at or after buffered - longest + 1.
      if (state.skipping) return skipOn(stream, state, longest)
      if (buffered - longest + 1 > maxLength) return overLimit(stream, state, -1)
      return NEED_MORE
    },
    describePartial(stream) {
      return `${stream.bufferedLength} bytes received, no delimiter yet`
    },
  }

  function overLimit(stream: ByteStream, state: ScanState, through: number): NeedMore {
    if (tooLarge === 'fail') throw stream.tooLargeError(maxLength, through < 0 ? 'no delimiter' : 'before its delimiter')
    if (through >= 0) {
      stream.skip(through)
      throw new FrameTooLargeError(maxLength, `frame exceeded the maximum length of ${maxLength} bytes; skipped ${through} bytes through its delimiter`, { resynchronised: true })
    }
    state.skipping = true
    state.discarded = 0
    return skipOn(stream, state, longest)
  }

  return decoder
}

/** While skipping an oversized frame: drop what cannot hold the start of a delimiter. */
function skipOn(stream: ByteStream, state: ScanState, longest: number): NeedMore {
  const drop = stream.bufferedLength - Math.min(stream.bufferedLength, longest - 1)
  stream.skip(drop)
  state.discarded += drop
  if (stream.ended) {
    state.skipping = false
    throw new ConnectionClosedError(`${stream.label ?? 'the peer'} closed the connection while an oversized frame was being skipped (${state.discarded} bytes skipped)`, {
      partial: stream.peek().slice(),
    })
  }
  stream.wantMore()
  return NEED_MORE
}
