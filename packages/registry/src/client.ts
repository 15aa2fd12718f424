import { createSocket } from 'node:dgram'
import { connect as netConnect, isIPv6 } from 'node:net'
import {
  AbortError,
  ConnectionClosedError,
  ConnectionError,
  TimeoutError,
  abortErrorFrom,
  checkPort,
  isLabwireError,
  throwIfAborted,
  type AbortOptions,
} from '@labwire/core'
import { BrineDecodeError, decodeBrine, encodeBrine, type BrineValue } from './brine.js'
import {
  MAX_MESSAGE,
  MAX_NAMES,
  REGISTRY_PORT,
  RegistryReplyError,
  isHostText,
  isServiceName,
  isServicePort,
  parseListReply,
  parseQueryReply,
  type RegistryMode,
  type ServiceAddress,
} from './protocol.js'

/** Where a registry listens. `port` defaults to 18811. */
export interface RegistryAddress {
  host: string
  port?: number
}

/** Options for {@link RegistryClient}. */
export interface RegistryClientOptions {
  /** The registry's host. Default `127.0.0.1`. Never a broadcast address: labwire always sends to one host. */
  host?: string
  /** The registry's port. Default 18811. */
  port?: number
  /**
   * Several registries (`"host"`, `"host:port"` or `{ host, port }`); replaces `host`/`port`. Every
   * call goes to all of them at once: `register`/`unregister` succeed when at least one
   * acknowledges, `discover`/`list` merge the answers of those that answered (duplicates dropped,
   * first registry's order first) and fail only when none answered.
   */
  registries?: readonly (RegistryAddress | string)[]
  /** `udp` (default, as RPyC) or `tcp`. */
  mode?: RegistryMode
  /** How long to wait for each registry's reply, ms. Default 2000 (RPyC's 2 s). */
  timeout?: number
  /** Local address to send from (RPyC's `interface`). */
  localAddress?: string
}

/** Per-call options of {@link RegistryClient.register} and {@link RegistryClient.unregister}. */
export interface RegisterOptions extends AbortOptions {
  /**
   * The address to advertise instead of the request's source address (multihomed hosts,
   * containers, NAT). Needs a labwire registry: RPyC's registry does not acknowledge a REGISTER
   * that carries it, so the call fails rather than register the wrong address.
   */
  host?: string
}

/**
 * A client of RPyC-protocol registries (labwire's {@link RegistryServer} or RPyC's
 * `rpyc_registry`): register a service, unregister it, discover the servers of a name, list names.
 */
export class RegistryClient {
  readonly mode: RegistryMode
  readonly registries: readonly Required<RegistryAddress>[]
  private readonly timeout: number
  private readonly localAddress: string | undefined

  constructor(options: RegistryClientOptions = {}) {
    const mode = options.mode ?? 'udp'
    if (mode !== 'udp' && mode !== 'tcp') throw new RangeError(`RegistryClient: mode must be 'udp' or 'tcp', got ${String(mode)}`)
    this.mode = mode
    const list = options.registries ?? [{ host: options.host ?? '127.0.0.1', port: options.port ?? REGISTRY_PORT }]
    if (list.length === 0) throw new RangeError('RegistryClient: registries must not be empty')
    this.registries = list.map(parseAddress)
    const timeout = options.timeout ?? 2000
    if (typeof timeout !== 'number' || !(timeout > 0)) throw new RangeError(`RegistryClient: timeout must be a positive number of ms, got ${String(timeout)}`)
    this.timeout = timeout
    this.localAddress = options.localAddress
  }

