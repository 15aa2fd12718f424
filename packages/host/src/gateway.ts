import { ApplicationClient, type ApplicationClientSession } from '@labwire/application'
import { ConnectionClosedError, silentLogger, type ByteHandlerObject, type Logger } from '@labwire/core'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { TcpClient } from '@labwire/transport-tcp'
import { TelnetClient } from '@labwire/transport-telnet'
import type { ReplyRule } from './config.js'

/** An instrument address, as a gateway's `resource` names it. */
export interface InstrumentAddress {
  scheme: 'tcp' | 'telnet'
  host: string
  port: number
}

/** Thrown for a `resource` that is not `TCPIP[n]::host::port::SOCKET`, `tcp://host:port` or `telnet://host:port`. */
export class ResourceFormatError extends Error {
  override readonly name = 'ResourceFormatError'
  readonly code = 'ERR_RESOURCE' as const
}

/**
 * Parse a gateway's `resource`. (The `labwire` CLI has a fuller parser; the host does not import
 * the CLI, which depends on the host.)
 */
export function parseInstrumentResource(text: string): InstrumentAddress {
  const visa = /^TCPIP\d*::(\[[^\]]+\]|[^:]+)::(\d{1,5})::SOCKET$/i.exec(text.trim())
  if (visa !== null) return { scheme: 'tcp', host: (visa[1] as string).replace(/^\[|\]$/g, ''), port: checkPort(text, visa[2] as string) }
  const uri = /^(tcp|telnet):\/\/(\[[^\]]+\]|[^:/?#]+)(?::(\d{1,5}))?\/?$/i.exec(text.trim())
  if (uri !== null) {
    const scheme = (uri[1] as string).toLowerCase() as 'tcp' | 'telnet'
    return { scheme, host: (uri[2] as string).replace(/^\[|\]$/g, ''), port: uri[3] === undefined ? (scheme === 'tcp' ? 5025 : 23) : checkPort(text, uri[3]) }
  }
  throw new ResourceFormatError(`"${text}" is not TCPIP[n]::host::port::SOCKET, tcp://host[:port] or telnet://host[:port]`)
}

function checkPort(text: string, port: string): number {
  const n = Number(port)
  if (n < 1 || n > 65535) throw new ResourceFormatError(`"${text}": port ${port} is not 1-65535`)
  return n
}

/** Options for {@link Gateway}. */
export interface GatewayOptions {
  instrument: InstrumentAddress
  /** Line terminator, both ways. Default `\n`. */
  terminator?: string
  /** Instrument reply timeout, ms. Default 5000. */
  timeout?: number
  /** Lease of a lock when `@lock` names none, ms. Default 30 000. */
  lockLease?: number
  /** How long another client's request waits for a held lock, ms. Default 10 000. */
  lockWait?: number
  /** Which requests expect a reply line. Default `auto` (a line containing `?`). */
  reply?: ReplyRule
  logger?: Logger
}

interface Client {
  id: number
  /** The connection's byte stream: its `ended` flag tells a lock holder has gone. */
  stream: object
}

interface Waiter {
  client: Client
  resolve: () => void
  reject: (error: Error) => void
  timer: ReturnType<typeof setTimeout>
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * An instrument gateway: a `ByteHandler` that forwards each client line to one instrument
 * connection, one request at a time, with exclusive client locks. Directives (lines starting with
 * `@`) are the gateway's own: `@lock [lease_ms]`, `@unlock`, `@status` (see the README).
 */
export class Gateway implements ByteHandlerObject {
  private readonly framer: SentinelBytesMarshaller
  private readonly terminator: Uint8Array
  private readonly client: ApplicationClient<Uint8Array, Uint8Array>
  private session: Promise<ApplicationClientSession<Uint8Array, Uint8Array>> | undefined
  private readonly clients = new WeakMap<object, Client>()
  private nextId = 1
  private holder: { client: Client; until: number; lease: number; timer: ReturnType<typeof setTimeout>; watch: ReturnType<typeof setInterval> } | undefined
  private readonly waiters: Waiter[] = []
  /** Requests to the instrument, one at a time. */
  private chain: Promise<unknown> = Promise.resolve()
  private readonly options: Required<Omit<GatewayOptions, 'logger' | 'terminator'>>
  private readonly logger: Logger
  private closed = false

  constructor(options: GatewayOptions) {
    const terminator = options.terminator ?? '\n'
    this.framer = new SentinelBytesMarshaller(terminator)
    this.terminator = encoder.encode(terminator)
    this.logger = options.logger ?? silentLogger
    this.options = { instrument: options.instrument, timeout: options.timeout ?? 5_000, lockLease: options.lockLease ?? 30_000, lockWait: options.lockWait ?? 10_000, reply: options.reply ?? 'auto' }
    const { host, port, scheme } = options.instrument
    const transport = scheme === 'telnet' ? new TelnetClient({ host, port }) : new TcpClient({ host, port })
    this.client = new ApplicationClient(transport, this.framer.marshall, this.framer.unmarshall, { timeout: this.options.timeout, logger: this.logger })
  }

