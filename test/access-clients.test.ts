/**
 * Clients turn a server's access-policy refusal into typed errors (issue 15): a stream server
 * (TCP, TLS, Unix, Telnet, the simulator, UDP) writes the access notice and closes, a WebSocket server closes
 * with 4403 / 4408; TcpClient, TelnetClient, UdpClient and WebSocketClient — and ApplicationClient
 * sessions on them — reject the pending read / sendReceive with `AccessRefusedError` (naming the
 * holder's peer address) or `AccessTimeoutError`, never a generic closed error or a garbage reply.
 * Several real clients per transport, over real sockets on loopback.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ApplicationClient, type ApplicationClientSession } from '@labwire/application'
import {
  AccessRefusedError,
  AccessTimeoutError,
  type AccessPolicy,
  type ByteHandler,
  type ServerConnectMessage,
  type TransportClient,
} from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { Device, SimulatorServer } from '@labwire/simulator'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { TelnetClient, TelnetServer } from '@labwire/transport-telnet'
import { UdpClient, UdpServer } from '@labwire/transport-udp'
import { WebSocketClient, WebSocketServer } from '@labwire/transport-websocket'
import { hasOpenssl, makeTestCertificates, type TestCertificates } from './helpers/certs.js'
import { bytes, rejectionOf, text, within } from './helpers/fixtures.js'

const WAIT = 5_000
const raw = new SentinelBytesMarshaller('\n')
const line = textMarshaller(raw)
const upper: ByteHandler = async (stream) => bytes(`${text(await raw.unmarshall(stream)).toUpperCase()}\n`)

const dir = mkdtempSync(join(tmpdir(), 'labwire-access-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let socketCount = 0

let certificates: TestCertificates | undefined
const certs = (): TestCertificates => (certificates ??= makeTestCertificates())

interface Running {
  /** The server's kernel: tells its connect events apart. */
  kernel: object
  client(): TransportClient
  close(): Promise<void>
}

interface Kind {
  name: string
  /** Why this kind cannot run here (a missing program), or undefined. */
  missing?: string | undefined
  start(access: AccessPolicy): Promise<Running>
}

const kinds: Kind[] = [
  {
    name: 'tcp',
    async start(access) {
      const server = new TcpServer({ port: 0, callback: upper, access })
      const { port } = await server.listen()
      return { kernel: server.kernel, client: () => new TcpClient({ host: '127.0.0.1', port }), close: () => server.close() }
    },
  },
  {
    name: 'tls',
    missing: hasOpenssl ? undefined : 'the openssl command is missing (test certificates are made with it)',
    async start(access) {
      const server = new TcpServer({ port: 0, callback: upper, access, tls: certs().server })
      const { port } = await server.listen()
      return { kernel: server.kernel, client: () => new TcpClient({ host: '127.0.0.1', port, tls: { ca: certs().ca } }), close: () => server.close() }
    },
  },
  {
    name: 'unix',
    async start(access) {
      const path = join(dir, `s${socketCount++}.sock`)
      const server = new TcpServer({ path, callback: upper, access })
      await server.listen()
      return { kernel: server.kernel, client: () => new TcpClient({ path }), close: () => server.close() }
    },
  },
  {
    name: 'telnet',
    async start(access) {
      const server = new TelnetServer({ port: 0, callback: upper, access })
      const { port } = await server.listen()
      return { kernel: server.kernel, client: () => new TelnetClient({ host: '127.0.0.1', port }), close: () => server.close() }
    },
  },
  {
    name: 'websocket',
    async start(access) {
      const server = new WebSocketServer({ port: 0, callback: upper, access })
      await server.listen()
      const url = server.url as string
      return { kernel: server.kernel, client: () => new WebSocketClient({ url }), close: () => server.close() }
    },
  },
  {
    name: 'simulator',
    async start(access) {
      const device = new Device({ name: 'echo', state: {} }).command(/^(.*)$/, (match) => (match[1] ?? '').toUpperCase())
      const server = new SimulatorServer({ device, access })
      const { port } = await server.listen()
      return { kernel: server.kernel, client: () => new TcpClient({ host: '127.0.0.1', port }), close: () => server.close() }
    },
  },
  {
    name: 'udp',
    async start(access) {
      const server = new UdpServer({ port: 0, callback: upper, access })
      const { port } = await server.listen()
      return { kernel: server.kernel, client: () => new UdpClient({ host: '127.0.0.1', port }), close: () => server.close() }
    },
  },
]

