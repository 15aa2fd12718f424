import { decoderOf, FramingError, NEED_MORE, toBytes, unmarshallerOf, type FrameDecoder } from '@labwire/core'
import { decode as msgpackDecode, encode as msgpackEncode } from '@msgpack/msgpack'

/** A bytes marshaller (a framer): bytes in, bytes out, both methods usable detached. */
export interface BytesMarshaller {
  readonly marshall: (payload: Uint8Array) => Uint8Array
  readonly unmarshall: (bytes: AsyncIterator<Uint8Array>) => Promise<Uint8Array>
}

/** A marshaller of values of type `T`. */
export interface Marshaller<T> {
  marshall: (value: T) => Uint8Array
  unmarshall: (bytes: AsyncIterator<Uint8Array>) => Promise<T>
}

/**
 * A payload codec: `decode` turns what the layer below delivers (`Payload`, bytes for the first
 * codec after the framer) into a `Value`, `encode` does the reverse. Either may throw; a decode
 * error becomes a recoverable `FramingError` (the frame was already read whole).
 */
export interface Codec<Value, Payload = Uint8Array> {
  encode(value: Value): Payload
  decode(payload: Payload): Value
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a chain of codecs of unrelated types
type AnyCodec = Codec<any, any>

/**
 * Build a marshaller from a framer and codecs, listed from the wire outwards: on decode the
 * framer's frame goes through `codecs[0]`, then `codecs[1]`, …; on encode the other way round.
 * The result is a synchronous decoder (fast path) when the framer is one; a codec that throws
 * on decode rejects that one read with a recoverable `FramingError` and the stream stays in step.
 *
 * @example
 * ```ts
 * const json = compose(new LengthFieldBytesMarshaller({ lengthFieldLength: 4, initialBytesToStrip: 4 }), jsonCodec())
 * const crcLines = compose(new SentinelBytesMarshaller('\n'), checksumCodec(crc8, { encoding: 'hex' }), textCodec())
 * ```
 */
export function compose(framer: BytesMarshaller): Marshaller<Uint8Array>
export function compose<A>(framer: BytesMarshaller, c1: Codec<A>): Marshaller<A>
export function compose<A, B>(framer: BytesMarshaller, c1: Codec<A>, c2: Codec<B, A>): Marshaller<B>
export function compose<A, B, C>(framer: BytesMarshaller, c1: Codec<A>, c2: Codec<B, A>, c3: Codec<C, B>): Marshaller<C>
export function compose<A, B, C, D>(framer: BytesMarshaller, c1: Codec<A>, c2: Codec<B, A>, c3: Codec<C, B>, c4: Codec<D, C>): Marshaller<D>
export function compose<T>(framer: BytesMarshaller, ...codecs: AnyCodec[]): Marshaller<T>
export function compose<T>(framer: BytesMarshaller, ...codecs: AnyCodec[]): Marshaller<T> {
  if (typeof framer !== 'object' || framer === null || typeof framer.marshall !== 'function' || typeof framer.unmarshall !== 'function') {
    throw new TypeError('compose: the first argument must be a framer with marshall and unmarshall')
  }
  for (const codec of codecs) {
    if (typeof codec !== 'object' || codec === null || typeof codec.encode !== 'function' || typeof codec.decode !== 'function') {
      throw new TypeError('compose: every codec must have encode(value) and decode(payload)')
    }
  }
  const frameMarshall = framer.marshall
  const frameUnmarshall = framer.unmarshall
  const count = codecs.length
  const marshall = (value: T): Uint8Array => {
    let payload: unknown = value
    for (let i = count - 1; i >= 0; i--) payload = (codecs[i] as AnyCodec).encode(payload)
    return frameMarshall(payload as Uint8Array)
  }
  const decodeValue = (frame: Uint8Array): T => {
    let value: unknown = frame
    let i = 0
    try {
      for (; i < count; i++) value = (codecs[i] as AnyCodec).decode(value)
    } catch (error) {
      throw asRecoverable(error, i, frame.length)
    }
    return value as T
  }
  if (count === 0) return { marshall, unmarshall: frameUnmarshall as Marshaller<T>['unmarshall'] }
  const frames = decoderOf<Uint8Array>(frameUnmarshall)
  if (frames !== undefined) {
    const decoder: FrameDecoder<T> = {
      decode(stream) {
        const frame = frames.decode(stream)
        return frame === NEED_MORE ? NEED_MORE : decodeValue(frame)
      },
    }
    if (frames.describePartial !== undefined) decoder.describePartial = frames.describePartial.bind(frames)
    return { marshall, unmarshall: unmarshallerOf(decoder) }
  }
  return { marshall, unmarshall: async (bytes) => decodeValue(await frameUnmarshall(bytes)) }
}

function asRecoverable(error: unknown, index: number, length: number): FramingError {
  if (error instanceof FramingError && error.recoverable) return error
  const message = error instanceof Error ? error.message : String(error)
  return new FramingError(`codec ${index + 1} could not decode a frame of ${length} bytes: ${message}`, { cause: error, recoverable: true })
}

/** Text encodings {@link textCodec} knows. */
export type TextEncoding = 'utf-8' | 'latin1' | 'ascii'

/** Options for {@link textCodec}. */
export interface TextCodecOptions {
  /** UTF-8 only: reject malformed bytes with a `FramingError` instead of replacing them with U+FFFD. Default false. */
  fatal?: boolean
}

/**
 * Strings as bytes. `'utf-8'` (default); `'latin1'` maps bytes 0–255 to U+0000–U+00FF one to one
 * (every byte survives); `'ascii'` refuses bytes over 0x7F (a `FramingError`) instead of silently
 * dropping bit 7. Encoding a character the encoding cannot hold throws `FramingError`.
 */
export function textCodec(encoding: TextEncoding = 'utf-8', options: TextCodecOptions = {}): Codec<string> {
  if (encoding === 'utf-8') {
    const decoder = new TextDecoder('utf-8', { fatal: options.fatal === true })
    return {
      encode: (value) => toBytes(checkString(value)),
      decode: (payload) => decoder.decode(payload),
    }
  }
  if (encoding !== 'latin1' && encoding !== 'ascii') throw new RangeError(`textCodec: encoding must be 'utf-8', 'latin1' or 'ascii', got ${String(encoding)}`)
  const limit = encoding === 'ascii' ? 0x7f : 0xff
  return {
    encode(value) {
      const text = checkString(value)
      const out = new Uint8Array(text.length)
      for (let i = 0; i < text.length; i++) {
        const code = text.charCodeAt(i)
        if (code > limit) throw new FramingError(`${encoding} cannot encode '${text[i] ?? ''}' (U+${code.toString(16).toUpperCase().padStart(4, '0')}) at index ${i}`)
        out[i] = code
      }
      return out
    },
    decode(payload) {
      let text = ''
      for (let i = 0; i < payload.length; i += 4096) {
        const part = payload.subarray(i, i + 4096)
        if (limit === 0x7f) {
          const bad = part.findIndex((b) => b > 0x7f)
          if (bad >= 0) throw new FramingError(`byte 0x${(part[bad] as number).toString(16)} at offset ${i + bad} is not ASCII`, { recoverable: true })
        }
        text += String.fromCharCode(...part)
      }
      return text
    },
  }
}

function checkString(value: unknown): string {
  if (typeof value !== 'string') throw new TypeError(`a text codec takes a string, got ${value === null ? 'null' : typeof value}`)
  return value
}

/** JSON values as UTF-8 text. Decoding invalid JSON is a recoverable `FramingError`. */
export function jsonCodec<T = unknown>(): Codec<T> {
  const decoder = new TextDecoder('utf-8', { fatal: true })
  return {
    encode(value) {
      const text = JSON.stringify(value)
      if (typeof text !== 'string') throw new TypeError(`jsonCodec cannot encode ${typeof value}`)
      return toBytes(text)
    },
    decode(payload) {
      try {
        return JSON.parse(decoder.decode(payload)) as T
      } catch (error) {
        throw new FramingError(`invalid JSON in a frame of ${payload.length} bytes: ${error instanceof Error ? error.message : String(error)}`, { cause: error, recoverable: true })
      }
    },
  }
}

/**
 * MessagePack values (with `@msgpack/msgpack`). Decoding malformed data is a recoverable `FramingError`;
 * so is a map with the key `__proto__`, which the decoder refuses rather than risk prototype pollution.
 */
export function msgpackCodec<T = unknown>(): Codec<T> {
  return {
    encode: (value) => msgpackEncode(value),
    decode(payload) {
      try {
        return msgpackDecode(payload) as T
      } catch (error) {
        throw new FramingError(`invalid MessagePack in a frame of ${payload.length} bytes: ${error instanceof Error ? error.message : String(error)}`, { cause: error, recoverable: true })
      }
    },
  }
}

/**
 * Wrap a bytes marshaller with an encoder and decoder for `T` (`compose(inner, { encode, decode })`).
 * When the inner marshaller is a synchronous decoder (every labwire framer is), so is the result.
 */
export function mapMarshaller<T>(inner: BytesMarshaller, encode: (value: T) => Uint8Array, decode: (payload: Uint8Array) => T): Marshaller<T> {
  return compose(inner, { encode, decode })
}

/**
 * Wrap a bytes marshaller so that payloads are UTF-8 strings (`compose(inner, textCodec())`).
 *
 * @example
 * ```ts
 * const { marshall, unmarshall } = textMarshaller(new SentinelBytesMarshaller('\n')) // (string) => bytes, (bytes) => Promise<string>
 * ```
 */
export function textMarshaller(inner: BytesMarshaller): Marshaller<string> {
  return compose(inner, textCodec())
}
