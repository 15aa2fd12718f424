import { decoderOf, NEED_MORE, toBytes, toText, unmarshallerOf, type FrameDecoder } from '@labwire/core'

/**
 * Compose a bytes marshaller with payload codecs, so an application speaks strings (or any
 * type) while the framer deals in bytes.
 *
 * @example
 * ```ts
 * const line = new SentinelBytesMarshaller('\n')
 * const { marshall, unmarshall } = textMarshaller(line) // (string) => bytes, (bytes) => Promise<string>
 * ```
 */
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
 * Wrap a bytes marshaller with an encoder and decoder for `T`. When the inner marshaller is a
 * synchronous decoder (every labwire framer is), so is the result.
 */
export function mapMarshaller<T>(inner: BytesMarshaller, encode: (value: T) => Uint8Array, decode: (payload: Uint8Array) => T): Marshaller<T> {
  const marshall = (value: T): Uint8Array => inner.marshall(encode(value))
  const frames = decoderOf<Uint8Array>(inner.unmarshall)
  if (frames !== undefined) {
    const decoder: FrameDecoder<T> = {
      decode(stream) {
        const frame = frames.decode(stream)
        return frame === NEED_MORE ? NEED_MORE : decode(frame)
      },
    }
    return { marshall, unmarshall: unmarshallerOf(decoder) }
  }
  return {
    marshall,
    unmarshall: async (bytes) => decode(await inner.unmarshall(bytes)),
  }
}

/** Wrap a bytes marshaller so that payloads are UTF-8 strings. */
export function textMarshaller(inner: BytesMarshaller): Marshaller<string> {
  return mapMarshaller(inner, (value: string) => {
    if (typeof value !== 'string') throw new TypeError(`textMarshaller takes a string, got ${value === null ? 'null' : typeof value}`)
    return toBytes(value)
  }, toText)
}
