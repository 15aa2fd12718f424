/**
 * A recording, fault-injecting proxy between a client and an instrument. It listens with the
 * simulator's {@link SimulatorServer} (so the control channel, connection listings and the cable
 * work on it as on a simulated device), forwards each client connection to the instrument over
 * any `TransportClient`, frames both directions with named framers, reports every frame, and
 * applies the simulator's faults to the instrument's replies, frame by frame.
 *
 * @module
 */
import {
  NEED_MORE,
  byteStreamOf,
  logDebug,
  silentLogger,
  type ByteHandlerObject,
  type ByteStream,
  type Logger,
  type ServerAddress,
  type TransportClient,
  type TransportClientSession,
} from '@labwire/core'
import type { TelnetServerFilterOptions } from '@labwire/transport-telnet'
import { delay, Device, type SimConnection } from '../device.js'
import { validateFaultSpec, type Fault, type FaultKind, type FaultSpec } from '../faults.js'
import { SimulatorServer } from '../server.js'
import { framerByName, type NamedFramer } from './framers.js'
import { frameEntry, type TranscriptEntry } from './transcript.js'

/** Fault kinds only the proxy knows (on top of the simulator's {@link FaultKind}s). */
export type ProxyOnlyFaultKind =
  /** Flip one byte of the reply frame (`offset`, default the last byte before the terminator: a checksum's). */
  | 'corrupt'
  /** Send the reply frame twice. */
  | 'duplicate'

/** A fault spec for the proxy: any simulator fault, or a proxy-only one. */
export interface ProxyFaultSpec extends Omit<FaultSpec, 'kind'> {
  kind: FaultKind | ProxyOnlyFaultKind
  /** `corrupt`: the byte to change, from the frame's start; negative counts back from the end of the payload (-1, the default, is the byte before the terminator). */
  offset?: number
  /** `corrupt`: XOR mask applied to that byte. Default 0x01. */
  xor?: number
}

/** Options for {@link Proxy}. */
export interface ProxyOptions {
  /** How to reach the instrument: one session per client connection. */
  upstream: TransportClient
  /** A name for logs and the control channel. Default `'proxy'`. */
  name?: string
  /** Address to listen on. Default `127.0.0.1`. */
  host?: string
  /** Port; 0 (default) picks a free one. */
  port?: number
  /** Framer of the client's requests: a name ({@link framerByName}) or a framer. Default `'lf'`. */
  requestFramer?: string | NamedFramer
  /** Framer of the instrument's replies. Default `'scpi'` (lines, and IEEE 488.2 blocks whole). */
  responseFramer?: string | NamedFramer
  /** Listen with Telnet (labwire's IAC codec) instead of raw TCP. */
  telnet?: boolean | TelnetServerFilterOptions
  /**
   * Bytes from the instrument that do not complete a frame within this many milliseconds are
   * forwarded as they are (a login prompt, a banner, a shell prompt): the proxy never holds bytes
   * back for good. Default 20.
   */
  partialFlush?: number
  /** Called with every frame and connection event (write a transcript, build a recording). */
  onEntry?: (entry: TranscriptEntry) => void
  /** Connections served at once. Default unlimited. */
  maxConnections?: number
  logger?: Logger
}

/** What the control channel shows as the proxy's state. */
export interface ProxyState {
  upstream: string
  requests: number
  responses: number
}

const EMPTY = new Uint8Array(0)
/** See `Relay.send`. */
const BACKPRESSURE_EVERY = 16
const decoder = new TextDecoder()

/**
 * The proxy as a simulator {@link Device}: its handler frames the client's requests and forwards
 * them; replies come back from the instrument through each connection's `write`.
 */
export class ProxyDevice extends Device<ProxyState> {
  /**
   * Set by {@link Proxy}: the relay of a connection, looked up by the byte stream's label, which
   * `SimulatorServer` sets to the connection's peer (`host:port`), as it sets `SimConnection.peer`.
   */
  relayFor: (peer: string | undefined) => Relay | undefined = () => undefined
  constructor(
    name: string,
    upstream: string,
    private readonly requests: NamedFramer,
    logger: Logger,
  ) {
    super({ name, state: { upstream, requests: 0, responses: 0 }, logger })
  }

