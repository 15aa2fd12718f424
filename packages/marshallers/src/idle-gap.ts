import { byteStreamOf, clampDelay, FramingError, type ByteStream } from '@labwire/core'
import { checkMaxLength, notBytes, type FramerOptions } from './framer.js'

const GAP = Symbol('gap')

/**
 * Frames that end when the line goes quiet: a frame is every byte received until no byte has
 * arrived for `gapMs` milliseconds (devices with no terminator at all, Modbus RTU's 3.5-character
 * silence). `marshall` passes the payload through: the sender leaves the gap by pausing.
 *
 * Unlike every other framer this one cannot be a synchronous decoder — the end of a frame is a
 * timer, not a byte — so its `unmarshall` is an async function over the connection's byte stream
 * (servers and clients run it on their async path) and has no `decoder`. The peer closing before
 * the gap has elapsed rejects with `ConnectionClosedError` holding the bytes received.
 *
 * @example
 * ```ts
 * const quiet = new IdleGapBytesMarshaller(20)  // a frame ends after 20 ms of silence
 * await quiet.unmarshall(stream)                // whatever arrived before the silence
 * ```
 */
export class IdleGapBytesMarshaller {
  /** Silence that ends a frame, in milliseconds. */
  readonly gapMs: number
  /** Maximum frame length in bytes. */
  readonly maxLength: number

  constructor(gapMs: number, options: FramerOptions = {}) {
    if (typeof gapMs !== 'number' || !Number.isFinite(gapMs) || gapMs <= 0) throw new RangeError(`IdleGapBytesMarshaller: gapMs must be a positive number of milliseconds, got ${String(gapMs)}`)
    this.gapMs = gapMs
    this.maxLength = checkMaxLength('IdleGapBytesMarshaller', options.maxLength)
  }

  /** The payload itself (throws `FramingError` for an empty one, which would put nothing on the wire). */
  readonly marshall = (payload: Uint8Array): Uint8Array => {
    if (!(payload instanceof Uint8Array)) throw notBytes('IdleGapBytesMarshaller', payload)
    if (payload.length === 0) throw new FramingError('an idle-gap frame cannot be empty: it would put nothing on the wire')
    return payload
  }

  /**
   * Wait for a first byte, then collect bytes until `gapMs` pass without one; resolve with them.
   * Rejects with `FrameTooLargeError` past `maxLength`, `ConnectionClosedError` if the stream ends first.
   */
  readonly unmarshall = async (bytes: AsyncIterator<Uint8Array>): Promise<Uint8Array> => {
    const stream = byteStreamOf(bytes)
    while (stream.bufferedLength === 0) {
      if (!(await stream.fill())) throw stream.closedError()
    }
    for (;;) {
      if (stream.bufferedLength > this.maxLength) throw stream.tooLargeError(this.maxLength, `no ${this.gapMs} ms gap`)
      if (stream.ended) throw stream.closedError(`${stream.bufferedLength} bytes received, closed before a ${this.gapMs} ms gap`)
      const outcome = await this.waitOrGap(stream)
      if (outcome === GAP) return stream.take(stream.bufferedLength)
    }
  }

  /** More bytes (or the end), or GAP once `gapMs` pass in silence. A wait cut short by the gap leaves no reader behind. */
  private waitOrGap(stream: ByteStream): Promise<boolean | typeof GAP> {
    const wait = stream.fill()
    let timer: ReturnType<typeof setTimeout> | undefined
    const gap = new Promise<typeof GAP>((resolve) => {
      timer = setTimeout(() => resolve(GAP), clampDelay(this.gapMs))
    })
    return Promise.race([wait, gap]).then(
      (outcome) => {
        clearTimeout(timer)
        if (outcome === GAP) {
          // The stream's pending read is abandoned: its outcome is seen by the next read.
          wait.catch(() => undefined)
          stream.interruptWait()
        }
        return outcome
      },
      (error: unknown) => {
        clearTimeout(timer)
        throw error
      },
    )
  }
}
