import { timingSafeEqual } from 'node:crypto'
import { isIP } from 'node:net'

/** True for the loopback addresses and `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
  if (bare === 'localhost' || bare === '::1' || bare === '0:0:0:0:0:0:0:1') return true
  return isIP(bare) === 4 && bare.startsWith('127.')
}

/** The host name of a `Host` header value (`example:8080` → `example`, `[::1]:80` → `::1`), lower-cased. */
export function hostName(header: string): string {
  const value = header.trim().toLowerCase()
  if (value.startsWith('[')) {
    const end = value.indexOf(']')
    return end < 0 ? value : value.slice(1, end)
  }
  const colon = value.lastIndexOf(':')
  return colon < 0 ? value : value.slice(0, colon)
}

/** Why a request was refused: the HTTP status and a sentence for the body. */
export interface Refusal {
  status: 400 | 401 | 403 | 415
  message: string
}

/** What {@link checkRequest} needs of a request. */
export interface GuardedRequest {
  method: string
  host: string | undefined
  origin: string | undefined
  contentType: string | undefined
  authorization: string | undefined
  cookie: string | undefined
  queryToken: string | undefined
}

/** The checks every request to a browser-reachable labwire surface passes. */
export interface GuardOptions {
  /** Host names accepted in the `Host` header besides loopback names and the bound address. */
  allowedHosts: readonly string[]
  /** The bound address (its host name is accepted in `Host`). */
  boundHost: string
  /** When set, every request must carry it (`Authorization: Bearer`, the `labwire_token` cookie or `?token=`). */
  token: string | undefined
}

export const TOKEN_COOKIE = 'labwire_token'

/**
 * Check one request against DNS rebinding (the `Host` header must name this server), cross-site
 * requests (an `Origin`, when present, must be this server's own), cross-site "simple" POSTs
 * (a mutating request must be `application/json`), and the token. Returns undefined when the
 * request may go on.
 */
export function checkRequest(request: GuardedRequest, options: GuardOptions): Refusal | undefined {
  if (request.host === undefined || request.host.length === 0) return { status: 400, message: 'missing Host header' }
  const name = hostName(request.host)
  const bound = options.boundHost.toLowerCase()
  const hostOk = isLoopbackHost(name) || name === bound || options.allowedHosts.some((allowed) => allowed.toLowerCase() === name)
  if (!hostOk) return { status: 403, message: `Host '${name}' is not this server's (DNS rebinding guard); allow it with allowedHosts` }
  if (request.origin !== undefined && request.origin !== 'null') {
    let originHost: string
    try {
      originHost = new URL(request.origin).host.toLowerCase()
    } catch {
      return { status: 403, message: 'malformed Origin header' }
    }
    if (originHost !== request.host.trim().toLowerCase()) return { status: 403, message: `cross-origin request from ${request.origin} refused` }
  } else if (request.origin === 'null') {
    return { status: 403, message: 'requests from an opaque origin are refused' }
  }
  // A request with a body must be JSON: a cross-site form or a `text/plain` "simple" POST cannot be.
  const withBody = request.method === 'POST' || request.method === 'PUT' || request.method === 'PATCH'
  if (withBody) {
    const type = (request.contentType ?? '').split(';')[0]?.trim().toLowerCase()
    if (type !== 'application/json') return { status: 415, message: 'a request that changes something must be Content-Type: application/json' }
  }
  const token = options.token
  if (token !== undefined) {
    const given = bearer(request.authorization) ?? cookieValue(request.cookie, TOKEN_COOKIE) ?? request.queryToken
    if (given === undefined || !sameSecret(given, token)) return { status: 401, message: 'a token is required (Authorization: Bearer <token>, or ?token=<token> once in the browser)' }
  }
  return undefined
}

function bearer(header: string | undefined): string | undefined {
  if (header === undefined) return undefined
  const match = /^Bearer +(\S+)$/i.exec(header.trim())
  return match?.[1]
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    if (part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim())
      } catch {
        return undefined
      }
    }
  }
  return undefined
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}
