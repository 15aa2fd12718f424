import WebSocket from 'ws'
import {
  ByteStream,
  accessErrorFromClose,
  ConnectionError,
  FrameTooLargeError,
  FramingError,
  TimeoutError,
  abortErrorFrom,
  checkCount,
  checkDuration,
  logDebug,
  raceSignal,
  silentLogger,
  throwIfAborted,
  type AbortOptions,
  type Logger,
  type TransportClient,
  type TransportClientSession,
} from '@labwire/core'

/** What to do with a text message on a connection that carries bytes. */
export type TextMessagePolicy = 'error' | 'accept'

/** Default largest incoming message: 16 MiB (a longer one closes the connection with `FrameTooLargeError`). */
export const DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024

/** Options for {@link WebSocketClient}. */
export interface WebSocketClientOptions {
  /** `ws://host:port/path` or `wss://…`. */
  url: string | URL
  /** Subprotocols offered in the handshake. */
  protocols?: string | readonly string[]
  /** Extra handshake headers (e.g. `Authorization`). */
  headers?: Readonly<Record<string, string>>
  /** Read inactivity limit in milliseconds (`TimeoutError`). Default: none (the application layer times calls). */
  timeout?: number
  /** Connect (TCP + HTTP upgrade) limit in milliseconds. Default 10 000. */
  connectTimeout?: number
  /** Unread bytes buffered before the socket is paused (backpressure); also the `bufferedAmount` above which `write()` waits. Default 64 KiB. */
  bufferSize?: number
  /** Largest incoming message in bytes; a longer one closes the connection (`FrameTooLargeError`). Default {@link DEFAULT_MAX_PAYLOAD}. */
  maxPayload?: number
  /** Text messages from the server: `'error'` (default) fails the stream with a `FramingError` and closes (1003); `'accept'` takes their UTF-8 bytes. */
  textMessages?: TextMessagePolicy
  logger?: Logger
}

interface Settings {
  timeout: number | undefined
  connectTimeout: number | undefined
  bufferSize: number
  maxPayload: number
  textMessages: TextMessagePolicy
  logger: Logger
}

/**
 * Connects to a WebSocket endpoint. Each binary message received is one chunk of the session's
 * byte stream; each `request()` is sent as one binary message. Message boundaries carry no
 * meaning: framing is the marshaller's job, as on TCP.
 *
 * @example
 * ```ts
 * const client = new WebSocketClient({ url: 'ws://127.0.0.1:8080/scpi' })
 * await using session = await client.connect({ signal: AbortSignal.timeout(5_000) })
 * const stream = session.request(new TextEncoder().encode('*IDN?\n'))
 * ```
 */
export class WebSocketClient implements TransportClient {
  private readonly url: string
  private readonly protocols: string[]
  private readonly headers: Record<string, string>
  private readonly settings: Settings

  constructor(options: WebSocketClientOptions) {
    let url: URL
    try {
      url = new URL(options.url)
    } catch (error) {
      throw new TypeError(`WebSocketClient: url must be a ws:// or wss:// URL, got ${String(options.url)}`, { cause: error })
    }
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new RangeError(`WebSocketClient: url must use ws: or wss:, got ${url.protocol} (${url.href})`)
    this.url = url.href
    this.protocols = typeof options.protocols === 'string' ? [options.protocols] : [...(options.protocols ?? [])]
    this.headers = { ...options.headers }
    const textMessages = options.textMessages ?? 'error'
    if (textMessages !== 'error' && textMessages !== 'accept') throw new RangeError(`WebSocketClient: textMessages must be 'error' or 'accept', got ${String(textMessages)}`)
    this.settings = {
      timeout: checkDuration('WebSocketClient', 'timeout', options.timeout),
      connectTimeout: checkDuration('WebSocketClient', 'connectTimeout', options.connectTimeout ?? 10_000),
      bufferSize: checkCount('WebSocketClient', 'bufferSize', options.bufferSize ?? 64 * 1024),
      maxPayload: checkCount('WebSocketClient', 'maxPayload', options.maxPayload ?? DEFAULT_MAX_PAYLOAD),
      textMessages,
      logger: options.logger ?? silentLogger,
    }
  }

