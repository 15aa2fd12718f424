/**
 * The TCP transport over TLS (`tls` option): the compliance suites and reliability cases over TLS
 * and mutual TLS, certificate checks and their typed errors, handshake timeouts, SNI, filters over
 * TLS, and openssl s_client / s_server as real peers. Certificates are made at run time by the
 * `openssl` command (test/helpers/certs.ts); without it every test here is skipped, loudly.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer as netCreateServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { describe, expect, it } from 'vitest'
import { ConnectionClosedError, ConnectionError, TimeoutError, type ByteHandler, type ConnectionFilterFactory } from '@labwire/core'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { TcpClient, TcpServer, type TcpClientTlsOptions, type TcpServerTlsOptions } from '@labwire/transport-tcp'
import { applicationCompliance } from './compliance/application.js'
import { transportCompliance } from './compliance/transport.js'
import { hasOpenssl, makeTestCertificates, type TestCertificates } from './helpers/certs.js'
import { bytes, rejectionOf, text, within, type TransportSetup } from './helpers/fixtures.js'
import { MiB, tcpFamilyReliability } from './helpers/tcp-family-reliability.js'
import { RecordingLogger, SOAK, freePort, rawConnect, readUntilClose } from './reliability/helpers.js'

if (!hasOpenssl) console.warn('openssl is not installed: every TLS test is SKIPPED (apt-get install openssl)')

let made: TestCertificates | undefined
/** The test certificates, made once on first use. */
function certs(): TestCertificates {
  made ??= makeTestCertificates()
  return made
}
const serverTls = (extra: TcpServerTlsOptions = {}): TcpServerTlsOptions => ({ ...certs().server, ...extra })
const mutualServerTls = (extra: TcpServerTlsOptions = {}): TcpServerTlsOptions => serverTls({ requestCert: true, ca: certs().ca, ...extra })
const clientTls = (extra: TcpClientTlsOptions = {}): TcpClientTlsOptions => ({ ca: certs().ca, ...extra })
const mutualClientTls = (extra: TcpClientTlsOptions = {}): TcpClientTlsOptions => clientTls({ ...certs().client, ...extra })

function tlsSetup(name: string, server: () => TcpServerTlsOptions, client: () => TcpClientTlsOptions): TransportSetup {
  return {
    name,
    async start(handler) {
      const tcp = new TcpServer({ port: 0, tls: server(), callback: handler })
      const { port } = await tcp.listen()
      return { client: new TcpClient({ host: '127.0.0.1', port, tls: client() }), close: () => tcp.close() }
    },
  }
}

/** A raw TLS socket to 127.0.0.1:port, handshake done. */
function rawTls(port: number, options: TcpClientTlsOptions): Promise<Socket> {
  return within(
    new Promise<Socket>((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, ...options }, () => resolve(socket))
      socket.once('error', reject)
    }),
    5_000,
    'raw TLS connect',
  )
}

const line = new SentinelBytesMarshaller('\n')
const upperLines: ByteHandler = async (stream) => bytes(`${text(await line.unmarshall(stream)).toUpperCase()}\n`)

async function roundTrip(client: TcpClient, request: string): Promise<string> {
  await using session = await client.connect({ signal: AbortSignal.timeout(5_000) })
  return text(await within(line.unmarshall(session.request(bytes(`${request}\n`))), 5_000, 'reply'))
}

/** Start a TLS line server; returns it, its port and its logger. */
async function tlsServer(tls: TcpServerTlsOptions, callback: ByteHandler = upperLines): Promise<{ server: TcpServer; port: number; logger: RecordingLogger }> {
  const logger = new RecordingLogger()
  const server = new TcpServer({ port: 0, tls, callback, logger })
  const { port } = await server.listen()
  return { server, port, logger }
}

