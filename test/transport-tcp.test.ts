import { spawn, type ChildProcess } from 'node:child_process'
import { createServer, connect as netConnect, type Socket } from 'node:net'
import { describe, expect, it, vi } from 'vitest'
import { AbortError, ConnectionClosedError, ConnectionError, TimeoutError, type ByteHandler, type Logger } from '@labwire/core'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { transportCompliance } from './compliance/transport.js'
import { bytes, delay, rejectionOf, tcpSetup, text, within } from './helpers/fixtures.js'

transportCompliance(tcpSetup)

const line = new SentinelBytesMarshaller('\n')
const WAIT = 5_000

/** Uppercase line echo; `slow` takes 300 ms to answer. */
const upperLines: ByteHandler = async (stream) => {
  const request = text(await line.unmarshall(stream))
  if (request === 'slow') await delay(300)
  return bytes(`${request.toUpperCase()}\n`)
}

async function readLine(stream: AsyncIterator<Uint8Array>): Promise<string> {
  return text(await within(line.unmarshall(stream), WAIT, 'reading a line'))
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no TCP address')
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return address.port
}

/**
 * A listener whose accept queue is full, so new connects hang in SYN_SENT: a child process listens
 * with backlog 1 and then blocks its event loop (it never accepts), and filler sockets fill the queue.
 * Resolves `undefined` if the queue could not be filled (the test then skips).
 */
async function fullListener(): Promise<{ port: number; stop(): void } | undefined> {
  const script = [
    "const server = require('node:net').createServer()",
    "server.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {",
    "  require('node:fs').writeSync(1, server.address().port + '\\n')",
    '  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 15000)',
    '  process.exit(0)',
    '})',
  ].join('\n')
  const child: ChildProcess = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'ignore'] })
  const fillers: Socket[] = []
  const stop = (): void => {
    for (const socket of fillers) socket.destroy()
    child.kill()
  }
  try {
    const port = await within(
      new Promise<number>((resolve, reject) => {
        child.stdout?.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())))
        child.once('error', reject)
        child.once('exit', () => reject(new Error('listener process exited early')))
      }),
      WAIT,
      'child listener',
    )
    // Connect fillers one by one; the first that does not complete its handshake promptly shows the queue is full.
    for (let i = 0; i < 8; i++) {
      const socket = netConnect({ host: '127.0.0.1', port })
      socket.on('error', () => undefined)
      fillers.push(socket)
      const connected = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 250)
        socket.once('connect', () => {
          clearTimeout(timer)
          resolve(true)
        })
      })
      if (!connected) return { port, stop }
    }
    stop()
    return undefined
  } catch (error) {
    stop()
    throw error
  }
}

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = []
  const none = (): void => undefined
  return { warnings, debug: none, info: none, error: none, warn: (_context, message) => warnings.push(message ?? '') }
}

