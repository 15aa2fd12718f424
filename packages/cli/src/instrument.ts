import { ApplicationClient, type ApplicationClientSession } from '@labwire/application'
import { composeFilters, traceFilter, type ConnectionFilterFactory, type TransportClient } from '@labwire/core'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { NatsClient, type NatsClientSession } from '@labwire/nats'
import { TcpClient } from '@labwire/transport-tcp'
import { telnetClientFilter } from '@labwire/transport-telnet'
import { readBlock } from './block.js'
import type { Resource } from './resource.js'
import { formatTerminator } from './resource.js'

/** What a client session is set to; the shell changes it at run time. */
export interface InstrumentSettings {
  /** Reply terminator. */
  readTerm: Uint8Array
  /** Appended to every command. */
  writeTerm: Uint8Array
  /** Per-reply limit in ms (also the connect limit); 0 = none. */
  timeout: number
  /** Read replies to queries as IEEE 488.2 blocks. */
  binary: boolean
  /** Largest reply accepted, in bytes (longer: `FrameTooLargeError`). Default {@link MAX_REPLY}. */
  maxLength?: number
  /** Trace every byte each way to `traceSink`. */
  trace: boolean
  /** Where trace lines go. */
  traceSink: (line: string) => void
}

/** Largest reply accepted (bytes). */
export const MAX_REPLY = 64 * 1024 * 1024

/**
 * True when a command expects a reply: its header (up to the first space) contains `?`
 * (`*IDN?`, `MEAS:VOLT? (@1)`, pyvisa-sim's `?IDN`), or the whole line ends with `?`.
 */
export function isQuery(command: string): boolean {
  const trimmed = command.trim()
  const header = trimmed.split(/\s/, 1)[0] ?? ''
  return header.includes('?') || trimmed.endsWith('?')
}

/**
 * A connection to the instrument a resource names, for `query` and `shell`: commands in, reply
 * bytes out, with terminators, timeout, binary mode and trace read from `settings` at each call.
 */
export class Instrument implements AsyncDisposable {
  private session: ApplicationClientSession<Uint8Array, Uint8Array> | undefined
  private readonly lines = new Map<string, SentinelBytesMarshaller>()
  private readonly client: ApplicationClient<Uint8Array, Uint8Array>
  /** For a `nats://` resource: the open session, to wait for a write's acknowledgement. */
  private natsSession: NatsClientSession | undefined

  constructor(
    readonly resource: Resource,
    readonly settings: InstrumentSettings,
  ) {
    let transport = transportFor(resource, {
      timeout: settings.timeout,
      trace: traceFilter({ label: resource.text, sink: (line) => settings.traceSink(line), enabled: () => settings.trace }),
    })
    if (transport instanceof NatsClient) {
      const nats = transport
      transport = {
        connect: async (options) => {
          const session = await nats.connect(options)
          this.natsSession = session
          return session
        },
      }
    }
    this.client = new ApplicationClient<Uint8Array, Uint8Array>(
      transport,
      (command) => {
        const term = this.settings.writeTerm
        const out = new Uint8Array(command.length + term.length)
        out.set(command)
        out.set(term, command.length)
        return out
      },
      (bytes) => (this.settings.binary ? readBlock(bytes, this.settings.readTerm, this.settings.maxLength ?? MAX_REPLY) : this.lineFramer().unmarshall(bytes)),
      { timeout: 0 },
    )
  }

  /** True while a connection is open and usable. */
  get connected(): boolean {
    return this.session !== undefined
  }

  /** Connect (bounded by the timeout). Idempotent while connected. */
  async connect(signal?: AbortSignal): Promise<void> {
    if (this.session !== undefined) return
    this.session = await this.client.connect(signal === undefined ? undefined : { signal })
  }

