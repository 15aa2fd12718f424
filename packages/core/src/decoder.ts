/**
 * The shared adapter from a synchronous {@link FrameDecoder} to the public async `unmarshall`:
 * {@link decodeFrom}, and the decoder an unmarshaller carries. It uses both the decoder contract
 * (`frame-decoder.ts`) and the byte stream; neither of those imports it.
 *
 * @module
 */
import { byteStreamOf } from './byte-stream.js'
import type { FrameDecoder } from './frame-decoder.js'

/**
 * The shared adapter: read one frame from any `AsyncIterator<Uint8Array>` with `decoder`.
 * Decodes synchronously from what is buffered; awaits only when more bytes are really needed.
 * Rejects with the decoder's error, the stream's `TimeoutError` / `ConnectionError`, or
 * `ConnectionClosedError` (with `partial`) when the stream ends mid-frame.
 */
export function decodeFrom<T>(decoder: FrameDecoder<T>, bytes: AsyncIterator<Uint8Array>): Promise<T> {
  try {
    return byteStreamOf(bytes).read(decoder)
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new TypeError(String(error)))
  }
}

/** An unmarshaller function that carries its decoder, so servers and clients can take the synchronous path. */
export type DecodingUnmarshaller<T> = ((bytes: AsyncIterator<Uint8Array>) => Promise<T>) & { readonly decoder: FrameDecoder<T> }

/** The `unmarshall` function of a decoder: `decodeFrom(decoder, bytes)`, with the decoder attached (see {@link decoderOf}). */
export function unmarshallerOf<T>(decoder: FrameDecoder<T>): DecodingUnmarshaller<T> {
  const unmarshall = (bytes: AsyncIterator<Uint8Array>): Promise<T> => decodeFrom(decoder, bytes)
  return Object.assign(unmarshall, { decoder })
}

/** The decoder behind an unmarshaller made by {@link unmarshallerOf}, or `undefined` for any other function (which then runs on the async path). */
export function decoderOf<T>(unmarshall: unknown): FrameDecoder<T> | undefined {
  if (typeof unmarshall !== 'function') return undefined
  const decoder = (unmarshall as { decoder?: unknown }).decoder
  return typeof decoder === 'object' && decoder !== null && typeof (decoder as FrameDecoder<T>).decode === 'function' ? (decoder as FrameDecoder<T>) : undefined
}

