/**
 * Hardening round two (issue 16), the client side: each test is named after the failure it pins.
 */
import { createHash } from 'node:crypto'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { afterEach, describe, expect, it } from 'vitest'
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import { AbortError, ConnectionClosedError, FrameTooLargeError, FramingError, TimeoutError, toBytes, toText } from '@labwire/core'
import { SentinelBytesMarshaller, checksumCodec, compose, crc8, textMarshaller } from '@labwire/marshallers'
import { ChildProcessClient } from '@labwire/transport-stdio'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { TelnetClient, TelnetServer } from '@labwire/transport-telnet'
import { WebSocketClient } from '@labwire/transport-websocket'
import { RecordingLogger, rejectionOf, within } from './reliability/helpers.js'

// eslint-disable-next-line no-control-regex -- what must never reach a terminal
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/
const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A raw TCP server on 127.0.0.1:0 whose connections are handed to `onConnection`. */
async function rawServer(onConnection: (socket: Socket) => void): Promise<number> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => undefined)
    socket.on('close', () => sockets.delete(socket))
    onConnection(socket)
  })
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve))
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  )
  return (server.address() as { port: number }).port
}

/** `global.gc`, exposed at run time (no --expose-gc needed). */
function gc(): () => void {
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
}

describe('hardening round two: client side', () => {
  it('bytes that arrive before the first request are unsolicited, not its reply: a TelnetServer banner (hardening #12)', async () => {
    const line = textMarshaller(new SentinelBytesMarshaller('\n'))
    const app = new ApplicationServer(line.unmarshall, line.marshall, (command: string) => (command === '*IDN?' ? 'ACME,DMM,1,1.0' : undefined))
    const server = new TelnetServer({ port: 0, callback: app, banner: 'labwire DMM simulator\r\n' })
    const { port } = await server.listen()
    cleanups.push(() => server.close())
    const unsolicited: string[] = []
    const client = new ApplicationClient(new TelnetClient({ host: '127.0.0.1', port, negotiationTimeout: 200 }), line.marshall, line.unmarshall, {
      timeout: 2_000,
      onUnsolicited: (message) => unsolicited.push(message),
    })
    await using session = await client.connect({ signal: AbortSignal.timeout(5_000) })
    // Let the banner arrive before the first request is written.
    await within(
      new Promise<void>((resolve) => {
        const poll = setInterval(() => {
          if (unsolicited.length > 0) {
            clearInterval(poll)
            resolve()
          }
        }, 5)
      }),
      3_000,
      'the banner',
    )
    expect(await session.sendReceive('*IDN?')).toBe('ACME,DMM,1,1.0')
    expect(unsolicited).toEqual(['labwire DMM simulator\r'])
  })

  it('more than 64 KiB before the first request is a FrameTooLargeError, not a timeout (hardening #12)', async () => {
    const port = await rawServer((socket) => socket.write(Buffer.alloc(256 * 1024, 0x61)))
    const line = new SentinelBytesMarshaller('\n', { maxLength: 100 * 1024 })
    const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), line.marshall, line.unmarshall, { timeout: 3_000 })
    await using session = await client.connect()
    const started = performance.now()
    // Give the flood time to arrive first (the session reads it: it is never this call's reply).
    await new Promise((resolve) => setTimeout(resolve, 100))
    const error = await rejectionOf(session.sendReceive(toBytes('*IDN?')))
    expect(error).not.toBeInstanceOf(TimeoutError)
    const framing = error instanceof FrameTooLargeError ? error : (error as { cause?: unknown }).cause
    expect(framing).toBeInstanceOf(FrameTooLargeError)
    expect(performance.now() - started).toBeLessThan(2_500)
  })

  it('a stdio child flooding stdout with no newline gives FrameTooLargeError, not TimeoutError (hardening #16)', async () => {
    const flood = "const b = Buffer.alloc(65536, 97); (function w() { while (process.stdout.write(b)); process.stdout.once('drain', w) })()"
    const line = new SentinelBytesMarshaller('\n', { maxLength: 256 * 1024 })
    const client = new ApplicationClient(new ChildProcessClient({ command: process.execPath, args: ['-e', flood], closeTimeout: 500 }), line.marshall, line.unmarshall, { timeout: 5_000 })
    const session = await client.connect()
    cleanups.push(() => session.close())
    const error = await rejectionOf(session.sendReceive(toBytes('x')))
    const framing = error instanceof FrameTooLargeError ? error : (error as { cause?: unknown }).cause
    expect(framing).toBeInstanceOf(FrameTooLargeError)
    // And reading the stream directly (no application layer) fails the same way.
    const raw = await new ChildProcessClient({ command: process.execPath, args: ['-e', flood], closeTimeout: 500 }).connect()
    cleanups.push(() => raw.close())
    const direct = await rejectionOf(line.unmarshall(raw.request(toBytes('x'))))
    expect(direct).toBeInstanceOf(FrameTooLargeError)
  })

  it('aborted send()s release their payloads: nothing of an aborted call stays reachable (hardening #17)', async () => {
    const collect = gc()
    const port = await rawServer((socket) => socket.pause()) // a peer that never reads
    const MiB = 1024 * 1024
    // Straight on the transport: every write whose AbortError says "not written" holds nothing.
    const tcp = await new TcpClient({ host: '127.0.0.1', port }).connect()
    cleanups.push(() => tcp.close())
    const written: WeakRef<ArrayBufferLike>[] = []
    const aborted: WeakRef<ArrayBufferLike>[] = []
    await Promise.all(
      Array.from({ length: 60 }, () => {
        const payload = new Uint8Array(MiB)
        return (tcp.write)(payload, { signal: AbortSignal.timeout(30) }).then(
          () => written.push(new WeakRef(payload.buffer)),
          (error: unknown) => {
            expect(error).toBeInstanceOf(AbortError)
            aborted.push(new WeakRef(payload.buffer))
          },
        )
      }),
    )
    // Through the application layer (identity marshaller: the payload is the frame).
    const client = new ApplicationClient<Uint8Array, Uint8Array>({ connect: () => new TcpClient({ host: '127.0.0.1', port }).connect() }, (bytes) => bytes, () => new Uint8Array(0))
    const session = await client.connect()
    cleanups.push(() => session.close())
    const sent: WeakRef<ArrayBufferLike>[] = []
    await Promise.all(
      Array.from({ length: 60 }, () => {
        const payload = new Uint8Array(MiB)
        return session.send(payload, { signal: AbortSignal.timeout(30) }).then(
          () => written.push(new WeakRef(payload.buffer)),
          () => sent.push(new WeakRef(payload.buffer)),
        )
      }),
    )
    // A child process that never reads its stdin: the same for stdio.
    const child = await new ChildProcessClient({ command: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'], closeTimeout: 200 }).connect()
    cleanups.push(() => child.close())
    const piped: WeakRef<ArrayBufferLike>[] = []
    await Promise.all(
      Array.from({ length: 30 }, () => {
        const payload = new Uint8Array(MiB)
        return (child.write)(payload, { signal: AbortSignal.timeout(30) }).then(
          () => written.push(new WeakRef(payload.buffer)),
          () => piped.push(new WeakRef(payload.buffer)),
        )
      }),
    )
    for (let i = 0; i < 3; i++) {
      collect()
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    // The ArrayBuffers are watched (a stream may keep a Buffer view of a payload after its Uint8Array is gone).
    const alive = (refs: WeakRef<ArrayBufferLike>[]): number => refs.filter((ref) => ref.deref() !== undefined).length
    // The peer never reads: only a few MiB fit the kernel and one socket buffer.
    expect(written.length).toBeLessThan(24)
    expect(aborted.length + sent.length).toBeGreaterThan(96)
    expect(alive(aborted)).toBe(0)
    expect(alive(sent)).toBe(0)
    expect(piped.length).toBeGreaterThan(25)
    expect(alive(piped)).toBe(0)
  })

  it('aborted WebSocket writes were never sent: a peer that never reads holds at most one buffer of them (hardening #17)', async () => {
    // A WebSocket peer that accepts the handshake and then never reads.
    const port = await rawServer((socket) => {
      socket.once('data', (head: Buffer) => {
        const key = /sec-websocket-key: *(\S+)/i.exec(head.toString('latin1'))?.[1] ?? ''
        const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`)
        socket.pause()
      })
    })
    const session = await new WebSocketClient({ url: `ws://127.0.0.1:${port}` }).connect()
    cleanups.push(() => session.close())
    const outcomes = await Promise.all(
      Array.from({ length: 60 }, () => (session.write)(new Uint8Array(1024 * 1024), { signal: AbortSignal.timeout(30) }).then(() => 'written', (error: unknown) => (error instanceof AbortError ? 'aborted' : 'other'))),
    )
    expect(outcomes.filter((outcome) => outcome === 'aborted').length).toBeGreaterThan(40)
    expect(outcomes).not.toContain('other')
    // What was not written is not queued either (before: every "aborted" message was queued anyway, 60 MiB).
    expect(session.bufferedAmount).toBeLessThan(24 * 1024 * 1024)
  })

  it('a timeout message says what arrived (escaped, truncated) and suggests the terminator', async () => {
    const port = await rawServer((socket) => socket.on('data', () => socket.write('+1.50000E+00\r')))
    const line = new SentinelBytesMarshaller('\n')
    const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), line.marshall, line.unmarshall, { timeout: 200 })
    await using session = await client.connect()
    const error = await rejectionOf(session.sendReceive(toBytes('MEAS?')))
    expect(error).toBeInstanceOf(TimeoutError)
    expect((error as TimeoutError).partial).toEqual(toBytes('+1.50000E+00\r'))
    expect((error as Error).message).toContain('13 bytes arrived without completing a frame: "+1.50000E+00\\r"; they end with "\\r": is that the response terminator?')
    // Long partials are cut, and control bytes never reach a terminal raw.
    const noisy = await rawServer((socket) => socket.on('data', () => socket.write(`\x1b]52;c;AAAA\x07${'x'.repeat(200)}`)))
    const client2 = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port: noisy }), line.marshall, line.unmarshall, { timeout: 200 })
    await using session2 = await client2.connect()
    const message = ((await rejectionOf(session2.sendReceive(toBytes('X?')))) as Error).message
    expect(message).toContain('\\x1b]52;c;AAAA\\x07')
    expect(message).toContain('… (+')
    expect(message).not.toMatch(CONTROL)
  })

  it('a cable cut (connection reset) gives ConnectionClosedError, not ConnectionError: read ECONNRESET', async () => {
    for (let run = 0; run < 4; run++) {
      const port = await rawServer((socket) => socket.once('data', () => socket.resetAndDestroy()))
      const line = new SentinelBytesMarshaller('\n')
      const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), line.marshall, line.unmarshall, { timeout: 2_000 })
      await using session = await client.connect()
      const error = await rejectionOf(session.sendReceive(toBytes('*IDN?')))
      expect(error).toBeInstanceOf(ConnectionClosedError)
      expect((error as Error).message).not.toMatch(/^read ECONNRESET/)
    }
  })

  it("a bad-CRC frame is logged through the ApplicationServer's own logger", async () => {
    const framed = compose(new SentinelBytesMarshaller('\n'), checksumCodec(crc8, { encoding: 'hex' }))
    const logger = new RecordingLogger()
    const app = new ApplicationServer(framed.unmarshall, framed.marshall, (request: Uint8Array) => request, { logger })
    const server = new TcpServer({ port: 0, callback: app }) // no logger on the transport server
    const { port } = await server.listen()
    cleanups.push(() => server.close())
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port }, () => resolve(s))
      s.once('error', reject)
    })
    cleanups.push(() => void socket.destroy())
    socket.write('hello00\n') // wrong checksum
    const record = await logger.waitFor((r) => r.level === 'warn', 3_000)
    expect(record.context.err).toBeInstanceOf(FramingError)
    expect(record.message).toMatch(/could not be decoded/)
  })

  it('a request marshaller that returns no bytes is a FramingError, not a raw TypeError', async () => {
    const port = await rawServer(() => undefined)
    const client = new ApplicationClient<string, string>(new TcpClient({ host: '127.0.0.1', port }), () => 'oops' as unknown as Uint8Array, () => '')
    await using session = await client.connect()
    const error = await rejectionOf(session.sendReceive('x'))
    expect(error).toBeInstanceOf(FramingError)
    expect((error as FramingError).code).toBe('ERR_FRAMING')
    expect(toText(toBytes('ok'))).toBe('ok')
  })
})
