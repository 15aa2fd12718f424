/**
 * Server and client events on `node:diagnostics_channel` (the convention undici follows). Publishers
 * check `hasSubscribers` first, so with nobody listening an event costs one property read.
 * Subscribe with `diagnostics_channel.subscribe('labwire:server:request', (message) => …)`.
 *
 * @module
 */
import { channel } from 'node:diagnostics_channel'

/** Payload of `labwire:server:connect`: a connection (or UDP peer) was admitted. */
export interface ServerConnectMessage {
  /** The server class, e.g. `'TcpServer'`. */
  readonly server: string
  /** The publishing server's kernel (every server's `kernel` property): tells servers of one class apart. */
  readonly kernel: object
  /** `'tcp' | 'tls' | 'unix' | 'telnet' | 'udp' | 'websocket' | 'stdio' | 'memory'` (or a server's own name). */
  readonly transport: string
  readonly peer: string
  /** Live connections on this server, this one included. */
  readonly connections: number
}

/** Payload of `labwire:server:close`: a connection is gone. */
export interface ServerCloseMessage {
  readonly server: string
  /** The publishing server's kernel, as in {@link ServerConnectMessage}. */
  readonly kernel: object
  readonly transport: string
  readonly peer: string
  /** Milliseconds the connection was open. */
  readonly duration: number
  /** Bytes received from the peer (after any protocol filter) and written to it. */
  readonly bytesIn: number
  readonly bytesOut: number
  /** Requests answered on it (the per-request loop; 0 for a ConnectionHandler). */
  readonly requests: number
  /** Live connections left on this server. */
  readonly connections: number
}

/** Payload of `labwire:server:request`: one request handled by the per-request loop. */
export interface ServerRequestMessage {
  /** The publishing server's kernel, as in {@link ServerConnectMessage} (undefined for a loop run outside a kernel). */
  readonly kernel: object | undefined
  readonly transport: string
  readonly peer: string
  /** Milliseconds from the handler call to the reply being queued (or the failure). */
  readonly duration: number
  /** Bytes of input the request consumed. */
  readonly bytesIn: number
  /** Bytes of the reply (0 for none). */
  readonly bytesOut: number
  /** The failure's stable code (`'ERR_FRAMING'`, …; `'ERR_HANDLER'` for a non-labwire throw); absent on success. */
  readonly error?: string
  /** RPC method name (set by `@labwire/rpc`'s server, one message per finished call). */
  readonly method?: string
}

/** Payload of `labwire:client:request`: one request/response on a client session (see {@link publishClientRequest}). */
export interface ClientRequestMessage {
  readonly transport: string
  /** `host:port` (or path, URL) of the server. */
  readonly peer: string
  readonly duration: number
  readonly bytesIn: number
  readonly bytesOut: number
  readonly error?: string
}

/** The channels, by name. */
export const serverConnectChannel = channel('labwire:server:connect')
export const serverCloseChannel = channel('labwire:server:close')
export const serverRequestChannel = channel('labwire:server:request')
export const clientRequestChannel = channel('labwire:client:request')

/**
 * For client code: publish one finished request on `labwire:client:request`. Call it only when
 * `clientRequestChannel.hasSubscribers` is true (time the request only then), so an unobserved
 * client pays nothing.
 */
export function publishClientRequest(message: ClientRequestMessage): void {
  if (clientRequestChannel.hasSubscribers) clientRequestChannel.publish(message)
}

/** The stable code of what a handler failed with, for event payloads. */
export function errorCodeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('ERR_') ? code : 'ERR_HANDLER'
}