  /** The `ByteHandler` entry: one client request. */
  handle = async (bytes: AsyncIterator<Uint8Array>): Promise<Uint8Array | undefined> => {
    let client = this.clients.get(bytes)
    if (client === undefined) {
      client = { id: this.nextId++, stream: bytes }
      this.clients.set(bytes, client)
    }
    let line: Uint8Array
    try {
      line = await this.framer.unmarshall(bytes)
    } catch (error) {
      // The client went away: its lock goes with it.
      if (error instanceof ConnectionClosedError || (error as { code?: unknown } | null)?.code === 'ERR_CONNECTION_CLOSED') this.release(client)
      throw error
    }
    const text = decoder.decode(line).replace(/\r$/, '')
    if (text.startsWith('@')) return this.reply(this.directive(client, text.trim()))
    try {
      await this.turn(client)
    } catch (error) {
      if (this.expectsReply(text)) return this.reply(`@error ${(error as Error).message}`)
      this.logger.warn({ client: client.id, err: error }, 'write dropped: the instrument is locked by another client')
      return undefined
    }
    if (this.holder?.client === client) this.renew()
    const expect = this.expectsReply(text)
    const run = this.chain.then(() => this.exchange(line, expect))
    this.chain = run.catch(() => undefined)
    try {
      const answer = await run
      return answer === undefined ? undefined : this.frame(answer)
    } catch (error) {
      this.logger.warn({ err: error, client: client.id }, 'instrument request failed')
      return expect ? this.reply(`@error instrument: ${(error as Error).message}`) : undefined
    }
  }

  /** Close the instrument connection and refuse waiting clients. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.holder !== undefined) {
      clearTimeout(this.holder.timer)
      clearInterval(this.holder.watch)
    }
    this.holder = undefined
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer)
      waiter.reject(new Error('gateway closed'))
    }
    const session = this.session
    this.session = undefined
    if (session !== undefined) await session.then((s) => s.close(), () => undefined)
  }

  private expectsReply(text: string): boolean {
    return this.options.reply === 'always' || text.includes('?')
  }

  private frame(payload: Uint8Array): Uint8Array {
    const out = new Uint8Array(payload.length + this.terminator.length)
    out.set(payload)
    out.set(this.terminator, payload.length)
    return out
  }

  private reply(text: string): Uint8Array {
    return this.frame(encoder.encode(text))
  }

  private async exchange(line: Uint8Array, expect: boolean): Promise<Uint8Array | undefined> {
    if (this.closed) throw new Error('gateway closed')
    this.session ??= this.client.connect()
    let session: ApplicationClientSession<Uint8Array, Uint8Array>
    try {
      session = await this.session
    } catch (error) {
      this.session = undefined
      throw error
    }
    try {
      if (expect) return await session.sendReceive(line)
      await session.send(line)
      return undefined
    } catch (error) {
      // A broken or timed-out connection is dropped; the next request opens a new one.
      this.session = undefined
      void session.close().catch(() => undefined)
      throw error
    }
  }

  private directive(client: Client, text: string): string {
    const [word = '', ...args] = text.split(/\s+/)
    switch (word.toLowerCase()) {
      case '@lock': {
        const lease = args[0] === undefined ? this.options.lockLease : Number(args[0])
        if (!Number.isInteger(lease) || lease <= 0 || lease > 3_600_000) return '@error lease must be 1-3600000 ms'
        if (this.holder !== undefined && this.holder.client !== client) return `@error locked by client ${this.holder.client.id} for up to ${Math.max(0, this.holder.until - Date.now())} ms`
        this.grant(client, lease)
        return `@ok locked ${lease}`
      }
      case '@unlock':
        if (this.holder?.client !== client) return '@error not locked by you'
        this.release(client)
        return '@ok unlocked'
      case '@status':
        return this.holder === undefined ? '@ok free' : `@ok locked by client ${this.holder.client.id}${this.holder.client === client ? ' (you)' : ''} for ${Math.max(0, this.holder.until - Date.now())} ms`
      default:
        return `@error unknown directive ${word} (known: @lock [lease_ms], @unlock, @status)`
    }
  }

  private grant(client: Client, lease: number): void {
    if (this.holder !== undefined) {
      clearTimeout(this.holder.timer)
      clearInterval(this.holder.watch)
    }
    const timer = setTimeout(() => {
      this.logger.info({ client: client.id }, 'lock lease expired')
      this.release(client)
    }, lease)
    timer.unref()
    // A server calls its handler only when bytes arrive, so a holder that disconnects is noticed
    // by watching its stream's end (until the serving kernel tells handlers of closed connections).
    const watch = setInterval(() => {
      if ((client.stream as { ended?: unknown }).ended === true) {
        this.logger.info({ client: client.id }, 'lock holder disconnected')
        this.release(client)
      }
    }, 50)
    watch.unref()
    this.holder = { client, lease, until: Date.now() + lease, timer, watch }
  }

  /** The holder's activity renews its lease. */
  private renew(): void {
    if (this.holder !== undefined) this.grant(this.holder.client, this.holder.lease)
  }

  private release(client: Client): void {
    if (this.holder?.client !== client) return
    clearTimeout(this.holder.timer)
    clearInterval(this.holder.watch)
    this.holder = undefined
    // Wake every waiter: the first to ask for the lock again gets it; plain requests go through.
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer)
      waiter.resolve()
    }
  }

  /** Resolve when `client` may use the instrument: nobody else holds the lock. Bounded by lockWait. */
  private turn(client: Client): Promise<void> {
    if (this.holder === undefined || this.holder.client === client) return Promise.resolve()
    const holder = this.holder
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        client,
        resolve: () => {
          // Someone else may have taken the lock meanwhile: wait again (the time limit restarts).
          this.turn(client).then(resolve, reject)
        },
        reject,
        timer: setTimeout(() => {
          const index = this.waiters.indexOf(waiter)
          if (index >= 0) this.waiters.splice(index, 1)
          reject(new Error(`locked by client ${holder.client.id}; waited ${this.options.lockWait} ms`))
        }, this.options.lockWait),
      }
      this.waiters.push(waiter)
    })
  }
}
