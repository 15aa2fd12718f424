import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import { ConnectionError } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'

// Throwaway certificates for this example, made with the openssl command: a CA, a server
// certificate for localhost / 127.0.0.1 and a client certificate, both signed by the CA.
// In the lab, use the files your CA issued instead.
const dir = mkdtempSync(join(tmpdir(), 'labwire-tls-example-'))
const openssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' })
const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=example CA', '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign')
for (const [name, subject, extensions] of [
  ['server', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
  ['client', '/CN=bench-pc-7', 'extendedKeyUsage=clientAuth'],
] as const) {
  writeFileSync(join(dir, `${name}.ext`), extensions)
  openssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject)
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`)
}
const pem = (file: string): string => readFileSync(join(dir, file), 'utf8')
const ca = pem('ca.crt')

// Mutual TLS: the server shows its certificate and accepts only clients whose certificate the CA signed.
const line = textMarshaller(new SentinelBytesMarshaller('\n'))
const device = new ApplicationServer(line.unmarshall, line.marshall, (cmd: string) => (cmd === '*IDN?' ? 'labwire,TLS-SIM,0,1' : 'ERR'))
const server = new TcpServer({ port: 0, callback: device, tls: { cert: pem('server.crt'), key: pem('server.key'), requestCert: true, ca } })
const { port } = await server.listen()

const tls = { ca, cert: pem('client.crt'), key: pem('client.key') }
const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port, tls }), line.marshall, line.unmarshall, { timeout: 2_000 })
{
  await using session = await client.connect({ signal: AbortSignal.timeout(5_000) })
  console.log(await session.sendReceive('*IDN?')) // labwire,TLS-SIM,0,1
}

// Failures are typed and say what failed, naming host:port.
try {
  await new TcpClient({ host: '127.0.0.1', port, tls: { ...tls, servername: 'psu.lab.example' } }).connect()
} catch (error) {
  if (error instanceof ConnectionError) console.log(error.message) // TLS: the certificate of 127.0.0.1:… does not match the name 'psu.lab.example' (hostname mismatch: …)
}
await server.close()
rmSync(dir, { recursive: true, force: true })