  /**
   * Register `port` under `name` (or several aliases). Resolves with how many registries
   * acknowledged (at least one), else rejects with the first registry's error.
   */
  async register(name: string | readonly string[], port: number, options: RegisterOptions = {}): Promise<number> {
    const names = typeof name === 'string' ? [name] : [...name]
    if (names.length === 0 || names.length > MAX_NAMES || !names.every(isServiceName)) throw new RangeError(`RegistryClient.register: 1–${MAX_NAMES} non-empty names of at most 255 characters expected`)
    if (!isServicePort(port)) throw new RangeError(`RegistryClient.register: port must be an integer 1–65535, got ${String(port)}`)
    if (options.host !== undefined && !isHostText(options.host)) throw new RangeError(`RegistryClient.register: host must be an IP address or DNS name, got ${String(options.host)}`)
    const args: BrineValue[] = options.host === undefined ? [names, port] : [names, port, options.host]
    return this.acknowledged(['RPYC', 'REGISTER', args], options)
  }

  /**
   * Remove this server (`port` on this host, or on `options.host`) from the registries. As in
   * RPyC's protocol the server leaves under all its names, `name` included.
   */
  async unregister(name: string, port: number, options: RegisterOptions = {}): Promise<number> {
    if (!isServiceName(name)) throw new RangeError('RegistryClient.unregister: name must be a non-empty string')
    if (!isServicePort(port)) throw new RangeError(`RegistryClient.unregister: port must be an integer 1–65535, got ${String(port)}`)
    if (options.host !== undefined && !isHostText(options.host)) throw new RangeError(`RegistryClient.unregister: host must be an IP address or DNS name, got ${String(options.host)}`)
    const args: BrineValue[] = options.host === undefined ? [port] : [port, options.host]
    return this.acknowledged(['RPYC', 'UNREGISTER', args], options)
  }

  /** The servers of `name` (case-insensitive), merged over every registry that answered. */
  async discover(name: string, options: AbortOptions = {}): Promise<ServiceAddress[]> {
    if (!isServiceName(name)) throw new RangeError('RegistryClient.discover: name must be a non-empty string')
    const answers = await this.ask(['RPYC', 'QUERY', [name]], options, parseQueryReply)
    const seen = new Set<string>()
    const out: ServiceAddress[] = []
    for (const servers of answers) {
      for (const server of servers) {
        const id = `${server.host}|${server.port}`
        if (seen.has(id)) continue
        seen.add(id)
        out.push(server)
      }
    }
    return out
  }

  /** The registered service names (upper case, as RPyC keeps them), merged over every registry that answered. */
  async list(options: AbortOptions & { filterHost?: string } = {}): Promise<string[]> {
    const answers = await this.ask(['RPYC', 'LIST', [[options.filterHost ?? null]]], options, parseListReply)
    return [...new Set(answers.flat())]
  }

  private async acknowledged(message: BrineValue, options: AbortOptions): Promise<number> {
    const acks = await this.ask(message, options, (reply) => {
      if (reply !== 'OK') throw new RegistryReplyError(`registry refused: ${typeof reply === 'string' ? reply : 'unexpected reply'}`, reply)
      return true
    })
    return acks.length
  }

  /** Send `message` to every registry; the parsed answers of those that answered, or the first error if none did. */
  private async ask<T>(message: BrineValue, options: AbortOptions, parse: (reply: BrineValue) => T): Promise<T[]> {
    throwIfAborted(options)
    const bytes = encodeBrine(message)
    const results = await Promise.allSettled(this.registries.map(async (address) => parse(await this.exchange(address, bytes, options.signal))))
    const answers: T[] = []
    for (const result of results) if (result.status === 'fulfilled') answers.push(result.value)
    if (answers.length > 0) return answers
    const first = results.find((result): result is PromiseRejectedResult => result.status === 'rejected')
    const error: unknown = first?.reason
    throw isLabwireError(error) ? error : new ConnectionError('registry: no registry answered', { cause: error })
  }

