/**
 * WebSocketClient / WebSocketServer specifics, with bare `ws` sockets as the other peer where the
 * labwire side is under test: endpoint path, plain HTTP, message boundaries, text messages,
 * maxPayload, maxConnections, idleTimeout, backpressure through bufferedAmount, connect failures.
 */
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket, { WebSocketServer as BareServer } from 'ws'
import { ApplicationClient } from '@labwire/application'
import { ConnectionClosedError, ConnectionError, FrameTooLargeError, FramingError, byteStreamOf, type ByteHandler } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { WebSocketClient, WebSocketServer, type WebSocketServerOptions } from '@labwire/transport-websocket'
import { RecordingLogger, bytes, freePort, rejectionOf, text, until, within } from '../../../test/reliability/helpers.js'

const line = new SentinelBytesMarshaller('\n')
const lines = textMarshaller(line)
const upper: ByteHandler = async (stream) => bytes(`${text(await line.unmarshall(stream)).toUpperCase()}\n`)

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function startServer(options: Partial<WebSocketServerOptions> = {}): Promise<{ server: WebSocketServer; url: string; logger: RecordingLogger }> {
  const logger = new RecordingLogger()
  const server = new WebSocketServer({ port: 0, path: '/dev', callback: upper, logger, ...options })
  cleanups.push(() => server.close())
  await server.listen()
  return { server, url: server.url as string, logger }
}

/** A bare `ws` client, open (bounded). */
async function bareClient(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url)
  cleanups.push(() => ws.terminate())
  await within(new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  }), 5_000, 'bare ws open')
  return ws
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return within(new Promise((resolve) => ws.once('message', (data: Buffer, isBinary: boolean) => resolve({ data, isBinary }))), 5_000, 'message')
}

function closeOf(ws: WebSocket): Promise<number> {
  return within(new Promise((resolve) => ws.once('close', (code: number) => resolve(code))), 5_000, 'close')
}

describe('WebSocketServer with a bare ws client', () => {
  it('binary messages are chunks of one byte stream: a line split over two messages is one request', async () => {
    const { url } = await startServer()
    const ws = await bareClient(url)
    const reply = nextMessage(ws)
    ws.send(bytes('hel'))
    ws.send(bytes('lo\n'))
    const { data, isBinary } = await reply
    expect(isBinary).toBe(true)
    expect(data.toString()).toBe('HELLO\n')
  })

  it('a text message closes that connection with 1003 and a FramingError in the log; other clients go on', async () => {
    const { url, logger } = await startServer()
    const bystander = await new ApplicationClient(new WebSocketClient({ url }), lines.marshall, lines.unmarshall, { timeout: 5_000 }).connect()
    cleanups.push(() => bystander.close())
    const ws = await bareClient(url)
    const closed = closeOf(ws)
    ws.send('text\n')
    expect(await closed).toBe(1003)
    const record = await logger.waitFor((r) => r.context.err instanceof FramingError)
    expect((record.context.err as Error).message).toContain('text message')
    expect(await bystander.sendReceive('still')).toBe('STILL')
  })

  it("textMessages: 'accept' takes their UTF-8 bytes", async () => {
    const { url } = await startServer({ textMessages: 'accept' })
    const ws = await bareClient(url)
    const reply = nextMessage(ws)
    ws.send('grüße\n')
    expect((await reply).data.toString()).toBe('GRÜSSE\n')
  })

  it('a message over maxPayload closes that connection (1009) and logs FrameTooLargeError', async () => {
    const { url, logger } = await startServer({ maxPayload: 1024 })
    const ws = await bareClient(url)
    const closed = closeOf(ws)
    ws.send(new Uint8Array(4096))
    expect(await closed).toBe(1009)
    const record = await logger.waitFor((r) => r.context.err instanceof FrameTooLargeError)
    expect((record.context.err as FrameTooLargeError).maxLength).toBe(1024)
  })

  it('refuses upgrades to another path (404) and answers plain HTTP with 426', async () => {
    const { server } = await startServer()
    const wrong = `ws://127.0.0.1:${server.address?.port ?? 0}/other`
    const error = await rejectionOf(new WebSocketClient({ url: wrong }).connect())
    expect(error).toBeInstanceOf(ConnectionError)
    expect((error as Error).message).toContain('404')
    expect((error as Error).message).toContain(wrong)
    const response = await fetch(`http://127.0.0.1:${server.address?.port ?? 0}/dev`, { signal: AbortSignal.timeout(5_000) })
    expect(response.status).toBe(426)
    await response.body?.cancel()
  })

  it('maxConnections: a further upgrade is refused with 503 (ConnectionError); served clients go on', async () => {
    const { url, server } = await startServer({ maxConnections: 1 })
    const client = new ApplicationClient(new WebSocketClient({ url }), lines.marshall, lines.unmarshall, { timeout: 5_000 })
    const first = await client.connect()
    cleanups.push(() => first.close())
    const error = await rejectionOf(client.connect())
    expect(error).toBeInstanceOf(ConnectionError)
    expect((error as Error).message).toContain('503')
    expect(await first.sendReceive('one')).toBe('ONE')
    await first.close()
    await until(() => server.connectionCount === 0, 5_000, 'first connection gone')
    await using second = await client.connect()
    expect(await second.sendReceive('two')).toBe('TWO')
  })

  it('idleTimeout closes a quiet connection but not one whose request is being handled', async () => {
    const { url } = await startServer({
      idleTimeout: 100,
      callback: async (stream) => {
        const request = text(await line.unmarshall(stream))
        if (request === 'slow') await new Promise<void>((resolve) => setTimeout(resolve, 300))
        return bytes(`${request.toUpperCase()}\n`)
      },
    })
    const client = new ApplicationClient(new WebSocketClient({ url }), lines.marshall, lines.unmarshall, { timeout: 5_000 })
    await using session = await client.connect()
    expect(await session.sendReceive('slow')).toBe('SLOW')
    const transport = await new WebSocketClient({ url }).connect()
    cleanups.push(() => transport.close())
    expect(await rejectionOf(within(line.unmarshall(transport.stream), 5_000, 'idle close'))).toBeInstanceOf(ConnectionClosedError)
  })
})

