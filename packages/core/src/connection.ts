/**
 * The connection seam: a transport server's `callback` may take a whole connection instead of
 * answering one request at a time.
 *
 * @module
 */
import type { ByteStream } from './byte-stream.js'

/**
 * One served connection, as a {@link ConnectionHandler} sees it. The serving kernel makes it;
 * the transport underneath may be a socket, a WebSocket, a UDP peer, a child's stdio or memory.
 */
export interface ServerConnection {
  /** Peer name for logs and errors, e.g. `127.0.0.1:53122` (UDP: the datagram's source). */
  readonly peer: string
  /** The transport kind: `'tcp' | 'tls' | 'unix' | 'telnet' | 'udp' | 'websocket' | 'stdio' | 'memory'`. */
  readonly transport: string
  /** The connection's buffered input (the same ByteStream the request loop uses; framers decode from it). */
  readonly stream: ByteStream
  /** Aborts (reason: a `ConnectionClosedError`) when the connection closes, from either side. */
  readonly signal: AbortSignal
  /** True once the server has started a `close({ drain })`: finish what is in flight, start nothing new. Optional. */
  readonly draining?: boolean
  /** The serving transport server's kernel (as in the diagnostics events), when served by one. Optional. */
  readonly kernel?: object
  /**
   * Queue bytes for the peer. Returns `undefined` when accepted without waiting, or a promise that
   * resolves when the write buffer has drained below its limit (await it: backpressure). Throws a
   * `ConnectionClosedError` after close. Writes are sent in call order.
   */
  write(bytes: Uint8Array): Promise<void> | undefined
  /** Close the connection (idempotent): queued bytes are flushed first. */
  close(): void
}

/**
 * A server callback that serves whole connections: out-of-order answers, streams, unsolicited
 * writes, reacting to input while a request runs (an RPC server, the simulator's broadcast).
 * Pass it as any transport server's `callback`; the server still owns `maxConnections`, idle
 * timers, the access policy, drain and the diagnostics events.
 */
export interface ConnectionHandler {
  /** Serve one connection until it ends; resolve (or reject: logged, connection closed) when done. The connection is closed when it settles. */
  serveConnection(connection: ServerConnection): Promise<void>
}

/** True when `handler` is a {@link ConnectionHandler} (has a `serveConnection` method; it wins over `handle`). */
export function isConnectionHandler(handler: unknown): handler is ConnectionHandler {
  return (
    (typeof handler === 'object' || typeof handler === 'function') &&
    handler !== null &&
    typeof (handler as { serveConnection?: unknown }).serveConnection === 'function'
  )
}
