import { FrameTooLargeError, FramingError, decoderOf, NEED_MORE, silentLogger, type ByteHandlerObject, type ByteStream, type FrameDecoder, type Logger, type NeedMore } from '@labwire/core'

/** Reads one request from the connection's byte stream. */
export type RequestUnmarshaller<Req> = (bytes: AsyncIterator<Uint8Array>) => Req | Promise<Req>
/** Encodes a response into bytes. */
export type ResponseMarshaller<Res> = (response: Res) => Uint8Array
/** The device logic: a request in, a response (or `undefined` for no reply) out. */
export type ServerCallback<Req, Res> = (request: Req) => Res | undefined | Promise<Res | undefined>

/** Options for {@link ApplicationServer}. */
export interface ApplicationServerOptions<Req, Res> {
  /**
   * What to answer when the callback throws. Default: none, so the error propagates and the
   * transport logs it and closes that connection. Given, the error is logged here and the
   * returned response (if any) is sent instead; the connection stays open.
   */
  errorResponse?: (error: unknown, request: Req) => Res | undefined
  /**
   * Where callback errors are logged when `errorResponse` handles them, and where a malformed
   * request (a `FramingError` such as a bad checksum; not an oversized frame, which the transport
   * logs) is logged at `warn` before the transport closes that connection: so it shows up on the
   * server a user gave a logger to, not only on the transport server.
   */
  logger?: Logger
}

/**
 * The application side of a server: unmarshall a request, call the device logic, marshall its
 * response. An ApplicationServer is a `ByteHandler`: pass it as a transport server's `callback`.
 *
 * @example
 * ```ts
 * const line = textMarshaller(new SentinelBytesMarshaller('\n'))
 * const app = new ApplicationServer(line.unmarshall, line.marshall, (cmd) => (cmd === '*IDN?' ? 'ACME,PSU,1,1.0' : undefined))
 * const server = new TcpServer({ host: '127.0.0.1', port: 0, callback: app })
 * ```
 */
export class ApplicationServer<Req, Res> implements ByteHandlerObject {
  private readonly errorResponse: ((error: unknown, request: Req) => Res | undefined) | undefined
  private readonly logger: Logger

  constructor(
    private readonly requestUnmarshaller: RequestUnmarshaller<Req>,
    private readonly responseMarshaller: ResponseMarshaller<Res>,
    private readonly callback: ServerCallback<Req, Res>,
    options: ApplicationServerOptions<Req, Res> = {},
  ) {
    if (typeof requestUnmarshaller !== 'function') throw new TypeError('ApplicationServer: requestUnmarshaller must be a function (e.g. marshaller.unmarshall)')
    if (typeof responseMarshaller !== 'function') throw new TypeError('ApplicationServer: responseMarshaller must be a function (e.g. marshaller.marshall)')
    if (typeof callback !== 'function') throw new TypeError('ApplicationServer: callback must be a function (request) => response')
    this.errorResponse = options.errorResponse
    this.logger = options.logger ?? silentLogger
    this.decoder = decoderOf<Req>(requestUnmarshaller)
    if (this.decoder === undefined) this.handleBuffered = undefined
  }

  private readonly decoder: FrameDecoder<Req> | undefined

  /**
   * The synchronous fast path (present when the request unmarshaller is a labwire decoder):
   * decode one request from what is buffered, call the callback, marshall its response; returns
   * `NEED_MORE` when no whole request is buffered, a promise only when the callback returns one.
   */
  handleBuffered: ((stream: ByteStream) => Uint8Array | undefined | NeedMore | Promise<Uint8Array | undefined>) | undefined = (stream) => {
    let request: Req | NeedMore
    try {
      request = (this.decoder as FrameDecoder<Req>).decode(stream)
    } catch (error) {
      this.logBadRequest(error)
      throw error
    }
    if (request === NEED_MORE) return NEED_MORE
    let result: Res | undefined | Promise<Res | undefined>
    try {
      result = this.callback(request)
    } catch (error) {
      return this.answerError(error, request)
    }
    if (result instanceof Promise) {
      return result.then(
        (response) => (response === undefined ? undefined : this.responseMarshaller(response)),
        (error: unknown) => this.answerError(error, request),
      )
    }
    return result === undefined ? undefined : this.responseMarshaller(result)
  }

  /**
   * A malformed request (a bad checksum, a wrong length): logged here when this server has its own
   * logger, since the user may have given the logger to this server and not to the transport. An
   * oversized frame is the transport's limit and is logged by it.
   */
  private logBadRequest(error: unknown): void {
    if (this.logger === silentLogger || !(error instanceof FramingError) || error instanceof FrameTooLargeError) return
    this.logger.warn({ err: error }, 'request could not be decoded (malformed frame); the transport closes the connection')
  }

  private answerError(error: unknown, request: Req): Uint8Array | undefined {
    if (this.errorResponse === undefined) throw error
    this.logger.error({ err: error }, 'server callback failed; answering with the error response')
    const response = this.errorResponse(error, request)
    return response === undefined ? undefined : this.responseMarshaller(response)
  }

  /** Handle one request from `bytes`; resolve with the reply bytes, or `undefined` for no reply. */
  readonly handle = async (bytes: AsyncIterator<Uint8Array>): Promise<Uint8Array | undefined> => {
    let request: Req
    try {
      const unmarshalled = this.requestUnmarshaller(bytes)
      request = unmarshalled instanceof Promise ? await unmarshalled : unmarshalled
    } catch (error) {
      this.logBadRequest(error)
      throw error
    }
    let response: Res | undefined
    try {
      const result = this.callback(request)
      response = result instanceof Promise ? await result : result
    } catch (error) {
      if (this.errorResponse === undefined) throw error
      this.logger.error({ err: error }, 'server callback failed; answering with the error response')
      response = this.errorResponse(error, request)
    }
    return response === undefined ? undefined : this.responseMarshaller(response)
  }
}
