import { connect as netConnect, type Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import {
  ConnectionClosedError,
  MemoryClient,
  MemoryServer,
  isConnectionHandler,
  type ConnectionHandler,
  type Logger,
  type ServerConnection,
} from '@labwire/core'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { bytes, deferred, text, within } from './helpers/fixtures.js'

const line = new SentinelBytesMarshaller('\n')
const WAIT = 5_000

function recordingLogger(): Logger & { errors: unknown[] } {
  const errors: unknown[] = []
  const noop = (): void => undefined
  return {
    errors,
    debug: noop,
    info: noop,
    warn: noop,
    error: (fields: unknown) => {
      errors.push(fields)
    },
  }
}

/** Answers each line after a delay given in the line, so later requests can overtake earlier ones; greets first (an unsolicited write). */
const outOfOrder: ConnectionHandler & { seen: ServerConnection[] } = {
  seen: [],
  async serveConnection(connection) {
    this.seen.push(connection)
    await connection.write(bytes(`hello ${connection.transport}\n`))
    const pending: Promise<void>[] = []
    for (;;) {
      let request: string
      try {
        request = text(await line.unmarshall(connection.stream))
      } catch (error) {
        if (error instanceof ConnectionClosedError) break
        throw error
      }
      const ms = Number(request)
      pending.push(
        new Promise<void>((resolve) => setTimeout(resolve, ms)).then(() => {
          if (!connection.signal.aborted) void connection.write(bytes(`done ${ms}\n`))
        }),
      )
    }
    await Promise.all(pending)
  },
}

describe('connection seam: a ConnectionHandler as a server callback', () => {
  it('isConnectionHandler recognises the third form and nothing else', () => {
    expect(isConnectionHandler(outOfOrder)).toBe(true)
    expect(isConnectionHandler({ handle: () => Promise.resolve(undefined) })).toBe(false)
    expect(isConnectionHandler(() => undefined)).toBe(false)
    expect(isConnectionHandler(null)).toBe(false)
  })

  it('over real TCP: unsolicited greeting, answers out of order, transport and peer named', async () => {
    outOfOrder.seen.length = 0
    await using server = new TcpServer({ port: 0, callback: outOfOrder })
    const { port } = await server.listen()
    await using session = await new TcpClient({ host: '127.0.0.1', port, timeout: WAIT }).connect()
    const stream = session.request(bytes('300\n'))
    expect(text(await within(line.unmarshall(stream), WAIT, 'greeting'))).toBe('hello tcp')
    session.request(bytes('10\n'))
    expect(text(await within(line.unmarshall(stream), WAIT, 'fast reply'))).toBe('done 10')
    expect(text(await within(line.unmarshall(stream), WAIT, 'slow reply'))).toBe('done 300')
    expect(outOfOrder.seen[0]?.peer).toMatch(/^127\.0\.0\.1:\d+$/)
  })

  it('the signal aborts with a ConnectionClosedError when the client closes, and writes then throw', async () => {
    const served = deferred<ServerConnection>()
    const ended = deferred<unknown>()
    const handler: ConnectionHandler = {
      async serveConnection(connection) {
        served.resolve(connection)
        await new Promise<void>((resolve) => connection.signal.addEventListener('abort', () => resolve(), { once: true }))
        ended.resolve(connection.signal.reason)
      },
    }
    await using server = new TcpServer({ port: 0, callback: handler })
    const { port } = await server.listen()
    const session = await new TcpClient({ host: '127.0.0.1', port }).connect()
    const connection = await within(served.promise, WAIT, 'connection handed over')
    expect(connection.signal.aborted).toBe(false)
    await session.close()
    expect(await within(ended.promise, WAIT, 'signal aborted')).toBeInstanceOf(ConnectionClosedError)
    expect(() => connection.write(bytes('late'))).toThrow(ConnectionClosedError)
    await within(
      (async () => {
        while (server.connectionCount > 0) await new Promise((resolve) => setTimeout(resolve, 10))
      })(),
      WAIT,
      'connection gone',
    )
  })

  it('write() returns a promise under backpressure and resolves once the peer reads', async () => {
    const result = deferred<{ waited: number }>()
    const chunk = new Uint8Array(256 * 1024)
    const handler: ConnectionHandler = {
      async serveConnection(connection) {
        let waited = 0
        for (let i = 0; i < 64; i++) {
          const wait = connection.write(chunk)
          if (wait !== undefined) {
            waited++
            await wait
          }
        }
        result.resolve({ waited })
      },
    }
    await using server = new TcpServer({ port: 0, callback: handler })
    const { port } = await server.listen()
    const socket: Socket = netConnect({ host: '127.0.0.1', port })
    socket.pause()
    // Nobody reads: the handler must be waiting on backpressure, not done.
    const early = await Promise.race([result.promise.then(() => 'done'), new Promise((resolve) => setTimeout(() => resolve('waiting'), 300))])
    expect(early).toBe('waiting')
    let received = 0
    socket.on('data', (data: Buffer) => (received += data.length))
    socket.resume()
    const { waited } = await within(result.promise, WAIT, 'handler finished after the peer read')
    expect(waited).toBeGreaterThan(0)
    await within(new Promise<void>((resolve) => socket.once('end', () => resolve())), WAIT, 'server closed after the handler resolved')
    expect(received).toBe(64 * chunk.length)
    socket.destroy()
  })

  it('a handler that rejects is logged and only its connection is closed', async () => {
    const logger = recordingLogger()
    let calls = 0
    const handler: ConnectionHandler = {
      async serveConnection(connection) {
        calls++
        const request = text(await line.unmarshall(connection.stream))
        if (request === 'boom') throw new Error('handler exploded')
        await connection.write(bytes(`ok ${request}\n`))
        await new Promise<void>((resolve) => connection.signal.addEventListener('abort', () => resolve(), { once: true }))
      },
    }
    await using server = new TcpServer({ port: 0, callback: handler, logger })
    const { port } = await server.listen()
    await using good = await new TcpClient({ host: '127.0.0.1', port, timeout: WAIT }).connect()
    await using bad = await new TcpClient({ host: '127.0.0.1', port, timeout: WAIT }).connect()
    const badStream = bad.request(bytes('boom\n'))
    await expect(within(line.unmarshall(badStream), WAIT, 'bad connection closed')).rejects.toBeInstanceOf(ConnectionClosedError)
    const goodStream = good.request(bytes('fine\n'))
    expect(text(await within(line.unmarshall(goodStream), WAIT, 'good reply'))).toBe('ok fine')
    expect(calls).toBe(2)
    expect(logger.errors).toHaveLength(1)
  })

  it('the memory transport hands over the connection too (transport "memory")', async () => {
    outOfOrder.seen.length = 0
    await using server = new MemoryServer({ callback: outOfOrder })
    await using session = await new MemoryClient(server, { timeout: WAIT }).connect()
    const stream = session.request(bytes('50\n5\n'))
    expect(text(await within(line.unmarshall(stream), WAIT, 'greeting'))).toBe('hello memory')
    expect(text(await within(line.unmarshall(stream), WAIT, 'first'))).toBe('done 5')
    expect(text(await within(line.unmarshall(stream), WAIT, 'second'))).toBe('done 50')
    await session.close()
    expect(outOfOrder.seen[0]?.transport).toBe('memory')
  })
})
