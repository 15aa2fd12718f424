/**
 * `close({ drain })` on the two TcpServer kinds test/drain-close.test.ts does not cover: TLS and
 * Unix domain sockets (issue 15: drain tested over real sockets for each server kind). A slow
 * handler (300 ms) is in flight when close is called; an idle session is closed at once; the
 * deadline cuts a stuck one; new connections are refused while draining.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { TransportClientSession } from '@labwire/core'
import { TcpClient, TcpServer, type TcpClientOptions, type TcpServerOptions } from '@labwire/transport-tcp'
import { hasOpenssl, makeTestCertificates, type TestCertificates } from './helpers/certs.js'
import { line, SLOW, slowHandler, WAIT } from './helpers/drain.js'
import { bytes, rejectionOf, text, within } from './helpers/fixtures.js'


const dir = mkdtempSync(join(tmpdir(), 'labwire-drain-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let sockets = 0
let certificates: TestCertificates | undefined
const certs = (): TestCertificates => (certificates ??= makeTestCertificates())

interface Kind {
  name: string
  missing?: string | undefined
  /** Server options (besides the callback) and the matching client options, made per test. */
  make(): { server: Partial<TcpServerOptions>; client: TcpClientOptions }
}

const kinds: Kind[] = [
  {
    name: 'tls',
    missing: hasOpenssl ? undefined : 'the openssl command is missing (test certificates are made with it)',
    make: () => ({ server: { port: 0, tls: certs().server }, client: { host: '127.0.0.1', port: 0, tls: { ca: certs().ca }, timeout: WAIT } }),
  },
  {
    name: 'unix',
    make: () => {
      const path = join(dir, `d${sockets++}.sock`)
      return { server: { path }, client: { path, timeout: WAIT } }
    },
  },
]

async function start(kind: Kind): Promise<{ server: TcpServer; connect: (options?: Partial<TcpClientOptions>) => Promise<TransportClientSession> }> {
  const { server: serverOptions, client } = kind.make()
  const server = new TcpServer({ ...serverOptions, callback: slowHandler })
  const address = await server.listen()
  const clientOptions = client.path === undefined ? { ...client, port: address.port } : client
  return { server, connect: (extra) => new TcpClient({ ...clientOptions, ...extra }).connect({ signal: AbortSignal.timeout(WAIT) }) }
}

for (const kind of kinds) {
  describe(`close({ drain }) on ${kind.name}`, () => {
    if (kind.missing !== undefined) {
      console.warn(`SKIPPED: close({ drain }) on ${kind.name}: ${kind.missing}`)
      it.skip(`${kind.name}: ${kind.missing}`, () => undefined)
      return
    }

    it('answers the slow request in flight, closes the idle session at once, refuses new ones, then resolves', async () => {
      const { server, connect } = await start(kind)
      const busy = await connect()
      const idle = await connect()
      expect(text(await within(line.unmarshall(idle.request(bytes('ping\n'))), WAIT, 'idle ping'))).toBe('PING')
      const reply = line.unmarshall(busy.request(bytes('slow\n')))
      await new Promise((resolve) => setTimeout(resolve, 50)) // the slow request is being handled
      const t0 = performance.now()
      const closed = server.close({ drain: 3_000 })
      // The idle session ends while the slow one is still running.
      const idleEnd = await within(rejectionOf(line.unmarshall(idle.request(bytes('late\n')))), WAIT, 'idle session closed')
      expect((idleEnd as { code?: string }).code).toMatch(/^ERR_CONNECTION/)
      expect(performance.now() - t0).toBeLessThan(SLOW)
      const late = await rejectionOf(connect({ connectTimeout: 1_000 }))
      expect((late as { code?: string }).code).toMatch(/^ERR_CONNECTION|^ERR_TIMEOUT/)
      expect(text(await within(reply, WAIT, 'slow reply during drain'))).toBe('SLOW')
      await within(closed, WAIT, 'close({ drain }) resolved')
      const took = performance.now() - t0
      expect(took).toBeGreaterThanOrEqual(SLOW - 100)
      expect(took).toBeLessThan(2_500)
      expect(server.connectionCount).toBe(0)
      await busy.close()
      await idle.close()
    })

    it('closes what is still running when the drain deadline passes', async () => {
      const { server, connect } = await start(kind)
      const session = await connect()
      const reply = line.unmarshall(session.request(bytes('stuck\n')))
      reply.catch(() => undefined)
      await new Promise((resolve) => setTimeout(resolve, 50))
      const t0 = performance.now()
      await within(server.close({ drain: 200 }), WAIT, 'close({ drain: 200 })')
      const took = performance.now() - t0
      expect(took).toBeGreaterThanOrEqual(150)
      expect(took).toBeLessThan(2_000)
      const error = await rejectionOf(within(reply, WAIT, 'stuck reply'))
      expect((error as { code?: string }).code).toMatch(/^ERR_CONNECTION/)
      expect(server.connectionCount).toBe(0)
      await session.close()
    })
  })
}