  /**
   * One request/reply exchange with one registry: the parts every mode shares (the timer, the
   * abort signal, decoding, settling once, closing the socket); the {@link Carrier} of the mode
   * moves the bytes.
   */
  private exchange(address: Required<RegistryAddress>, request: Uint8Array, signal: AbortSignal | undefined): Promise<BrineValue> {
    const where = `${address.host}:${address.port}`
    const carrier = CARRIERS[this.mode]
    return new Promise<BrineValue>((resolve, reject) => {
      let done = false
      let close = (): void => undefined
      const finish = (error: unknown, value?: BrineValue): void => {
        if (done) return
        done = true
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        close()
        if (error === undefined) resolve(value ?? null)
        else reject(error instanceof Error ? error : new ConnectionError(`registry ${where}: request failed`, { cause: error }))
      }
      const onAbort = (): void => finish(signal === undefined ? new AbortError() : abortErrorFrom(signal, `registry request to ${where}`))
      const timer = setTimeout(() => finish(new TimeoutError(`registry ${where} did not answer within ${this.timeout} ms (${this.mode})`)), this.timeout)
      signal?.addEventListener('abort', onAbort, { once: true })
      const chunks: Uint8Array[] = []
      let length = 0
      close = carrier(address, this.localAddress, request, {
        done: () => done,
        failed: (cause) => finish(new ConnectionError(`registry ${where}: ${cause.message}`, { cause })),
        received: (chunk, final) => {
          // A datagram is a whole reply (final); a stream's reply may come in pieces, until it decodes.
          chunks.push(chunk)
          length += chunk.length
          try {
            finish(undefined, decodeBrine(chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks, length), { maxLength: MAX_MESSAGE }))
          } catch (error) {
            if (error instanceof BrineDecodeError && error.reason === 'truncated' && !final) return
            if (final && length === 0) finish(new ConnectionClosedError(`registry ${where} closed the connection without a reply`))
            else finish(error)
          }
        },
      })
    })
  }
}

/** What a {@link Carrier} reports to the exchange. */
interface CarrierEvents {
  /** True once the exchange is settled (stop early). */
  done(): boolean
  /** A socket error. */
  failed(cause: Error): void
  /** Reply bytes; `final` when no more will come (a datagram, or the end of a TCP stream). */
  received(chunk: Uint8Array, final: boolean): void
}

/** Sends one request to a registry over one transport and reports what comes back; returns how to close its socket. */
type Carrier = (address: Required<RegistryAddress>, localAddress: string | undefined, request: Uint8Array, events: CarrierEvents) => () => void

const CARRIERS: Record<RegistryMode, Carrier> = {
  udp: (address, localAddress, request, events) => {
    const socket = createSocket({ type: isIPv6(address.host) ? 'udp6' : 'udp4' })
    socket.on('error', (cause) => events.failed(cause))
    // Connected: only datagrams from the registry's own address are read.
    socket.on('message', (message) => events.received(message, true))
    socket.bind(0, localAddress, () => {
      if (events.done()) return
      socket.connect(address.port, address.host, () => {
        if (events.done()) return
        socket.send(request, (error) => {
          if (error) events.failed(new ConnectionError(`send failed: ${error.message}`, { cause: error }))
        })
      })
    })
    return () => {
      try {
        socket.close()
      } catch {
        // already closed
      }
    }
  },
  tcp: (address, localAddress, request, events) => {
    const socket = netConnect({ host: address.host, port: address.port, ...(localAddress === undefined ? {} : { localAddress }) })
    socket.on('connect', () => socket.write(request))
    socket.on('error', (cause) => events.failed(cause))
    socket.on('data', (chunk: Buffer) => events.received(chunk, false))
    socket.on('end', () => events.received(new Uint8Array(0), true))
    return () => socket.destroy()
  },
}

function parseAddress(entry: RegistryAddress | string): Required<RegistryAddress> {
  if (typeof entry === 'string') {
    const match = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry) ?? /^([^:]+)(?::(\d+))?$/.exec(entry)
    if (match === null) throw new RangeError(`RegistryClient: registry address must be "host" or "host:port", got ${entry}`)
    return { host: match[1] as string, port: checkPort('RegistryClient', match[2] === undefined ? REGISTRY_PORT : Number(match[2])) }
  }
  return { host: entry.host, port: checkPort('RegistryClient', entry.port ?? REGISTRY_PORT) }
}
