import { decodeFrom, exactDecoder, FramingError, logDebug, silentLogger, type FrameDecoder, type Logger } from '@labwire/core'
import { bytesExpected } from './sentinel.js'

/** Options for {@link FixedLengthBytesMarshaller}. */
export interface FixedLengthBytesMarshallerOptions {
  logger?: Logger
}

/**
 * Frames of exactly `length` bytes, no delimiter.
 *
 * `marshall` passes the payload through if it has exactly `length` bytes, else throws
 * `FramingError` naming both lengths; `unmarshall` reads exactly `length` bytes, keeping any
 * overshoot for the next call. Both methods may be passed detached.
 */
export class FixedLengthBytesMarshaller {
  /** The frame length in bytes. */
  readonly length: number
  /** The synchronous decoder behind `unmarshall`. */
  readonly decoder: FrameDecoder
  private readonly logger: Logger

  constructor(length: number, options: FixedLengthBytesMarshallerOptions = {}) {
    // A zero-length frame would consume nothing: a server would call its handler forever.
    if (!Number.isInteger(length) || length < 1) throw new RangeError(`FixedLengthBytesMarshaller: length must be a positive integer, got ${String(length)}`)
    this.length = length
    this.decoder = exactDecoder(length)
    this.logger = options.logger ?? silentLogger
    Object.defineProperty(this.unmarshall, 'decoder', { value: this.decoder })
  }

  /** The payload itself; throws `FramingError` unless it has exactly `length` bytes. */
  readonly marshall = (payload: Uint8Array): Uint8Array => {
    if (!(payload instanceof Uint8Array)) throw bytesExpected(payload)
    if (payload.length !== this.length) {
      throw new FramingError(`payload has ${payload.length} bytes; this marshaller's frames have exactly ${this.length}`)
    }
    return payload
  }

  /** Read exactly `length` bytes. Rejects with `ConnectionClosedError` (with `partial`) if the stream ends first. */
  readonly unmarshall = (bytes: AsyncIterator<Uint8Array>): Promise<Uint8Array> => {
    const read = decodeFrom(this.decoder, bytes)
    if (this.logger === silentLogger) return read
    return read.then((payload) => {
      logDebug(this.logger, () => [{ length: payload.length }, 'fixed-length frame read'])
      return payload
    })
  }
}