function app(client: TransportClient): Promise<ApplicationClientSession<string, string>> {
  return new ApplicationClient(client, line.marshall, line.unmarshall, { timeout: WAIT }).connect({ signal: AbortSignal.timeout(WAIT) })
}

/** The peers a server admitted, in order (from `labwire:server:connect`). */
function watchPeers(kernel: object): { peers: string[]; stop(): void } {
  const peers: string[] = []
  const listener = (message: unknown): void => {
    const connect = message as ServerConnectMessage
    if (connect.kernel === kernel) peers.push(connect.peer)
  }
  subscribe('labwire:server:connect', listener)
  return { peers, stop: () => unsubscribe('labwire:server:connect', listener) }
}

for (const kind of kinds) {
  describe(`access errors at the client over ${kind.name}`, () => {
    if (kind.missing !== undefined) {
      console.warn(`SKIPPED: access errors over ${kind.name}: ${kind.missing}`)
      it.skip(`${kind.name}: ${kind.missing}`, () => undefined)
      return
    }

    it("exclusive 'refuse': the second client's calls reject with AccessRefusedError naming the holder", async () => {
      const server = await kind.start({ exclusive: 'refuse' })
      const watch = watchPeers(server.kernel)
      try {
        await using first = await app(server.client())
        expect(await first.sendReceive('one')).toBe('ONE')
        const holder = watch.peers[0]
        expect(holder).toBeDefined()

        await using second = await app(server.client())
        const refused = await within(rejectionOf(second.sendReceive('two')), WAIT, 'second call settled')
        expect(refused).toBeInstanceOf(AccessRefusedError)
        expect((refused as AccessRefusedError).holder).toBe(holder)
        expect((refused as AccessRefusedError).message).toContain(`exclusive use by ${holder}`)
        // Later calls on that session say the same, not "session unusable".
        expect(await within(rejectionOf(second.sendReceive('again')), WAIT, 'later call settled')).toBeInstanceOf(AccessRefusedError)

        // The bare transport session: its read (or the write after the close) rejects with it too.
        await using bare = await server.client().connect({ signal: AbortSignal.timeout(WAIT) })
        const read = await within(rejectionOf(Promise.resolve().then(() => raw.unmarshall(bare.request(bytes('three\n'))))), WAIT, 'bare read settled')
        expect(read).toBeInstanceOf(AccessRefusedError)
        expect((read as AccessRefusedError).holder).toBe(holder)

        // The holder is unaffected.
        expect(await first.sendReceive('still')).toBe('STILL')
      } finally {
        watch.stop()
        await server.close()
      }
    })

    it("exclusive 'queue' with queueTimeout: a client that waits too long gets AccessTimeoutError", async () => {
      const server = await kind.start({ exclusive: 'queue', queueTimeout: 150 })
      try {
        await using first = await app(server.client())
        expect(await first.sendReceive('a')).toBe('A')
        await using second = await app(server.client())
        const t0 = performance.now()
        const error = await within(rejectionOf(second.sendReceive('b')), WAIT, 'queued call settled')
        expect(error).toBeInstanceOf(AccessTimeoutError)
        expect((error as AccessTimeoutError).waited).toBe(150)
        expect((error as AccessTimeoutError).message).toMatch(/waited 150 ms for exclusive access/)
        expect(performance.now() - t0).toBeGreaterThanOrEqual(100)
        expect(await first.sendReceive('c')).toBe('C')
      } finally {
        await server.close()
      }
    })

    it("exclusive 'queue': queued clients are served FIFO as each holder leaves", async () => {
      const server = await kind.start({ exclusive: 'queue', queueTimeout: WAIT })
      try {
        const first = await app(server.client())
        expect(await first.sendReceive('a')).toBe('A')
        await using second = await app(server.client())
        const order: string[] = []
        const secondReply = second.sendReceive('b').then((reply) => order.push(reply))
        // Queued in this order on the server (UDP: the peer exists from its first datagram).
        await new Promise((resolve) => setTimeout(resolve, 50))
        await using third = await app(server.client())
        const thirdReply = third.sendReceive('c').then((reply) => order.push(reply))
        const early = await Promise.race([secondReply.then(() => 'answered'), new Promise((resolve) => setTimeout(() => resolve('waiting'), 200))])
        expect(early).toBe('waiting')
        expect(order).toEqual([])
        await first.close()
        await within(secondReply, WAIT, 'second served')
        expect(order).toEqual(['B'])
        await second.close()
        await within(thirdReply, WAIT, 'third served')
        expect(order).toEqual(['B', 'C'])
      } finally {
        await server.close()
      }
    })
  })
}
