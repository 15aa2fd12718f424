import { FramingError } from '@labwire/core'
import type { Codec } from './codecs.js'

/** A checksum algorithm: `compute(bytes)` returns the value as an unsigned number of `width` bits. */
export interface Checksum {
  /** The catalogue name, e.g. `'CRC-16/MODBUS'`. */
  readonly name: string
  /** Width in bits: 8, 16 or 32. */
  readonly width: 8 | 16 | 32
  /** The published check value: `compute` of the ASCII bytes of `'123456789'`. */
  readonly check: number
  compute(bytes: Uint8Array): number
}

/** A table-driven CRC of up to 32 bits (the parameters of the Rocksoft / reveng catalogue). */
function crc(name: string, width: 8 | 16 | 32, poly: number, init: number, reflected: boolean, xorOut: number, check: number): Checksum {
  const table = new Uint32Array(256)
  const mask = width === 32 ? 0xffffffff : (1 << width) - 1
  if (reflected) {
    // Reflected polynomial, shifting right.
    let rpoly = 0
    for (let i = 0; i < width; i++) if ((poly >>> i) & 1) rpoly |= 1 << (width - 1 - i)
    rpoly >>>= 0
    for (let n = 0; n < 256; n++) {
      let c = n
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ rpoly : c >>> 1
      table[n] = c >>> 0
    }
    return {
      name,
      width,
      check,
      compute(bytes) {
        let c = init
        for (let i = 0; i < bytes.length; i++) c = (table[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8)
        return ((c ^ xorOut) & mask) >>> 0
      },
    }
  }
  const top = 2 ** (width - 1)
  for (let n = 0; n < 256; n++) {
    let c = (n << (width - 8)) >>> 0
    for (let k = 0; k < 8; k++) c = c & top ? ((c << 1) ^ poly) >>> 0 : (c << 1) >>> 0
    table[n] = (c & mask) >>> 0
  }
  const shift = width - 8
  return {
    name,
    width,
    check,
    compute(bytes) {
      let c = init
      for (let i = 0; i < bytes.length; i++) c = ((table[((c >>> shift) ^ (bytes[i] as number)) & 0xff] as number) ^ (c << 8)) & mask
      return ((c ^ xorOut) & mask) >>> 0
    },
  }
}

/** CRC-8 (CRC-8/SMBUS): poly 0x07, init 0, check 0xF4. */
export const crc8: Checksum = crc('CRC-8/SMBUS', 8, 0x07, 0x00, false, 0x00, 0xf4)
/** CRC-16/MODBUS: poly 0x8005 reflected, init 0xFFFF, check 0x4B37. Modbus RTU sends it low byte first (`byteOrder: 'little'`). */
export const crc16Modbus: Checksum = crc('CRC-16/MODBUS', 16, 0x8005, 0xffff, true, 0x0000, 0x4b37)
/** CRC-16/CCITT-FALSE (CRC-16/IBM-3740): poly 0x1021, init 0xFFFF, check 0x29B1. */
export const crc16CcittFalse: Checksum = crc('CRC-16/CCITT-FALSE', 16, 0x1021, 0xffff, false, 0x0000, 0x29b1)
/** CRC-16/XMODEM: poly 0x1021, init 0, check 0x31C3. */
export const crc16Xmodem: Checksum = crc('CRC-16/XMODEM', 16, 0x1021, 0x0000, false, 0x0000, 0x31c3)
/** CRC-32 (ISO-HDLC, as in Ethernet, zip, PNG): poly 0x04C11DB7 reflected, init and xorout 0xFFFFFFFF, check 0xCBF43926. */
export const crc32: Checksum = crc('CRC-32', 32, 0x04c11db7, 0xffffffff, true, 0xffffffff, 0xcbf43926)

/** 8-bit arithmetic sum of the bytes (modulo 256); check 0xDD. */
export const sum8: Checksum = {
  name: 'SUM-8',
  width: 8,
  check: 0xdd,
  compute(bytes) {
    let s = 0
    for (let i = 0; i < bytes.length; i++) s += bytes[i] as number
    return s & 0xff
  },
}

/** XOR of the bytes (BCC, as in NMEA sentences); check 0x31. */
export const xor8: Checksum = {
  name: 'XOR-8',
  width: 8,
  check: 0x31,
  compute(bytes) {
    let x = 0
    for (let i = 0; i < bytes.length; i++) x ^= bytes[i] as number
    return x
  },
}

/** LRC (Modbus ASCII): the two's complement of the 8-bit sum, so bytes + LRC sum to 0; check 0x23. */
export const lrc8: Checksum = {
  name: 'LRC-8',
  width: 8,
  check: 0x23,
  compute(bytes) {
    return -sum8.compute(bytes) & 0xff
  },
}

/** Options for {@link checksumCodec}. */
export interface ChecksumCodecOptions {
  /** How the checksum is written after the payload: `'binary'` (default: width/8 bytes) or `'hex'` (width/4 ASCII hex digits, upper case on encode, either case on decode). */
  encoding?: 'binary' | 'hex'
  /** Byte order of a binary checksum. Default `'big'`; Modbus RTU's CRC is `'little'`. */
  byteOrder?: 'big' | 'little'
}

function hexOf(value: number, digits: number): string {
  return value.toString(16).toUpperCase().padStart(digits, '0')
}

/**
 * A codec that appends `algorithm`'s checksum of the payload on encode, and on decode verifies
 * and strips it. A mismatch (or a frame too short to hold a checksum) is a `FramingError` naming
 * the expected and actual values; it is `recoverable`, since the framer has consumed the frame.
 *
 * @example
 * ```ts
 * const m = compose(new LengthFieldBytesMarshaller({ lengthFieldLength: 1, initialBytesToStrip: 1 }), checksumCodec(crc16Modbus, { byteOrder: 'little' }))
 * ```
 */
export function checksumCodec(algorithm: Checksum, options: ChecksumCodecOptions = {}): Codec<Uint8Array> {
  if (typeof algorithm !== 'object' || algorithm === null || typeof algorithm.compute !== 'function' || ![8, 16, 32].includes(algorithm.width)) {
    throw new TypeError('checksumCodec: algorithm must be a checksum such as crc16Modbus ({ compute, width, name })')
  }
  const encoding = options.encoding ?? 'binary'
  if (encoding !== 'binary' && encoding !== 'hex') throw new RangeError(`checksumCodec: encoding must be 'binary' or 'hex', got ${String(encoding)}`)
  const byteOrder = options.byteOrder ?? 'big'
  if (byteOrder !== 'big' && byteOrder !== 'little') throw new RangeError(`checksumCodec: byteOrder must be 'big' or 'little', got ${String(byteOrder)}`)
  const bytes = algorithm.width / 8
  const size = encoding === 'hex' ? bytes * 2 : bytes
  const little = byteOrder === 'little'
  const write = (out: Uint8Array, at: number, value: number): void => {
    if (encoding === 'hex') {
      const text = hexOf(value, size)
      for (let i = 0; i < size; i++) out[at + i] = text.charCodeAt(i)
      return
    }
    for (let i = 0; i < bytes; i++) {
      const byte = (value >>> (8 * i)) & 0xff
      out[little ? at + i : at + bytes - 1 - i] = byte
    }
  }
  const read = (frame: Uint8Array, at: number): number => {
    if (encoding === 'hex') {
      let text = ''
      for (let i = 0; i < size; i++) text += String.fromCharCode(frame[at + i] as number)
      if (!/^[0-9a-fA-F]+$/.test(text)) throw new FramingError(`${algorithm.name} checksum field '${text}' is not ${size} hex digits`, { recoverable: true })
      return Number.parseInt(text, 16)
    }
    let value = 0
    for (let i = 0; i < bytes; i++) value = value * 256 + (frame[little ? at + bytes - 1 - i : at + i] as number)
    return value
  }
  return {
    encode(payload) {
      if (!(payload instanceof Uint8Array)) throw new TypeError(`checksumCodec takes a Uint8Array payload, got ${typeof payload}`)
      const out = new Uint8Array(payload.length + size)
      out.set(payload, 0)
      write(out, payload.length, algorithm.compute(payload))
      return out
    },
    decode(frame) {
      if (frame.length < size) {
        throw new FramingError(`frame of ${frame.length} bytes is too short to hold a ${algorithm.name} checksum (${size} bytes)`, { recoverable: true })
      }
      const body = frame.subarray(0, frame.length - size)
      const actual = read(frame, frame.length - size)
      const expected = algorithm.compute(body)
      if (actual !== expected) {
        const digits = algorithm.width / 4
        throw new FramingError(`${algorithm.name} mismatch: expected 0x${hexOf(expected, digits)}, got 0x${hexOf(actual, digits)} (frame of ${frame.length} bytes)`, {
          recoverable: true,
        })
      }
      return body
    },
  }
}
