/**
 * The transport contract: the seam between a transport (bytes on a wire) and the
 * application layer (framing and meaning).
 *
 * @module
 */
import type { ByteStream } from './byte-stream.js'
import type { NeedMore } from './decoder.js'
import type { ConnectionHandler } from './connection.js'

/** Options accepted by every async labwire method. */
export interface AbortOptions {
  /** Aborting it rejects the operation with an `AbortError` whose `cause` is the signal's reason. */
  signal?: AbortSignal | undefined
}

/** Opens sessions to one peer. */
export interface TransportClient {
  /** Connect. Rejects with `ConnectionError`, `TimeoutError` or `AbortError`. */
  connect(options?: AbortOptions): Promise<TransportClientSession>
}

/**
 * One open connection.
 *
 * The connection's incoming bytes are one buffered stream across all requests: bytes left over
 * after one response (the start of the next frame, a pipelined reply) are kept for the next read.
 */
export interface TransportClientSession extends AsyncDisposable {
  /**
   * Write `request` and return the connection's response byte stream. Every call returns the
   * same stream; a failed write surfaces as a `ConnectionError` when the stream is next read.
   */
  request(request: Uint8Array): AsyncIterator<Uint8Array>
  /**
   * Write `bytes` once the transport's write buffer has room (awaiting drain first if it is
   * full), and resolve as soon as they are handed over. Rejecting with `AbortError` means the
   * bytes were not written. Optional: transports that can tell implement it so that senders feel
   * backpressure.
   */
  write?(bytes: Uint8Array, options?: AbortOptions): Promise<void>
  /** Close the connection. Idempotent. */
  close(): Promise<void>
}

/** A handler a transport server calls once per request: read one request from `bytes`, return the reply (or `undefined` for none). */
export type ByteHandlerFunction = (
  bytes: AsyncIterator<Uint8Array>,
) => Promise<Uint8Array | undefined> | Uint8Array | undefined

/** An object form of {@link ByteHandlerFunction}; an `ApplicationServer` is one. */
export interface ByteHandlerObject {
  handle(bytes: AsyncIterator<Uint8Array>): Promise<Uint8Array | undefined>
  /**
   * Optional synchronous fast path: decode one request from what the connection's `ByteStream`
   * has buffered and answer it; return `NEED_MORE` (consuming no request bytes) when no whole
   * request is buffered, or a promise when the answer is really pending. Servers call it, when
   * present, instead of `handle`. An `ApplicationServer` whose request unmarshaller is a labwire
   * decoder has one.
   */
  handleBuffered?: ((stream: ByteStream) => Uint8Array | undefined | NeedMore | Promise<Uint8Array | undefined>) | undefined
}

/**
 * What a transport server calls: per request (a function, or an object with `handle`), or once
 * per connection (a {@link ConnectionHandler}, which then owns the connection's input and output).
 */
export type ByteHandler = ByteHandlerFunction | ByteHandlerObject | ConnectionHandler

/** A listening server's address. */
export interface ServerAddress {
  host: string
  port: number
}

/**
 * A protocol layer between a socket and its byte stream, under the framing: Telnet's IAC codec is
 * one. One instance per connection, made by a {@link ConnectionFilterFactory}. Transports that
 * accept a `filter` option (TCP) run every chunk read through `input` before it reaches the byte
 * stream, and every write through `output`.
 */
export interface ConnectionFilter {
  /** Bytes read from the socket → the data bytes for the byte stream (may be empty). Throwing (a `FramingError`) closes the connection. */
  input(chunk: Uint8Array): Uint8Array
  /** Bytes the application writes → the bytes for the socket (e.g. 0xFF escaped). */
  output(bytes: Uint8Array): Uint8Array
  /** Called once the connection is open, before any request (a server's banner, an opening negotiation). */
  open?(): void
  /**
   * Client side: resolves when the connection is ready for requests (e.g. a login dialogue
   * finished); `connect()` waits for it and rejects with its error. Default: ready at once.
   */
  ready?(options?: AbortOptions): Promise<void>
  /** Called once when the connection closes. */
  close?(): void
}

/** What a filter gets to work with: a way to write protocol bytes straight to the socket, bypassing `output`. */
export interface ConnectionFilterContext {
  /** Write raw bytes to the socket (negotiation replies, a banner). */
  send(bytes: Uint8Array): void
  /** `'client'` or `'server'`. */
  readonly side: 'client' | 'server'
  /** `host:port` of the peer, for messages. */
  readonly peer: string
}

/** Makes the {@link ConnectionFilter} of one connection. */
export type ConnectionFilterFactory = (context: ConnectionFilterContext) => ConnectionFilter
