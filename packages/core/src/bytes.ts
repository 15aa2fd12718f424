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

const SLAB_BYTES = 16 * 1024
const SMALL_ALLOC = 1024
let slab = new ArrayBuffer(SLAB_BYTES)
let slabUsed = 0

/**
 * A new `Uint8Array` of `length` bytes for a frame a marshaller is about to fill completely (its
 * contents are zero, but callers should not rely on it). Small ones are carved from a shared slab (a
 * bump allocator: a region is never handed out twice), which is much cheaper than a typed array
 * with its own backing store; large ones are allocated on their own.
 */
export function allocFrame(length: number): Uint8Array {
  if (length > SMALL_ALLOC) return new Uint8Array(length)
  if (slabUsed + length > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES)
    slabUsed = 0
  }
  const out = new Uint8Array(slab, slabUsed, length)
  // Keep regions 8-byte aligned so a caller can view them as wider typed arrays.
  slabUsed += (length + 7) & ~7
  return out
}
