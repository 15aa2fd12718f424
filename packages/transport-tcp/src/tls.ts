import type { ConnectionOptions, TLSSocket, TlsOptions } from 'node:tls'
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

/** What a client sees when the peer answers its ClientHello with something that is not TLS. */
const NOT_TLS = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_UNEXPECTED_MESSAGE', 'ERR_SSL_RECORD_LAYER_FAILURE', 'ERR_SSL_HTTP_REQUEST'])

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
  if (NOT_TLS.has(code)) return `${target} does not speak TLS (${code}); is it a plain TCP server?`
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return `the TLS session with ${target} failed (${code}): ${error.message.trim()}`
  return undefined
}

/** A `ConnectionError` for a failed connect or TLS handshake, naming `target`, `cause` = the system error. */
export function connectFailure(error: Error, target: string, servername?: string): ConnectionError {
  const tls = describeTlsFailure(error, target, servername)
  return new ConnectionError(tls === undefined ? `could not connect to ${target}: ${error.message}` : `TLS: ${tls}`, { cause: error })
}

/** How long a TLS 1.3 client with a certificate waits for the server's verdict on it (see {@link serverVerdict}). */
export const CLIENT_CERTIFICATE_VERDICT_MS = 250

/** True when the client options carry a certificate to present. */
export function hasClientCertificate(tls: TcpClientTlsOptions): boolean {
  return tls.cert !== undefined || tls.pfx !== undefined
}

/**
 * TLS 1.3 finishes the client's handshake before the server has checked the client certificate;
 * a server that refuses it then sends an alert or just closes. Call at connect (before the
 * handshake); after `secureConnect`, call the returned function: on TLS 1.3 it resolves once the
 * server shows it accepted us (a session ticket, or data), or after
 * {@link CLIENT_CERTIFICATE_VERDICT_MS} of silence (a server that sends no tickets), and rejects
 * with a `ConnectionError` saying the client certificate was refused if the connection fails or
 * closes first. Returns `undefined` (nothing to wait for) on TLS 1.2, whose handshake covers it.
 */
export function watchVerdict(socket: TLSSocket): (target: string, servername?: string) => Promise<void> | undefined {
  let ticket = false
  const onSession = (): void => {
    ticket = true
  }
  socket.on('session', onSession)
  return (target, servername) => {
    if (ticket || socket.getProtocol() !== 'TLSv1.3') {
      socket.off('session', onSession)
      return undefined
    }
    return new Promise<void>((resolve, reject) => {
      const done = (error?: ConnectionError): void => {
        clearTimeout(timer)
        socket.off('session', onSession)
        socket.off('session', accepted)
        socket.off('data', accepted)
        socket.off('error', failed)
        socket.off('end', closed)
        socket.off('close', closed)
        // Settle on a later turn: 'session' is emitted from inside OpenSSL's read, and a write
        // made from a continuation run there (a first request) corrupts the record layer.
        setImmediate(() => (error === undefined ? resolve() : reject(error)))
      }
      const accepted = (): void => done()
      const failed = (error: Error): void => done(connectFailure(error, target, servername))
      const closed = (): void => done(new ConnectionError(`TLS: ${target} refused the client certificate (it closed the connection right after the handshake)`))
      const timer = setTimeout(accepted, CLIENT_CERTIFICATE_VERDICT_MS)
      socket.on('session', accepted)
      socket.on('data', accepted)
      socket.once('error', failed)
      socket.once('end', closed)
      socket.once('close', closed)
    })
  }
}