  /** Frame the client's requests with the request framer and forward each to the instrument. */
  override handler(): ByteHandlerObject {
    const decoder = this.requests.decoder
    const buffered = (stream: ByteStream): Uint8Array | undefined | typeof NEED_MORE | Promise<undefined> => {
      const before = stream.consumed
      const view = stream.view()
      const frame = decoder.decode(stream)
      if (frame === NEED_MORE) return NEED_MORE
      const raw = view.slice(0, stream.consumed - before)
      return this.relayFor(stream.label)?.fromClient(raw)
    }
    return {
      handle: async (bytes) => {
        const stream = byteStreamOf(bytes)
        for (;;) {
          const result = buffered(stream)
          if (result !== NEED_MORE) return result
          if (!(await stream.fill())) throw stream.closedError()
        }
      },
      handleBuffered: buffered,
    }
  }
}

/**
 * A proxy between clients and one instrument.
 *
 * @example
 * ```ts
 * const proxy = new Proxy({ upstream: new TcpClient({ host: '10.0.0.5', port: 5025 }), port: 5555, onEntry: (e) => log.push(e) })
 * await proxy.listen()
 * proxy.fault({ kind: 'latency', latency: 500, commands: ['MEAS?'] })
 * ```
 */
export class Proxy implements AsyncDisposable {
  readonly device: ProxyDevice
  readonly server: SimulatorServer
  readonly requestFramer: NamedFramer
  readonly responseFramer: NamedFramer
  /** @internal */
  readonly logger: Logger
  /** @internal */
  readonly partialFlush: number
  /** @internal */
  readonly onEntry: ((entry: TranscriptEntry) => void) | undefined
  private readonly relays = new Map<string, Relay>()
  private readonly extras = new Map<number, { kind: ProxyOnlyFaultKind; offset: number | undefined; xor: number | undefined }>()
  private readonly upstream: TransportClient
  private readonly unsubscribe: () => void

  constructor(options: ProxyOptions) {
    this.upstream = options.upstream
    this.logger = options.logger ?? silentLogger
    this.requestFramer = typeof options.requestFramer === 'object' ? options.requestFramer : framerByName(options.requestFramer ?? 'lf')
    this.responseFramer = typeof options.responseFramer === 'object' ? options.responseFramer : framerByName(options.responseFramer ?? 'scpi')
    this.partialFlush = options.partialFlush ?? 20
    this.onEntry = options.onEntry
    const label = (this.upstream as { target?: unknown }).target
    this.device = new ProxyDevice(options.name ?? 'proxy', typeof label === 'string' ? label : 'instrument', this.requestFramer, this.logger)
    this.device.relayFor = (peer) => (peer === undefined ? undefined : this.relays.get(peer))
    this.server = new SimulatorServer({
      device: this.device,
      ...(options.host === undefined ? {} : { host: options.host }),
      ...(options.port === undefined ? {} : { port: options.port }),
      ...(options.telnet === undefined ? {} : { telnet: options.telnet }),
      ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
      logger: this.logger,
    })
    this.unsubscribe = this.device.on((event) => {
      if (event.type === 'connect') {
        const relay = new Relay(this, event.connection)
        this.relays.set(event.connection.peer, relay)
        relay.open(this.upstream)
      } else if (event.type === 'disconnect') {
        const relay = this.relays.get(event.connection.peer)
        if (relay?.connection === event.connection) this.relays.delete(event.connection.peer)
        void relay?.clientClosed()
      }
    })
  }

  /** The bound address once listening. */
  get address(): ServerAddress | undefined {
    return this.server.address
  }

  /** Start listening. */
  listen(): Promise<ServerAddress> {
    return this.server.listen()
  }

