import { channel } from 'node:diagnostics_channel'
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram'
import { createServer, isIPv6, type Server, type Socket } from 'node:net'
import { ConnectionError, checkPort, logDebug, silentLogger, type Logger } from '@labwire/core'
import { BrineDecodeError, decodeBrine, encodeBrine, type BrineValue } from './brine.js'
import {
  DEFAULT_PRUNE_TIMEOUT,
  MAX_MESSAGE,
  MAX_NAMES,
  MAX_REPLY,
  MAX_UDP_LIST_REPLY,
  REGISTRY_PORT,
  isHostText,
  isServiceName,
  isServicePort,
  normaliseHost,
  normaliseName,
  type RegistryMode,
  type ServiceAddress,
} from './protocol.js'

/** Options for {@link RegistryServer}. */
export interface RegistryServerOptions {
  /** Address to bind. Default `127.0.0.1` (RPyC binds every interface; labwire does not unless told). */
  host?: string
  /** Port to bind. Default 18811 (RPyC's); 0 picks a free one. */
  port?: number
  /** `udp` (default, as RPyC) or `tcp`. */
  mode?: RegistryMode
  /**
   * An entry not refreshed for this many ms is removed — by a timer, not only when someone queries
   * it. Default 240000 (RPyC's 4 minutes).
   */
  pruneTimeout?: number
  /** Answer LIST. Default true (RPyC's default is off: pass false for its behaviour). */
  allowListing?: boolean
  /** Most `(name, host, port)` entries held; a REGISTER that would add more is answered `"FULL"`. Default 4096. */
  maxEntries?: number
  /** TCP: most connections at once. Default 128. */
  maxConnections?: number
  /** TCP: a request must arrive whole within this many ms. Default 5000. */
  requestTimeout?: number
  /**
   * Requests answered per source host per second; more are dropped (a UDP registry's replies are
   * larger than its requests: without a limit a spoofed source turns it into an amplifier).
   * Default 200; 0 = no limit.
   */
  rateLimit?: number
  logger?: Logger
}

/**
 * Published on the `node:diagnostics_channel` channel `labwire:registry:change` (only when someone
 * subscribes) whenever a server joins or leaves a name: what a monitor or a log needs, with no
 * cost otherwise. RPyC's `on_service_added` / `on_service_removed`, without subclassing.
 */
export interface RegistryChangeEvent {
  type: 'added' | 'removed'
  /** Why it left: an UNREGISTER, or pruned after `pruneTimeout` without a refresh. */
  reason: 'register' | 'unregister' | 'pruned'
  name: string
  host: string
  port: number
}

/** The diagnostics channel of {@link RegistryChangeEvent}s. */
export const registryChangeChannel = channel('labwire:registry:change')

/** One registered server of a service, with when it was last heard from (`Date.now()` ms). */
export interface RegistryEntry extends ServiceAddress {
  lastSeen: number
}

interface Entry {
  host: string
  port: number
  lastSeen: number
}

/**
 * A service registry speaking RPyC's registry protocol over UDP or TCP. RPyC's
 * `UDPRegistryClient`/`TCPRegistryClient` and labwire's {@link RegistryClient} both use it.
 *
 * Beyond RPyC: a REGISTER may carry the host to advertise (a third argument), stale entries are
 * pruned by a timer, the table is bounded, and it binds loopback by default.
 */
export class RegistryServer implements AsyncDisposable {
  readonly mode: RegistryMode
  readonly pruneTimeout: number
  private readonly host: string
  private readonly port: number
  private readonly allowListing: boolean
  private readonly maxEntries: number
  private readonly maxConnections: number
  private readonly requestTimeout: number
  private readonly rateLimit: number
  /** Per-source request counts in the current one-second window; bounded (see `allowed`). */
  private readonly rates = new Map<string, { start: number; count: number }>()
  private readonly logger: Logger
  private readonly table = new Map<string, Map<string, Entry>>()
  private entries = 0
  private udp: UdpSocket | undefined
  private tcp: Server | undefined
  private readonly sockets = new Set<Socket>()
  private pruneTimer: ReturnType<typeof setInterval> | undefined
  private bound: ServiceAddress | undefined
  private closing: Promise<void> | undefined

