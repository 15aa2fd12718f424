const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** UTF-8 encode a string; pass bytes through unchanged. */
export function toBytes(value: Uint8Array | string): Uint8Array {
  return typeof value === 'string' ? encoder.encode(value) : value
}

/** UTF-8 decode bytes. */
export function toText(bytes: Uint8Array): string {
  return decoder.decode(bytes)
}

/** Concatenate `chunks` (whose lengths add up to `length`, if given) with one copy. A single chunk is returned as is. */
export function concatBytes(chunks: readonly Uint8Array[], length?: number): Uint8Array {
  if (chunks.length === 1) return chunks[0] as Uint8Array
  let total = length ?? 0
  if (length === undefined) for (const chunk of chunks) total += chunk.length
  const out = new Uint8Array(total)
  let offset = 0
  for (const chunk of chunks) {
    out.set(chunk, offset)
    offset += chunk.length
  }
  return out
}

/** A plain `Uint8Array` view over the same memory (so a `Buffer` is never handed to users). */
export function asUint8Array(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}
