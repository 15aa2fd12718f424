/**
 * RPyC's registry protocol: each request is one brine value `("RPYC", COMMAND, args)`, each
 * reply one brine value. Over UDP one datagram each way; over TCP one request per connection,
 * the reply written and the connection closed.
 *
 * @module
 */
import { FramingError } from '@labwire/core'
import type { BrineValue } from './brine.js'

/** RPyC's registry port. */
export const REGISTRY_PORT = 18811
/** RPyC's default pruning timeout (4 minutes), in ms. */
export const DEFAULT_PRUNE_TIMEOUT = 240_000
/** RPyC clients read one `recv(1500)`: a reply must fit. */
export const MAX_REPLY = 1500
/** RPyC's UDP `list()` reads up to 15000 bytes. */
export const MAX_UDP_LIST_REPLY = 15_000
/** Largest request accepted by a labwire server, and largest reply read by a labwire client. */
export const MAX_MESSAGE = 64 * 1024
/** Names per REGISTER and characters per name. */
export const MAX_NAMES = 64
export const MAX_NAME_LENGTH = 255
const HOST_TEXT = /^[A-Za-z0-9._:%-]{1,255}$/

/** The registry transport: UDP (RPyC's default) or TCP. */
export type RegistryMode = 'udp' | 'tcp'

/** One server of a service. */
export interface ServiceAddress {
  host: string
  port: number
}

/**
 * The registry answered, but not what the command expects: a refusal (RPyC answers `None` to
 * LIST when listing is off; a full labwire registry answers `"FULL"` to REGISTER) or a reply of
 * the wrong shape. `reply` is the decoded value.
 */
export class RegistryReplyError extends FramingError {
  override readonly name = 'RegistryReplyError'
  readonly reply: BrineValue

  constructor(message: string, reply: BrineValue) {
    super(message, { recoverable: true })
    this.reply = reply
  }
}

/** Normalise a service name as RPyC does (upper case). */
export function normaliseName(name: string): string {
  return name.toUpperCase()
}

/** Drop the IPv4-mapped prefix from a socket address. */
export function normaliseHost(host: string): string {
  return host.startsWith('::ffff:') && host.includes('.') ? host.slice(7) : host
}

/** True for a string usable as an advertised host: an IP literal or a DNS name. */
export function isHostText(value: unknown): value is string {
  return typeof value === 'string' && HOST_TEXT.test(value)
}

/** True for an integer TCP port 1–65535. */
export function isServicePort(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535
}

/** True for a service name RPyC would accept (non-empty str, bounded). */
export function isServiceName(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_NAME_LENGTH
}

/** Parse a QUERY reply: a tuple of `(host, port)` tuples. */
export function parseQueryReply(reply: BrineValue): ServiceAddress[] {
  if (!Array.isArray(reply)) throw new RegistryReplyError('registry: QUERY reply is not a tuple', reply)
  const out: ServiceAddress[] = []
  for (const item of reply as readonly BrineValue[]) {
    if (!Array.isArray(item) || item.length < 2) throw new RegistryReplyError('registry: QUERY reply item is not a (host, port) tuple', reply)
    const [host, port] = item as readonly BrineValue[]
    if (typeof host !== 'string' || !isServicePort(port)) throw new RegistryReplyError('registry: QUERY reply item is not a (host, port) tuple', reply)
    out.push({ host, port })
  }
  return out
}

/** Parse a LIST reply: a tuple of names (`None` means listing is disabled). */
export function parseListReply(reply: BrineValue): string[] {
  if (reply === null) throw new RegistryReplyError('registry: listing is disabled on this registry (RPyC: start it with --listing true)', reply)
  if (!Array.isArray(reply) || !(reply as readonly BrineValue[]).every((name) => typeof name === 'string')) {
    throw new RegistryReplyError('registry: LIST reply is not a tuple of names', reply)
  }
  return [...(reply as readonly string[])]
}
