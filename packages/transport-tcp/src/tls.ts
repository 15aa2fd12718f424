import type { ConnectionOptions, TlsOptions } from 'node:tls'
import { ConnectionError } from '@labwire/core'

/**
 * TLS options of a {@link TcpClient} (`tls: { … }`, or `tls: true` for the defaults: the system's
 * CAs, the host name checked). `rejectUnauthorized` defaults to true: an untrusted or mismatched
 * server certificate fails `connect()`.
 */
export type TcpClientTlsOptions = Pick<
  ConnectionOptions,
  | 'ca'
  | 'cert'
  | 'key'
  | 'pfx'
  | 'passphrase'
  | 'servername'
  | 'rejectUnauthorized'
  | 'checkServerIdentity'
  | 'minVersion'
  | 'maxVersion'
  | 'ciphers'
  | 'ALPNProtocols'
  | 'session'
>

/**
 * TLS options of a {@link TcpServer}: its certificate and key (`cert` + `key`, or `pfx`), and for
 * mutual TLS `requestCert: true` with the `ca` that signs client certificates (clients without a
 * trusted certificate are then refused, `rejectUnauthorized` defaulting to true). `handshakeTimeout`
 * (ms, default 10 000) closes a connection whose handshake does not finish in time.
 */
export type TcpServerTlsOptions = Pick<
  TlsOptions,
  | 'ca'
  | 'cert'
  | 'key'
  | 'pfx'
  | 'passphrase'
  | 'requestCert'
  | 'rejectUnauthorized'
  | 'minVersion'
  | 'maxVersion'
  | 'ciphers'
  | 'ALPNProtocols'
  | 'SNICallback'
  | 'sessionTimeout'
  | 'ticketKeys'
  | 'handshakeTimeout'
>

/** Default TLS handshake limit of a server, in milliseconds. */
export const DEFAULT_TLS_HANDSHAKE_TIMEOUT = 10_000

const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REJECTED',
])

/** What a TLS failure means, in words, from its Node/OpenSSL error code (undefined: not a TLS failure). */
export function describeTlsFailure(error: Error, target: string, servername?: string): string | undefined {
  const code = (error as NodeJS.ErrnoException).code ?? ''
  if (UNTRUSTED.has(code)) return `the certificate of ${target} is not trusted (${code}); give its CA in tls.ca`
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `the certificate of ${target} does not match the name ${servername === undefined ? 'connected to' : `'${servername}'`} (hostname mismatch: ${error.message}); set tls.servername to a name it holds`
  if (code === 'CERT_HAS_EXPIRED') return `the certificate of ${target} has expired`
  if (code === 'CERT_NOT_YET_VALID') return `the certificate of ${target} is not yet valid`
  // Alerts the server sends when it refuses our client certificate (TLS 1.3: after our handshake finished).
  if (/ALERT_(CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|CERTIFICATE_EXPIRED|CERTIFICATE_REVOKED|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED)$/.test(code)) {
    return `${target} refused the client certificate (${code}); give a certificate its CA trusts in tls.cert / tls.key`
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') return `${target} does not speak TLS (${code}); is it a plain TCP server?`
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return `TLS with ${target} failed (${code}): ${error.message}`
  return undefined
}

/** A `ConnectionError` for a failed connect or TLS handshake, naming `target`, `cause` = the system error. */
export function connectFailure(error: Error, target: string, servername?: string): ConnectionError {
  const tls = describeTlsFailure(error, target, servername)
  return new ConnectionError(tls === undefined ? `could not connect to ${target}: ${error.message}` : `TLS: ${tls}`, { cause: error })
}
