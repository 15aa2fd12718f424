import { silentLogger, type ByteHandlerObject, type Logger } from '@labwire/core'

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
  /** Where callback errors are logged when `errorResponse` handles them. */
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
    this.errorResponse = options.errorResponse
    this.logger = options.logger ?? silentLogger
  }

  /** Handle one request from `bytes`; resolve with the reply bytes, or `undefined` for no reply. */
  readonly handle = async (bytes: AsyncIterator<Uint8Array>): Promise<Uint8Array | undefined> => {
    const unmarshalled = this.requestUnmarshaller(bytes)
    const request = unmarshalled instanceof Promise ? await unmarshalled : unmarshalled
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
