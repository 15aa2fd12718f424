import { parseNatsResource } from '@labwire/nats'
import { UsageError } from './exit-codes.js'

/** The transports a resource string can name. */
export type ResourceScheme = 'tcp' | 'telnet' | 'nats'

/** What a `nats://` resource names: a service on a NATS cluster, reached by name. */
export interface NatsResource {
  /** `nats://host:port` of each server given (several = failover). */
  readonly servers: readonly string[]
  /** The service name (ADR-32). */
  readonly name: string
  /** An endpoint of the service (`nats://…/NAME/ENDPOINT`): requests go to `NAME.ENDPOINT`. */
  readonly endpoint?: string
}

/** A parsed resource string. */
export interface Resource {
  /** `'tcp'` for VISA `::SOCKET` and `tcp://`, `'telnet'` for `telnet://`, `'nats'` for `nats://`. */
  readonly scheme: ResourceScheme
  /** The host (for `nats://`: the first server's). */
  readonly host: string
  readonly port: number
  /** For `nats://`: the servers and the service name. */
  readonly nats?: NatsResource
  /** VISA board number (`TCPIP1::…` → 1); 0 for URIs. */
  readonly board: number
  /** Terminators and timeout given in a URI query (`?read_term=%0A&write_term=%0D%0A&timeout=2000`). */
  readonly readTerm?: Uint8Array
  readonly writeTerm?: Uint8Array
  readonly timeout?: number
  /** The string as given, for messages. */
  readonly text: string
}

/** The accepted resource forms, as shown in errors and `--help`. */
export const RESOURCE_FORMS = [
  'TCPIP[board]::host::port::SOCKET   e.g. TCPIP0::127.0.0.1::5025::SOCKET',
  'tcp://host[:port][?read_term=…&write_term=…&timeout=ms]   e.g. tcp://127.0.0.1:5025 (port 5025 by default)',
  'telnet://host[:port][?…]   e.g. telnet://127.0.0.1:2323?read_term=%0D%0A (port 23 by default)',
  'nats://host[:port][,host:port…]/NAME[/ENDPOINT][?…]   e.g. nats://127.0.0.1:4222/psu (a service on NATS, by name; port 4222 by default)',
] as const

/** Thrown for a resource string that is not one of {@link RESOURCE_FORMS}. Exit code 2. */
export class ResourceError extends UsageError {
  override readonly name = 'ResourceError'
  override readonly code = 'ERR_RESOURCE'

  constructor(text: string, reason: string) {
    super(`invalid resource "${text}": ${reason}; accepted forms:\n${RESOURCE_FORMS.map((form) => `  ${form}`).join('\n')}`)
  }
}

const VISA_SOCKET = /^TCPIP(\d*)::(\[[^\]]*\]|[^:]+)::([^:]*)::SOCKET$/i
const DEFAULT_PORT: Record<'tcp' | 'telnet', number> = { tcp: 5025, telnet: 23 }
const URI_PARAMS = new Set(['read_term', 'write_term', 'timeout'])

/**
 * Parse a resource string: a VISA `TCPIP[board]::host::port::SOCKET`, a `tcp://` / `telnet://`
 * URI, or a `nats://host:port/NAME` service on NATS; URIs take optional `read_term`, `write_term` (percent-encoded bytes, or escapes like `\n`) and
 * `timeout` (ms) query parameters. Throws {@link ResourceError} naming the accepted forms.
 *
 * @example
 * ```ts
 * parseResource('TCPIP0::127.0.0.1::5025::SOCKET') // { scheme: 'tcp', host: '127.0.0.1', port: 5025, board: 0, … }
 * parseResource('telnet://10.0.0.5:2323?read_term=%0D%0A')
 * parseResource('nats://127.0.0.1:4222/psu') // { scheme: 'nats', nats: { servers: ['nats://127.0.0.1:4222'], name: 'psu' }, … }
 * ```
 */
