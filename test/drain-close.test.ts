/**
 * `close({ drain })` on every server kind (issue 15 item 3): stop accepting, let requests in
 * flight finish up to the deadline, close the rest, resolve when nothing is left. A slow handler
 * (300 ms) is in flight when close is called.
 */
import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import {
  MemoryClient,
  MemoryServer,
  type ServerCloseOptions,
  type TransportClientSession,
} from '@labwire/core'
import { Device, SimulatorServer } from '@labwire/simulator'
import { StdioServer } from '@labwire/transport-stdio'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { TelnetClient, TelnetServer } from '@labwire/transport-telnet'
import { UdpClient, UdpServer } from '@labwire/transport-udp'
import { WebSocketClient, WebSocketServer } from '@labwire/transport-websocket'
import { line, SLOW, slowHandler, WAIT } from './helpers/drain.js'
import { bytes, rejectionOf, text, within } from './helpers/fixtures.js'


interface Running {
  connect(): Promise<TransportClientSession>
  close(options?: ServerCloseOptions): Promise<void>
  count(): number
}

const kinds: { name: string; start(): Promise<Running> }[] = [
  {
    name: 'tcp',
    async start() {
      const server = new TcpServer({ port: 0, callback: slowHandler })
      const { port } = await server.listen()
      return { connect: () => new TcpClient({ host: '127.0.0.1', port, timeout: WAIT }).connect(), close: (o) => server.close(o), count: () => server.connectionCount }
    },
  },
  {
    name: 'telnet',
    async start() {
      const server = new TelnetServer({ port: 0, callback: slowHandler })
      const { port } = await server.listen()
      return { connect: () => new TelnetClient({ host: '127.0.0.1', port, timeout: WAIT }).connect(), close: (o) => server.close(o), count: () => server.connectionCount }
    },
  },
  {
    name: 'websocket',
    async start() {
      const server = new WebSocketServer({ port: 0, callback: slowHandler })
      await server.listen()
      const url = server.url as string
      return { connect: () => new WebSocketClient({ url, timeout: WAIT }).connect(), close: (o) => server.close(o), count: () => server.connectionCount }
    },
  },
  {
    name: 'udp',
    async start() {
      const server = new UdpServer({ port: 0, callback: slowHandler })
      const { port } = await server.listen()
      return { connect: () => new UdpClient({ host: '127.0.0.1', port, timeout: WAIT }).connect(), close: (o) => server.close(o), count: () => server.connectionCount }
    },
  },
  {
    name: 'memory',
    start() {
      const server = new MemoryServer({ callback: slowHandler })
      return Promise.resolve({ connect: () => new MemoryClient(server, { timeout: WAIT }).connect(), close: (o) => server.close(o), count: () => server.connectionCount })
    },
  },
]

describe.each(kinds)('close({ drain }) on $name', (kind) => {
  it('lets the request in flight finish and answers it, closes the idle connection at once, then resolves', async () => {
    const server = await kind.start()
    const busy = await server.connect()
    const idle = await server.connect()
    expect(text(await within(line.unmarshall(idle.request(bytes('ping\n'))), WAIT, 'idle ping'))).toBe('PING')
    const reply = line.unmarshall(busy.request(bytes('slow\n')))
    await new Promise((resolve) => setTimeout(resolve, 50)) // the slow request is being handled
    const t0 = performance.now()
    const closed = server.close({ drain: 3_000 })
    expect(text(await within(reply, WAIT, 'slow reply during drain'))).toBe('SLOW')
    await within(closed, WAIT, 'close({ drain }) resolved')
    const took = performance.now() - t0
    expect(took).toBeGreaterThanOrEqual(SLOW - 100)
    expect(took).toBeLessThan(2_500)
    expect(server.count()).toBe(0)
    await busy.close()
    await idle.close()
  })

  it('closes what is still running when the drain deadline passes', async () => {
    const server = await kind.start()
    const session = await server.connect()
    // Settled (and its rejection handled) as soon as it happens: the connection is cut before anyone awaits it.
    const reply = line.unmarshall(session.request(bytes('stuck\n'))).then(
      (value) => value,
      (error: unknown) => Promise.reject(error instanceof Error ? error : new Error(String(error))),
    )
    reply.catch(() => undefined)
    await new Promise((resolve) => setTimeout(resolve, 50))
    const t0 = performance.now()
    await within(server.close({ drain: 200 }), WAIT, 'close({ drain: 200 })')
    const took = performance.now() - t0
    expect(took).toBeGreaterThanOrEqual(150)
    expect(took).toBeLessThan(2_000)
    const error = await rejectionOf(within(reply, WAIT, 'stuck reply'))
    expect((error as { code?: string }).code).toMatch(/^ERR_CONNECTION/)
    expect(server.count()).toBe(0)
    await session.close()
  })
})

describe('close({ drain }) on stdio and the simulator', () => {
  it('StdioServer: a request in flight is answered before the output ends', async () => {
    const input = new PassThrough()
    const output = new PassThrough()
    const server = new StdioServer({ callback: slowHandler, input, output })
    const served = server.serve()
    const received: Buffer[] = []
    output.on('data', (chunk: Buffer) => received.push(chunk))
    const outputEnded = new Promise<void>((resolve) => output.once('end', () => resolve()))
    input.write('slow\n')
    await new Promise((resolve) => setTimeout(resolve, 50))
    await within(server.close({ drain: 3_000 }), WAIT, 'stdio drain')
    await within(served, WAIT, 'serve() resolved')
    await within(outputEnded, WAIT, 'output ended')
    expect(Buffer.concat(received).toString()).toBe('SLOW\n')
  })

  it('SimulatorServer: a slow query in flight is answered, new connections are refused', async () => {
    const device = new Device({ name: 'slowpoke', state: {} }).command('SLOW?', async () => {
      await new Promise((resolve) => setTimeout(resolve, SLOW))
      return 'done'
    })
    const server = new SimulatorServer({ device })
    const { port } = await server.listen()
    const session = await new TcpClient({ host: '127.0.0.1', port, timeout: WAIT }).connect()
    const reply = line.unmarshall(session.request(bytes('SLOW?\n')))
    await new Promise((resolve) => setTimeout(resolve, 50))
    const closed = server.close({ drain: 3_000 })
    expect(text(await within(reply, WAIT, 'slow query'))).toBe('done')
    await within(closed, WAIT, 'simulator drain')
    const late = await rejectionOf(new TcpClient({ host: '127.0.0.1', port, connectTimeout: 1_000 }).connect())
    expect((late as { code?: string }).code).toMatch(/^ERR_CONNECTION/)
    await session.close()
  })
})