  /** Send a command and read its reply. */
  async query(command: string, signal?: AbortSignal): Promise<Uint8Array> {
    const session = await this.open(signal)
    try {
      return await session.sendReceive(new TextEncoder().encode(command), { timeout: this.settings.timeout, ...(signal === undefined ? {} : { signal }) })
    } catch (error) {
      await this.dropAfterFailure()
      throw error
    }
  }

  /**
   * Send a command that gets no reply. On NATS, wait for the service's (empty) acknowledgement, so
   * that a write to a service with no instance, or one whose handler failed, is an error.
   */
  async write(command: string, signal?: AbortSignal): Promise<void> {
    const session = await this.open(signal)
    try {
      await session.send(new TextEncoder().encode(command), signal === undefined ? undefined : { signal })
      await this.natsSession?.settled({ timeout: this.settings.timeout, ...(signal === undefined ? {} : { signal }) })
    } catch (error) {
      await this.dropAfterFailure()
      throw error
    }
  }

  /** Close the connection (flushing writes). Idempotent. */
  async close(): Promise<void> {
    const session = this.session
    this.session = undefined
    this.natsSession = undefined
    await session?.close()
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  /** The terminators, as `read=\n write=\n`. */
  describeTerminators(): string {
    return `read ${formatTerminator(this.settings.readTerm)}  write ${formatTerminator(this.settings.writeTerm)}`
  }

  private async open(signal?: AbortSignal): Promise<ApplicationClientSession<Uint8Array, Uint8Array>> {
    await this.connect(signal)
    return this.session as ApplicationClientSession<Uint8Array, Uint8Array>
  }

  /**
   * After a failed command, drop the connection so the next command reconnects: a failed session
   * is unusable, and after a timeout or an abort the unanswered request would hold its place
   * (a reply that may never come), so the next command would wait behind it.
   */
  private async dropAfterFailure(): Promise<void> {
    await this.close().catch(() => undefined)
  }

  private lineFramer(): SentinelBytesMarshaller {
    const maxLength = this.settings.maxLength ?? MAX_REPLY
    const key = `${formatTerminator(this.settings.readTerm)} ${maxLength}`
    let framer = this.lines.get(key)
    if (framer === undefined) {
      framer = new SentinelBytesMarshaller(this.settings.readTerm, { maxLength })
      this.lines.set(key, framer)
    }
    return framer
  }
}

/**
 * The transport for a resource: `TcpClient` for `tcp://` and VISA SOCKET resources; for
 * `telnet://`, `TcpClient` with labwire's Telnet filter (what `TelnetClient` does), so that a
 * trace filter placed next to the socket sees the raw wire bytes, IAC negotiation included; for
 * `nats://`, `NatsClient` reaching the service by name (connect bounded by `timeout`; no instance
 * subscribed fails at once with `NoRespondersError` rather than retrying: a command line wants
 * the answer now; the per-reply limit is the caller's).
 */
export function transportFor(resource: Resource, options: { timeout: number; trace?: ConnectionFilterFactory }): TransportClient {
  if (resource.scheme === 'nats') {
    const nats = resource.nats
    if (nats === undefined) throw new RangeError(`transportFor: ${resource.text} has no NATS service`)
    return new NatsClient({
      servers: [...nats.servers],
      name: nats.name,
      ...(nats.endpoint === undefined ? {} : { endpoint: nats.endpoint }),
      timeout: 0,
      retryNoResponders: false,
      // nats.js's own connect limit (its default is 20 s); reconnects after that go on forever.
      natsOptions: options.timeout > 0 ? { timeout: options.timeout } : {},
      ...(options.trace === undefined ? {} : { filter: options.trace }),
    })
  }
  const base = { host: resource.host, port: resource.port, connectTimeout: options.timeout }
  if (resource.scheme === 'tcp') return new TcpClient(options.trace === undefined ? base : { ...base, filter: options.trace })
  const telnet = telnetClientFilter({ mode: 'plain' })
  return new TcpClient({ ...base, filter: options.trace === undefined ? telnet : composeFilters(options.trace, telnet) })
}
