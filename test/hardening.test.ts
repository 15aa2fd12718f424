/**
 * Regression tests for the twelve failures of the hardening issue, each named after the failure,
 * plus the rough edges a new user hit. Real sockets on 127.0.0.1, every wait bounded.
 */
import { getEventListeners } from 'node:events'
import { createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import {
  AbortError,
  ByteStream,
  ConnectionClosedError,
  ConnectionError,
  FramingError,
  TimeoutError,
  toBytes,
} from '@labwire/core'
import { FixedLengthBytesMarshaller, SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { RecordingLogger, closed, freePort, rawConnect, readUntilClose, rejectionOf, until, within } from './reliability/helpers.js'
import { lineClient, startLineServer, servesFreshClient } from './reliability/peers.js'

const line = textMarshaller(new SentinelBytesMarshaller('\n'))
const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function lineServer(callback: (request: string) => string | undefined | Promise<string | undefined>, tcp: Partial<ConstructorParameters<typeof TcpServer>[0]> = {}) {
  const started = await startLineServer(callback, { tcp })
  cleanups.push(() => started.server.close())
  return started
}

/** A raw server that accepts connections and never reads from them. */
async function stalledPeer(): Promise<{ port: number; sockets: Socket[]; received: () => number; close: () => Promise<void> }> {
  const sockets: Socket[] = []
  let received = 0
  const server: Server = createServer((socket) => {
    socket.pause()
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length
    })
    socket.on('error', () => undefined)
    sockets.push(socket)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no address')
  const peer = {
    port: address.port,
    sockets,
    received: () => received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
  cleanups.push(peer.close)
  return peer
}

describe('hardening: the twelve failures', () => {
  it('1. a half-closed client still gets every reply, including one that takes 100 ms', async () => {
    const { port } = await lineServer(async (request) => {
      if (request === 'SLEEP') await new Promise((resolve) => setTimeout(resolve, 100))
      return request.toUpperCase()
    })
    const socket = await rawConnect(port)
    const drained = readUntilClose(socket)
    socket.end('a\nSLEEP\nc\n')
    const { data, error } = await drained
    expect(error).toBeUndefined()
    expect(data.toString()).toBe('A\nSLEEP\nC\n')
  })

  it('2. one byte no longer freezes the process: a zero-length fixed frame is refused, and a handler that consumes nothing closes its connection', async () => {
    expect(() => new FixedLengthBytesMarshaller(0)).toThrow(RangeError)
    const logger = new RecordingLogger()
    const server = new TcpServer({ port: 0, callback: () => undefined, logger })
    cleanups.push(() => server.close())
    const { port } = await server.listen()
    const socket = await rawConnect(port)
    const drained = readUntilClose(socket)
    socket.write('x')
    await drained
    const record = await logger.waitFor((r) => r.level === 'error')
    expect((record.context.err as Error).message).toMatch(/without consuming any input/)
    // The event loop is free: a timer fires, and the server takes new connections.
    await within(new Promise((resolve) => setTimeout(resolve, 5)), 1_000, 'timer while the server runs')
    await until(() => server.connectionCount === 0, 2_000, 'the connection is gone')
  })

  it('3. one-byte segments cost bytes, not objects: 1 MiB pushed a byte at a time is held in a few chunks', () => {
    const stream = new ByteStream(undefined, { highWaterMark: 2 * 1024 * 1024 })
    const size = 1024 * 1024
    for (let i = 0; i < size; i++) stream.push(new Uint8Array([i & 0x7f]))
    expect(stream.bufferedLength).toBe(size)
    expect(stream.chunkCount).toBeLessThanOrEqual(size / (8 * 1024) + 2)
    const all = stream.take(size)
    expect(all[1000]).toBe(1000 & 0x7f)
  })

  it('3. a 256 KiB line sent a byte per segment to a real server is framed and answered, memory bounded by the coalesced buffer', async () => {
    const { port } = await lineServer((request) => String(request.length))
    const socket = await rawConnect(port)
    socket.setNoDelay(true)
    const reply = new Promise<string>((resolve) => {
      let got = ''
      socket.on('data', (chunk: Buffer) => {
        got += chunk.toString()
        if (got.endsWith('\n')) resolve(got)
      })
    })
    const size = 256 * 1024
    const one = Buffer.from('a')
    for (let i = 0; i < size; i++) socket.write(one)
    socket.write('\n')
    expect(await within(reply, 15_000, '256 KiB line reply')).toBe(`${size}\n`)
    socket.destroy()
  })

  it('4. send() with an abort signal respects backpressure: AbortError means not written, and every resolved send was written whole', async () => {
    const peer = await stalledPeer()
    const framer = new FixedLengthBytesMarshaller(1024 * 1024)
    const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port: peer.port }), framer.marshall, framer.unmarshall, { timeout: 0 })
    await using session = await client.connect()
    const warnings: Error[] = []
    const onWarning = (warning: Error): void => {
      warnings.push(warning)
    }
    process.on('warning', onWarning)
    cleanups.push(() => void process.off('warning', onWarning))
    const payload = new Uint8Array(1024 * 1024)
    const outcomes = await Promise.allSettled(Array.from({ length: 300 }, () => session.send(payload, { signal: AbortSignal.timeout(20) })))
    const sent = outcomes.filter((o) => o.status === 'fulfilled').length
    const aborted = outcomes.filter((o) => o.status === 'rejected' && o.reason instanceof AbortError).length
    expect(sent + aborted).toBe(300)
    // Only what fits in the socket's buffers was written: a handful of MiB, not 297.
    expect(sent).toBeLessThan(20)
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([])
    // Now let the peer read: it receives exactly the sends that resolved, nothing of the aborted ones.
    for (const socket of peer.sockets) socket.resume()
    await until(() => peer.received() >= sent * payload.length, 10_000, 'peer reads every written byte')
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(peer.received()).toBe(sent * payload.length)
  })

  it('5. send() honours its timeout while waiting for drain, and pending counts the waiting send', async () => {
    const peer = await stalledPeer()
    const framer = new FixedLengthBytesMarshaller(1024 * 1024)
    const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port: peer.port }), framer.marshall, framer.unmarshall, { timeout: 0 })
    await using session = await client.connect()
    const payload = new Uint8Array(1024 * 1024)
    // Fill the socket's buffers until a send has to wait.
    let waiting: Promise<void> | undefined
    for (let i = 0; i < 200 && waiting === undefined; i++) {
      const send = session.send(payload, { timeout: 100 })
      const settledAtOnce = await Promise.race([send.then(() => true, () => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 30))])
      if (!settledAtOnce) waiting = send
    }
    expect(waiting).toBeDefined()
    expect(session.pending).toBe(1)
    const error = await rejectionOf(waiting as Promise<void>, 2_000)
    expect(error).toBeInstanceOf(TimeoutError)
    expect(session.pending).toBe(0)
  })

  it('6. close() during listen() leaves nothing listening', async () => {
    const port = await freePort()
    const server = new TcpServer({ port, callback: () => undefined })
    const listening = server.listen()
    await server.close()
    expect(await rejectionOf(listening)).toBeInstanceOf(ConnectionError)
    expect(server.address).toBeUndefined()
    expect(await rejectionOf(rawConnect(port))).toMatchObject({ code: 'ECONNREFUSED' })
  })

  it('7. bad numbers are refused by the constructors with a RangeError naming the option and the value', () => {
    const callback = (): undefined => undefined
    expect(() => new TcpServer({ port: 70000, callback })).toThrow(/port must be an integer from 0 to 65535, got 70000/)
    expect(() => new TcpServer({ port: -1, callback })).toThrow(RangeError)
    expect(() => new TcpClient({ host: '127.0.0.1', port: '5025' as unknown as number })).toThrow(/got the string '5025'/)
    expect(() => new TcpClient({ host: '127.0.0.1', port: 1, timeout: Number.NaN })).toThrow(/timeout must be a non-negative number/)
    expect(() => new TcpClient({ host: '127.0.0.1', port: 1, connectTimeout: -5 })).toThrow(/connectTimeout/)
    expect(() => new TcpServer({ callback, idleTimeout: -1 })).toThrow(/idleTimeout/)
    expect(() => new TcpServer({ callback, maxConnections: 0 })).toThrow(/maxConnections/)
    expect(() => new TcpServer({ callback, maxConnections: Number.NaN })).toThrow(/maxConnections/)
    expect(() => new TcpServer({ callback, bufferSize: -1 })).toThrow(/bufferSize/)
    expect(() => new TcpServer({ callback, requestTimeout: Number.NaN })).toThrow(/requestTimeout/)
    expect(() => new ApplicationClient(new TcpClient({ host: '127.0.0.1', port: 1 }), line.marshall, line.unmarshall, { timeout: -1 })).toThrow(/timeout/)
    expect(() => new ApplicationClient(new TcpClient({ host: '127.0.0.1', port: 1 }), line.marshall, line.unmarshall, { maxInFlight: 0 })).toThrow(/maxInFlight/)
  })

  it('7. a timeout of 2^31 ms or more does not fire at once, and timeout 0 means no limit everywhere', async () => {
    const { port } = await lineServer((request) => (request === 'slow' ? new Promise((resolve) => setTimeout(() => resolve('SLOW'), 150)) : undefined))
    // TcpClient timeout 0: no read limit (it used to fail reads at once).
    const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port, timeout: 0 }), line.marshall, line.unmarshall, { timeout: 2 ** 31 + 1000 })
    await using session = await client.connect()
    expect(await within(session.sendReceive('slow'), 5_000, 'slow reply')).toBe('SLOW')
    const zero = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), line.marshall, line.unmarshall, { timeout: 0 })
    await using other = await zero.connect()
    expect(await within(other.sendReceive('slow', { timeout: 2 ** 32 }), 5_000, 'slow reply')).toBe('SLOW')
  })

  it('8. abandoned calls do not pile up behind a device that never answers', async () => {
    const { port } = await lineServer(() => new Promise<undefined>(() => undefined))
    const client = lineClient(port, { timeout: 5 })
    await using session = await client.connect()
    let maxPending = 0
    const deadline = Date.now() + 1_000
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (Date.now() < deadline) {
          await session.sendReceive('poll').catch(() => undefined)
          maxPending = Math.max(maxPending, session.pending)
        }
      }),
    )
    // 50 callers, plus the one written request whose reply never came.
    expect(maxPending).toBeLessThanOrEqual(51)
  })

  it('9. an unsolicited line is never handed to the next caller: it goes to onUnsolicited', async () => {
    let pushAlarm: (() => void) | undefined
    const server = createServer((socket) => {
      socket.on('error', () => undefined)
      let pending = ''
      pushAlarm = () => socket.write('ALARM\n')
      socket.on('data', (chunk: Buffer) => {
        pending += chunk.toString()
        let index: number
        while ((index = pending.indexOf('\n')) >= 0) {
          const request = pending.slice(0, index)
          pending = pending.slice(index + 1)
          socket.write(`${request.toUpperCase()}\n`)
        }
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())))
    const port = (server.address() as { port: number }).port
    const unsolicited: string[] = []
    const client = lineClient(port, { timeout: 2_000, onUnsolicited: (message) => unsolicited.push(message as string) })
    await using session = await client.connect()
    expect(await session.sendReceive('one')).toBe('ONE')
    pushAlarm?.()
    await until(() => unsolicited.length === 1, 2_000, 'the alarm arrives')
    expect(await session.sendReceive('two')).toBe('TWO')
    expect(await session.sendReceive('three')).toBe('THREE')
    expect(unsolicited).toEqual(['ALARM'])
  })

  it('10. a slow-trickle request cannot hold a connection forever: requestTimeout closes it', async () => {
    const { port, logger } = await lineServer((request) => request, { requestTimeout: 200, idleTimeout: 10_000 })
    const socket = await rawConnect(port)
    const done = readUntilClose(socket, 5_000)
    const started = Date.now()
    const trickle = setInterval(() => {
      if (!socket.destroyed) socket.write('x')
    }, 20)
    cleanups.push(() => clearInterval(trickle))
    await done
    clearInterval(trickle)
    expect(Date.now() - started).toBeLessThan(2_000)
    await logger.waitFor((r) => r.level === 'warn' && String((r.context.err as Error | undefined)?.message).includes('requestTimeout'))
    expect(await servesFreshClient(port, 'fresh', 'fresh')).toBe(true)
  })

  it('11. over maxConnections the client sees ConnectionClosedError, not ECONNRESET; connectionCount is 0 when close() resolves', async () => {
    const { server, port } = await lineServer((request) => request.toUpperCase(), { maxConnections: 1 })
    const first = await lineClient(port).connect()
    expect(await first.sendReceive('a')).toBe('A')
    const second = await lineClient(port, { timeout: 2_000 }).connect()
    const error = await rejectionOf(second.sendReceive('b'))
    expect(error).toBeInstanceOf(ConnectionClosedError)
    await second.close()
    await server.close()
    expect(server.connectionCount).toBe(0)
    await first.close()
  })

  it('12. many queued calls sharing one AbortSignal add one listener, and print no MaxListenersExceededWarning', async () => {
    const { port } = await lineServer(async (request) => {
      await new Promise((resolve) => setTimeout(resolve, 2))
      return request
    })
    const warnings: Error[] = []
    const onWarning = (warning: Error): void => {
      warnings.push(warning)
    }
    process.on('warning', onWarning)
    cleanups.push(() => void process.off('warning', onWarning))
    await using session = await lineClient(port).connect()
    const controller = new AbortController()
    const calls = Array.from({ length: 30 }, (_, i) => session.sendReceive(`r${i}`, { signal: controller.signal }))
    expect(getEventListeners(controller.signal, 'abort').length).toBe(1)
    expect(await Promise.all(calls)).toEqual(Array.from({ length: 30 }, (_, i) => `r${i}`))
    expect(getEventListeners(controller.signal, 'abort').length).toBe(0)
    await new Promise((resolve) => setImmediate(resolve))
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([])
  })
})