describe('TcpClient', () => {
  it('rejects a refused connect with ConnectionError naming 127.0.0.1:port, cause ECONNREFUSED', async () => {
    const port = await closedPort()
    const error = await rejectionOf(new TcpClient({ host: '127.0.0.1', port }).connect())
    expect(error).toBeInstanceOf(ConnectionError)
    expect((error as ConnectionError).message).toContain(`127.0.0.1:${port}`)
    expect(((error as ConnectionError).cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED')
  })

  it('rejects with TimeoutError naming host:port after connectTimeout, and AbortError when the signal fires', async ({ skip }) => {
    const listener = await fullListener()
    if (listener === undefined) {
      skip('could not fill the accept queue of a loopback listener on this kernel')
      return
    }
    try {
      const { port } = listener
      const started = performance.now()
      const timedOut = await rejectionOf(new TcpClient({ host: '127.0.0.1', port, connectTimeout: 200 }).connect())
      expect(timedOut).toBeInstanceOf(TimeoutError)
      expect((timedOut as TimeoutError).message).toContain(`127.0.0.1:${port}`)
      expect(performance.now() - started).toBeGreaterThanOrEqual(190)

      const signal = AbortSignal.timeout(100)
      const aborted = await rejectionOf(new TcpClient({ host: '127.0.0.1', port, connectTimeout: WAIT }).connect({ signal }))
      expect(aborted).toBeInstanceOf(AbortError)
      expect((aborted as AbortError).cause).toBe(signal.reason)
    } finally {
      listener.stop()
    }
  })
})

describe('TcpClient write policy', () => {
  it('a write after a read goes straight to the socket; further writes before the next read are corked until the end of the tick', async () => {
    const server = new TcpServer({ host: '127.0.0.1', port: 0, callback: upperLines })
    const { port } = await server.listen()
    const session = await new TcpClient({ host: '127.0.0.1', port }).connect()
    try {
      // White box: what the socket still holds right after each write says whether it was corked.
      const socket = (session as unknown as { socket: Socket }).socket
      const stream = session.request(bytes('a\n'))
      expect(socket.writableLength).toBe(0)
      session.request(bytes('b\n'))
      session.request(bytes('c\n'))
      expect(socket.writableLength).toBe(4)
      await new Promise((resolve) => setImmediate(resolve))
      expect(socket.writableLength).toBe(0)
      expect([await readLine(stream), await readLine(stream), await readLine(stream)]).toEqual(['A', 'B', 'C'])
      // A read happened: the next write goes straight out again.
      session.request(bytes('d\n'))
      expect(socket.writableLength).toBe(0)
      expect(await readLine(stream)).toBe('D')
      // A later tick with no read since the last write: held only to the end of that tick.
      await new Promise((resolve) => setImmediate(resolve))
      session.request(bytes('e\n'))
      session.request(bytes('f\n'))
      await new Promise((resolve) => setImmediate(resolve))
      expect(socket.writableLength).toBe(0)
      expect([await readLine(stream), await readLine(stream)]).toEqual(['E', 'F'])
    } finally {
      await session.close()
      await server.close()
    }
  })
})

describe('TcpServer', () => {
  it('rejects listen on a busy port with ConnectionError (cause EADDRINUSE)', async () => {
    await using first = new TcpServer({ port: 0, callback: upperLines })
    const { port } = await first.listen()
    await using second = new TcpServer({ port, callback: upperLines })
    const error = await rejectionOf(second.listen())
    expect(error).toBeInstanceOf(ConnectionError)
    expect((error as ConnectionError).message).toContain(`127.0.0.1:${port}`)
    expect(((error as ConnectionError).cause as NodeJS.ErrnoException).code).toBe('EADDRINUSE')
  })

  it('maxConnections: accepts and at once closes the extra connection, and serves again once one leaves', async () => {
    const logger = recordingLogger()
    await using server = new TcpServer({ port: 0, callback: upperLines, maxConnections: 1, logger })
    const { port } = await server.listen()
    const client = new TcpClient({ host: '127.0.0.1', port })

    const first = await client.connect()
    expect(await readLine(first.request(bytes('one\n')))).toBe('ONE')

    await using extra = await client.connect()
    // Closed by the server without a byte: the stream ends.
    expect(await within(extra.stream.waitForData(), WAIT, 'extra connection closed')).toBe(false)
    expect(logger.warnings.some((message) => message.includes('refused'))).toBe(true)
    expect(await readLine(first.request(bytes('still\n')))).toBe('STILL')

    await first.close()
    await vi.waitFor(() => expect(server.connectionCount).toBe(0), { timeout: WAIT, interval: 5 })
    await using next = await client.connect()
    expect(await readLine(next.request(bytes('two\n')))).toBe('TWO')
  })

  it('idleTimeout closes an idle connection but not one whose request is being handled', async () => {
    await using server = new TcpServer({ port: 0, callback: upperLines, idleTimeout: 100 })
    const { port } = await server.listen()
    const client = new TcpClient({ host: '127.0.0.1', port })

    await using idle = await client.connect()
    await using busy = await client.connect()
    const slow = readLine(busy.request(bytes('slow\n')))
    expect(await within(idle.stream.waitForData(), WAIT, 'idle connection closed')).toBe(false)
    // The handler took 300 ms, three idle timeouts: the connection was kept and the reply arrives.
    expect(await slow).toBe('SLOW')
    expect(await readLine(busy.request(bytes('again\n')))).toBe('AGAIN')
    // Once it goes quiet it is closed too.
    expect(await within(busy.stream.waitForData(), WAIT, 'busy connection closed once idle')).toBe(false)
    expect(await rejectionOf(within(line.unmarshall(busy.stream), WAIT, 'read'))).toBeInstanceOf(ConnectionClosedError)
  })
})
