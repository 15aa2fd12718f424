import { byteStreamOf, FramingError, logDebug, silentLogger, type Logger } from '@labwire/core'

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
  private readonly logger: Logger

  constructor(length: number, options: FixedLengthBytesMarshallerOptions = {}) {
    if (!Number.isInteger(length) || length < 0) throw new RangeError(`length must be a non-negative integer, got ${length}`)
    this.length = length
    this.logger = options.logger ?? silentLogger
  }

  /** The payload itself; throws `FramingError` unless it has exactly `length` bytes. */
  readonly marshall = (payload: Uint8Array): Uint8Array => {
    if (payload.length !== this.length) {
      throw new FramingError(`payload has ${payload.length} bytes; this marshaller's frames have exactly ${this.length}`)
    }
    return payload
  }

  /** Read exactly `length` bytes. Rejects with `ConnectionClosedError` (with `partial`) if the stream ends first. */
  readonly unmarshall = (bytes: AsyncIterator<Uint8Array>): Promise<Uint8Array> => {
    const read = byteStreamOf(bytes).readExactly(this.length)
    if (this.logger === silentLogger) return read
    return read.then((payload) => {
      logDebug(this.logger, () => [{ length: payload.length }, 'fixed-length frame read'])
      return payload
    })
  }
}