it('requestTimeout closes a connection whose request never completes (slow trickle)', async () => {
  const { url, logger } = await startServer({ requestTimeout: 100 })
  await using session = await new WebSocketClient({ url }).connect()
  const t0 = performance.now()
  const error = await rejectionOf(within(line.unmarshall(session.request(bytes('never finish'))), 5_000, 'request timeout'))
  expect(error).toBeInstanceOf(ConnectionClosedError)
  expect(performance.now() - t0).toBeGreaterThanOrEqual(90)
  expect(logger.records.length).toBeGreaterThan(0)
})

describe('WebSocketClient with a bare ws server', () => {
  async function bareServer(onConnection: (ws: WebSocket) => void): Promise<string> {
    const server = new BareServer({ host: '127.0.0.1', port: 0, path: '/bare' })
    cleanups.push(() => new Promise<void>((resolve) => {
      for (const ws of server.clients) ws.terminate()
      server.close(() => resolve())
    }))
    server.on('connection', onConnection)
    await within(new Promise<void>((resolve) => server.once('listening', () => resolve())), 5_000, 'bare server listening')
    const address = server.address()
    if (address === null || typeof address === 'string') throw new Error('no address')
    return `ws://127.0.0.1:${address.port}/bare`
  }

  it('reads replies that arrive in several messages and several replies in one message', async () => {
    const url = await bareServer((ws) => ws.on('message', () => {
      ws.send(bytes('ON'))
      ws.send(bytes('E\ntwo\n'))
    }))
    await using session = await new WebSocketClient({ url }).connect()
    const stream = session.request(bytes('go\n'))
    expect(text(await line.unmarshall(stream))).toBe('ONE')
    expect(text(await line.unmarshall(stream))).toBe('two')
  })

  it('a text message from the server fails the read with FramingError (default) and closes with 1003', async () => {
    let serverSide: WebSocket | undefined
    const url = await bareServer((ws) => {
      serverSide = ws
      ws.on('message', () => ws.send('text reply\n'))
    })
    const session = await new WebSocketClient({ url }).connect()
    cleanups.push(() => session.close())
    const error = await rejectionOf(line.unmarshall(session.request(bytes('go\n'))))
    expect(error).toBeInstanceOf(FramingError)
    expect(await closeOf(serverSide as WebSocket)).toBe(1003)
  })

  it('backpressure: write() waits while bufferedAmount is over bufferSize and the peer does not read', async () => {
    let serverSide: WebSocket | undefined
    const url = await bareServer((ws) => {
      serverSide = ws
      ws.pause() // reads nothing: the kernel buffers fill, then the client's bufferedAmount grows
    })
    const session = await new WebSocketClient({ url, bufferSize: 64 * 1024 }).connect()
    cleanups.push(() => session.close())
    await until(() => serverSide !== undefined, 5_000, 'server side connected')
    const chunk = new Uint8Array(256 * 1024)
    let written = 0
    let pending: Promise<void> | undefined
    while (written < 256 * 1024 * 1024) {
      const write = session.write(chunk)
      const done = await Promise.race([write.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 200))])
      if (!done) {
        pending = write
        break
      }
      written += chunk.length
    }
    expect(pending, `every write resolved: ${written} bytes`).toBeDefined()
    expect(session.bufferedAmount).toBeGreaterThan(64 * 1024)
    serverSide?.resume()
    await within(pending as Promise<void>, 10_000, 'write resolved once the peer read')
  })

  it('connect failures: refused (ConnectionError naming the URL), bad URL (TypeError/RangeError), aborted (AbortError)', async () => {
    const port = await freePort()
    const url = `ws://127.0.0.1:${port}/x`
    const refused = await rejectionOf(new WebSocketClient({ url }).connect())
    expect(refused).toBeInstanceOf(ConnectionError)
    expect((refused as Error).message).toContain(url)
    expect(() => new WebSocketClient({ url: 'not a url' })).toThrow(TypeError)
    expect(() => new WebSocketClient({ url: 'http://127.0.0.1/' })).toThrow(RangeError)
    expect(() => new WebSocketServer({ callback: upper, path: 'no-slash' })).toThrow(RangeError)
    expect(() => new WebSocketServer({ callback: upper, maxPayload: 0 })).toThrow(/maxPayload.*0/)
    const reason = new Error('stop')
    const aborted = await rejectionOf(new WebSocketClient({ url }).connect({ signal: AbortSignal.abort(reason) }))
    expect(aborted).toHaveProperty('cause', reason)
  })
})

it('byteStreamOf(session.stream) is the session stream itself (no second buffer)', async () => {
  const { url } = await startServer()
  await using session = await new WebSocketClient({ url }).connect()
  expect(byteStreamOf(session.request(bytes('x\n')))).toBe(session.stream)
  expect(text(await line.unmarshall(session.stream))).toBe('X')
})
