/**
 * What labwire adds on top of NATS request/reply: chunking of payloads over the server's
 * `max_payload`, the ADR-32 error headers, the connection options every labwire NATS peer uses.
 *
 * Small request: one message to the endpoint subject, one reply message.
 * Large request: the first message carries `Labwire-Size: TOTAL` and the first chunk; the instance
 * that takes it answers `Labwire-Continue: SUBJECT` (a private inbox), and the rest of the request
 * is published there, in order.
 * Reply: one or more messages on the request's reply subject, in order; every one but the last
 * carries `Labwire-More: 1`. A large reply is cut into chunks that way, and a request that holds
 * several frames (a pipelined burst) gets each frame's reply as soon as it is ready. An error
 * reply (ADR-32 headers) is always the last.
 *
 * @module
 */
import { ConnectionClosedError, ConnectionError, TimeoutError } from '@labwire/core'
import { Events, connect, type ConnectionOptions, type NatsConnection } from 'nats'

/** Header: total size of a chunked request or reply, in bytes (decimal). */
export const SIZE_HEADER = 'Labwire-Size'
/** Header: more reply messages follow for this request. */
export const MORE_HEADER = 'Labwire-More'
/** Header: the subject where the rest of a chunked request goes. */
export const CONTINUE_HEADER = 'Labwire-Continue'
/**
 * Stream replies (a stream endpoint, an RPC `stream: true` method): the client's request carries
 * `Labwire-Credit: N`, the number of items it will buffer; the service answers first with an empty
 * message carrying `Labwire-Control: INBOX`, then sends items while it has credit. The client
 * grants more with `Labwire-Credit: n` on that inbox as its consumer takes items, and stops the
 * stream with `Labwire-Cancel: 1` there. An item cut into several messages carries
 * `Labwire-Partial: 1` on all but its last. The stream ends with an empty message without
 * `Labwire-More` (or with the ADR-32 error headers).
 */
export const CREDIT_HEADER = 'Labwire-Credit'
/** Header: where a stream's client sends credit and cancel. */
export const CONTROL_HEADER = 'Labwire-Control'
/** Header: stop this stream. */
export const CANCEL_HEADER = 'Labwire-Cancel'
/** Header: more messages of this stream item follow. */
export const PARTIAL_HEADER = 'Labwire-Partial'
/** Header: the caller's time limit for the call, ms from when it was sent (becomes the handler's `deadline`). */
export const TIMEOUT_HEADER = 'Labwire-Timeout'
/**
 * Where a caller cancels a call it gave up on: `_LABWIRE.CANCEL.SERVICE`, payload = the call's
 * reply subject. Every instance of the service listens (no queue group); the one running that
 * call aborts its handler's signal. Needs publish permission on `_LABWIRE.CANCEL.>` for callers.
 */
export const CANCEL_SUBJECT = '_LABWIRE.CANCEL'
/** Largest credit a client may grant at once (items). */
export const MAX_CREDIT = 65_536
/** ADR-32 error headers. */
export const ERROR_HEADER = 'Nats-Service-Error'
export const ERROR_CODE_HEADER = 'Nats-Service-Error-Code'
/** labwire's addition: the thrown error's `name` (RPC's `RemoteError.remoteName`). */
export const ERROR_NAME_HEADER = 'Labwire-Error-Name'
/** Room left in each message for headers and protocol overhead. */
export const HEADER_ROOM = 4096
/** ADR-32 service names: `A-Z a-z 0-9 - _`. */
export const SERVICE_NAME = /^[A-Za-z0-9_-]+$/

/** How to reach NATS: server URLs (the client reconnects forever, with backoff), or a connection you manage. */
export interface NatsConnectOptions {
  /** `nats://host:port` URLs (or `host:port`). Several = failover. */
  servers?: string | readonly string[]
  /** An open connection to use instead (not closed by labwire). */
  connection?: NatsConnection
  /** Extra `nats` connection options (auth, TLS, ...), merged over labwire's defaults. */
  natsOptions?: ConnectionOptions
}

/**
 * (A `ConnectionClosedError`: same `name` and `code`.) The service answered with ADR-32 error headers: its handler threw (`statusCode` 500) or could not
 * decode the request (400). Like a TCP server closing the connection after its callback throws,
 * the session ends: open a new one to go on.
 */
export class NatsServiceError extends ConnectionClosedError {
  /** The `Nats-Service-Error-Code` header. */
  readonly statusCode: number
  /** The `Nats-Service-Error` header. */
  readonly description: string
  /** The thrown error's name (`Labwire-Error-Name` header), when the service is labwire's. */
  remoteName: string | undefined

  constructor(statusCode: number, description: string, service: string, partial?: Uint8Array) {
    super(`service ${service} answered error ${statusCode}: ${description}`, partial === undefined ? undefined : { partial })
    this.statusCode = statusCode
    this.description = description
  }
}

/** No instance of the service is subscribed (NATS "no responders", status 503). A `ConnectionError` (same `name` and `code`). */
export class NoRespondersError extends ConnectionError {
}

/** The chunk size for a connection: its server's `max_payload` less room for headers. */
export function chunkSize(nc: NatsConnection): number {
  const max = nc.info?.max_payload ?? 1024 * 1024
  return Math.max(1024, max - HEADER_ROOM)
}