  /**
   * Add a fault (the simulator's kinds, plus `corrupt` and `duplicate`); it applies to the replies
   * to the requests it names (`commands`, exact text; a trailing `\r` of a request is ignored), or
   * to every reply. Faults added through the control channel apply the same way.
   */
  fault(spec: ProxyFaultSpec): Fault {
    const { offset, xor, ...rest } = spec
    if (rest.kind === 'corrupt' || rest.kind === 'duplicate') {
      if (offset !== undefined && !Number.isInteger(offset)) throw new TypeError('offset: must be an integer')
      if (xor !== undefined && (!Number.isInteger(xor) || xor < 1 || xor > 255)) throw new TypeError('xor: must be an integer from 1 to 255')
      // Stored in the device's fault set (listed, switched and removed like any other) under its own kind.
      const fault = this.device.faults.add(validateFaultSpec({ ...rest, kind: 'junk' }))
      ;(fault as { kind: string }).kind = rest.kind
      this.extras.set(fault.id, { kind: rest.kind, offset, xor })
      return fault
    }
    if (offset !== undefined || xor !== undefined) throw new TypeError(`offset, xor: only for corrupt faults, not ${rest.kind}`)
    return this.device.faults.add(rest as FaultSpec)
  }

  /** @internal Options of a proxy-only fault. */
  extra(id: number): { offset: number | undefined; xor: number | undefined } | undefined {
    return this.extras.get(id)
  }

  /** "Cut the cable": close every client connection, refuse new ones until {@link Proxy.restoreCable}. */
  cutCable(): void {
    this.server.cutCable()
  }

  restoreCable(): void {
    this.server.restoreCable()
  }

  /** Stop listening; close every client connection and its instrument session. Idempotent. */
  async close(): Promise<void> {
    this.unsubscribe()
    const relays = [...this.relays.values()]
    this.relays.clear()
    await this.server.close()
    await Promise.all(relays.map((relay) => relay.clientClosed()))
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}

/** What to do with one reply frame once faults are applied. */
interface Delivery {
  wait: number
  bytes: Uint8Array
  pieces: number
  gap: number
  duplicate: boolean
  close: 'no' | 'connection' | 'cable'
}

/** One client connection and its instrument session. */
export class Relay {
  private session: TransportClientSession | undefined
  private ready: Promise<TransportClientSession | undefined> | undefined
  private closed = false
  /** Faults the last request triggered, and whether a reply to it was already delivered. */
  private faults: Fault[] = []
  private replied = true
  /** Deliveries in progress (a delayed or fragmented reply): later frames queue behind. */
  private chain: Promise<void> | undefined
  private flushTimer: ReturnType<typeof setTimeout> | undefined
  private upstreamStream: ByteStream | undefined
  private sent = 0

  constructor(
    private readonly proxy: Proxy,
    readonly connection: SimConnection,
  ) {}

  private entry(entry: TranscriptEntry): void {
    this.proxy.onEntry?.(entry)
  }

  /** Connect to the instrument and start forwarding its bytes. */
  open(upstream: TransportClient): void {
    this.entry({ time: new Date().toISOString(), connection: this.connection.id, event: 'connect' })
    this.ready = upstream.connect().then(
      (session) => {
        if (this.closed) {
          void session.close()
          return undefined
        }
        this.session = session
        this.pump(byteStreamOf(session.request(EMPTY)))
        return session
      },
      (error: unknown) => {
        this.proxy.logger.warn({ peer: this.connection.peer, err: error }, 'could not connect to the instrument; closing the client connection')
        this.closeClient()
        return undefined
      },
    )
  }

  /** A whole request frame from the client. */
  fromClient(raw: Uint8Array): undefined | Promise<undefined> {
    if (this.closed) return undefined
    if (this.proxy.onEntry !== undefined) this.entry(frameEntry(this.connection.id, 'request', raw))
    const device = this.proxy.device
    device.state.requests++
    this.replied = false
    this.faults = []
    if (device.faults.active) {
      const text = decoder.decode(this.payloadOf(raw, this.proxy.requestFramer))
      const queries = text.endsWith('\r') ? [text, text.slice(0, -1)] : [text]
      this.faults = device.faults.triggered(queries)
      if (this.faults.some((f) => f.kind === 'quiet')) device.quiet = true
    }
    if (device.quiet) return undefined
    const session = this.session
    if (session !== undefined) return this.send(session, raw)
    return (this.ready ?? Promise.resolve(undefined)).then((s) => (s === undefined ? undefined : this.send(s, raw)))
  }

