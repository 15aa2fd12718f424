import { FramingError, FrameTooLargeError, NEED_MORE, type FrameDecoder } from '@labwire/core'
import { checkMaxLength, notBytes, unmarshallOf, type FramerOptions } from './framer.js'

const END = 0xc0
const ESC = 0xdb
const ESC_END = 0xdc
const ESC_ESC = 0xdd

/**
 * SLIP (RFC 1055) frames: END (0xC0) after each frame (and before it, to flush line noise), END and
 * ESC inside the payload escaped as ESC ESC_END / ESC ESC_ESC. Empty frames (END END) are idle
 * filler and skipped, so an empty payload cannot be sent. A frame read whole with a bad escape is
 * a recoverable `FramingError`. `maxLength` bounds the decoded payload; at most 2 × maxLength + 1
 * bytes are buffered for one frame.
 *
 * @example
 * ```ts
 * const slip = new SlipBytesMarshaller()
 * slip.marshall(Uint8Array.of(1, 0xc0, 2)) // c0 01 db dc 02 c0
 * await slip.unmarshall(stream)            // 01 c0 02
 * ```
 */
export class SlipBytesMarshaller {
  /** Maximum decoded payload length in bytes. */
  readonly maxLength: number
  /** The synchronous decoder behind `unmarshall`. */
  readonly decoder: FrameDecoder
  /** Read one SLIP frame, unescaped. */
  readonly unmarshall: (bytes: AsyncIterator<Uint8Array>) => Promise<Uint8Array>

  constructor(options: FramerOptions = {}) {
    this.maxLength = checkMaxLength('SlipBytesMarshaller', options.maxLength)
    this.decoder = slipDecoder(this.maxLength)
    this.unmarshall = unmarshallOf(this.decoder)
  }

  /** END + escaped payload + END. Throws `FramingError` for an empty payload (SLIP has no empty frames). */
  readonly marshall = (payload: Uint8Array): Uint8Array => {
    if (!(payload instanceof Uint8Array)) throw notBytes('SlipBytesMarshaller', payload)
    if (payload.length === 0) throw new FramingError('SLIP cannot carry an empty payload (END END is an empty frame, which receivers skip)')
    let extra = 0
    for (const byte of payload) if (byte === END || byte === ESC) extra++
    const out = new Uint8Array(payload.length + extra + 2)
    out[0] = END
    let o = 1
    for (const byte of payload) {
      if (byte === END) {
        out[o++] = ESC
        out[o++] = ESC_END
      } else if (byte === ESC) {
        out[o++] = ESC
        out[o++] = ESC_ESC
      } else {
        out[o++] = byte
      }
    }
    out[o] = END
    return out
  }
}

function slipDecoder(maxLength: number): FrameDecoder {
  const maxEncoded = 2 * maxLength
  return {
    decode(stream) {
      const buffered = stream.bufferedLength
      let start = 0
      while (start < buffered && stream.byteAt(start) === END) start++
      if (start === buffered) {
        // Only END bytes: keep one (it may open the next frame), drop the idle filler.
        if (start > 1) stream.skip(start - 1)
        return NEED_MORE
      }
      const end = stream.indexOf(END, Math.max(start, stream.scanOffset))
      if (end < 0) {
        if (buffered - start > maxEncoded) throw stream.tooLargeError(maxLength, 'no SLIP END')
        stream.scanOffset = buffered
        return NEED_MORE
      }
      if (end - start > maxEncoded) throw stream.tooLargeError(maxLength, 'SLIP frame')
      if (start > 0) stream.skip(start)
      const encoded = stream.takeFrame(end - start, 1)
      const payload = unescape(encoded)
      if (payload.length > maxLength) {
        throw new FrameTooLargeError(maxLength, `SLIP frame of ${payload.length} bytes exceeds the maximum of ${maxLength}; skipped it`, { resynchronised: true })
      }
      return payload
    },
    describePartial(stream) {
      return `${stream.bufferedLength} bytes received, no SLIP END yet`
    },
  }
}

function unescape(encoded: Uint8Array): Uint8Array {
  if (!encoded.includes(ESC)) return encoded
  const out = new Uint8Array(encoded.length)
  let o = 0
  for (let i = 0; i < encoded.length; i++) {
    const byte = encoded[i] as number
    if (byte !== ESC) {
      out[o++] = byte
      continue
    }
    const next = encoded[++i]
    if (next === ESC_END) out[o++] = END
    else if (next === ESC_ESC) out[o++] = ESC
    else {
      throw new FramingError(
        next === undefined ? 'SLIP frame ends with a lone ESC (0xdb)' : `SLIP frame has ESC (0xdb) followed by 0x${next.toString(16).padStart(2, '0')}, not ESC_END or ESC_ESC`,
        { recoverable: true },
      )
    }
  }
  return out.subarray(0, o)
}
