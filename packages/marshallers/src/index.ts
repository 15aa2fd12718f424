/**
 * @packageDocumentation
 * Framers, checksums and payload codecs for labwire: a framer turns a payload into bytes on the
 * wire and reads one payload back from a connection's byte stream (a synchronous decoder over
 * the buffered stream, leftovers kept for the next read); codecs turn payloads into values;
 * `compose` puts them together.
 *
 * @example
 * ```ts
 * import { SentinelBytesMarshaller, compose, textCodec } from '@labwire/marshallers'
 *
 * const lines = compose(new SentinelBytesMarshaller('\n'), textCodec())
 * async function* wire() { yield new TextEncoder().encode('*IDN?\nVOLT?') ; yield new TextEncoder().encode('\n') }
 * const bytes = wire()
 * await lines.unmarshall(bytes) // '*IDN?'
 * await lines.unmarshall(bytes) // 'VOLT?'
 * ```
 */
export * from './sentinel.js'
export * from './fixed-length.js'
export * from './delimited.js'
export * from './length-field.js'
export * from './start-stop.js'
export * from './idle-gap.js'
export * from './ieee-block.js'
export * from './slip.js'
export * from './cobs.js'
export * from './checksums.js'
export * from './codecs.js'
export { type TooLargePolicy, type FramerOptions } from './framer.js'