describe.skipIf(!hasOpenssl)('TLS', () => {
  transportCompliance(tlsSetup('tls', () => serverTls(), () => clientTls()))
  applicationCompliance(tlsSetup('tls', () => serverTls(), () => clientTls()))
  transportCompliance(tlsSetup('mutual tls', () => mutualServerTls(), () => mutualClientTls()))
  tcpFamilyReliability({
    name: 'tls',
    server: () => ({ port: 0, tls: serverTls() }),
    client: (address) => ({ host: address.host, port: address.port, tls: clientTls() }),
    raw: (address) => rawTls(address.port, clientTls()),
    churnCycles: SOAK ? 10_000 : 500, // TLS handshakes cost CPU; LABWIRE_SOAK=1 runs more
    floodBytes: 64 * MiB,
  })

  describe('server certificate checks (client side)', () => {
    it('an untrusted certificate fails connect() with ConnectionError naming host:port; rejectUnauthorized: false connects', async () => {
      await using fixture = (await tlsServer(serverTls())).server
      const port = fixture.address?.port ?? 0
      const error = await rejectionOf(new TcpClient({ host: '127.0.0.1', port, tls: true }).connect())
      expect(error).toBeInstanceOf(ConnectionError)
      expect((error as ConnectionError).message).toContain(`127.0.0.1:${port} is not trusted`)
      expect(((error as ConnectionError).cause as NodeJS.ErrnoException).code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE')
      // Signed by another CA: still untrusted.
      const other = await rejectionOf(new TcpClient({ host: '127.0.0.1', port, tls: { ca: certs().otherCa } }).connect())
      expect((other as ConnectionError).message).toContain('is not trusted')
      expect(await roundTrip(new TcpClient({ host: '127.0.0.1', port, tls: { rejectUnauthorized: false } }), 'anyway')).toBe('ANYWAY')
    })

    it('a self-signed certificate is untrusted (DEPTH_ZERO_SELF_SIGNED_CERT) unless it is given as the CA', async () => {
      await using server = (await tlsServer(certs().selfSigned)).server
      const port = server.address?.port ?? 0
      const error = await rejectionOf(new TcpClient({ host: '127.0.0.1', port, tls: clientTls() }).connect())
      expect(error).toBeInstanceOf(ConnectionError)
      expect(((error as ConnectionError).cause as NodeJS.ErrnoException).code).toBe('DEPTH_ZERO_SELF_SIGNED_CERT')
      expect(await roundTrip(new TcpClient({ host: '127.0.0.1', port, tls: { ca: certs().selfSigned.cert } }), 'pinned')).toBe('PINNED')
    })

    it("a hostname mismatch fails connect() with ConnectionError naming host:port and the name; servername 'localhost' connects and is sent as SNI", async () => {
      const seen: string[] = []
      await using server = (
        await tlsServer(
          serverTls({
            SNICallback: (name, done) => {
              seen.push(name)
              done(null)
            },
          }),
        )
      ).server
      const port = server.address?.port ?? 0
      const error = await rejectionOf(new TcpClient({ host: '127.0.0.1', port, tls: clientTls({ servername: 'instrument.example' }) }).connect())
      expect(error).toBeInstanceOf(ConnectionError)
      expect((error as ConnectionError).message).toMatch(/certificate of 127\.0\.0\.1:\d+ does not match the name 'instrument\.example' \(hostname mismatch/)
      expect(((error as ConnectionError).cause as NodeJS.ErrnoException).code).toBe('ERR_TLS_CERT_ALTNAME_INVALID')
      expect(await roundTrip(new TcpClient({ host: '127.0.0.1', port, tls: clientTls({ servername: 'localhost' }) }), 'sni')).toBe('SNI')
      expect(seen).toEqual(['instrument.example', 'localhost'])
      // By host name: 'localhost' is checked and sent by default.
      expect(await roundTrip(new TcpClient({ host: 'localhost', port, tls: clientTls() }), 'by name')).toBe('BY NAME')
      expect(seen.at(-1)).toBe('localhost')
    })
  })

  describe('handshake failures', () => {
    /** A plain TCP listener that accepts and never says a word. */
    async function silentListener(): Promise<{ port: number; close(): Promise<void> }> {
      const sockets = new Set<Socket>()
      const server: Server = netCreateServer((socket) => {
        sockets.add(socket)
        socket.on('error', () => undefined)
      })
      await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve))
      const address = server.address()
      if (address === null || typeof address === 'string') throw new Error('no address')
      return {
        port: address.port,
        close: () =>
          new Promise<void>((resolve) => {
            for (const socket of sockets) socket.destroy()
            server.close(() => resolve())
          }),
      }
    }

    it('client: a server that never answers the handshake is a TimeoutError "TLS handshake with host:port timed out"', async () => {
      const silent = await silentListener()
      try {
        const started = performance.now()
        const error = await rejectionOf(new TcpClient({ host: '127.0.0.1', port: silent.port, tls: clientTls(), connectTimeout: 200 }).connect())
        expect(error).toBeInstanceOf(TimeoutError)
        expect((error as TimeoutError).message).toBe(`TLS handshake with 127.0.0.1:${silent.port} timed out after 200 ms`)
        expect(performance.now() - started).toBeGreaterThanOrEqual(190)
      } finally {
        await silent.close()
      }
    })

    it('server: a client that never starts the handshake is closed after tls.handshakeTimeout and logged as TimeoutError; close() does not wait for handshakes', async () => {
      const { server, port, logger } = await tlsServer(serverTls({ handshakeTimeout: 150 }))
      try {
        // Timed from before the connect: the server's timer starts at accept, which can run before
        // this side's connect callback does when the machine is busy.
        const started = performance.now()
        const raw = await rawConnect(port)
        await readUntilClose(raw, 5_000)
        expect(performance.now() - started).toBeGreaterThanOrEqual(140)
        const record = await logger.waitFor((r) => r.context.err instanceof TimeoutError)
        expect(record.level).toBe('warn')
        expect((record.context.err as TimeoutError).message).toMatch(/^TLS handshake with 127\.0\.0\.1:\d+ timed out after 150 ms$/)
        expect(server.connectionCount).toBe(0)
        // A second one, pending when the server closes: close() ends it at once.
        const pending = await rawConnect(port)
        const gone = readUntilClose(pending, 5_000)
        await within(server.close(), 1_000, 'close with a handshake pending')
        await gone
      } finally {
        await server.close()
      }
    })

    it('a TLS client to a plain TCP server: ConnectionError saying it does not speak TLS', async () => {
      await using plain = new TcpServer({ port: 0, callback: upperLines })
      const { port } = await plain.listen()
      const error = await rejectionOf(new TcpClient({ host: '127.0.0.1', port, tls: clientTls() }).connect())
      expect(error).toBeInstanceOf(ConnectionError)
      expect((error as ConnectionError).message).toMatch(new RegExp(`^(TLS: 127\\.0\\.0\\.1:${port} does not speak TLS|could not connect to 127\\.0\\.0\\.1:${port})`))
    })

    it('a plain client to a TLS server: the server logs the failed handshake, the client sees the connection closed', async () => {
      const { server, port, logger } = await tlsServer(serverTls())
      try {
        await using session = await new TcpClient({ host: '127.0.0.1', port }).connect()
        const error = await rejectionOf(within(line.unmarshall(session.request(bytes('hello\n'))), 5_000, 'read'))
        expect(error instanceof ConnectionClosedError || error instanceof ConnectionError, String(error)).toBe(true)
        const record = await logger.waitFor((r) => r.context.err instanceof ConnectionError)
        expect((record.context.err as ConnectionError).message).toMatch(/^TLS handshake with 127\.0\.0\.1:\d+ failed/)
        expect(await roundTrip(new TcpClient({ host: '127.0.0.1', port, tls: clientTls() }), 'still')).toBe('STILL')
      } finally {
        await server.close()
      }
    })
  })

  describe('mutual TLS', () => {
    /** What a client whose certificate the server refuses sees: connect() or its first read fails (TLS 1.3 verifies the client after the client's handshake). */
    async function refusal(client: TcpClient): Promise<unknown> {
      let session
      try {
        session = await client.connect({ signal: AbortSignal.timeout(5_000) })
      } catch (error) {
        return error
      }
      try {
        return await rejectionOf(within(line.unmarshall(session.request(bytes('let me in\n'))), 5_000, 'read'))
      } finally {
        await session.close()
      }
    }

    it('a client with a certificate the server trusts is served; the server sees it as authorized', async () => {
      const { server, port } = await tlsServer(mutualServerTls())
      try {
        expect(await roundTrip(new TcpClient({ host: '127.0.0.1', port, tls: mutualClientTls() }), 'trusted')).toBe('TRUSTED')
      } finally {
        await server.close()
      }
    })

    it.each([
      ['without a certificate', () => clientTls()],
      ['with a certificate from another CA', () => clientTls(certs().strangerClient)],
    ])('a client %s is refused: ConnectionError naming host:port "refused the client certificate"; the server logs it', async (_, tls) => {
      const { server, port, logger } = await tlsServer(mutualServerTls())
      try {
        const error = await refusal(new TcpClient({ host: '127.0.0.1', port, tls: tls() }))
        expect(error).toBeInstanceOf(ConnectionError)
        expect((error as ConnectionError).message).toContain(`127.0.0.1:${port} refused the client certificate`)
        await logger.waitFor((r) => r.level === 'warn' && r.context.err instanceof ConnectionError)
        expect(server.connectionCount).toBe(0)
        expect(await roundTrip(new TcpClient({ host: '127.0.0.1', port, tls: mutualClientTls() }), 'next')).toBe('NEXT')
      } finally {
        await server.close()
      }
    })

    it('with TLS 1.2 the refusal comes at connect()', async () => {
      const { server, port } = await tlsServer(mutualServerTls({ maxVersion: 'TLSv1.2' }))
      try {
        const error = await rejectionOf(new TcpClient({ host: '127.0.0.1', port, tls: clientTls() }).connect())
        expect(error).toBeInstanceOf(ConnectionError)
        expect((error as ConnectionError).message).toContain(`127.0.0.1:${port}`)
      } finally {
        await server.close()
      }
    })
  })

  describe('filters over TLS', () => {
    it('a filter sees the decrypted bytes, both ways, on client and server', async () => {
      const seen: Record<string, string[]> = { 'server in': [], 'server out': [], 'client in': [], 'client out': [] }
      const trace: ConnectionFilterFactory = (context) => ({
        input: (chunk) => {
          seen[`${context.side} in`]?.push(text(chunk))
          return chunk
        },
        output: (chunk) => {
          seen[`${context.side} out`]?.push(text(chunk))
          return chunk
        },
      })
      await using server = new TcpServer({ port: 0, tls: serverTls(), callback: upperLines, filter: trace })
      const { port } = await server.listen()
      expect(await roundTrip(new TcpClient({ host: '127.0.0.1', port, tls: clientTls(), filter: trace }), 'secret')).toBe('SECRET')
      expect(seen).toEqual({ 'client out': ['secret\n'], 'server in': ['secret\n'], 'server out': ['SECRET\n'], 'client in': ['SECRET\n'] })
    })
  })

  describe('options', () => {
    it('validates at construction', () => {
      expect(() => new TcpServer({ port: 0, tls: {}, callback: upperLines })).toThrow(/tls needs the server certificate and key/)
      expect(() => new TcpServer({ port: 0, tls: serverTls({ handshakeTimeout: -1 }), callback: upperLines })).toThrow(RangeError)
      expect(() => new TcpClient({ host: '127.0.0.1', port: 1, tls: 'yes' as unknown as boolean })).toThrow(/tls must be/)
    })

    it('TLS over a Unix socket', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'labwire-tls-uds-'))
      try {
        const path = join(dir, 'tls.sock')
        await using server = new TcpServer({ path, tls: serverTls(), callback: upperLines })
        await server.listen()
        expect(await roundTrip(new TcpClient({ path, tls: clientTls({ servername: 'localhost' }) }), 'unix')).toBe('UNIX')
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
  })

  describe('openssl as a peer', () => {
    /** `openssl s_server -rev` (answers each line reversed) with mutual TLS, on a free port; waits for its ACCEPT. */
    async function sServer(dir: string): Promise<{ port: number; stop(): void }> {
      writeFileSync(join(dir, 'ca.crt'), certs().ca)
      writeFileSync(join(dir, 'server.crt'), certs().server.cert)
      writeFileSync(join(dir, 'server.key'), certs().server.key, { mode: 0o600 })
      const port = await freePort()
      const child = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', join(dir, 'server.crt'), '-key', join(dir, 'server.key'), '-Verify', '1', '-CAfile', join(dir, 'ca.crt'), '-verify_return_error', '-rev'], { stdio: ['ignore', 'pipe', 'ignore'] })
      const stop = (): void => void child.kill()
      try {
        await within(
          new Promise<void>((resolve, reject) => {
            let out = ''
            child.stdout.on('data', (chunk: Buffer) => {
              out += chunk.toString()
              if (out.includes('ACCEPT')) resolve()
            })
            child.once('exit', (code) => reject(new Error(`openssl s_server exited (${String(code)})`)))
          }),
          5_000,
          'openssl s_server ready',
        )
      } catch (error) {
        stop()
        throw error
      }
      return { port, stop }
    }

    it('TcpClient with a client certificate talks to openssl s_server -Verify; a client certificate from another CA is refused at connect()', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'labwire-sserver-'))
      const peer = await sServer(dir)
      try {
        const session = await new TcpClient({ host: '127.0.0.1', port: peer.port, tls: mutualClientTls() }).connect({ signal: AbortSignal.timeout(5_000) })
        try {
          expect(text(await within(line.unmarshall(session.request(bytes('hello\n'))), 5_000, 'reply'))).toBe('olleh')
        } finally {
          await session.close()
        }
        const error = await rejectionOf(new TcpClient({ host: '127.0.0.1', port: peer.port, tls: clientTls(certs().strangerClient) }).connect())
        expect(error).toBeInstanceOf(ConnectionError)
        expect((error as ConnectionError).message).toContain(`127.0.0.1:${peer.port} refused the client certificate`)
      } finally {
        peer.stop()
        rmSync(dir, { recursive: true, force: true })
      }
    })

    it('openssl s_client talks to a TcpServer with TLS', async () => {
      const { server, port } = await tlsServer(serverTls())
      const dir = mkdtempSync(join(tmpdir(), 'labwire-sclient-'))
      try {
        writeFileSync(join(dir, 'ca.crt'), certs().ca)
        const child = spawn('openssl', ['s_client', '-quiet', '-verify_return_error', '-CAfile', join(dir, 'ca.crt'), '-connect', `127.0.0.1:${port}`, '-servername', 'localhost'], { stdio: ['pipe', 'pipe', 'ignore'] })
        const output = new Promise<string>((resolve) => {
          let out = ''
          child.stdout.on('data', (chunk: Buffer) => {
            out += chunk.toString()
            if (out.endsWith('TWO\n')) resolve(out)
          })
          child.once('exit', () => resolve(out))
        })
        child.stdin.write('one\ntwo\n')
        try {
          expect(await within(output, 5_000, 's_client output')).toBe('ONE\nTWO\n')
        } finally {
          child.kill()
        }
      } finally {
        rmSync(dir, { recursive: true, force: true })
        await server.close()
      }
    })
  })
})