  constructor(options: RegistryServerOptions = {}) {
    this.host = options.host ?? '127.0.0.1'
    this.port = checkPort('RegistryServer', options.port ?? REGISTRY_PORT)
    const mode = options.mode ?? 'udp'
    if (mode !== 'udp' && mode !== 'tcp') throw new RangeError(`RegistryServer: mode must be 'udp' or 'tcp', got ${String(mode)}`)
    this.mode = mode
    const prune = options.pruneTimeout ?? DEFAULT_PRUNE_TIMEOUT
    if (typeof prune !== 'number' || !Number.isFinite(prune) || prune <= 0) throw new RangeError(`RegistryServer: pruneTimeout must be a positive number of ms, got ${String(prune)}`)
    this.pruneTimeout = prune
    this.allowListing = options.allowListing ?? true
    this.maxEntries = options.maxEntries ?? 4096
    this.maxConnections = options.maxConnections ?? 128
    this.requestTimeout = options.requestTimeout ?? 5000
    this.rateLimit = options.rateLimit ?? 200
    this.logger = options.logger ?? silentLogger
  }

  /** The bound address, once listening. */
  get address(): ServiceAddress | undefined {
    return this.bound
  }

  /** Bind and start answering; resolves with the bound address. */
  async listen(): Promise<ServiceAddress> {
    if (this.bound !== undefined) return this.bound
    if (this.closing !== undefined) throw new ConnectionError('RegistryServer: closed')
    this.bound = this.mode === 'udp' ? await this.listenUdp() : await this.listenTcp()
    const period = Math.min(30_000, Math.max(10, this.pruneTimeout / 4))
    this.pruneTimer = setInterval(() => this.prune(), period)
    this.pruneTimer.unref()
    this.logger.info({ host: this.bound.host, port: this.bound.port, mode: this.mode }, 'registry listening')
    return this.bound
  }

  private listenUdp(): Promise<ServiceAddress> {
    const socket = createSocket({ type: isIPv6(this.host) ? 'udp6' : 'udp4' })
    this.udp = socket
    socket.on('message', (message, rinfo) => this.onDatagram(socket, message, rinfo))
    return new Promise((resolve, reject) => {
      socket.once('error', (cause) => reject(new ConnectionError(`RegistryServer: cannot bind udp ${this.host}:${this.port}`, { cause })))
      socket.bind(this.port, this.host, () => {
        socket.removeAllListeners('error')
        socket.on('error', (error) => this.logger.warn({ error }, 'registry udp socket error'))
        const address = socket.address()
        resolve({ host: address.address, port: address.port })
      })
    })
  }

  private listenTcp(): Promise<ServiceAddress> {
    const server = createServer((socket) => this.onConnection(socket))
    server.maxConnections = this.maxConnections
    this.tcp = server
    return new Promise((resolve, reject) => {
      server.once('error', (cause) => reject(new ConnectionError(`RegistryServer: cannot listen on tcp ${this.host}:${this.port}`, { cause })))
      server.listen(this.port, this.host, () => {
        server.removeAllListeners('error')
        server.on('error', (error) => this.logger.warn({ error }, 'registry tcp server error'))
        const address = server.address()
        if (address === null || typeof address === 'string') return reject(new ConnectionError('RegistryServer: no address'))
        resolve({ host: address.address, port: address.port })
      })
    })
  }

  private onDatagram(socket: UdpSocket, message: Buffer, rinfo: RemoteInfo): void {
    const reply = this.handle(message, normaliseHost(rinfo.address), MAX_UDP_LIST_REPLY)
    if (reply === undefined) return
    socket.send(reply, rinfo.port, rinfo.address, (error) => {
      if (error) this.logger.warn({ error, peer: `${rinfo.address}:${rinfo.port}` }, 'registry reply not sent')
    })
  }

