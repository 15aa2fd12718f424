/**
 * A reply and its terminator in one buffer for the socket: a pooled `Buffer` (off V8's heap, so
 * the socket's write takes it as is instead of first moving a small on-heap array out of the heap).
 * Internal: not exported from the package.
 *
 * @module
 */
export function replyBytes(reply: Uint8Array, terminator: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(reply.length + terminator.length)
  out.set(reply, 0)
  out.set(terminator, reply.length)
  return out
}