describe('hardening: rough edges', () => {
  it('TimeoutError and ConnectionClosedError name the instrument and the request', async () => {
    const { port } = await lineServer((request) => (request === 'close' ? Promise.reject(new Error('boom')) : new Promise<undefined>(() => undefined)))
    await using session = await lineClient(port, { timeout: 50 }).connect()
    const timeout = await rejectionOf(session.sendReceive('*IDN?'))
    expect(timeout).toBeInstanceOf(TimeoutError)
    expect((timeout as Error).message).toContain(`127.0.0.1:${port}`)
    expect((timeout as Error).message).toContain("'*IDN?'")
    await using other = await lineClient(port, { timeout: 2_000 }).connect()
    const closedError = await rejectionOf(other.sendReceive('close'))
    expect(closedError).toBeInstanceOf(ConnectionClosedError)
    expect((closedError as Error).message).toContain(`127.0.0.1:${port}`)
    expect((closedError as Error).message).toMatch(/closed the connection/)
  })

  it('reconnect: calls go on after the device drops the connection, and after a reply that never came', async () => {
    let drops = 0
    const { port } = await lineServer((request) => {
      if (request === 'drop') {
        drops++
        return Promise.reject(new Error('dropping the connection on purpose'))
      }
      if (request === 'lose') return new Promise<undefined>(() => undefined)
      return request.toUpperCase()
    })
    const client = lineClient(port, { timeout: 300, reconnect: { minDelay: 10, maxDelay: 50 } })
    await using session = await client.connect()
    expect(await session.sendReceive('a')).toBe('A')
    expect(await rejectionOf(session.sendReceive('drop'))).toBeInstanceOf(ConnectionClosedError)
    expect(await within(session.sendReceive('b'), 3_000, 'call after reconnect')).toBe('B')
    expect(await rejectionOf(session.sendReceive('lose'))).toBeInstanceOf(TimeoutError)
    expect(await within(session.sendReceive('c'), 3_000, 'call after a lost reply')).toBe('C')
    expect(drops).toBe(1)
  })

  it('reconnect gives up after its retries, with a ConnectionError', async () => {
    const { server, port } = await lineServer((request) => request)
    const session = await lineClient(port, { timeout: 5_000, reconnect: { retries: 2, minDelay: 5, maxDelay: 10 } }).connect()
    cleanups.push(() => session.close())
    await server.close()
    // A call written before the client noticed the close is lost with the connection
    // (ConnectionClosedError); once the retries are spent, calls fail with ConnectionError.
    let error: unknown
    for (let i = 0; i < 5 && !(error instanceof ConnectionError && !(error instanceof ConnectionClosedError)); i++) {
      error = await rejectionOf(session.sendReceive('x'), 5_000)
    }
    expect(error).toBeInstanceOf(ConnectionError)
    expect((error as Error).message).toMatch(/could not reconnect .* after 2 attempts|session is unusable/)
  })

  it('plain-JS mistakes are typed errors: a string into a bytes marshaller, no callback, no options', () => {
    const bytesLine = new SentinelBytesMarshaller('\n')
    expect(() => bytesLine.marshall('*IDN?' as unknown as Uint8Array)).toThrow(/takes a Uint8Array payload, got a string/)
    expect(() => new FixedLengthBytesMarshaller(5).marshall('ABCDE' as unknown as Uint8Array)).toThrow(TypeError)
    expect(() => new TcpServer({} as never)).toThrow(/callback is required/)
    expect(() => new TcpServer(undefined as never)).toThrow(TypeError)
    expect(() => line.marshall(42 as unknown as string)).toThrow(/takes a string/)
    expect(() => new ApplicationServer(undefined as never, line.marshall, () => undefined)).toThrow(TypeError)
    expect(toBytes('ok')).toBeInstanceOf(Uint8Array)
  })

  it('a FramingError from a non-bytes payload reaches sendReceive as a typed error, and the session goes on', async () => {
    const { port } = await lineServer((request) => request)
    const bytesLine = new SentinelBytesMarshaller('\n')
    const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), bytesLine.marshall, bytesLine.unmarshall)
    await using session = await client.connect()
    const error = await rejectionOf(session.sendReceive('oops' as unknown as Uint8Array))
    // The application README's promise (hardening round two): a marshaller's non-labwire throw is a FramingError with the throw as cause.
    expect(error).toBeInstanceOf(FramingError)
    expect((error as FramingError).cause).toBeInstanceOf(TypeError)
    expect(new TextDecoder().decode(await session.sendReceive(toBytes('fine')))).toBe('fine')
  })

  it('a peer that closes is reported once the connection is gone', async () => {
    const { server, port } = await lineServer((request) => request)
    const socket = await rawConnect(port)
    await server.close()
    await closed(socket)
  })
})
