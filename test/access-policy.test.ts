/**
 * The access policy (`access: { maxSessions, exclusive, queueTimeout }`) over real sockets, with
 * several real clients, on TCP, Telnet and WebSocket (issue 15 item 2).
 */
import { connect as netConnect } from 'node:net'
import { describe, expect, it } from 'vitest'
import {
  AccessRefusedError,
  AccessTimeoutError,
  accessErrorFromClose,
  parseAccessNotice,
  type AccessPolicy,
  type ByteHandler,
  type TransportClientSession,
} from '@labwire/core'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { TelnetClient, TelnetServer } from '@labwire/transport-telnet'
import { WebSocketClient, WebSocketServer } from '@labwire/transport-websocket'
import { bytes, text, within } from './helpers/fixtures.js'

const line = new SentinelBytesMarshaller('\n')
const WAIT = 5_000

const echo: ByteHandler = async (stream) => bytes(`${text(await line.unmarshall(stream)).toUpperCase()}\n`)

interface Started {
  port: number
  connect(): Promise<TransportClientSession>
  close(): Promise<void>
}

interface Kind {
  name: string
  start(access: AccessPolicy): Promise<Started>
}

const kinds: Kind[] = [
  {
    name: 'tcp',
    async start(access) {
      const server = new TcpServer({ port: 0, callback: echo, access })
      const { port } = await server.listen()
      return { port, connect: () => new TcpClient({ host: '127.0.0.1', port, timeout: WAIT }).connect(), close: () => server.close() }
    },
  },
  {
    name: 'telnet',
    async start(access) {
      const server = new TelnetServer({ port: 0, callback: echo, access })
      const { port } = await server.listen()
      return { port, connect: () => new TelnetClient({ host: '127.0.0.1', port, timeout: WAIT }).connect(), close: () => server.close() }
    },
  },
  {
    name: 'websocket',
    async start(access) {
      const server = new WebSocketServer({ port: 0, callback: echo, access })
      const { port } = await server.listen()
      const url = server.url as string
      return { port, connect: () => new WebSocketClient({ url, timeout: WAIT }).connect(), close: () => server.close() }
    },
  },
]

async function ask(session: TransportClientSession, request: string): Promise<string> {
  return text(await within(line.unmarshall(session.request(bytes(`${request}\n`))), WAIT, `reply to ${request}`))
}

/**
 * What a turned-away session reads before the server closes it (TCP, Telnet): the access notice
 * line. Read with a raw socket to the end (Telnet negotiation before it skipped), since a client
 * session refuses request() once its connection has closed.
 */
async function noticeOf(port: number): Promise<AccessRefusedError | AccessTimeoutError | undefined> {
  const socket = netConnect({ host: '127.0.0.1', port })
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  socket.once('connect', () => socket.write('hello\r\n'))
  await within(new Promise<void>((resolve, reject) => {
    socket.once('close', () => resolve())
    socket.once('error', reject)
  }), WAIT, 'turned-away session closed')
  const all = Buffer.concat(chunks)
  const start = all.indexOf(0x15)
  return start < 0 ? undefined : parseAccessNotice(all.subarray(start))
}

for (const kind of kinds.filter((k) => k.name !== 'websocket')) {
  describe(`access policy on ${kind.name}`, () => {
    it("exclusive: 'refuse' turns a second session away with an AccessRefusedError naming the holder", async () => {
      const server = await kind.start({ exclusive: 'refuse' })
      try {
        await using first = await server.connect()
        expect(await ask(first, 'one')).toBe('ONE')
        const error = await noticeOf(server.port)
        expect(error).toBeInstanceOf(AccessRefusedError)
        expect((error as AccessRefusedError).holder).toMatch(/^127\.0\.0\.1:\d+$/)
        expect(error?.message).toMatch(/exclusive use by 127\.0\.0\.1:\d+/)
        // The holder is unaffected; once it leaves, a new session gets in.
        expect(await ask(first, 'still')).toBe('STILL')
        await first.close()
        await using third = await server.connect()
        expect(await ask(third, 'three')).toBe('THREE')
      } finally {
        await server.close()
      }
    })

    it("exclusive: 'queue' makes later sessions wait their turn (FIFO), then serves them", async () => {
      const server = await kind.start({ exclusive: 'queue', queueTimeout: 5_000 })
      try {
        const first = await server.connect()
        expect(await ask(first, 'a')).toBe('A')
        await using second = await server.connect()
        await using third = await server.connect()
        const order: string[] = []
        const secondReply = ask(second, 'b').then((r) => order.push(r))
        const thirdReply = ask(third, 'c').then((r) => order.push(r))
        // While the first session holds the device, nobody else is answered.
        const early = await Promise.race([secondReply.then(() => 'answered'), new Promise((resolve) => setTimeout(() => resolve('waiting'), 200))])
        expect(early).toBe('waiting')
        await first.close()
        await within(secondReply, WAIT, 'second served')
        await second.close()
        await within(thirdReply, WAIT, 'third served')
        expect(order).toEqual(['B', 'C'])
      } finally {
        await server.close()
      }
    })

    it('a queued session whose queueTimeout passes gets an AccessTimeoutError saying it waited for exclusive access', async () => {
      const server = await kind.start({ exclusive: 'queue', queueTimeout: 150 })
      try {
        await using first = await server.connect()
        expect(await ask(first, 'a')).toBe('A')
        const t0 = performance.now()
        const error = await noticeOf(server.port)
        expect(error).toBeInstanceOf(AccessTimeoutError)
        expect(error?.message).toMatch(/waited 150 ms for exclusive access/)
        expect(performance.now() - t0).toBeGreaterThanOrEqual(100)
        expect(await ask(first, 'b')).toBe('B')
      } finally {
        await server.close()
      }
    })

    it('maxSessions: 2 serves two at once and refuses the third', async () => {
      const server = await kind.start({ maxSessions: 2 })
      try {
        await using a = await server.connect()
        await using b = await server.connect()
        expect(await ask(a, 'a')).toBe('A')
        expect(await ask(b, 'b')).toBe('B')
        expect(await noticeOf(server.port)).toBeInstanceOf(AccessRefusedError)
      } finally {
        await server.close()
      }
    })
  })
}

describe('access notice', () => {
  it('round-trips both errors, with or without the line end, and ignores ordinary replies', () => {
    const refused = new AccessRefusedError(undefined, { holder: '127.0.0.1:5025' })
    const line = new TextEncoder().encode(`\u0015labwire ERR_ACCESS_REFUSED ${refused.message}\r\n`)
    expect(parseAccessNotice(line)).toMatchObject({ code: 'ERR_ACCESS_REFUSED', holder: '127.0.0.1:5025' })
    expect(parseAccessNotice(line.subarray(0, line.length - 1))).toMatchObject({ code: 'ERR_ACCESS_REFUSED' })
    expect(parseAccessNotice(bytes('+1.000E+00\n'))).toBeUndefined()
    expect(parseAccessNotice(new Uint8Array(0))).toBeUndefined()
    expect(accessErrorFromClose(1000, '')).toBeUndefined()
  })
})
