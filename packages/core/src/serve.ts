import type { ByteStream } from './byte-stream.js'
import { ConnectionClosedError, ConnectionError, FrameTooLargeError } from './errors.js'
import { logDebug, type Logger } from './logger.js'
import type { ByteHandler, ByteHandlerFunction } from './types.js'

/** Turn either form of {@link ByteHandler} into a function. */
export function toHandlerFunction(handler: ByteHandler): ByteHandlerFunction {
  if (typeof handler === 'function') return handler
  if (typeof handler.handle !== 'function') throw new TypeError('callback must be a function or an object with a handle(bytes) method')
  return (bytes) => handler.handle(bytes)
}

/** One server-side connection, as {@link serveConnection} sees it. Transports implement it. */
export interface ServedConnection {
  /** Human-readable peer name for logs, e.g. `127.0.0.1:53122`. */
  readonly peer: string
  /** Set by the loop: true while a request is being handled. */
  busy: boolean
  /** Queue a reply. Return a promise only when the caller should wait (write buffer full). */
  write(bytes: Uint8Array): Promise<void> | undefined
  /** Called before the loop waits for more input: flush corked writes. */
  flush(): void
  /** Close the connection (idempotent). */
  close(): void
}

/**
 * Serve one connection: while it has input, call `handler` with the connection's byte stream,
 * write each reply in order. Ends quietly when the peer closes between requests. A handler that
 * throws is logged at error level and the connection is closed; other connections are unaffected.
 * A `FrameTooLargeError` whose `resynchronised` is true (the framer skipped the frame) is logged at
 * warn level and the connection goes on.
 * Never rejects.
 */
export async function serveConnection(stream: ByteStream, handler: ByteHandlerFunction, conn: ServedConnection, logger: Logger): Promise<void> {
  let requests = 0
  try {
    for (;;) {
      if (stream.bufferedLength === 0) {
        conn.flush()
        if (!(await stream.waitForData())) break
      }
      conn.busy = true
      let reply: Uint8Array | undefined
      try {
        const result = handler(stream)
        reply = result instanceof Promise ? await result : result
      } catch (error) {
        // A framer that skipped an oversized request is back in step: log it and go on.
        if (!(error instanceof FrameTooLargeError && error.resynchronised)) throw error
        logger.warn({ peer: conn.peer, err: error }, 'oversized request skipped')
        reply = undefined
      }
      conn.busy = false
      requests++
      if (reply !== undefined && reply.length > 0) {
        const wait = conn.write(reply)
        if (wait !== undefined) await wait
      }
    }
    logDebug(logger, () => [{ peer: conn.peer, requests }, 'connection ended by peer'])
  } catch (error) {
    conn.busy = false
    if (error instanceof ConnectionClosedError) {
      logger.warn({ peer: conn.peer, err: error, partialLength: error.partial.length }, 'connection closed in the middle of a request')
    } else if (error instanceof ConnectionError) {
      logDebug(logger, () => [{ peer: conn.peer, err: error }, 'connection failed'])
    } else {
      logger.error({ peer: conn.peer, err: error }, 'request handler failed; closing the connection')
    }
  } finally {
    conn.flush()
    conn.close()
  }
}
