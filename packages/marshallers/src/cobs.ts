import { FramingError, FrameTooLargeError, NEED_MORE, type FrameDecoder } from '@labwire/core'
import { checkMaxLength, notBytes, unmarshallOf, type FramerOptions } from './framer.js'

/**
 * COBS (Consistent Overhead Byte Stuffing) frames, each ended by a zero byte: the payload is
 * encoded so it holds no zero, at most one byte of overhead per 254 (minimal encoding: no
 * trailing empty block). Zero bytes between frames are skipped. A frame read whole that does not
 * decode is a recoverable `FramingError`. `maxLength` bounds the decoded payload.
 *
 * @example
 * ```ts
 * const cobs = new CobsBytesMarshaller()
 * cobs.marshall(Uint8Array.of(0x11, 0x00, 0x22)) // 02 11 02 22 00
 * await cobs.unmarshall(stream)                 // 11 00 22
 * ```
 */
export class CobsBytesMarshaller {
  /** Maximum decoded payload length in bytes. */
  readonly maxLength: number
  /** The synchronous decoder behind `unmarshall`. */
  readonly decoder: FrameDecoder
  /** Read one COBS frame, decoded. */
  readonly unmarshall: (bytes: AsyncIterator<Uint8Array>) => Promise<Uint8Array>

  constructor(options: FramerOptions = {}) {
    this.maxLength = checkMaxLength('CobsBytesMarshaller', options.maxLength)
    this.decoder = cobsDecoder(this.maxLength)
    this.unmarshall = unmarshallOf(this.decoder)
  }

  /** The COBS encoding of `payload`, then a zero byte. */
  readonly marshall = (payload: Uint8Array): Uint8Array => {
    if (!(payload instanceof Uint8Array)) throw notBytes('CobsBytesMarshaller', payload)
    return cobsEncode(payload, true)
  }
}

/** COBS-encode `payload` (minimal: no trailing empty block), with a trailing zero delimiter if `delimit`. */
export function cobsEncode(payload: Uint8Array, delimit = false): Uint8Array {
  const n = payload.length
  const out = new Uint8Array(n + Math.floor(n / 254) + 2)
  let codeAt = 0
  let o = 1
  let code = 1
  for (let i = 0; i < n; i++) {
    const byte = payload[i] as number
    if (byte === 0) {
      out[codeAt] = code
      codeAt = o++
      code = 1
    } else {
      out[o++] = byte
      code++
      if (code === 0xff && i + 1 < n) {
        out[codeAt] = code
        codeAt = o++
        code = 1
      }
    }
  }
  out[codeAt] = code
  if (delimit) out[o++] = 0
  return out.subarray(0, o)
}

/** Decode one COBS-encoded frame (without its zero delimiter). Throws a recoverable `FramingError` if it is malformed. */
export function cobsDecode(encoded: Uint8Array): Uint8Array {
  const n = encoded.length
  if (n === 0) throw new FramingError('empty COBS frame', { recoverable: true })
  const out = new Uint8Array(n)
  let o = 0
  let i = 0
  while (i < n) {
    const code = encoded[i] as number
    if (code === 0) throw new FramingError(`zero byte inside a COBS frame at offset ${i}`, { recoverable: true })
    const end = i + code
    if (end > n) throw new FramingError(`COBS code 0x${code.toString(16)} at offset ${i} runs past the end of the ${n}-byte frame`, { recoverable: true })
    if (end - i > 1) {
      const block = encoded.subarray(i + 1, end)
      const zero = block.indexOf(0)
      if (zero >= 0) throw new FramingError(`zero byte inside a COBS frame at offset ${i + 1 + zero}`, { recoverable: true })
      out.set(block, o)
      o += block.length
    }
    i = end
    if (code !== 0xff && i < n) out[o++] = 0
  }
  return out.subarray(0, o)
}

function cobsDecoder(maxLength: number): FrameDecoder {
  const maxEncoded = maxLength + Math.floor(maxLength / 254) + 1
  return {
    decode(stream) {
      let start = 0
      while (start < stream.bufferedLength && stream.byteAt(start) === 0) start++
      if (start > 0) stream.skip(start)
      const buffered = stream.bufferedLength
      const end = stream.indexOf(0, stream.scanOffset)
      if (end < 0) {
        if (buffered > maxEncoded) throw stream.tooLargeError(maxLength, 'no COBS zero delimiter')
        stream.scanOffset = buffered
        return NEED_MORE
      }
      if (end > maxEncoded) throw stream.tooLargeError(maxLength, 'COBS frame')
      const encoded = stream.takeFrame(end, 1)
      const payload = cobsDecode(encoded)
      if (payload.length > maxLength) {
        throw new FrameTooLargeError(maxLength, `COBS frame of ${payload.length} bytes exceeds the maximum of ${maxLength}; skipped it`, { resynchronised: true })
      }
      return payload
    },
    describePartial(stream) {
      return `${stream.bufferedLength} bytes received, no COBS zero delimiter yet`
    },
  }
}
