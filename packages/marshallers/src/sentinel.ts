import { allocFrame, decodeFrom, delimiterDecoder, DEFAULT_MAX_LENGTH, logDebug, silentLogger, toBytes, type FrameDecoder, type Logger } from '@labwire/core'

/** Options for {@link SentinelBytesMarshaller}. */
export interface SentinelBytesMarshallerOptions {
  /** Maximum payload length in bytes (sentinel excluded). Default 1 MiB. Exceeding it rejects with `FrameTooLargeError`. */
  maxLength?: number
  /**
   * A frame over `maxLength`: `'fail'` (default) rejects at once and leaves the stream where it is,
   * so servers close that connection and client sessions become unusable (fail fast). `'skip'`
   * discards the frame through its sentinel (memory stays bounded) and rejects with a
   * `FrameTooLargeError` whose `resynchronised` is true; servers then log it and go on serving the
   * connection, and the client call whose reply it was rejects while the session stays usable.
   */
  tooLarge?: 'fail' | 'skip'
  logger?: Logger
}

/**
 * Frames payloads with a terminating sentinel, e.g. `'\n'` or `'\r\n'` for SCPI and CLI protocols.
 *
 * `marshall` appends the sentinel; `unmarshall` reads one frame from the byte stream and returns
 * the payload without it. Bytes after the sentinel stay in the stream for the next call. Both
 * methods may be passed detached: `new ApplicationClient(t, m.marshall, m.unmarshall)`.
 */
export class SentinelBytesMarshaller {
  /** The sentinel, as bytes. */
  readonly sentinel: Uint8Array
  /** Maximum payload length in bytes. */
  readonly maxLength: number
  /** What happens to a frame over `maxLength`. */
  readonly tooLarge: 'fail' | 'skip'
  /** The synchronous decoder behind `unmarshall` (the decoder contract of `@labwire/core`). */
  readonly decoder: FrameDecoder
  private readonly logger: Logger

  constructor(sentinel: Uint8Array | string, options: SentinelBytesMarshallerOptions = {}) {
    const bytes = toBytes(sentinel)
    if (bytes.length === 0) throw new RangeError('sentinel must not be empty')
    const maxLength = options.maxLength ?? DEFAULT_MAX_LENGTH
    if (!Number.isInteger(maxLength) || maxLength < 0) throw new RangeError(`maxLength must be a non-negative integer, got ${maxLength}`)
    this.sentinel = bytes.slice()
    this.maxLength = maxLength
    this.tooLarge = options.tooLarge ?? 'fail'
    if (this.tooLarge !== 'fail' && this.tooLarge !== 'skip') throw new RangeError(`tooLarge must be 'fail' or 'skip', got ${String(this.tooLarge)}`)
    this.decoder = delimiterDecoder(this.sentinel, { maxLength, tooLarge: this.tooLarge })
    this.logger = options.logger ?? silentLogger
    // Detached `unmarshall` still carries the decoder, so servers and clients take the synchronous path.
    Object.defineProperty(this.unmarshall, 'decoder', { value: this.decoder })
  }

  /** The payload followed by the sentinel. */
  readonly marshall = (payload: Uint8Array): Uint8Array => {
    if (!(payload instanceof Uint8Array)) throw bytesExpected(payload)
    const out = allocFrame(payload.length + this.sentinel.length)
    out.set(payload, 0)
    out.set(this.sentinel, payload.length)
    return out
  }

  /**
   * Read one frame and resolve with its payload (sentinel removed). Rejects with
   * `FrameTooLargeError` past `maxLength`, `ConnectionClosedError` (with `partial`) if the
   * stream ends mid-frame.
   */
  readonly unmarshall = (bytes: AsyncIterator<Uint8Array>): Promise<Uint8Array> => {
    const read = decodeFrom(this.decoder, bytes)
    if (this.logger === silentLogger) return read
    return read.then((payload) => {
      logDebug(this.logger, () => [{ length: payload.length }, 'sentinel frame read'])
      return payload
    })
  }
}

/** The TypeError for a non-bytes payload handed to a bytes marshaller (a string would otherwise be written as NUL bytes). */
export function bytesExpected(payload: unknown): TypeError {
  const what = typeof payload === 'string' ? `a string ('${payload.length > 20 ? payload.slice(0, 20) + '…' : payload}'); wrap the marshaller with textMarshaller() to send text` : payload === null ? 'null' : typeof payload
  return new TypeError(`a bytes marshaller takes a Uint8Array payload, got ${what}`)
}
