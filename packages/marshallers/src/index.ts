/**
 * @packageDocumentation
 * Framers for labwire: a marshaller turns a payload into bytes on the wire and reads one payload
 * back from a connection's byte stream, keeping leftover bytes for the next read.
 *
 * @example
 * ```ts
 * import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
 *
 * const lines = textMarshaller(new SentinelBytesMarshaller('\n'))
 * async function* wire() { yield new TextEncoder().encode('*IDN?\nVOLT?') ; yield new TextEncoder().encode('\n') }
 * const bytes = wire()
 * await lines.unmarshall(bytes) // '*IDN?'
 * await lines.unmarshall(bytes) // 'VOLT?'
 * ```
 */
export * from './sentinel.js'
export * from './fixed-length.js'
export * from './codecs.js'
