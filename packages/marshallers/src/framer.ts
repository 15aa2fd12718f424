import { decodeFrom, DEFAULT_MAX_LENGTH, type FrameDecoder } from '@labwire/core'

/**
 * What a delimiter-style framer does with a frame over `maxLength`: `'fail'` (default) rejects at
 * once and leaves the stream where it is (fail fast: a server closes that connection); `'skip'`
 * discards the frame through its end marker, holding only a few bytes meanwhile, and rejects with a
 * `FrameTooLargeError` whose `resynchronised` (and `recoverable`) is true; later frames are delivered.
 */
export type TooLargePolicy = 'fail' | 'skip'

/** Options every framer takes. */
export interface FramerOptions {
  /** Maximum payload length in bytes. Default 1 MiB. Exceeding it rejects with `FrameTooLargeError` as soon as it is known. */
  maxLength?: number
}

/** `options.maxLength` checked (a non-negative integer), or the 1 MiB default. */
export function checkMaxLength(owner: string, value: unknown): number {
  if (value === undefined) return DEFAULT_MAX_LENGTH
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new RangeError(`${owner}: maxLength must be a non-negative integer, got ${describe(value)}`)
  }
  return value
}

/** `options.tooLarge` checked. */
export function checkTooLarge(owner: string, value: unknown): TooLargePolicy {
  if (value === undefined) return 'fail'
  if (value !== 'fail' && value !== 'skip') throw new RangeError(`${owner}: tooLarge must be 'fail' or 'skip', got ${describe(value)}`)
  return value
}

/** The detached `unmarshall` of a decoder, carrying it (so servers and clients take the synchronous path). */
export function unmarshallOf<T>(decoder: FrameDecoder<T>): (bytes: AsyncIterator<Uint8Array>) => Promise<T> {
  const unmarshall = (bytes: AsyncIterator<Uint8Array>): Promise<T> => decodeFrom(decoder, bytes)
  Object.defineProperty(unmarshall, 'decoder', { value: decoder })
  return unmarshall
}

/** The TypeError for a non-bytes payload handed to a bytes framer. */
export function notBytes(owner: string, payload: unknown): TypeError {
  const what = typeof payload === 'string' ? 'a string; compose it with textCodec() to send text' : payload === null ? 'null' : typeof payload
  return new TypeError(`${owner}.marshall takes a Uint8Array payload, got ${what}`)
}

/** `a` followed by `b` (one copy). */
export function join(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a, 0)
  out.set(b, a.length)
  return out
}

/** Hex of a few bytes for error messages. */
export function hex(bytes: Uint8Array, max = 16): string {
  const shown = Array.from(bytes.subarray(0, max), (b) => b.toString(16).padStart(2, '0')).join(' ')
  return bytes.length > max ? `${shown} …` : shown
}

/** A value named in an error message. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' || value === undefined || value === null) return String(value)
  return typeof value
}