/**
 * Backoff for reconnects: the wait between attempts is half the time spent disconnected so far,
 * from 100 ms up to 5 s (so attempts come at about 0, 0.1, 0.2, 0.4, 0.8 … s, then every 5 s),
 * times a jitter factor drawn once per outage (1–1.2) so a lab's clients do not retry in step.
 * nats.js asks for the delay on every turn of its dial loop, not once per attempt, so the delay
 * is a function of elapsed time, not an attempt counter. `reset` is called when a connection is back.
 */
export function reconnectBackoff(now: () => number = Date.now): { delay: () => number; reset: () => void } {
  let since: number | undefined
  let jitter = 1
  return {
    delay: () => {
      if (since === undefined) {
        since = now()
        jitter = 1 + Math.random() * 0.2
      }
      return Math.round(Math.min(5000, Math.max(100, (now() - since) / 2)) * jitter)
    },
    reset: () => {
      since = undefined
    },
  }
}

/**
 * Holds publishes while a connection is down. nats.js 2.x discards what was published while it
 * was disconnected (its outbound buffer is reset on every dial), so a request sent during an
 * outage would vanish and only time out. Publishing through `run` defers it to the moment the
 * connection is back instead — safe, since the message was never sent (no duplicate).
 */
export class OutageBuffer {
  private held: (() => void)[] = []
  private offline = false
  private readonly statuses: ReturnType<NatsConnection['status']>

  constructor(private readonly nc: NatsConnection) {
    const statuses = nc.status()
    this.statuses = statuses
    void (async () => {
      for await (const status of statuses) {
        if (status.type === Events.Disconnect) this.offline = true
        else if (status.type === Events.Reconnect) {
          this.offline = false
          const held = this.held
          this.held = []
          for (const publish of held) publish()
        }
      }
    })().catch(() => undefined)
  }

  /** True while the connection is down (the status event, or nats.js's own flag, which is set first). */
  get down(): boolean {
    if (this.offline) return true
    const protocol = (this.nc as unknown as { protocol?: { connected?: unknown } }).protocol
    return protocol?.connected === false && !this.nc.isClosed()
  }

  /** Publish now, or once the connection is back. */
  run(publish: () => void): void {
    if (this.down) {
      this.offline = true
      this.held.push(publish)
    } else publish()
  }

  /** Drop what is held (the caller gave up: closed or timed out). */
  clear(): void {
    this.held = []
  }

  /** Stop watching the connection's status (a shared connection outlives the session). */
  close(): void {
    this.held = []
    ;(this.statuses as { stop?: () => void }).stop?.()
  }
}

/** Open a NATS connection with labwire's defaults: reconnect forever with backoff. */
export async function openConnection(options: NatsConnectOptions, name: string): Promise<NatsConnection> {
  const servers = options.servers === undefined ? undefined : typeof options.servers === 'string' ? options.servers.split(',').map((s) => s.trim()) : [...options.servers]
  const backoff = reconnectBackoff()
  try {
    const nc = await connect({
      name,
      maxReconnectAttempts: -1,
      reconnectDelayHandler: backoff.delay,
      pingInterval: 10_000,
      maxPingOut: 2,
      ...(servers === undefined ? {} : { servers }),
      ...options.natsOptions,
    })
    void (async () => {
      for await (const status of nc.status()) if (status.type === Events.Reconnect) backoff.reset()
    })().catch(() => undefined)
    return nc
  } catch (cause) {
    const where = servers?.join(',') ?? '127.0.0.1:4222'
    const code = (cause as { code?: unknown } | null)?.code
    if (code === 'TIMEOUT') throw new TimeoutError(`NATS ${where}: connect timed out`, { cause })
    const reason = code === 'CONNECTION_REFUSED' ? 'connection refused (is nats-server running there?)' : cause instanceof Error ? cause.message : 'connect failed'
    throw new ConnectionError(`NATS ${where}: ${reason}`, { cause })
  }
}

/**
 * Parse a labwire NATS resource, `nats://host:port/NAME` (also `tls://…`; port defaults to 4222;
 * several servers as `nats://h1:4222,h2:4222/NAME`; an endpoint as `/NAME/ENDPOINT`), into what
 * {@link NatsClient} takes. Throws `RangeError` for anything else.
 */
export function parseNatsResource(resource: string): { servers: string[]; name: string; endpoint?: string } {
  const match = /^(nats|tls):\/\/([^/]+)\/([A-Za-z0-9_-]+)(?:\/([A-Za-z0-9_-]+))?\/?$/.exec(resource.trim())
  if (match === null) throw new RangeError(`not a NATS resource (nats://host:port/NAME): ${resource}`)
  const [, scheme, hosts, name, endpoint] = match as unknown as [string, string, string, string, string | undefined]
  const servers = hosts.split(',').map((host) => {
    const hostPort = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(host)
    if (hostPort === null || Number(hostPort[2] ?? 4222) > 65535) throw new RangeError(`bad NATS server "${host}" in ${resource}`)
    return `${scheme}://${hostPort[1] as string}:${hostPort[2] ?? '4222'}`
  })
  return endpoint === undefined ? { servers, name } : { servers, name, endpoint }
}
