// A throwaway certificate for the TLS benchmark, made by the `openssl` command in a temp dir at
// run time (no key is committed): self-signed, naming localhost and 127.0.0.1; the client trusts
// it as its CA. The server children read it from that dir; `remove()` deletes it.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** `{ cert, key, certFile, keyFile, remove() }`. Throws if openssl is missing. */
export function makeBenchCertificate() {
  const dir = mkdtempSync(join(tmpdir(), 'labwire-bench-cert-'))
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem',
      '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 })
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw new Error(`could not make a certificate with openssl (is it installed?): ${error instanceof Error ? error.message : String(error)}`)
  }
  const certFile = join(dir, 'cert.pem')
  const keyFile = join(dir, 'key.pem')
  return {
    cert: readFileSync(certFile, 'utf8'),
    key: readFileSync(keyFile, 'utf8'),
    certFile,
    keyFile,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  }
}
