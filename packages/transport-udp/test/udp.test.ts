/**
 * UdpClient / UdpServer specifics: socat as a real peer on both sides, framers over datagrams,
 * replies and requests over one datagram (typed errors, never truncation), the peer table's
 * bounds (maxConnections, idleTimeout), receive-buffer drops, ICMP port unreachable, options.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { readFileSync } from 'node:fs'
import { afterEach, describe, expect, it } from 'vitest'
import { ApplicationClient } from '@labwire/application'
import { ConnectionClosedError, ConnectionError, FrameTooLargeError, type ByteHandler } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { UdpClient, UdpServer } from '@labwire/transport-udp'
import { RecordingLogger, bytes, rejectionOf, text, until, within } from '../../../test/reliability/helpers.js'

const line = new SentinelBytesMarshaller('\n')
const lines = textMarshaller(line)
const upper: ByteHandler = async (stream) => bytes(`${text(await line.unmarshall(stream)).toUpperCase()}\n`)

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function startServer(options: Partial<ConstructorParameters<typeof UdpServer>[0]> = {}): Promise<{ server: UdpServer; port: number; logger: RecordingLogger }> {
  const logger = new RecordingLogger()
  const server = new UdpServer({ port: 0, callback: upper, logger, ...options })
  cleanups.push(() => server.close())
  const { port } = await server.listen()
  return { server, port, logger }
}

/** A UDP port nothing is bound to (bound, then released). */
async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  const { port } = socket.address()
  await new Promise<void>((resolve) => socket.close(resolve))
  return port
}

