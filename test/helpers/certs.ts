/**
 * Throwaway TLS certificates for tests, made with the `openssl` command at run time in a temp dir
 * (no private key is ever committed): a test CA, a server certificate it signs (localhost,
 * 127.0.0.1, ::1), a client certificate it signs, a client certificate signed by another CA, and a
 * self-signed server certificate.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface KeyPair {
  cert: string
  key: string
}

export interface TestCertificates {
  /** The test CA's certificate (PEM). */
  ca: string
  /** Signed by `ca`; names localhost, 127.0.0.1 and ::1. */
  server: KeyPair
  /** Signed by `ca`; for mutual TLS. */
  client: KeyPair
  /** Another CA's certificate. */
  otherCa: string
  /** Signed by `otherCa` (a client certificate the server does not trust). */
  strangerClient: KeyPair
  /** Self-signed, names localhost and 127.0.0.1. */
  selfSigned: KeyPair
}

/** True when an `openssl` command is on PATH. */
export const hasOpenssl = spawnSync('openssl', ['version'], { timeout: 5_000 }).status === 0

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 })
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

function makeCa(dir: string, name: string): void {
  openssl(dir, ['req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=labwire test ${name}`,
    '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
}

function makeSigned(dir: string, name: string, ca: string, subject: string, extensions: string): void {
  writeFileSync(join(dir, `${name}.ext`), extensions)
  openssl(dir, ['req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject])
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`])
}

const SERVER_NAMES = 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1'

/** Make a fresh set of certificates (about 100 ms); the temp dir is removed before returning. */
export function makeTestCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'labwire-certs-'))
  try {
    makeCa(dir, 'ca')
    makeCa(dir, 'other-ca')
    makeSigned(dir, 'server', 'ca', '/CN=localhost', `${SERVER_NAMES}\nextendedKeyUsage=serverAuth\n`)
    makeSigned(dir, 'client', 'ca', '/CN=labwire test client', 'extendedKeyUsage=clientAuth\n')
    makeSigned(dir, 'stranger', 'other-ca', '/CN=labwire stranger', 'extendedKeyUsage=clientAuth\n')
    openssl(dir, ['req', '-x509', ...EC, '-keyout', 'self.key', '-out', 'self.crt', '-days', '2', '-subj', '/CN=localhost', '-addext', SERVER_NAMES])
    const read = (file: string): string => readFileSync(join(dir, file), 'utf8')
    const pair = (name: string): KeyPair => ({ cert: read(`${name}.crt`), key: read(`${name}.key`) })
    return {
      ca: read('ca.crt'),
      server: pair('server'),
      client: pair('client'),
      otherCa: read('other-ca.crt'),
      strangerClient: pair('stranger'),
      selfSigned: pair('self'),
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
