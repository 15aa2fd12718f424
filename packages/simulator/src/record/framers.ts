/**
 * Framers by name, for the proxy and the recorder: each name gives a synchronous decoder from
 * `@labwire/marshallers` (the proxy keeps the raw bytes of every frame, so what it forwards is
 * byte-identical to what it read).
 *
 * @module
 */
import { NEED_MORE, type ByteStream, type FrameDecoder } from '@labwire/core'
import { CobsBytesMarshaller, IeeeBlockMarshaller, LengthFieldBytesMarshaller, SentinelBytesMarshaller, SlipBytesMarshaller } from '@labwire/marshallers'

/** A framer chosen by name: its decoder and, for line framers, the terminator. */
export interface NamedFramer {
  readonly name: string
  readonly decoder: FrameDecoder
  /** The line terminator, for line framers (`lf`, `crlf`, `cr`, `sentinel:…`, `scpi`). */
  readonly terminator: Uint8Array | undefined
}

/** The framer names {@link framerByName} knows, for help texts. */
export const FRAMER_NAMES = [
  'scpi      lines ending in \\n, and IEEE 488.2 definite blocks (#<n><len><data>\\n) as one frame (default)',
  'lf | crlf | cr   lines ending in \\n, \\r\\n, \\r',
  'sentinel:TEXT    frames ending in TEXT (escapes \\n \\r \\t \\xNN), e.g. "sentinel:sw1> "',
  'u16be | u16le | u32be | u32le   a 2- or 4-byte length field, then that many bytes',
  'slip | cobs      SLIP (RFC 1055) or COBS frames',
] as const

/** Thrown by {@link framerByName} for an unknown name. */
export class UnknownFramerError extends RangeError {
  override readonly name = 'UnknownFramerError'
  readonly code = 'ERR_UNKNOWN_FRAMER'
}

/** Turn `\n`, `\r`, `\t`, `\0`, `\\`, `\xNN` escapes into bytes. */
export function unescapeBytes(text: string): Uint8Array {
  const out: number[] = []
  const encoder = new TextEncoder()
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string
    if (ch !== '\\') {
      out.push(...encoder.encode(ch))
      continue
    }
    const next = text[++i]
    if (next === 'n') out.push(0x0a)
    else if (next === 'r') out.push(0x0d)
    else if (next === 't') out.push(0x09)
    else if (next === '0') out.push(0x00)
    else if (next === '\\') out.push(0x5c)
    else if (next === 'x' && /^[0-9a-f]{2}$/i.test(text.slice(i + 1, i + 3))) {
      out.push(parseInt(text.slice(i + 1, i + 3), 16))
      i += 2
    } else throw new UnknownFramerError(`bad escape "\\${next ?? ''}" in "${text}" (known: \\n \\r \\t \\0 \\\\ \\xNN)`)
  }
  return Uint8Array.from(out)
}

/**
 * A framer by name (see {@link FRAMER_NAMES}); `maxLength` bounds every frame (default 1 MiB).
 * Throws {@link UnknownFramerError}.
 */
export function framerByName(name: string, options: { maxLength?: number } = {}): NamedFramer {
  const maxLength = options.maxLength ?? 1024 * 1024
  const line = (terminator: Uint8Array): NamedFramer => ({ name, terminator, decoder: new SentinelBytesMarshaller(terminator, { maxLength }).decoder })
  const lower = name.toLowerCase()
  if (lower === 'lf') return line(Uint8Array.of(0x0a))
  if (lower === 'crlf') return line(Uint8Array.of(0x0d, 0x0a))
  if (lower === 'cr') return line(Uint8Array.of(0x0d))
  if (lower.startsWith('sentinel:')) {
    const terminator = unescapeBytes(name.slice('sentinel:'.length))
    if (terminator.length === 0) throw new UnknownFramerError('sentinel: needs a terminator, e.g. sentinel:\\r\\n')
    return line(terminator)
  }
  if (lower === 'scpi') return { name, terminator: Uint8Array.of(0x0a), decoder: lineOrBlockDecoder(Uint8Array.of(0x0a), maxLength) }
  const length = /^u(16|32)(be|le)$/.exec(lower)
  if (length !== null) {
    const m = new LengthFieldBytesMarshaller({ lengthFieldLength: length[1] === '16' ? 2 : 4, littleEndian: length[2] === 'le', maxLength })
    return { name, terminator: undefined, decoder: m.decoder }
  }
  if (lower === 'slip') return { name, terminator: undefined, decoder: new SlipBytesMarshaller({ maxLength }).decoder }
  if (lower === 'cobs') return { name, terminator: undefined, decoder: new CobsBytesMarshaller({ maxLength }).decoder }
  throw new UnknownFramerError(`unknown framer "${name}"; known:\n${FRAMER_NAMES.map((n) => `  ${n}`).join('\n')}`)
}

/**
 * SCPI replies: a text line, or an IEEE 488.2 definite block `#<n><len><data>` plus the
 * terminator, as one frame (a block's data may hold the terminator byte).
 */
function lineOrBlockDecoder(terminator: Uint8Array, maxLength: number): FrameDecoder {
  const lines = new SentinelBytesMarshaller(terminator, { maxLength }).decoder
  const blocks = new IeeeBlockMarshaller({ terminator, maxLength }).decoder
  return {
    decode(stream: ByteStream) {
      if (stream.bufferedLength === 0) return NEED_MORE
      if (stream.byteAt(0) !== 0x23) return lines.decode(stream)
      const digit = stream.byteAt(1)
      if (digit === undefined) return NEED_MORE
      // '#0' (indefinite) and '#' followed by a non-digit are read as a line.
      if (digit < 0x31 || digit > 0x39) return lines.decode(stream)
      return blocks.decode(stream)
    },
  }
}
