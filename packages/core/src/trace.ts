/**
 * Wire tracing: see every byte each way on a connection, one line per chunk (direction,
 * timestamp, hex and escaped text). Use {@link traceFilter} with a transport that takes a
 * `filter` option, stacked with other filters through {@link composeFilters}; or wrap any
 * {@link TransportClient} with {@link traceTransport}.
 *
 * @module
 */
import { Buffer } from 'node:buffer'
import type {
  AbortOptions,
  ConnectionFilter,
  ConnectionFilterContext,
  ConnectionFilterFactory,
  TransportClient,
  TransportClientSession,
} from './types.js'

/** The direction of a traced chunk: `'out'` was written by this side, `'in'` was read from the peer. */
export type TraceDirection = 'in' | 'out'

/** One traced event, as handed to {@link TraceOptions.onEvent}. */
export interface TraceEvent {
  /** `'in'`/`'out'` for bytes; `'open'`/`'close'` for the connection itself. */
  readonly kind: TraceDirection | 'open' | 'close'
  /** When it happened. */
  readonly time: Date
  /** `host:port` of the peer (or the label given). */
  readonly peer: string
  /** The bytes (empty for `'open'` and `'close'`). */
  readonly bytes: Uint8Array
}

/** Options for {@link traceFilter} and {@link traceTransport}. */
export interface TraceOptions {
  /** Where each formatted line goes (no trailing newline). Default `console.error`. */
  sink?: (line: string) => void
  /** Receives each event before it is formatted (for tests or structured logs). */
  onEvent?: (event: TraceEvent) => void
  /** Name printed for the connection. Default: the peer's `host:port`. */
  label?: string
  /** Bytes shown per chunk; the rest are counted, not shown. Default: all of them. */
  maxBytes?: number
  /**
   * Bytes per line: a larger chunk is shown over several lines (`[0-1023 of 65536]`), each handed
   * to `sink` as it is formatted, so the memory a trace needs does not grow with the traffic.
   * Default 1024.
   */
  lineBytes?: number
  /** The clock. Default `() => new Date()`. */
  now?: () => Date
  /** When this returns false the trace is silent (toggle it at run time). Default: always on. */
  enabled?: () => boolean
}

const ARROW: Record<TraceEvent['kind'], string> = { out: '->', in: '<-', open: '==', close: '==' }

/**
 * Format one trace event as a line:
 * `2026-11-21T20:01:02.345Z 127.0.0.1:5025 -> 6 B  2a 49 44 4e 3f 0a  "*IDN?\n"`.
 * `->` bytes written by this side, `<-` bytes read from the peer, `==` open/close.
 */
export function formatTraceLine(event: TraceEvent, maxBytes = Infinity): string {
  const head = `${event.time.toISOString()} ${event.peer} ${ARROW[event.kind]}`
  if (event.kind === 'open' || event.kind === 'close') return `${head} ${event.kind === 'open' ? 'connected' : 'closed'}`
  const shown = event.bytes.length > maxBytes ? event.bytes.subarray(0, maxBytes) : event.bytes
  const more = event.bytes.length - shown.length
  const suffix = more > 0 ? ` … (+${more} B)` : ''
  return `${head} ${event.bytes.length} B  ${hexOf(shown)}${suffix}  "${escapeBytes(shown)}"${suffix}`
}

/**
 * Bytes as lower-case hex pairs separated by spaces: `2a 49 0a`. One flat string of 3 bytes per
 * input byte (no string built a character at a time, whose rope would cost ~60 bytes per byte).
 */
export function hexOf(bytes: Uint8Array): string {
  if (bytes.length === 0) return ''
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex').replace(PAIR, '$1 ').slice(0, bytes.length * 3 - 1)
}