/** True once something is bound to 127.0.0.1:port/udp (read from /proc/net/udp). */
function udpBound(port: number): boolean {
  const hex = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`
  return readFileSync('/proc/net/udp', 'utf8').includes(hex)
}

const hasSocat = spawnSync('socat', ['-V'], { timeout: 5_000 }).status === 0
if (!hasSocat) console.warn('transport-udp: socat is not installed; the socat peer tests are SKIPPED (apt-get install socat)')

describe.skipIf(!hasSocat)('socat as the peer', () => {
  it('UdpClient ↔ socat UDP-RECVFROM echo server (tr a-z A-Z per datagram)', async () => {
    const port = await freeUdpPort()
    const socat: ChildProcess = spawn('socat', ['-T', '2', `UDP-RECVFROM:${port},bind=127.0.0.1,reuseaddr,fork`, 'SYSTEM:tr a-z A-Z'], { stdio: 'ignore' })
    cleanups.push(() => socat.kill())
    await until(() => udpBound(port), 5_000, 'socat bound its UDP port')
    const client = new ApplicationClient(new UdpClient({ host: '127.0.0.1', port, closeSignal: false }), lines.marshall, lines.unmarshall, { timeout: 3_000 })
    await using session = await client.connect()
    expect(await session.sendReceive('hello socat')).toBe('HELLO SOCAT')
    expect(await session.sendReceive('again')).toBe('AGAIN')
  })

  it('socat UDP client → UdpServer: the reply goes back to the sender’s address', async () => {
    const { port, server } = await startServer()
    const socat = spawn('socat', ['-t', '0.2', '-', `UDP:127.0.0.1:${port}`], { stdio: ['pipe', 'pipe', 'ignore'] })
    cleanups.push(() => socat.kill())
    let out = ''
    socat.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
    socat.stdin.write('from socat\n')
    await until(() => out === 'FROM SOCAT\n', 5_000, `socat printed the reply (got ${JSON.stringify(out)})`)
    expect(server.connectionCount).toBe(1)
    socat.stdin.end()
    await within(new Promise((resolve) => socat.once('exit', resolve)), 5_000, 'socat exit')
  })
})

describe('framers over datagrams', () => {
  it('a line split over two datagrams is one request; two lines in one datagram are two', async () => {
    const { port } = await startServer()
    await using session = await new UdpClient({ host: '127.0.0.1', port }).connect()
    session.request(bytes('hel'))
    const stream = session.request(bytes('lo\nwor'))
    expect(text(await within(line.unmarshall(stream), 5_000, 'HELLO'))).toBe('HELLO')
    session.request(bytes('ld\na\nb\n'))
    const got = [await line.unmarshall(stream), await line.unmarshall(stream), await line.unmarshall(stream)].map(text)
    expect(got).toEqual(['WORLD', 'A', 'B'])
  })
})

describe('datagram size limits', () => {
  it('a reply over maxDatagramSize is a FrameTooLargeError on the server (logged), never a truncated datagram; the client sees the session end', async () => {
    const { port, logger } = await startServer({ maxDatagramSize: 1_000, callback: async (stream) => ((await line.unmarshall(stream)).length > 0 ? new Uint8Array(2_000).fill(0x78) : undefined) })
    await using session = await new UdpClient({ host: '127.0.0.1', port }).connect()
    const error = await rejectionOf(line.unmarshall(session.request(bytes('big\n'))))
    expect(error).toBeInstanceOf(ConnectionClosedError)
    expect((error as ConnectionClosedError).partial).toEqual(new Uint8Array(0)) // not one byte of it was sent
    const record = await logger.waitFor((r) => r.context.err instanceof FrameTooLargeError)
    expect((record.context.err as FrameTooLargeError).maxLength).toBe(1_000)
    expect((record.context.err as Error).message).toContain('2000 bytes')
  })

  it('a request over maxDatagramSize throws FrameTooLargeError and sends nothing', async () => {
    const { port, server } = await startServer()
    const client = new ApplicationClient(new UdpClient({ host: '127.0.0.1', port, maxDatagramSize: 100 }), lines.marshall, lines.unmarshall, { timeout: 3_000 })
    await using session = await client.connect()
    const error = await rejectionOf(session.sendReceive('x'.repeat(200)))
    expect(error).toBeInstanceOf(FrameTooLargeError)
    expect((error as FrameTooLargeError).maxLength).toBe(100)
    expect(server.connectionCount).toBe(0)
    expect(await session.sendReceive('small')).toBe('SMALL')
  })

  it('a client that does not read keeps at most bufferSize bytes: later datagrams are dropped and counted', async () => {
    const { port } = await startServer({ callback: async (stream) => ((await line.unmarshall(stream)).length > 0 ? new Uint8Array(600).fill(0x79) : undefined) })
    const logger = new RecordingLogger()
    await using session = await new UdpClient({ host: '127.0.0.1', port, bufferSize: 1_024, logger }).connect()
    for (let i = 0; i < 10; i++) session.request(bytes(`r${i}\n`))
    await until(() => session.droppedDatagrams === 8, 5_000, `8 of 10 replies dropped (now ${session.droppedDatagrams})`)
    expect(session.stream.bufferedLength).toBe(1_200)
    expect(logger.at('warn').length).toBe(8)
  })
})

describe('the peer table', () => {
  it('maxConnections: a new peer over the cap evicts the least recently active peer, which is told so (ConnectionClosedError) — issue 16 #9, peer table exhaustion', async () => {
    const { port, logger, server } = await startServer({ maxConnections: 1 })
    const client = new ApplicationClient(new UdpClient({ host: '127.0.0.1', port }), lines.marshall, lines.unmarshall, { timeout: 3_000 })
    await using first = await client.connect()
    expect(await first.sendReceive('one')).toBe('ONE')
    await using second = await client.connect()
    // The newcomer is served; the quiet first peer is forgotten and told (end-of-session signal).
    expect(await second.sendReceive('two')).toBe('TWO')
    await logger.waitFor((r) => r.level === 'warn' && r.context.maxConnections === 1)
    // Its session has seen the end-of-session signal: unusable (ConnectionError) or closed (ConnectionClosedError).
    expect(await rejectionOf(first.sendReceive('still'))).toMatchObject({ code: expect.stringMatching(/^ERR_CONNECTION/) as unknown })
    expect(server.connectionCount).toBe(1)
  })

  it('idleTimeout forgets a quiet peer and tells it (its pending read rejects ConnectionClosedError)', async () => {
    const { port, server } = await startServer({ idleTimeout: 100 })
    await using session = await new UdpClient({ host: '127.0.0.1', port }).connect()
    const stream = session.request(bytes('ping\n'))
    expect(text(await line.unmarshall(stream))).toBe('PING')
    expect(server.connectionCount).toBe(1)
    const t0 = performance.now()
    expect(await rejectionOf(within(line.unmarshall(stream), 5_000, 'idle close'))).toBeInstanceOf(ConnectionClosedError)
    expect(performance.now() - t0).toBeGreaterThanOrEqual(80)
    expect(server.connectionCount).toBe(0)
  })
})

describe('requestTimeout', () => {
  it('closes a peer whose request never completes, and tells it', async () => {
    const { port } = await startServer({ requestTimeout: 100 })
    await using session = await new UdpClient({ host: '127.0.0.1', port }).connect()
    const t0 = performance.now()
    expect(await rejectionOf(within(line.unmarshall(session.request(bytes('never finish'))), 5_000, 'request timeout'))).toBeInstanceOf(ConnectionClosedError)
    expect(performance.now() - t0).toBeGreaterThanOrEqual(90)
  })
})

describe('errors and options', () => {
  it('a closed port: the read rejects ConnectionError naming host:port (ICMP port unreachable)', async () => {
    const port = await freeUdpPort()
    await using session = await new UdpClient({ host: '127.0.0.1', port }).connect()
    const error = await rejectionOf(within(line.unmarshall(session.request(bytes('anyone?\n'))), 5_000, 'ICMP error'))
    expect(error).toBeInstanceOf(ConnectionError)
    expect((error as ConnectionError).message).toContain(`127.0.0.1:${port}`)
    expect(((error as ConnectionError).cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED')
  })

  it('listen on a bound port rejects ConnectionError (cause EADDRINUSE)', async () => {
    const { port } = await startServer()
    const second = new UdpServer({ port, callback: upper })
    cleanups.push(() => second.close())
    const error = await rejectionOf(second.listen())
    expect(error).toBeInstanceOf(ConnectionError)
    expect((error as ConnectionError).message).toContain(`127.0.0.1:${port}`)
    expect(((error as ConnectionError).cause as NodeJS.ErrnoException).code).toBe('EADDRINUSE')
  })

  it('validates options with RangeErrors naming the option and value', () => {
    expect(() => new UdpClient({ host: '127.0.0.1', port: 70_000 })).toThrow(/port.*70000/)
    expect(() => new UdpClient({ host: '127.0.0.1', port: 9, maxDatagramSize: 70_000 })).toThrow(RangeError)
    expect(() => new UdpClient({ host: '127.0.0.1', port: 9, timeout: -1 })).toThrow(/timeout.*-1/)
    expect(() => new UdpServer({ callback: upper, idleTimeout: -5 })).toThrow(/idleTimeout.*-5/)
    expect(() => new UdpServer({ callback: upper, maxConnections: 0 })).toThrow(/maxConnections.*0/)
    expect(() => new UdpServer({ callback: upper, bufferSize: 1.5 })).toThrow(/bufferSize/)
  })
})
