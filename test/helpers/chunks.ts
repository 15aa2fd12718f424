/**
 * Helpers for feeding bytes to framers in chosen pieces: split a byte array into chunks and
 * serve the chunks from a plain async generator (not a ByteStream), as a transport would.
 */

/**
 * Split `bytes` into chunks whose sizes are taken from `sizes` in turn, cycling when the list runs
 * out; the last chunk may be shorter. An empty `sizes` gives one chunk. Each chunk is a copy.
 */
export function chunksOf(bytes: Uint8Array, sizes: readonly number[]): Uint8Array[] {
  for (const size of sizes) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`chunk sizes must be positive integers, got ${size}`)
  }
  if (sizes.length === 0) return bytes.length === 0 ? [] : [bytes.slice()]
  const out: Uint8Array[] = []
  let offset = 0
  for (let i = 0; offset < bytes.length; i++) {
    const size = sizes[i % sizes.length] as number
    out.push(bytes.slice(offset, offset + size))
    offset += size
  }
  return out
}

/** One chunk per byte. */
export function byteAtATime(bytes: Uint8Array): Uint8Array[] {
  return chunksOf(bytes, [1])
}

/** A plain async generator yielding `chunks` in order, then ending. */
export async function* fromChunks(chunks: Iterable<Uint8Array>): AsyncGenerator<Uint8Array, void, undefined> {
  for (const chunk of chunks) {
    await Promise.resolve()
    yield chunk
  }
}

/** Concatenate byte arrays into a new one. */
export function concat(...parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

const encoder = new TextEncoder()

/** UTF-8 bytes of `text`. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text)
}
