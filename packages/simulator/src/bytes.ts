/**
 * Byte helpers: text encoding, concatenation, IEEE 488.2 definite-length blocks and waveform
 * generators.
 *
 * @module
 */

const encoder = new TextEncoder()

/** UTF-8 bytes of `text` (bytes pass through). */
export function utf8(text: string | Uint8Array): Uint8Array {
  return typeof text === 'string' ? encoder.encode(text) : text
}

/** Latin-1 bytes of `text`: each UTF-16 code unit below 256 is one byte. */
export function latin1(text: string): Uint8Array {
  const out = new Uint8Array(text.length)
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff
  return out
}

/** Concatenate byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array
  let length = 0
  for (const part of parts) length += part.length
  const out = new Uint8Array(length)
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

/** True when `bytes` ends with `suffix`. */
export function endsWith(bytes: Uint8Array, suffix: Uint8Array): boolean {
  if (suffix.length > bytes.length) return false
  const start = bytes.length - suffix.length
  for (let i = 0; i < suffix.length; i++) if (bytes[start + i] !== suffix[i]) return false
  return true
}

/** Split `bytes` at every occurrence of `delimiter` (like Python's `bytes.split`). */
export function splitBytes(bytes: Uint8Array, delimiter: Uint8Array): Uint8Array[] {
  if (delimiter.length === 0) return [bytes]
  if (delimiter.length === 1 && !bytes.includes(delimiter[0] as number)) return [bytes]
  const parts: Uint8Array[] = []
  let start = 0
  outer: for (let i = 0; i + delimiter.length <= bytes.length; ) {
    for (let j = 0; j < delimiter.length; j++) {
      if (bytes[i + j] !== delimiter[j]) {
        i++
        continue outer
      }
    }
    parts.push(bytes.subarray(start, i))
    i += delimiter.length
    start = i
  }
  parts.push(bytes.subarray(start))
  return parts
}

/** An IEEE 488.2 definite-length arbitrary block: `#<n><length><data>`. */
export function ieeeBlock(data: Uint8Array): Uint8Array {
  const length = String(data.length)
  if (length.length > 9) throw new RangeError('an IEEE 488.2 definite-length block holds at most 999999999 bytes')
  return concatBytes([utf8(`#${length.length}${length}`), data])
}

/** How generated samples are encoded. */
export type SampleFormat = 'float32' | 'float64' | 'int8' | 'int16' | 'int32' | 'uint8' | 'uint16' | 'ascii'

/** Options for {@link encodeSamples}. */
export interface EncodeSamplesOptions {
  format?: SampleFormat
  /** Byte order of binary formats. Default `'little'` (what most instruments send after `FORM:BORD SWAP`). */
  byteOrder?: 'little' | 'big'
  /** For `ascii`: the separator. Default `','`. */
  separator?: string
}

/** Encode sample values as bytes. `ascii` writes them as text (Python `repr`-like shortest form). */
export function encodeSamples(values: readonly number[], options: EncodeSamplesOptions = {}): Uint8Array {
  const format = options.format ?? 'float32'
  const little = (options.byteOrder ?? 'little') === 'little'
  if (format === 'ascii') return utf8(values.map((v) => String(v)).join(options.separator ?? ','))
  const size = { float32: 4, float64: 8, int8: 1, int16: 2, int32: 4, uint8: 1, uint16: 2 }[format]
  const out = new Uint8Array(values.length * size)
  const view = new DataView(out.buffer)
  values.forEach((value, i) => {
    const at = i * size
    switch (format) {
      case 'float32':
        view.setFloat32(at, value, little)
        break
      case 'float64':
        view.setFloat64(at, value, little)
        break
      case 'int8':
        view.setInt8(at, clampInt(value, -128, 127))
        break
      case 'int16':
        view.setInt16(at, clampInt(value, -32768, 32767), little)
        break
      case 'int32':
        view.setInt32(at, clampInt(value, -2147483648, 2147483647), little)
        break
      case 'uint8':
        view.setUint8(at, clampInt(value, 0, 255))
        break
      case 'uint16':
        view.setUint16(at, clampInt(value, 0, 65535), little)
        break
    }
  })
  return out
}

function clampInt(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, Math.round(value)))
}

/** Options for {@link sine}. */
export interface SineOptions {
  /** Number of samples. Default 100. */
  points?: number
  /** Peak amplitude. Default 1. */
  amplitude?: number
  /** Periods across the record. Default 1. */
  cycles?: number
  /** DC offset. Default 0. */
  offset?: number
  /** Phase at the first sample, in radians. Default 0. */
  phase?: number
  /** Peak uniform noise added to each sample. Default 0 (deterministic). */
  noise?: number
}

/** Samples of a sine wave. */
export function sine(options: SineOptions = {}): number[] {
  const points = options.points ?? 100
  const amplitude = options.amplitude ?? 1
  const cycles = options.cycles ?? 1
  const offset = options.offset ?? 0
  const phase = options.phase ?? 0
  const noise = options.noise ?? 0
  const out: number[] = []
  for (let i = 0; i < points; i++) {
    const jitter = noise === 0 ? 0 : (Math.random() * 2 - 1) * noise
    out.push(offset + amplitude * Math.sin(phase + (2 * Math.PI * cycles * i) / points) + jitter)
  }
  return out
}
