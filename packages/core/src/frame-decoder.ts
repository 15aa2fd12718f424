/**
 * The decoder contract: framers are synchronous decoders over a connection's buffered bytes (the
 * shape of Netty's `ByteToMessageDecoder.decode`), and the built-in delimiter and exact-length
 * decoders. The byte stream uses this module; this module only names the byte stream's type (no
 * runtime import), so the two do not import each other.
 *
 * @module
 */
import type { ByteStream } from './byte-stream.js'
import { ConnectionClosedError, FrameTooLargeError } from './errors.js'

/** Default maximum frame length of every framer: 1 MiB. */
export const DEFAULT_MAX_LENGTH = 1024 * 1024

/** Options for {@link ByteStream.readUntil}. */
export interface ReadUntilOptions {
  /** Maximum payload length (delimiter excluded). Exceeding it rejects with `FrameTooLargeError` before reading further. Default 1 MiB. */
  maxLength?: number | undefined
  /**
   * What to do with a frame over `maxLength`. `'fail'` (default): reject at once, leaving the
   * stream where it is (fail fast). `'skip'`: discard the frame up to and including its delimiter,
   * holding at most delimiter-length − 1 bytes meanwhile, then reject with a `FrameTooLargeError`
   * whose `resynchronised` is true: the next read starts at the next frame.
   */
  tooLarge?: 'fail' | 'skip' | undefined
}

/** What a decoder returns when the buffered bytes do not hold a whole frame yet. */
export const NEED_MORE: unique symbol = Symbol('labwire.needMore')
/** The type of {@link NEED_MORE}. */
export type NeedMore = typeof NEED_MORE

/**
 * A synchronous frame decoder.
 *
 * `decode(stream)` looks at the bytes buffered in `stream` and does exactly one of:
 * - returns one frame, having consumed its bytes (`stream.take` / `stream.skip`), leaving any
 *   bytes after it buffered for the next call;
 * - returns {@link NEED_MORE}, having consumed no byte of a frame. It may record how far it
 *   scanned in `stream.scanOffset` (reset whenever bytes are consumed) so the next attempt resumes
 *   there, and it may discard bytes that belong to no frame (junk before a start marker, the rest
 *   of an oversized frame being skipped), keeping its own state in `stream.decoderState`;
 * - throws a typed error: `FramingError` (malformed frame) or `FrameTooLargeError`. A frame read
 *   whole and then rejected (a bad checksum) leaves the stream in step: consume the frame first.
 *
 * When `stream.ended` is true no more bytes will arrive: a decoder that can complete a frame at
 * the end of the stream does so (a trailing `'\r'` when `'\r\n'` or `'\r'` may end a frame);
 * otherwise it returns NEED_MORE and the adapter raises `ConnectionClosedError` with the partial bytes.
 * A decoder must be pure apart from the stream: one decoder instance serves many connections.
 */
export interface FrameDecoder<T = Uint8Array> {
  decode(stream: ByteStream): T | NeedMore
  /** Optional: describe the unfinished frame for the `ConnectionClosedError` message, e.g. `'3 of 5 bytes'`. */
  describePartial?(stream: ByteStream): string
}

/** Decoder state while skipping an oversized delimited frame. */
interface Skipping {
  readonly skipping: true
  discarded: number
}

/**
 * A decoder of frames that end at `delimiter` (returned without it). Over `maxLength` bytes
 * before a delimiter: `FrameTooLargeError` at once (`tooLarge: 'fail'`), or (`'skip'`) discard
 * through the next delimiter holding at most delimiter-length − 1 bytes, then throw a
 * `FrameTooLargeError` whose `resynchronised` is true.
 */
export function delimiterDecoder(delimiter: Uint8Array, options: ReadUntilOptions = {}): FrameDecoder {
  const dl = delimiter.length
  if (dl === 0) throw new RangeError('delimiter must not be empty')
  const maxLength = options.maxLength ?? DEFAULT_MAX_LENGTH
  const skip = options.tooLarge === 'skip'
  const single = dl === 1 ? (delimiter[0] as number) : -1
  return {
    decode(stream) {
      if (skip && stream.decoderState !== undefined && (stream.decoderState as Skipping).skipping) {
        return skipThrough(stream, delimiter, maxLength)
      }
      const index = single >= 0 ? stream.indexOf(single, stream.scanOffset) : stream.indexOf(delimiter, stream.scanOffset)
      if (index >= 0) {
        if (index > maxLength) return overLimit(stream, delimiter, maxLength, skip)
        return stream.takeFrame(index, dl)
      }
      const buffered = stream.bufferedLength
      if (buffered - dl + 1 > maxLength) return overLimit(stream, delimiter, maxLength, skip)
      // No match starts before this point: the next scan starts dl - 1 bytes back.
      stream.scanOffset = buffered > dl - 1 ? buffered - dl + 1 : 0
      return NEED_MORE
    },
  }
}

function overLimit(stream: ByteStream, delimiter: Uint8Array, maxLength: number, skip: boolean): NeedMore {
  if (!skip) throw stream.tooLargeError(maxLength)
  stream.decoderState = { skipping: true, discarded: 0 } satisfies Skipping
  return skipThrough(stream, delimiter, maxLength)
}

function skipThrough(stream: ByteStream, delimiter: Uint8Array, maxLength: number): NeedMore {
  const state = stream.decoderState as Skipping
  const dl = delimiter.length
  const index = stream.indexOf(delimiter, 0)
  if (index >= 0) {
    stream.skip(index + dl)
    const discarded = state.discarded + index + dl
    stream.decoderState = undefined
    throw new FrameTooLargeError(maxLength, `frame exceeded the maximum length of ${maxLength} bytes; skipped ${discarded} bytes through its delimiter`, {
      resynchronised: true,
    })
  }
  // Keep only what could be the start of a delimiter that straddles the next chunk.
  const drop = stream.bufferedLength - Math.min(stream.bufferedLength, dl - 1)
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

/** A decoder of frames of exactly `length` bytes (length ≥ 1). Announces large frames to the stream so they are assembled in place. */
export function exactDecoder(length: number): FrameDecoder {
  if (!Number.isInteger(length) || length < 1) throw new RangeError(`frame length must be a positive integer, got ${String(length)}`)
  return {
    decode(stream) {
      if (stream.bufferedLength >= length) return stream.take(length)
      stream.expect(length)
      return NEED_MORE
    },
    describePartial(stream) {
      return `${stream.bufferedLength} of ${length} bytes`
    },
  }
}