  private send(session: TransportClientSession, raw: Uint8Array): undefined | Promise<undefined> {
    try {
      // Every BACKPRESSURE_EVERY requests, wait for room in the instrument's write buffer (a
      // client far ahead of the instrument is paced); in between, write synchronously (lockstep latency).
      if (session.write === undefined || ++this.sent % BACKPRESSURE_EVERY !== 0) {
        session.request(raw)
        return undefined
      }
      return session.write(raw).then(
        () => undefined,
        (error: unknown) => {
          logDebug(this.proxy.logger, () => [{ err: error }, 'write to the instrument failed'])
          this.closeClient()
          return undefined
        },
      )
    } catch (error) {
      logDebug(this.proxy.logger, () => [{ err: error }, 'write to the instrument failed'])
      this.closeClient()
      return undefined
    }
  }

  private payloadOf(raw: Uint8Array, framer: NamedFramer): Uint8Array {
    const term = framer.terminator
    if (term === undefined || raw.length < term.length) return raw
    for (let i = 0; i < term.length; i++) if (raw[raw.length - term.length + i] !== term[i]) return raw
    return raw.subarray(0, raw.length - term.length)
  }

  /** Read the instrument's bytes: frame them, report them, deliver them. */
  private pump(stream: ByteStream): void {
    this.upstreamStream = stream
    if (stream.pushMode) {
      stream.onData = () => this.drain(stream)
      this.drain(stream)
      return
    }
    void (async () => {
      for (;;) {
        this.drain(stream)
        if (this.closed || stream.ended) return
        try {
          await stream.fill()
        } catch {
          this.drain(stream)
          this.upstreamEnded(stream)
          return
        }
      }
    })()
  }

