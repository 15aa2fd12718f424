// Recoverable frame errors over real sockets: a frame read whole that fails its checksum or its
// codec is a FramingError with `recoverable: true`; a TcpServer logs it and serves the next request
// on the same connection, an ApplicationClient fails only that call. Plus the idle-gap framer,
// whose unmarshall is async over the connection's push-mode byte stream, on both ends.
import { connect, createServer, type Server, type Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import { ConnectionClosedError, FramingError, type Logger } from '@labwire/core'
import { checksumCodec, compose, crc8, IdleGapBytesMarshaller, IeeeBlockMarshaller, jsonCodec, SentinelBytesMarshaller, textCodec } from '@labwire/marshallers'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'

const WAIT = 5000

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

/** Collects what a raw socket receives; `until(text)` resolves once the received text contains it (bounded). */
function receiver(socket: Socket): { text: () => string; until: (expected: string) => Promise<void>; closed: Promise<void> } {
  let text = ''
  const waiters: (() => void)[] = []
  socket.on('data', (data: Buffer) => {
    text += data.toString('latin1')
    for (const wake of waiters.splice(0)) wake()
  })
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  return {
    text: () => text,
    until: (expected) =>
      new Promise<void>((resolve, reject) => {
        const signal = AbortSignal.timeout(WAIT)
        const check = (): void => {
          if (text.includes(expected)) resolve()
          else if (signal.aborted) reject(new Error(`did not receive ${JSON.stringify(expected)} in time; got ${JSON.stringify(text)}`))
          else waiters.push(check)
        }
        signal.addEventListener('abort', check, { once: true })
        check()
      }),
    closed,
  }
}

async function rawConnect(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  return socket
}

async function device(onData: (socket: Socket, text: string) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('data', (data) => onData(socket, data.toString('latin1')))
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
}

const crcLines = (): ReturnType<typeof compose<string, string>> => compose(new SentinelBytesMarshaller('\n'), checksumCodec(crc8, { encoding: 'hex' }), textCodec())
const withCrc = (text: string): string => `${text}${crc8.compute(Buffer.from(text, 'latin1')).toString(16).toUpperCase().padStart(2, '0')}\n`

describe('recoverable frame errors over TCP', () => {
  it('a server logs a request with a bad checksum, answers nothing for it, and answers the next request on the same connection', async () => {
    const logger = recordingLogger()
    const lines = crcLines()
    await using server = new TcpServer({ callback: new ApplicationServer(lines.unmarshall, lines.marshall, (s: string) => s.toUpperCase()), logger })
    const { port } = await server.listen()
    const socket = await rawConnect(port)
    try {
      const rx = receiver(socket)
      socket.write('volt?00\n' + withCrc('curr?'))
      await rx.until(withCrc('CURR?'))
      expect(rx.text()).toBe(withCrc('CURR?'))
      expect(logger.warnings).toContain('bad request frame skipped')
      expect(logger.errors).toEqual([])
      // Still the same connection, still served.
      socket.write(withCrc('idn?'))
      await rx.until(withCrc('IDN?'))
      expect(server.connectionCount).toBe(1)
    } finally {
      socket.destroy()
    }
  })

  it('a server closes the connection on an error that loses the frame boundary (a malformed IEEE block header)', async () => {
    const logger = recordingLogger()
    const blocks = new IeeeBlockMarshaller()
    await using server = new TcpServer({ callback: new ApplicationServer(blocks.unmarshall, blocks.marshall, (b: Uint8Array) => b), logger })
    const { port } = await server.listen()
    const socket = await rawConnect(port)
    try {
      const rx = receiver(socket)
      socket.write('#13abc\n#x')
      await rx.until('#13abc\n')
      await Promise.race([rx.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('connection not closed')), WAIT))])
      expect(logger.errors.length).toBe(1)
    } finally {
      socket.destroy()
    }
  })

  it('a client call whose reply fails its checksum rejects with a recoverable FramingError; the session answers the next call', async () => {
    let calls = 0
    const dev = await device((socket) => {
      calls++
      socket.write(calls === 1 ? 'BAD REPLYFF\n' : withCrc(`reply ${calls}`))
    })
    try {
      const lines = crcLines()
      const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port: dev.port }), lines.marshall, lines.unmarshall, { timeout: WAIT })
      await using session = await client.connect()
      const first = await session.sendReceive('first').then(
        () => undefined,
        (error: unknown) => error,
      )
      expect(first).toBeInstanceOf(FramingError)
      expect((first as FramingError).recoverable).toBe(true)
      expect((first as FramingError).message).toMatch(/CRC-8\/SMBUS mismatch: expected 0x[0-9A-F]{2}, got 0xFF/)
      expect(await session.sendReceive('second')).toBe('reply 2')
      expect(await session.sendReceive('third')).toBe('reply 3')
    } finally {
      await dev.close()
    }
  })

  it('a client call whose reply is not valid JSON fails alone (jsonCodec), with maxInFlight 4 pipelining', async () => {
    const dev = await device((socket, text) => {
      for (const line of text.split('\n').filter(Boolean)) socket.write(line === '"bad"' ? '{oops\n' : `${line}\n`)
    })
    try {
      const json = compose(new SentinelBytesMarshaller('\n'), jsonCodec())
      const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port: dev.port }), json.marshall, json.unmarshall, { timeout: WAIT, maxInFlight: 4 })
      await using session = await client.connect()
      const results = await Promise.allSettled([session.sendReceive({ n: 1 }), session.sendReceive('bad'), session.sendReceive([3])])
      expect(results[0]).toEqual({ status: 'fulfilled', value: { n: 1 } })
      expect(results[1]?.status).toBe('rejected')
      const reason = (results[1] as PromiseRejectedResult).reason as FramingError
      expect(reason).toBeInstanceOf(FramingError)
      expect(reason.recoverable).toBe(true)
      expect(results[2]).toEqual({ status: 'fulfilled', value: [3] })
    } finally {
      await dev.close()
    }
  })
})