  /** The endpoint URL. */
  get target(): string {
    return this.url
  }

  /** Open the connection (TCP, then the HTTP upgrade). Rejects with `ConnectionError` (refused, bad status, wrong path), `TimeoutError` or `AbortError`, each naming the URL. */
  connect(options?: AbortOptions): Promise<WebSocketClientSession> {
    const target = this.url
    const { connectTimeout, maxPayload, logger } = this.settings
    if (options?.signal?.aborted === true) return Promise.reject(abortErrorFrom(options.signal, `connect to ${target}`))
    return new Promise<WebSocketClientSession>((resolve, reject) => {
      const ws = new WebSocket(target, this.protocols, { perMessageDeflate: false, maxPayload, headers: this.headers })
      ws.binaryType = 'nodebuffer'
      const signal = options?.signal
      let timer: ReturnType<typeof setTimeout> | undefined
      const cleanup = (): void => {
        if (timer !== undefined) clearTimeout(timer)
        ws.off('open', onOpen)
        ws.off('error', onError)
        ws.off('unexpected-response', onResponse)
        signal?.removeEventListener('abort', onAbort)
      }
      const fail = (error: Error): void => {
        cleanup()
        ws.on('error', () => undefined)
        ws.terminate()
        reject(error)
      }
      const onOpen = (): void => {
        cleanup()
        logDebug(logger, () => [{ target }, 'connected'])
        resolve(new WebSocketClientSession(ws, target, this.settings))
      }
      const onError = (error: Error): void => fail(new ConnectionError(`could not connect to ${target}: ${error.message}`, { cause: error }))
      const onResponse = (_request: unknown, response: { statusCode?: number; statusMessage?: string }): void => {
        fail(new ConnectionError(`could not connect to ${target}: the server answered HTTP ${response.statusCode ?? '?'} ${response.statusMessage ?? ''} instead of upgrading`.trimEnd()))
      }
      const onAbort = (): void => fail(abortErrorFrom(signal as AbortSignal, `connect to ${target}`))
      ws.once('open', onOpen)
      ws.once('error', onError)
      ws.once('unexpected-response', onResponse)
      signal?.addEventListener('abort', onAbort, { once: true })
      if (connectTimeout !== undefined) {
        timer = setTimeout(() => fail(new TimeoutError(`connect to ${target} timed out after ${connectTimeout} ms`)), connectTimeout)
      }
    })
  }
}

/** One WebSocket connection. Implements the transport contract's session. */
export class WebSocketClientSession implements TransportClientSession {
  /** The connection's incoming byte stream (what `request()` returns): one chunk per binary message. */
  readonly stream: ByteStream
  /** The transport kind, for events and logs. */
  readonly transport = 'websocket'
  private closing: Promise<void> | undefined
  private readonly closedPromise: Promise<void>
  private readonly bufferSize: number
  private flushWait: { promise: Promise<void>; resolve: () => void; reject: (error: Error) => void } | undefined

