// What labwire leaves to NATS, as the README configures it: users with permissions and TLS on a
// real nats-server (loopback), labwire passing the client side through natsOptions.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import { ConnectionError, TimeoutError } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { NatsClient, NatsServer } from '@labwire/nats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NATS_SERVER, freePorts } from './cluster.js'

const OPENSSL = ['/usr/bin/openssl', '/usr/local/bin/openssl'].find((path) => existsSync(path))
if (NATS_SERVER === undefined) {
  console.warn('SKIPPED: @labwire/nats auth/TLS tests — nats-server is not installed (apt-get install nats-server)')
  it.skip('@labwire/nats auth/TLS tests: SKIPPED, nats-server is missing (apt-get install nats-server)', () => undefined)
} else if (OPENSSL === undefined) {
  console.warn('SKIPPED: @labwire/nats TLS test — openssl is not installed (apt-get install openssl)')
  it.skip('@labwire/nats TLS test: SKIPPED, openssl is missing (apt-get install openssl)', () => undefined)
}

const lines = textMarshaller(new SentinelBytesMarshaller('\n'))
const psu = new ApplicationServer(lines.unmarshall, lines.marshall, (command: string) => (command === '*IDN?' ? 'ACME,PSU-1,0001,1.0' : undefined))

/** Start nats-server with `config` (a file in `dir`); resolves once it accepts connections. */
async function startWith(dir: string, config: string): Promise<{ port: number; child: ChildProcess; kill: () => void }> {
  const [port] = (await freePorts(1)) as [number]
  const file = join(dir, `nats-${port}.conf`)
  writeFileSync(file, config.replaceAll('PORT', String(port)))
  const child = spawn(NATS_SERVER as string, ['-c', file], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (log += chunk))
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL')
  }
  const limit = Date.now() + 10_000
  while (!/Server is ready/.test(log)) {
    if (child.exitCode !== null) throw new Error(`nats-server exited: ${log}`)
    if (Date.now() > limit) {
      kill()
      throw new Error(`nats-server not ready within 10 s: ${log}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { port, child, kill }
}

async function idn(client: NatsClient): Promise<string> {
  await using session = await new ApplicationClient(client, lines.marshall, lines.unmarshall, { timeout: 1500 }).connect()
  return await session.sendReceive('*IDN?')
}

describe.skipIf(NATS_SERVER === undefined)('NATS users and permissions (README config)', () => {
  let dir: string
  let server: Awaited<ReturnType<typeof startWith>>
  let service: NatsServer
  let url: string

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'labwire-nats-auth-'))
    server = await startWith(
      dir,
      `listen: 127.0.0.1:PORT
authorization {
  users: [
    { user: gateway, password: gwpass }
    { user: lab, password: labpass, permissions: { publish: ["psu", "psu.>", "$SRV.>", "_INBOX.>", "_LABWIRE.CANCEL.>"], subscribe: ["_INBOX.>"] } }
    { user: guest, password: guestpass, permissions: { publish: ["$SRV.>", "_INBOX.>"], subscribe: ["_INBOX.>"] } }
  ]
}
`,
    )
    url = `nats://127.0.0.1:${server.port}`
    service = new NatsServer({ servers: url, name: 'psu', callback: psu, natsOptions: { user: 'gateway', pass: 'gwpass' } })
    await service.listen()
  }, 20_000)

  afterAll(async () => {
    await service?.close()
    server?.kill()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  it('a permitted user reaches the service through natsOptions', async () => {
    expect(await idn(new NatsClient({ servers: url, name: 'psu', natsOptions: { user: 'lab', pass: 'labpass' } }))).toBe('ACME,PSU-1,0001,1.0')
  })

  it('a wrong password is a ConnectionError at connect; a user without publish rights on the service gets no answer', async () => {
    const refused = await new NatsClient({ servers: url, name: 'psu', natsOptions: { user: 'lab', pass: 'wrong' } }).connect().catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(ConnectionError)
    expect((refused as Error).message).toMatch(/AUTHORIZATION_VIOLATION|Authorization/i)
    expect(await new NatsClient({ servers: url, name: 'psu' }).connect().catch((e: unknown) => e)).toBeInstanceOf(ConnectionError)
    const denied = await idn(new NatsClient({ servers: url, name: 'psu', natsOptions: { user: 'guest', pass: 'guestpass' } })).catch((e: unknown) => e)
    expect(denied).toBeInstanceOf(TimeoutError)
    expect(service.stats().endpoints[0]?.num_requests).toBe(1) // only the permitted call reached it
  })
})

describe.skipIf(NATS_SERVER === undefined || OPENSSL === undefined)('NATS with TLS (README config)', () => {
  let dir: string
  let server: Awaited<ReturnType<typeof startWith>>

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'labwire-nats-tls-'))
    execFileSync(OPENSSL as string, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' })
    server = await startWith(dir, `listen: 127.0.0.1:PORT\ntls { cert_file: "${join(dir, 'cert.pem')}", key_file: "${join(dir, 'key.pem')}" }\n`)
  }, 20_000)

  afterAll(() => {
    server?.kill()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  it('service and client over TLS with the CA in natsOptions.tls; without it, connect fails', async () => {
    const servers = `tls://127.0.0.1:${server.port}`
    const tls = { caFile: join(dir, 'cert.pem') }
    await using service = new NatsServer({ servers, name: 'psu', callback: psu, natsOptions: { tls } })
    await service.listen()
    expect(await idn(new NatsClient({ servers, name: 'psu', natsOptions: { tls } }))).toBe('ACME,PSU-1,0001,1.0')
    const untrusted = await new NatsClient({ servers, name: 'psu' }).connect().catch((e: unknown) => e)
    expect(untrusted).toBeInstanceOf(ConnectionError)
  })
})
