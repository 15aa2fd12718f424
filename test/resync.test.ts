// Discard-and-resynchronise: SentinelBytesMarshaller({ tooLarge: 'skip' }) skips an oversized
// frame through its sentinel, rejects that one read with a resynchronised FrameTooLargeError, and
// the next read starts at the next frame — in the framer, the server loop and the client session.
import { connect, createServer, type Server, type Socket } from 'node:net'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import { ByteStream, ConnectionClosedError, FrameTooLargeError, type Logger } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { chunksOf, concat, fromChunks } from './helpers/chunks.js'

const enc = (text: string): Uint8Array => new TextEncoder().encode(text)
const dec = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)

async function outcome(promise: Promise<unknown>): Promise<unknown> {
  try {
    return await promise
  } catch (error) {
    return error
  }
}

describe('ByteStream.readUntil with tooLarge: skip', () => {
  it('skips an oversized frame under any chunking and reads the next one', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 9, max: 300 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }),
        fc.constantFrom('\n', '\r\n', '<END>'),
        async (oversize, sizes, sentinel) => {
          const input = concat(enc('x'.repeat(oversize) + sentinel), enc('ok' + sentinel), enc('tail'))
          const stream = new ByteStream(fromChunks(chunksOf(input, sizes)))
          const first = await outcome(stream.readUntil(enc(sentinel), { maxLength: 8, tooLarge: 'skip' }))
          expect(first).toBeInstanceOf(FrameTooLargeError)
          expect((first as FrameTooLargeError).resynchronised).toBe(true)
          expect(dec(await stream.readUntil(enc(sentinel), { maxLength: 8, tooLarge: 'skip' }))).toBe('ok')
          let rest = ''
          for (let r = await stream.next(); r.done !== true; r = await stream.next()) rest += dec(r.value)
          expect(rest).toBe('tail')
        },
      ),
      { numRuns: 200 },
    )
  })

  it('holds at most delimiter-length − 1 bytes plus one chunk while skipping an endless frame, then reports the close', async () => {
    let pulled = 0
    let maxBuffered = 0
    const chunk = new Uint8Array(4096).fill(0x61)
    const holder: { stream?: ByteStream } = {}
    const stream = new ByteStream(
      (async function* () {
        for (let i = 0; i < 2000; i++) {
          maxBuffered = Math.max(maxBuffered, holder.stream?.bufferedLength ?? 0)
          pulled += chunk.length
          await Promise.resolve()
          yield chunk
        }
      })(),
    )
    holder.stream = stream
    const error = await outcome(stream.readUntil(enc('\r\n'), { maxLength: 64, tooLarge: 'skip' }))
    expect(error).toBeInstanceOf(ConnectionClosedError)
    expect(pulled).toBe(2000 * 4096)
    expect(maxBuffered).toBeLessThanOrEqual(1)
  })

  it("'fail' (the default) rejects without resynchronising", async () => {
    const stream = new ByteStream(fromChunks([enc('x'.repeat(20) + '\nok\n')]))
    const error = await outcome(stream.readUntil(enc('\n'), { maxLength: 8 }))
    expect(error).toBeInstanceOf(FrameTooLargeError)
    expect((error as FrameTooLargeError).resynchronised).toBe(false)
  })
})

function recordingLogger(): Logger & { warnings: string[]; errors: string[] } {
  const warnings: string[] = []
  const errors: string[] = []
  return {
    warnings,
    errors,
    debug: () => undefined,
    info: () => undefined,
    warn: (_context, message) => warnings.push(message ?? ''),
    error: (_context, message) => errors.push(message ?? ''),
  }
}

function readLine(socket: Socket, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    const onData = (data: Buffer): void => {
      text += data.toString()
      const at = text.indexOf('\n')
      if (at >= 0) {
        socket.off('data', onData)
        resolve(text.slice(0, at))
      }
    }
    socket.on('data', onData)
    signal.addEventListener('abort', () => reject(new Error('no line in time')), { once: true })
  })
}

describe('servers and sessions with a skipping framer', () => {
  it('a server logs the oversized request, answers nothing for it, and serves the next request on the same connection', async () => {
    const logger = recordingLogger()
    const lines = textMarshaller(new SentinelBytesMarshaller('\n', { maxLength: 16, tooLarge: 'skip' }))
    await using server = new TcpServer({ callback: new ApplicationServer(lines.unmarshall, lines.marshall, (s: string) => s.toUpperCase()), logger })
    const { port } = await server.listen()
    const socket = connect({ host: '127.0.0.1', port })
    try {
      await new Promise((resolve) => socket.once('connect', resolve))
      socket.write('y'.repeat(100_000) + '\nping\n')
      expect(await readLine(socket, AbortSignal.timeout(5000))).toBe('PING')
      expect(logger.warnings).toContain('oversized request skipped')
      expect(logger.errors).toEqual([])
      expect(server.connectionCount).toBe(1)
    } finally {
      socket.destroy()
    }
  })

  it('a client call whose reply is oversized rejects resynchronised; the session answers the next call', async () => {
    const device: Server = createServer((socket) => {
      socket.once('data', () => socket.write('z'.repeat(5000) + '\r\n'))
      socket.on('data', (data) => {
        if (data.toString().includes('second')) socket.write('fine\r\n')
      })
    })
    await new Promise<void>((resolve) => device.listen(0, '127.0.0.1', resolve))
    const port = (device.address() as { port: number }).port
    try {
      const lines = textMarshaller(new SentinelBytesMarshaller('\r\n', { maxLength: 100, tooLarge: 'skip' }))
      const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), lines.marshall, lines.unmarshall, { timeout: 5000 })
      await using session = await client.connect()
      const first = await outcome(session.sendReceive('first'))
      expect(first).toBeInstanceOf(FrameTooLargeError)
      expect((first as FrameTooLargeError).resynchronised).toBe(true)
      expect(await session.sendReceive('second')).toBe('fine')
    } finally {
      await new Promise((resolve) => device.close(resolve))
    }
  })
})