export function parseResource(text: string): Resource {
  const trimmed = text.trim()
  if (trimmed.length === 0) throw new ResourceError(text, 'empty')
  if (/^TCPIP\d*::/i.test(trimmed)) return parseVisa(text, trimmed)
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(trimmed)?.[1]?.toLowerCase()
  if (scheme === undefined) throw new ResourceError(text, 'not a VISA resource or a URI')
  if (scheme === 'nats') return parseNats(text, trimmed)
  if (scheme !== 'tcp' && scheme !== 'telnet') throw new ResourceError(text, `unsupported scheme "${scheme}://"`)
  let url: URL
  try {
    url = new URL(trimmed)
  } catch {
    throw new ResourceError(text, 'malformed URI')
  }
  if (url.username !== '' || url.password !== '') throw new ResourceError(text, 'user names and passwords do not belong in the resource')
  if (url.pathname !== '' && url.pathname !== '/') throw new ResourceError(text, `unexpected path "${url.pathname}"`)
  if (url.hash !== '') throw new ResourceError(text, 'unexpected "#" fragment')
  const host = stripBrackets(url.hostname)
  if (host === '') throw new ResourceError(text, 'missing host')
  const port = url.port === '' ? DEFAULT_PORT[scheme] : parsePort(text, url.port)
  return { scheme, host, port, board: 0, text: trimmed, ...parseQuery(text, url.search.replace(/^\?/, '')) }
}

/**
 * `nats://host[:port][,host:port…]/NAME[/ENDPOINT]` with the same query parameters as the other
 * URIs. Only `nats://`: a TLS connection needs certificates the command line does not take (use
 * `NatsClient` with `natsOptions.tls` in code).
 */
function parseNats(text: string, trimmed: string): Resource {
  const at = trimmed.indexOf('?')
  const base = at < 0 ? trimmed : trimmed.slice(0, at)
  const query = at < 0 ? '' : trimmed.slice(at + 1)
  if (base.includes('@')) throw new ResourceError(text, 'user names and passwords do not belong in the resource')
  if (base.includes('#')) throw new ResourceError(text, 'unexpected "#" fragment')
  let parsed: { servers: string[]; name: string; endpoint?: string }
  try {
    parsed = parseNatsResource(base.replace(/^nats/i, 'nats'))
  } catch (error) {
    throw new ResourceError(text, error instanceof Error ? error.message : String(error))
  }
  const first = /^nats:\/\/(\[[^\]]+\]|[^:]+):(\d+)$/.exec(parsed.servers[0] as string)
  if (first === null) throw new ResourceError(text, 'missing host')
  const nats: NatsResource = parsed.endpoint === undefined ? { servers: parsed.servers, name: parsed.name } : { servers: parsed.servers, name: parsed.name, endpoint: parsed.endpoint }
  return { scheme: 'nats', host: stripBrackets(first[1] as string), port: parsePort(text, first[2] as string), board: 0, text: trimmed, nats, ...parseQuery(text, query) }
}

/** The `read_term`, `write_term` and `timeout` query parameters of a URI (the raw query, without `?`). */
function parseQuery(text: string, query: string): { readTerm?: Uint8Array; writeTerm?: Uint8Array; timeout?: number } {
  let readTerm: Uint8Array | undefined
  let writeTerm: Uint8Array | undefined
  let timeout: number | undefined
  // Parsed from the raw query string: a malformed percent escape (%ZZ, a lone %) is refused, not
  // taken literally, and %XX is the byte XX (not UTF-8 text: %FF is the byte 0xFF).
  for (const pair of query === '' ? [] : query.split('&')) {
    if (pair === '') continue
    const equals = pair.indexOf('=')
    const rawKey = equals < 0 ? pair : pair.slice(0, equals)
    const rawValue = equals < 0 ? '' : pair.slice(equals + 1)
    const bad = /%(?![0-9a-f]{2})/i.exec(pair)
    if (bad !== null) throw new ResourceError(text, `malformed percent escape "${pair.slice(bad.index, bad.index + 3)}" in "${pair}" (write a byte as %XX, two hex digits)`)
    let key: string
    try {
      key = decodeURIComponent(rawKey.replace(/\+/g, ' '))
    } catch {
      throw new ResourceError(text, `malformed query parameter name "${rawKey}"`)
    }
    if (!URI_PARAMS.has(key)) throw new ResourceError(text, `unknown query parameter "${key}" (known: ${[...URI_PARAMS].join(', ')})`)
    try {
      if (key === 'read_term') readTerm = parseTerminator(percentToEscapes(rawValue))
      else if (key === 'write_term') writeTerm = parseTerminator(percentToEscapes(rawValue))
      else timeout = parseMilliseconds(decodeURIComponent(rawValue), 'timeout')
    } catch (error) {
      throw new ResourceError(text, error instanceof Error ? error.message : String(error))
    }
  }
  return {
    ...(readTerm === undefined ? {} : { readTerm }),
    ...(writeTerm === undefined ? {} : { writeTerm }),
    ...(timeout === undefined ? {} : { timeout }),
  }
}