  private drain(stream: ByteStream): void {
    if (this.closed) return
    const framer = this.proxy.responseFramer
    for (;;) {
      if (stream.bufferedLength === 0) break
      const before = stream.consumed
      const view = stream.view()
      let frame
      try {
        frame = framer.decoder.decode(stream)
      } catch {
        // Not framable (junk, over the maximum): forward what is buffered as it is.
        this.flushPartial(stream)
        continue
      }
      if (frame === NEED_MORE) break
      const consumed = stream.consumed - before
      if (consumed === 0) break
      this.fromInstrument(view.slice(0, consumed), false)
    }
    if (this.flushTimer !== undefined) {
      clearTimeout(this.flushTimer)
      this.flushTimer = undefined
    }
    if (stream.bufferedLength > 0 && !stream.ended) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined
        this.flushPartial(stream)
      }, this.proxy.partialFlush)
      this.flushTimer.unref?.()
    }
    if (stream.ended || stream.error !== undefined) this.upstreamEnded(stream)
  }

  private flushPartial(stream: ByteStream): void {
    const n = stream.bufferedLength
    if (n === 0 || this.closed) return
    const bytes = stream.take(n).slice()
    stream.decoderState = undefined
    this.fromInstrument(bytes, true)
  }

  private upstreamEnded(stream: ByteStream): void {
    if (this.closed) return
    this.flushPartial(stream)
    logDebug(this.proxy.logger, () => [{ peer: this.connection.peer }, 'instrument closed the connection; closing the client connection'])
    this.closeClient()
  }

  /** A frame (or unframed bytes) from the instrument: report it, apply the faults, deliver it. */
  private fromInstrument(raw: Uint8Array, partial: boolean): void {
    if (this.proxy.onEntry !== undefined) this.entry(frameEntry(this.connection.id, 'response', raw, partial))
    const device = this.proxy.device
    device.state.responses++
    if (device.quiet) return
    const delivery = this.faults.length === 0 ? undefined : this.applyFaults(raw)
    this.replied = true
    if (delivery === undefined && this.chain === undefined) {
      this.connection.write(raw)
      return
    }
    const step = delivery ?? { wait: 0, bytes: raw, pieces: 1, gap: 0, duplicate: false, close: 'no' as const }
    const run = (): Promise<void> => this.deliver(step)
    const next: Promise<void> = (this.chain ?? Promise.resolve()).then(run).finally(() => {
      if (this.chain === next) this.chain = undefined
    })
    this.chain = next
  }

  private applyFaults(raw: Uint8Array): Delivery | undefined {
    const first = !this.replied
    const out: Delivery = { wait: 0, bytes: raw, pieces: 1, gap: 0, duplicate: false, close: 'no' }
    let truncated = false
    const random = this.proxy.device.faults.random
    for (const fault of this.faults) {
      const kind = fault.kind as FaultKind | ProxyOnlyFaultKind
      if (kind === 'no-reply') return { ...out, bytes: EMPTY }
      if (kind === 'fragment') {
        out.pieces = Math.max(1, Math.floor(fault.fragments ?? 3))
        out.gap = fault.fragmentDelay ?? 20
        continue
      }
      if (!first) continue
      switch (kind) {
        case 'latency': {
          const jitter = fault.jitter ?? 0
          out.wait += Math.max(0, (fault.latency ?? 100) + (jitter === 0 ? 0 : (random() * 2 - 1) * jitter))
          break
        }
        case 'disconnect':
          if (out.close === 'no') out.close = 'connection'
          break
        case 'cable-cut':
          out.close = 'cable'
          break
        case 'junk': {
          const junk = new TextEncoder().encode(fault.junk ?? 'JUNK#%&JUNK#%&JU')
          out.bytes = fault.replace === true ? junk : concat(junk, out.bytes)
          break
        }
        case 'truncate':
          out.bytes = out.bytes.subarray(0, Math.min(out.bytes.length - 1, fault.keep ?? Math.floor(out.bytes.length / 2)))
          truncated = true
          break
        case 'corrupt': {
          const extra = this.proxy.extra(fault.id)
          const payloadLength = this.payloadOfResponse(out.bytes).length
          const offset = extra?.offset ?? -1
          const index = offset < 0 ? payloadLength + offset : offset
          if (index >= 0 && index < out.bytes.length) {
            const copy = out.bytes.slice()
            copy[index] = (copy[index] as number) ^ (extra?.xor ?? 0x01)
            out.bytes = copy
          }
          break
        }
        case 'duplicate':
          out.duplicate = true
          break
        default:
          break
      }
    }
    if (out.close !== 'no' && !truncated) out.bytes = EMPTY
    return out
  }

  private payloadOfResponse(raw: Uint8Array): Uint8Array {
    return this.payloadOf(raw, this.proxy.responseFramer)
  }

  private async deliver(step: Delivery): Promise<void> {
    if (step.wait > 0) await delay(step.wait)
    const conn = this.connection
    const write = async (bytes: Uint8Array): Promise<void> => {
      if (bytes.length === 0) return
      if (step.pieces <= 1) {
        if (!conn.closed) conn.write(bytes)
        return
      }
      const size = Math.max(1, Math.ceil(bytes.length / step.pieces))
      for (let at = 0; at < bytes.length; at += size) {
        if (at > 0 && step.gap > 0) await delay(step.gap)
        if (conn.closed) return
        conn.write(bytes.subarray(at, at + size))
      }
    }
    await write(step.bytes)
    if (step.duplicate) await write(step.bytes)
    if (step.close === 'cable') {
      await new Promise((resolve) => setImmediate(resolve))
      this.proxy.cutCable()
    } else if (step.close === 'connection') {
      this.closeClient()
    }
  }

  /** Close the client connection once what is queued for it has been written. */
  private closeClient(): void {
    const chain = this.chain
    const close = (): void => {
      setImmediate(() => this.connection.destroy())
    }
    if (chain === undefined) close()
    else void chain.then(close, close)
  }

  /** The client connection closed: close the instrument session. */
  async clientClosed(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer)
    if (this.upstreamStream !== undefined) this.upstreamStream.onData = undefined
    this.entry({ time: new Date().toISOString(), connection: this.connection.id, event: 'close' })
    const session = this.session ?? (await this.ready)
    await session?.close().catch(() => undefined)
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}