const PAIR = /(..)/g
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))
const ESCAPES = Array.from({ length: 256 }, (_, byte) => {
  if (byte === 0x0a) return '\\n'
  if (byte === 0x0d) return '\\r'
  if (byte === 0x09) return '\\t'
  if (byte === 0x5c) return '\\\\'
  if (byte === 0x22) return '\\"'
  if (byte >= 0x20 && byte < 0x7f) return String.fromCharCode(byte)
  return `\\x${HEX[byte] as string}`
})
const NEEDS_ESCAPE = /[^\x20-\x21\x23-\x5b\x5d-\x7e]/g

/** Bytes as printable ASCII with C-style escapes (`\n`, `\r`, `\t`, `\\`, `\"`, `\xNN`). One flat string. */
export function escapeBytes(bytes: Uint8Array): string {
  if (bytes.length === 0) return ''
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    .toString('latin1')
    .replace(NEEDS_ESCAPE, (char) => ESCAPES[char.charCodeAt(0)] as string)
}

/** A tracer: the shared part of the filter and the transport wrapper. */
function makeTracer(options: TraceOptions, peer: string): (kind: TraceEvent['kind'], bytes: Uint8Array) => void {
  const sink = options.sink ?? ((line: string) => console.error(line))
  const now = options.now ?? (() => new Date())
  const label = options.label ?? peer
  const maxBytes = options.maxBytes ?? Infinity
  if (!(maxBytes >= 0)) throw new RangeError(`maxBytes must be a non-negative number, got ${String(maxBytes)}`)
  const lineBytes = options.lineBytes ?? DEFAULT_LINE_BYTES
  if (!Number.isInteger(lineBytes) || lineBytes < 1) throw new RangeError(`lineBytes must be a positive integer, got ${String(lineBytes)}`)
  const enabled = options.enabled
  const onEvent = options.onEvent
  return (kind, bytes) => {
    if (enabled !== undefined && !enabled()) return
    const event: TraceEvent = { kind, time: now(), peer: label, bytes }
    onEvent?.(event)
    if (Math.min(bytes.length, maxBytes) <= lineBytes) {
      sink(formatTraceLine(event, maxBytes))
      return
    }
    // A large chunk: one line per lineBytes, each formatted and handed over before the next.
    const shown = Math.min(bytes.length, maxBytes)
    const head = `${event.time.toISOString()} ${event.peer} ${ARROW[kind]} ${bytes.length} B`
    for (let start = 0; start < shown; start += lineBytes) {
      const end = Math.min(shown, start + lineBytes)
      const part = bytes.subarray(start, end)
      sink(`${head} [${start}-${end - 1}]  ${hexOf(part)}  "${escapeBytes(part)}"`)
    }
    if (shown < bytes.length) sink(`${head} … (+${bytes.length - shown} B not shown)`)
  }
}

const DEFAULT_LINE_BYTES = 1024

const EMPTY = new Uint8Array(0)

/**
 * A connection filter that passes every byte through unchanged and traces it: one line per chunk
 * read (`<-`) and written (`->`), plus a line when the connection opens and closes. Give it to a
 * transport's `filter` option; stack it with another filter (Telnet's codec) with
 * {@link composeFilters}: placed first (next to the socket) it shows the raw wire bytes, placed
 * after it shows the data bytes.
 *
 * @example
 * ```ts
 * const client = new TcpClient({ host: '127.0.0.1', port: 5025, filter: traceFilter({ sink: (line) => process.stderr.write(line + '\n') }) })
 * ```
 */
export function traceFilter(options: TraceOptions = {}): ConnectionFilterFactory {
  return (context: ConnectionFilterContext): ConnectionFilter => {
    const trace = makeTracer(options, context.peer)
    let closed = false
    return {
      input(chunk) {
        if (chunk.length > 0) trace('in', chunk)
        return chunk
      },
      output(bytes) {
        if (bytes.length > 0) trace('out', bytes)
        return bytes
      },
      open() {
        trace('open', EMPTY)
      },
      close() {
        if (closed) return
        closed = true
        trace('close', EMPTY)
      },
    }
  }
}