function parseVisa(text: string, trimmed: string): Resource {
  const match = VISA_SOCKET.exec(trimmed)
  if (match === null) {
    if (/::INSTR$/i.test(trimmed)) throw new ResourceError(text, 'VXI-11/HiSLIP ::INSTR resources are not supported; give the raw socket port: TCPIP::host::port::SOCKET')
    throw new ResourceError(text, 'a VISA TCPIP resource needs the form TCPIP[board]::host::port::SOCKET')
  }
  const [, boardText = '', hostText = '', portText = ''] = match
  const host = stripBrackets(hostText)
  if (host === '') throw new ResourceError(text, 'missing host')
  return { scheme: 'tcp', host, port: parsePort(text, portText), board: boardText === '' ? 0 : Number(boardText), text: trimmed }
}

/**
 * A percent-encoded query value as the escapes {@link parseTerminator} reads: printable ASCII as
 * itself, every other byte as `\xNN`; `+` is a space. Decoding comes first, so `%5Cr` is the
 * escape `\r` (a backslash byte is `%5C%5C`), as before.
 */
function percentToEscapes(value: string): string {
  return value.replace(/\+/g, ' ').replace(/%([0-9a-f]{2})/gi, (_, hex: string) => {
    const byte = parseInt(hex, 16)
    return byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : `\\x${hex}`
  })
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
}

function parsePort(text: string, port: string): number {
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw new ResourceError(text, `invalid port "${port}" (1-65535)`)
  return Number(port)
}

const NAMED_TERMINATORS: Record<string, string> = { lf: '\n', cr: '\r', crlf: '\r\n', lfcr: '\n\r', nul: '\0', none: '' }

/**
 * Parse a terminator as written on a command line or in a URI: C escapes (`\n`, `\r\n`, `\t`,
 * `\0`, `\xNN`), names (`LF`, `CR`, `CRLF`, `NUL`), or literal characters. A URI's percent-encoding
 * (`%0A`) is decoded before this. Throws `UsageError` for an empty or malformed terminator.
 */
export function parseTerminator(value: string): Uint8Array {
  const named = NAMED_TERMINATORS[value.toLowerCase()]
  if (named !== undefined) {
    if (named === '') throw new UsageError('a terminator cannot be empty ("none" is not supported: framing needs a terminator)')
    return new TextEncoder().encode(named)
  }
  const out: number[] = []
  for (let i = 0; i < value.length; i++) {
    const ch = value[i] as string
    if (ch !== '\\') {
      out.push(...new TextEncoder().encode(ch))
      continue
    }
    const next = value[++i]
    if (next === 'n') out.push(0x0a)
    else if (next === 'r') out.push(0x0d)
    else if (next === 't') out.push(0x09)
    else if (next === '0') out.push(0x00)
    else if (next === '\\') out.push(0x5c)
    else if (next === 'x') {
      const hex = value.slice(i + 1, i + 3)
      if (!/^[0-9a-f]{2}$/i.test(hex)) throw new UsageError(`bad escape "\\x${hex}" in terminator "${value}" (expected \\xNN)`)
      out.push(parseInt(hex, 16))
      i += 2
    } else throw new UsageError(`bad escape "\\${next ?? ''}" in terminator "${value}" (known: \\n \\r \\t \\0 \\\\ \\xNN)`)
  }
  if (out.length === 0) throw new UsageError('a terminator cannot be empty')
  return Uint8Array.from(out)
}

/** A terminator written back as escapes: `\r\n`. */
export function formatTerminator(bytes: Uint8Array): string {
  let out = ''
  for (const byte of bytes) {
    if (byte === 0x0a) out += '\\n'
    else if (byte === 0x0d) out += '\\r'
    else if (byte === 0x09) out += '\\t'
    else if (byte === 0x00) out += '\\0'
    else if (byte === 0x5c) out += '\\\\'
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte)
    else out += `\\x${byte.toString(16).padStart(2, '0')}`
  }
  return out
}

/** A non-negative whole number of milliseconds (0 = no limit). Throws `UsageError`. */
export function parseMilliseconds(value: string, what: string): number {
  if (!/^\d+$/.test(value.trim())) throw new UsageError(`${what} must be a whole number of milliseconds, got "${value}"`)
  return Number(value.trim())
}

/** A port number 0-65535 for a listener (0 = ephemeral). Throws `UsageError`. */
export function parseListenPort(value: string, what: string): number {
  if (!/^\d{1,5}$/.test(value.trim()) || Number(value) > 65535) throw new UsageError(`${what} must be a port number 0-65535, got "${value}"`)
  return Number(value.trim())
}
