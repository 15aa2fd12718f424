/**
 * @packageDocumentation
 * The labwire contract: the transport seam, error classes, the logger interface, the buffered
 * byte stream every framer reads from, and an in-memory transport.
 *
 * @example
 * ```ts
 * import { ByteStream } from '@labwire/core'
 *
 * async function* chunks() { yield new TextEncoder().encode('ab\ncd'); yield new TextEncoder().encode('\n') }
 * const stream = new ByteStream(chunks())
 * await stream.readUntil(new Uint8Array([10])) // 'ab'
 * await stream.readUntil(new Uint8Array([10])) // 'cd': the leftover was kept
 * ```
 */
export * from './errors.js'
export type * from './types.js'
export * from './connection.js'
export * from './logger.js'
export * from './abort.js'
export * from './bytes.js'
export * from './fifo.js'
export * from './byte-queue.js'
export * from './byte-stream.js'
export * from './frame-decoder.js'
export * from './decoder.js'
export * from './validate.js'
export * from './serve.js'
export * from './diagnostics.js'
export * from './kernel.js'
export * from './memory.js'
export * from './trace.js'
export * from './adopt.js'