  /** @internal Created by {@link WebSocketClient.connect}. */
  constructor(
    private readonly ws: WebSocket,
    /** The endpoint URL. */
    readonly target: string,
    settings: Settings,
  ) {
    this.bufferSize = settings.bufferSize
    const { logger } = settings
    const stream = (this.stream = new ByteStream(undefined, {
      timeout: settings.timeout,
      highWaterMark: settings.bufferSize,
      onPause: () => ws.pause(),
      onResume: () => ws.resume(),
      label: target,
    }))
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary && settings.textMessages === 'error') {
        logger.warn({ target }, 'text message received on a binary connection; closing (1003)')
        ws.close(1003, 'binary messages only') // before failing the stream: its loop closes the connection with 1000
        stream.fail(new FramingError(`${target} sent a text message; this connection carries binary messages (textMessages: 'accept' takes their UTF-8 bytes)`))
        return
      }
      stream.push(data)
    })
    ws.on('error', (error: Error & { code?: string }) => {
      logDebug(logger, () => [{ target, err: error }, 'websocket error'])
      stream.fail(
        error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
          ? new FrameTooLargeError(settings.maxPayload, `${target} sent a message over maxPayload (${settings.maxPayload} bytes)`, { cause: error })
          : new ConnectionError(`connection to ${target} failed: ${error.message}`, { cause: error }),
      )
    })
    this.closedPromise = new Promise<void>((resolve) => {
      ws.once('close', (code: number, reason: Buffer) => {
        logDebug(logger, () => [{ target, code, reason: reason.toString() }, 'closed'])
        const wait = this.flushWait
        this.flushWait = undefined
        wait?.reject(new ConnectionError(`connection to ${target} closed during a write`))
        // 4403 / 4408: the server's access policy turned this session away; reads reject with why.
        const access = accessErrorFromClose(code, reason.toString())
        if (access === undefined) stream.end()
        else stream.fail(access)
        resolve()
      })
    })
  }

  /** True once the session is closed or the connection is gone. */
  get closed(): boolean {
    return this.closing !== undefined || this.ws.readyState !== WebSocket.OPEN
  }

  /** Bytes queued by `send` and not yet written to the socket. */
  get bufferedAmount(): number {
    return this.ws.bufferedAmount
  }

  /** Send `request` as one binary message and return the connection's response stream. Throws `ConnectionError` if the session is closed. */
  request(request: Uint8Array): AsyncIterator<Uint8Array> {
    // The server is closing the connection (its close frame is in, the 'close' event not yet): the
    // request is not sent, and the read rejects with why it closed (4403 / 4408: the access error).
    if (this.closing === undefined && this.ws.readyState === WebSocket.CLOSING && !this.stream.ended) return this.stream
    this.sendNow(request)
    return this.stream
  }

  /**
   * Send `bytes` as one binary message once there is room: while more than `bufferSize` bytes are
   * buffered (`bufferedAmount`) it waits for earlier messages to be written first. Rejecting with
   * `AbortError` means the message was not sent (and the aborted call holds nothing).
   */
  async write(bytes: Uint8Array, options?: AbortOptions): Promise<void> {
    throwIfAborted(options)
    if (this.closed) this.sendNow(bytes) // throws the closed-session error
    while (this.ws.bufferedAmount > 0 && this.ws.bufferedAmount + bytes.length > this.bufferSize) {
      await raceSignal(this.flushed(), options?.signal, 'write')
    }
    this.sendNow(bytes)
  }

  /** Let the process exit while this connection is open (the application layer does this while a session is idle). */
  unref(): void {
    ;(this.ws as unknown as { _socket?: { unref?: () => void } })._socket?.unref?.()
  }

  /** Hold the process open while this connection is open (the default). */
  ref(): void {
    ;(this.ws as unknown as { _socket?: { ref?: () => void } })._socket?.ref?.()
  }

  /** One shared wait for the next message to be written to the socket; rejects if the connection closes first. */
  private flushed(): Promise<void> {
    if (this.flushWait === undefined) {
      let resolve!: () => void
      let reject!: (error: Error) => void
      const promise = new Promise<void>((res, rej) => {
        resolve = res
        reject = rej
      })
      this.flushWait = { promise, resolve, reject }
    }
    return this.flushWait.promise
  }

  /** Close the connection (closing handshake, code 1000; the socket is dropped if the server does not answer within 1 s). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const ws = this.ws
      if (ws.readyState === WebSocket.CLOSED) return
      ws.close(1000)
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([this.closedPromise, new Promise<void>((resolve) => (timer = setTimeout(resolve, 1000)))])
      clearTimeout(timer)
      ws.terminate()
      await this.closedPromise
    })()
    return this.closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  private sendNow(bytes: Uint8Array): void {
    if (this.closed) throw this.stream.accessError ?? new ConnectionError(`connection to ${this.target} is closed`)
    // Non-string data goes out as a binary message; its callback wakes writers waiting for room.
    this.ws.send(bytes, this.onSent)
  }

  private readonly onSent = (): void => {
    const wait = this.flushWait
    this.flushWait = undefined
    wait?.resolve()
  }
}