describe('IdleGapBytesMarshaller over TCP (async unmarshall on a push-mode stream)', () => {
  it('a server reads requests that end in silence, several on one connection', async () => {
    const quiet = new IdleGapBytesMarshaller(30)
    const upper = compose(quiet, textCodec())
    await using server = new TcpServer({ callback: new ApplicationServer(upper.unmarshall, upper.marshall, (s: string) => `<${s.toUpperCase()}>`) })
    const { port } = await server.listen()
    const socket = await rawConnect(port)
    try {
      const rx = receiver(socket)
      // Two writes well inside the gap make one request.
      socket.write('ab')
      await new Promise((resolve) => setTimeout(resolve, 5))
      socket.write('cd')
      await rx.until('<ABCD>')
      socket.write('ef')
      await rx.until('<EF>')
      expect(rx.text()).toBe('<ABCD><EF>')
    } finally {
      socket.destroy()
    }
  })

  it('a client reads replies that end in silence; a device closing mid-reply is a ConnectionClosedError with the partial bytes', async () => {
    const dev = await device((socket, text) => {
      if (text === 'close') {
        socket.end('PART')
        return
      }
      socket.write('12')
      setTimeout(() => socket.write('34'), 5)
    })
    try {
      const quiet = compose(new IdleGapBytesMarshaller(40), textCodec('latin1'))
      const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port: dev.port }), quiet.marshall, quiet.unmarshall, { timeout: WAIT })
      await using session = await client.connect()
      expect(await session.sendReceive('a')).toBe('1234')
      expect(await session.sendReceive('b')).toBe('1234')
      const error = await session.sendReceive('close').then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(error).toBeInstanceOf(ConnectionClosedError)
      expect(Buffer.from((error as ConnectionClosedError).partial).toString()).toBe('PART')
    } finally {
      await dev.close()
    }
  })
})