/**
 * Stack connection filters. The first is next to the socket: bytes read pass through the filters
 * first to last, bytes written last to first. What a filter sends straight to the socket through
 * its context (a negotiation reply) passes through the filters before it (so a trace placed first
 * sees it). `open` and `close` run for every filter; `ready` waits for each in turn.
 */
export function composeFilters(...factories: readonly ConnectionFilterFactory[]): ConnectionFilterFactory {
  if (factories.length === 1) return factories[0] as ConnectionFilterFactory
  return (context) => {
    const filters: ConnectionFilter[] = []
    for (let i = 0; i < factories.length; i++) {
      const outer = filters.slice() // the filters nearer the socket, made already
      const send = (bytes: Uint8Array): void => {
        let out = bytes
        for (let j = outer.length - 1; j >= 0; j--) out = (outer[j] as ConnectionFilter).output(out)
        if (out.length > 0) context.send(out)
      }
      const factory = factories[i] as ConnectionFilterFactory
      filters.push(factory({ send, side: context.side, peer: context.peer }))
    }
    const composed: ConnectionFilter = {
      input(chunk) {
        let data = chunk
        for (const filter of filters) {
          if (data.length === 0) break
          data = filter.input(data)
        }
        return data
      },
      output(bytes) {
        let out = bytes
        for (let j = filters.length - 1; j >= 0; j--) out = (filters[j] as ConnectionFilter).output(out)
        return out
      },
      open() {
        for (const filter of filters) filter.open?.()
      },
      async ready(options?: AbortOptions) {
        for (const filter of filters) await filter.ready?.(options)
      },
      close() {
        for (const filter of filters) filter.close?.()
      },
    }
    return composed
  }
}

/**
 * Wrap any {@link TransportClient} so each session's bytes are traced (bytes written through
 * `request`/`write`, chunks read from the response stream), for transports without a `filter`
 * option. It traces what the transport hands up (for Telnet: data bytes, not IAC sequences).
 *
 * @example
 * ```ts
 * const traced = traceTransport(new TcpClient({ host: '127.0.0.1', port: 5025 }), { label: 'psu' })
 * const client = new ApplicationClient(traced, line.marshall, line.unmarshall)
 * ```
 */
export function traceTransport(client: TransportClient, options: TraceOptions & { label: string }): TransportClient {
  return {
    async connect(connectOptions?: AbortOptions) {
      const session = await client.connect(connectOptions)
      const trace = makeTracer(options, options.label)
      trace('open', EMPTY)
      return new TracedSession(session, trace)
    },
  }
}

class TracedSession implements TransportClientSession {
  private readonly streams = new WeakMap<AsyncIterator<Uint8Array>, AsyncIterator<Uint8Array>>()
  private closed = false
  readonly write?: (bytes: Uint8Array, options?: AbortOptions) => Promise<void>

  constructor(
    private readonly session: TransportClientSession,
    private readonly trace: (kind: TraceEvent['kind'], bytes: Uint8Array) => void,
  ) {
    if (session.write !== undefined) {
      this.write = (bytes, options) => {
        if (bytes.length > 0) trace('out', bytes)
        return (session.write as NonNullable<TransportClientSession['write']>).call(session, bytes, options)
      }
    }
  }

  request(request: Uint8Array): AsyncIterator<Uint8Array> {
    if (request.length > 0) this.trace('out', request)
    const inner = this.session.request(request)
    let traced = this.streams.get(inner)
    if (traced === undefined) {
      const trace = this.trace
      traced = {
        async next() {
          const result = await inner.next()
          if (result.done !== true && result.value.length > 0) trace('in', result.value)
          return result
        },
      }
      this.streams.set(inner, traced)
    }
    return traced
  }

  async close(): Promise<void> {
    await this.session.close()
    if (this.closed) return
    this.closed = true
    this.trace('close', EMPTY)
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}