  private onConnection(socket: Socket): void {
    this.sockets.add(socket)
    const peerHost = normaliseHost(socket.remoteAddress ?? '')
    const chunks: Buffer[] = []
    let length = 0
    const timer = setTimeout(() => socket.destroy(), this.requestTimeout)
    socket.on('close', () => {
      clearTimeout(timer)
      this.sockets.delete(socket)
    })
    socket.on('error', () => undefined)
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      length += chunk.length
      if (length > MAX_MESSAGE) {
        socket.destroy()
        return
      }
      const bytes = chunks.length === 1 ? chunk : Buffer.concat(chunks, length)
      let request: BrineValue
      try {
        request = decodeBrine(bytes, { maxLength: MAX_MESSAGE })
      } catch (error) {
        if (error instanceof BrineDecodeError && error.reason === 'truncated') return // wait for more
        logDebug(this.logger, () => [{ error, peer: peerHost }, 'registry: undecodable request dropped'])
        socket.destroy()
        return
      }
      socket.pause()
      clearTimeout(timer)
      const reply = this.answer(request, peerHost, MAX_REPLY)
      if (reply === undefined) socket.destroy()
      else socket.end(reply)
    })
  }

  /** Decode, run and encode one request; `undefined` = no reply (as RPyC: malformed input is dropped). */
  private handle(message: Uint8Array, peerHost: string, maxReply: number): Uint8Array | undefined {
    let request: BrineValue
    try {
      request = decodeBrine(message, { maxLength: MAX_MESSAGE })
    } catch (error) {
      logDebug(this.logger, () => [{ error, peer: peerHost }, 'registry: undecodable request dropped'])
      return undefined
    }
    return this.answer(request, peerHost, maxReply)
  }

  /** Fixed one-second window per source host. The table holds at most 4096 hosts: expired windows are evicted first, then the oldest. */
  private allowed(peerHost: string): boolean {
    if (this.rateLimit === 0) return true
    const now = Date.now()
    let rate = this.rates.get(peerHost)
    if (rate === undefined || now - rate.start >= 1000) {
      if (rate === undefined && this.rates.size >= 4096) {
        for (const [host, entry] of this.rates) if (now - entry.start >= 1000) this.rates.delete(host)
        if (this.rates.size >= 4096) this.rates.delete(this.rates.keys().next().value as string)
      }
      rate = { start: now, count: 0 }
      this.rates.delete(peerHost)
      this.rates.set(peerHost, rate)
    }
    return ++rate.count <= this.rateLimit
  }

  private answer(request: BrineValue, peerHost: string, maxReply: number): Uint8Array | undefined {
    if (!this.allowed(peerHost)) return this.drop(peerHost, 'rate limit')
    if (!Array.isArray(request) || request.length !== 3) return this.drop(peerHost, 'not a 3-tuple')
    const [magic, command, args] = request as readonly BrineValue[]
    if (magic !== 'RPYC') return this.drop(peerHost, 'bad magic')
    if (typeof command !== 'string' || !Array.isArray(args)) return this.drop(peerHost, 'bad command')
    const list = args as readonly BrineValue[]
    let reply: BrineValue | undefined
    switch (command.toUpperCase()) {
      case 'REGISTER':
        reply = this.cmdRegister(peerHost, list)
        break
      case 'UNREGISTER':
        reply = this.cmdUnregister(peerHost, list)
        break
      case 'QUERY':
        reply = this.cmdQuery(list, maxReply)
        break
      case 'LIST':
        reply = this.cmdList(list, maxReply)
        break
      default:
        return this.drop(peerHost, `unknown command ${command.slice(0, 32)}`)
    }
    return reply === undefined ? undefined : encodeBrine(reply)
  }

  private drop(peer: string, why: string): undefined {
    logDebug(this.logger, () => [{ peer, why }, 'registry: request dropped'])
    return undefined
  }

  private cmdRegister(peerHost: string, args: readonly BrineValue[]): BrineValue | undefined {
    const [names, port, host] = args
    const list = typeof names === 'string' ? [names] : Array.isArray(names) ? (names as readonly BrineValue[]) : undefined
    if (list === undefined || list.length === 0 || list.length > MAX_NAMES || !list.every(isServiceName)) return this.drop(peerHost, 'REGISTER: bad names')
    if (!isServicePort(port)) return this.drop(peerHost, 'REGISTER: bad port')
    if (args.length > 3 || (host !== undefined && host !== null && !isHostText(host))) return this.drop(peerHost, 'REGISTER: bad host')
    const advertised = typeof host === 'string' ? host : peerHost
    const now = Date.now()
    const fresh = list.filter((name) => !this.table.get(normaliseName(name))?.has(`${advertised}|${port}`))
    if (this.entries + fresh.length > this.maxEntries) {
      this.logger.warn({ peer: peerHost, entries: this.entries }, 'registry full: REGISTER refused')
      return 'FULL'
    }
    for (const name of list) {
      const key = normaliseName(name)
      let servers = this.table.get(key)
      if (servers === undefined) this.table.set(key, (servers = new Map<string, Entry>()))
      const id = `${advertised}|${port}`
      const entry = servers.get(id)
      if (entry === undefined) {
        servers.set(id, { host: advertised, port, lastSeen: now })
        this.entries++
        this.logger.info({ name: key, host: advertised, port }, 'service registered')
        if (registryChangeChannel.hasSubscribers) registryChangeChannel.publish({ type: 'added', reason: 'register', name: key, host: advertised, port } satisfies RegistryChangeEvent)
      } else {
        entry.lastSeen = now
      }
    }
    return 'OK'
  }

  private cmdUnregister(peerHost: string, args: readonly BrineValue[]): BrineValue | undefined {
    const [port, host] = args
    if (!isServicePort(port) || args.length > 2 || (host !== undefined && host !== null && !isHostText(host))) return this.drop(peerHost, 'UNREGISTER: bad arguments')
    const advertised = typeof host === 'string' ? host : peerHost
    for (const name of [...this.table.keys()]) this.remove(name, `${advertised}|${port}`, 'unregister')
    return 'OK'
  }

  private cmdQuery(args: readonly BrineValue[], maxReply: number): BrineValue | undefined {
    const [name] = args
    if (!isServiceName(name) || args.length !== 1) return undefined
    const key = normaliseName(name)
    this.pruneName(key, Date.now())
    const servers = [...(this.table.get(key)?.values() ?? [])].sort((a, b) => a.lastSeen - b.lastSeen)
    // Most recently refreshed first would starve old servers; RPyC answers oldest first. Keep
    // that order, and stop before the reply outgrows what an RPyC client reads in one recv().
    const reply: BrineValue[] = []
    let size = 6
    for (const server of servers) {
      size += server.host.length + 16
      if (size > maxReply) break
      reply.push([server.host, server.port])
    }
    return reply
  }

  private cmdList(args: readonly BrineValue[], maxReply: number): BrineValue | undefined {
    if (!this.allowListing) return null
    const [filter] = args
    const filterHost = Array.isArray(filter) ? (filter as readonly BrineValue[])[0] : filter
    const names: string[] = []
    let size = 6
    for (const [name, servers] of this.table) {
      if (typeof filterHost === 'string' && filterHost !== '' && ![...servers.values()].some((server) => server.host === filterHost)) continue
      size += name.length + 8
      if (size > maxReply) break
      names.push(name)
    }
    return names
  }

  private remove(name: string, id: string, reason: 'unregister' | 'pruned'): void {
    const servers = this.table.get(name)
    const entry = servers?.get(id)
    if (servers === undefined || entry === undefined) return
    servers.delete(id)
    this.entries--
    if (servers.size === 0) this.table.delete(name)
    this.logger.info({ name, host: entry.host, port: entry.port, reason }, 'service removed')
    if (registryChangeChannel.hasSubscribers) registryChangeChannel.publish({ type: 'removed', reason, name, host: entry.host, port: entry.port } satisfies RegistryChangeEvent)
  }

  private pruneName(name: string, now: number): number {
    const servers = this.table.get(name)
    if (servers === undefined) return 0
    let removed = 0
    for (const [id, entry] of servers) {
      if (now - entry.lastSeen > this.pruneTimeout) {
        this.remove(name, id, 'pruned')
        removed++
      }
    }
    return removed
  }

  /** Remove every entry not refreshed within `pruneTimeout`; returns how many. Runs on a timer too. */
  prune(now = Date.now()): number {
    let removed = 0
    for (const name of [...this.table.keys()]) removed += this.pruneName(name, now)
    return removed
  }

  /** A snapshot of the table: upper-cased name → its servers, oldest refresh first. */
  services(): Map<string, RegistryEntry[]> {
    const out = new Map<string, RegistryEntry[]>()
    for (const [name, servers] of this.table) out.set(name, [...servers.values()].map((entry) => ({ ...entry })).sort((a, b) => a.lastSeen - b.lastSeen))
    return out
  }

  /** Stop answering and release the socket. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.doClose()
    return this.closing
  }

  private async doClose(): Promise<void> {
    if (this.pruneTimer !== undefined) clearInterval(this.pruneTimer)
    const udp = this.udp
    const tcp = this.tcp
    if (udp !== undefined) await new Promise<void>((resolve) => udp.close(() => resolve()))
    if (tcp !== undefined) {
      const closed = new Promise<void>((resolve) => tcp.close(() => resolve()))
      for (const socket of this.sockets) socket.destroy()
      await closed
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}
