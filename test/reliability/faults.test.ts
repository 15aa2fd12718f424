/**
 * Fault injection on real loopback sockets: oversized frames, peers closing mid-frame, failing
 * callbacks, late replies, server shutdown, connect failures, idle timeouts and connection limits.
 * Every case checks the typed error, that nothing already accepted is lost, and that the server
 * still serves another client afterwards.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import type { Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { ConnectionClosedError, ConnectionError, FrameTooLargeError, LabwireError, TimeoutError } from '@labwire/core'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { TcpClient } from '@labwire/transport-tcp'
import { RecordingLogger, bytes, closed, freePort, prng, rawConnect, readUntilClose, rejectionOf, until, within } from './helpers.js'
import { lineClient, servesFreshClient, startLineServer, startRawLinePeer, type RawPeer } from './peers.js'

const upper = (s: string): string => s.toUpperCase()
const KiB = 1024
const MiB = 1024 * KiB

const cleanups: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})
function track<T extends { close(): Promise<unknown> }>(thing: T): T {
  cleanups.push(() => thing.close())
  return thing
}

/** Write `chunk` repeatedly (up to `total` bytes) until the socket stops being writable; returns the bytes handed to write(). */
async function writeUntilClosed(socket: Socket, chunk: Buffer, total: number): Promise<number> {
  let written = 0
  while (written < total && socket.writable) {
    const ok = socket.write(chunk)
    written += chunk.length
    if (!ok) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          socket.off('drain', done)
          socket.off('close', done)
          socket.off('end', done)
          socket.off('error', done)
          resolve()
        }
        socket.on('drain', done)
        socket.on('close', done)
        socket.on('end', done)
        socket.on('error', done)
      })
    }
  }
  return written
}

describe('a frame that grows past maxLength', () => {
  it('server: logs FrameTooLargeError, closes that connection before the client could write it all, memory bounded', async () => {
    const maxLength = 64 * KiB
    const { server, port, logger } = await startLineServer(upper, { maxLength })
    track(server)
    const bystander = track(await lineClient(port).connect())
    expect(await bystander.sendReceive('before')).toBe('BEFORE')

    const raw = await rawConnect(port)
    cleanups.push(() => Promise.resolve(raw.destroy()))
    const received = readUntilClose(raw, 15_000)
    raw.write('first\n') // accepted before the flood: its reply must not be lost
    const arrayBuffersBefore = process.memoryUsage().arrayBuffers
    // Loopback kernel buffers alone can absorb several MiB (tcp_wmem max is 4 MiB on this
    // kernel), so the client attempts far more than that: the server must stop it early.
    const attempted = 64 * MiB
    const written = await within(writeUntilClosed(raw, Buffer.alloc(64 * KiB, 0x61), attempted), 15_000, 'flood write')
    const { data } = await received
    const arrayBuffersGrowth = process.memoryUsage().arrayBuffers - arrayBuffersBefore

    expect(written).toBeLessThan(attempted)
    expect(data.toString('latin1')).toBe('FIRST\n')
    const errors = logger.at('error')
    expect(errors, logger.describe()).toHaveLength(1)
    const err = errors[0]?.context.err
    expect(err).toBeInstanceOf(FrameTooLargeError)
    expect((err as FrameTooLargeError).maxLength).toBe(maxLength)
    // The server read at most maxLength plus a socket buffer or two, never the flood.
    expect(arrayBuffersGrowth).toBeLessThan(16 * MiB)

    expect(await bystander.sendReceive('after')).toBe('AFTER')
    expect(await servesFreshClient(port)).toBe(true)
  })

  it('client: a reply streamed endlessly without a sentinel rejects FrameTooLargeError and the session is closed', async () => {
    let flooded = 0
    const peer: RawPeer = track(
      await startRawLinePeer((line, socket) => {
        if (line !== 'flood') {
          socket.write(`${line.toUpperCase()}\n`)
          return
        }
        const chunk = Buffer.alloc(16 * KiB, 0x78)
        const pump = (): void => {
          while (socket.writable) {
            flooded += chunk.length
            if (!socket.write(chunk)) {
              socket.once('drain', pump)
              return
            }
          }
        }
        pump()
      }),
    )
    const logger = new RecordingLogger()
    const maxLength = 64 * KiB
    const session = track(await lineClient(peer.port, { maxLength, logger, maxInFlight: 2 }).connect())
    const first = session.sendReceive('ping')
    const flood = rejectionOf(session.sendReceive('flood'))
    expect(await first).toBe('PING') // answered before the flood: not lost
    const err = await flood
    expect(err).toBeInstanceOf(FrameTooLargeError)
    expect((err as FrameTooLargeError).maxLength).toBe(maxLength)
    expect(await rejectionOf(session.sendReceive('later'))).toBeInstanceOf(ConnectionError)
    // The client closed the connection, so the endless writer stopped.
    const floodSocket = peer.sockets[0] as Socket
    await closed(floodSocket, 5_000)
    expect(flooded).toBeLessThan(256 * MiB)
    expect(logger.loggedErrors().some((e) => e instanceof FrameTooLargeError)).toBe(true)

    const second = track(await lineClient(peer.port).connect())
    expect(await second.sendReceive('again')).toBe('AGAIN')
  })
})

describe('the peer closes in the middle of a frame', () => {
  it('server: logs ConnectionClosedError whose partial is the bytes of the unfinished frame, after answering the complete ones', async () => {
    const { server, port, logger } = await startLineServer(upper)
    track(server)
    const raw = await rawConnect(port)
    const received = readUntilClose(raw)
    raw.end('one\ntwo\nhalf-a-fr')
    const { data } = await received
    expect(data.toString('latin1')).toBe('ONE\nTWO\n')
    const record = await logger.waitFor((r) => r.context.err instanceof ConnectionClosedError)
    expect(record.level).toBe('warn')
    expect((record.context.err as ConnectionClosedError).partial).toEqual(bytes('half-a-fr'))
    expect(logger.at('error')).toEqual([])
    expect(await servesFreshClient(port)).toBe(true)
  })

  it('client: a server that writes half a reply then ends rejects ConnectionClosedError with that half as partial', async () => {
    const peer = track(
      await startRawLinePeer((line, socket) => {
        if (line === 'half') socket.end('hal')
        else socket.write(`${line.toUpperCase()}\n`)
      }),
    )
    const session = track(await lineClient(peer.port).connect())
    expect(await session.sendReceive('ping')).toBe('PING')
    const err = await rejectionOf(session.sendReceive('half'))
    expect(err).toBeInstanceOf(ConnectionClosedError)
    expect((err as ConnectionClosedError).partial).toEqual(bytes('hal'))
    expect(await rejectionOf(session.sendReceive('later'))).toBeInstanceOf(ConnectionError)

    const second = track(await lineClient(peer.port).connect())
    expect(await second.sendReceive('again')).toBe('AGAIN')
  })
})

describe('a server callback that fails', () => {
  const failure = new Error('device fault')
  const failing =
    (mode: 'throws' | 'rejects') =>
    (s: string): string | Promise<string> => {
      if (s !== 'boom') return s.toUpperCase()
      if (mode === 'throws') throw failure
      return Promise.reject(failure)
    }

  it.each(['throws', 'rejects'] as const)('that %s is logged at error level with the error, and only its connection is closed', async (mode) => {
    const { server, port, logger } = await startLineServer(failing(mode))
    track(server)
    const bystander = track(await lineClient(port).connect())
    expect(await bystander.sendReceive('hello')).toBe('HELLO')

    const victim = track(await lineClient(port, { maxInFlight: 4 }).connect())
    const one = victim.sendReceive('one')
    const boom = rejectionOf(victim.sendReceive('boom'))
    const two = rejectionOf(victim.sendReceive('two'))
    expect(await one).toBe('ONE') // answered before the failure: not lost
    expect(await boom).toBeInstanceOf(ConnectionClosedError)
    expect(await two).toBeInstanceOf(ConnectionClosedError)
    expect(await rejectionOf(victim.sendReceive('three'))).toBeInstanceOf(ConnectionError)

    const errors = logger.at('error')
    expect(errors, logger.describe()).toHaveLength(1)
    expect(errors[0]?.context.err).toBe(failure)

    expect(await bystander.sendReceive('still here')).toBe('STILL HERE')
    expect(await servesFreshClient(port)).toBe(true)
  })

  it.each(['throws', 'rejects'] as const)('that %s, with errorResponse, is answered with the error frame and the connection stays open', async (mode) => {
    const { server, port, logger } = await startLineServer(failing(mode), {
      errorResponse: (error) => `ERR ${error instanceof Error ? error.message : String(error)}`,
    })
    track(server)
    const session = track(await lineClient(port, { maxInFlight: 4 }).connect())
    const replies = await Promise.all(['one', 'boom', 'two'].map((s) => session.sendReceive(s)))
    expect(replies).toEqual(['ONE', 'ERR device fault', 'TWO'])
    expect(await session.sendReceive('three')).toBe('THREE')
    const errors = logger.at('error')
    expect(errors).toHaveLength(1)
    expect(errors[0]?.context.err).toBe(failure)
    expect(server.connectionCount).toBe(1)
    expect(await servesFreshClient(port)).toBe(true)
  })
})

describe('a reply that arrives after the client timed out', () => {
  /** Requests are `id:delayMs`; the device answers each after its delay, echoing it. */
  const delayed = async (s: string): Promise<string> => {
    const delay = Number(s.split(':')[1])
    await new Promise<void>((resolve) => setTimeout(resolve, delay))
    return s
  }

  // maxInFlight 1: one call at a time, each device delay 0..80 ms against a 40 ms timeout.
  // maxInFlight 4: batches of 4 pipelined calls; the device answers them one after another, so
  // 0..30 ms each adds up to answers on both sides of the timeout.
  it.each([
    [1, 1, 80],
    [4, 4, 30],
  ])('is never returned to a later request (maxInFlight %i, batches of %i, delays 0..%i ms vs a 40 ms timeout)', async (maxInFlight, batch, maxDelay) => {
    const { server, port } = await startLineServer(delayed)
    track(server)
    const session = track(await lineClient(port, { maxInFlight, timeout: 40 }).connect())
    const random = prng(0x5eed + maxInFlight)
    let answered = 0
    let timedOut = 0
    for (let round = 0; round < 40 / batch; round++) {
      const requests = Array.from({ length: batch }, (_, i) => `${round}.${i}:${Math.floor(random() * maxDelay)}`)
      const results = await Promise.allSettled(requests.map((request) => session.sendReceive(request)))
      results.forEach((result, i) => {
        if (result.status === 'fulfilled') {
          expect(result.value).toBe(requests[i])
          answered++
        } else {
          expect(result.reason).toBeInstanceOf(TimeoutError)
          timedOut++
        }
      })
    }
    expect(answered).toBeGreaterThan(0)
    expect(timedOut).toBeGreaterThan(0)
    // Every late reply is discarded when it arrives; the next answer is this request's own.
    expect(await session.sendReceive('final:0', { timeout: 5_000 })).toBe('final:0')
    expect(session.pending).toBe(0)
    expect(await servesFreshClient(port, 'fresh:0', 'fresh:0')).toBe(true)
  })
})

describe('a pipelined request whose callback never returns', () => {
  // Regression: TcpServer corked its socket for each reply and uncorked only when its input was
  // empty, so the reply to a request stayed in the cork while the next pipelined request hung.
  it('does not hold back the reply to the request before it', async () => {
    const { server, port } = await startLineServer((s) => (s === 'hang' ? new Promise<string>(() => undefined) : s.toUpperCase()))
    track(server)
    const session = track(await lineClient(port, { maxInFlight: 2 }).connect())
    const first = session.sendReceive('first')
    const hanging = rejectionOf(session.sendReceive('hang', { timeout: 0 }))
    expect(await within(first, 2_000, 'reply to the request before the hanging one')).toBe('FIRST')
    await session.close()
    expect(await hanging).toBeInstanceOf(ConnectionClosedError)
    expect(await servesFreshClient(port)).toBe(true)
  })
})

describe('server.close()', () => {
  it('closes idle and busy connections within 1 s; pending calls reject ConnectionClosedError, later ones ConnectionError', async () => {
    let hangStarted!: () => void
    const started = new Promise<void>((resolve) => {
      hangStarted = resolve
    })
    const { server, port } = await startLineServer((s) => {
      if (s !== 'hang') return s.toUpperCase()
      hangStarted()
      return new Promise<string>(() => undefined) // the device never answers
    })
    const idle = track(await lineClient(port).connect())
    expect(await idle.sendReceive('idle')).toBe('IDLE')
    const busy = track(await lineClient(port, { maxInFlight: 2 }).connect())
    expect(await busy.sendReceive('busy')).toBe('BUSY')
    const hanging = rejectionOf(busy.sendReceive('hang'))
    const queued = rejectionOf(busy.sendReceive('queued'))
    await within(started, 5_000, 'callback started')

    const t0 = performance.now()
    await within(server.close(), 1_000, 'server.close()')
    expect(performance.now() - t0).toBeLessThan(1_000)

    expect(await hanging).toBeInstanceOf(ConnectionClosedError)
    expect(await queued).toBeInstanceOf(ConnectionClosedError)
    expect(await rejectionOf(busy.sendReceive('later'))).toBeInstanceOf(ConnectionError)
    // The idle session learns of the close on its next call: either the write is refused
    // (ConnectionError) or the stream ends under it (ConnectionClosedError); after that, ConnectionError.
    const first = await rejectionOf(idle.sendReceive('later'))
    expect(first instanceof ConnectionError || first instanceof ConnectionClosedError, String(first)).toBe(true)
    expect(await rejectionOf(idle.sendReceive('later still'))).toBeInstanceOf(ConnectionError)
    // The closed server no longer accepts: a new client is refused at once, typed.
    expect(await rejectionOf(lineClient(port).connect())).toBeInstanceOf(ConnectionError)
    await server.close() // idempotent
  })
})

describe('connect failures', () => {
  it('a refused connect rejects ConnectionError naming 127.0.0.1:port with cause ECONNREFUSED; the port then serves', async () => {
    const port = await freePort()
    const err = await rejectionOf(new TcpClient({ host: '127.0.0.1', port }).connect())
    expect(err).toBeInstanceOf(ConnectionError)
    expect((err as ConnectionError).message).toContain(`127.0.0.1:${port}`)
    expect(((err as ConnectionError).cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED')
    const client = lineClient(port)
    expect(await rejectionOf(client.connect())).toBeInstanceOf(ConnectionError)
    // Nothing is left behind: the same client object connects once a server listens on that port.
    const { server } = await startLineServer(upper, { tcp: { port } })
    track(server)
    const session = track(await client.connect())
    expect(await session.sendReceive('up')).toBe('UP')
  })

  const hasPython = spawnSync('python3', ['-c', 'import socket'], { timeout: 5_000 }).status === 0

  // A listening socket whose accept queue is full drops SYNs (Linux, tcp_abort_on_overflow=0), so
  // a connect hangs. Node always accepts, so the listener is Python's socket module with listen(0)
  // and no accept(); one completed connection fills its queue.
  it.skipIf(!hasPython)('a connect that is never accepted rejects TimeoutError naming host:port; it connects once the peer accepts', async () => {
    const child: ChildProcessWithoutNullStreams = spawn(
      'python3',
      [
        '-c',
        [
          'import socket, sys, threading',
          's = socket.socket()',
          "s.bind(('127.0.0.1', 0))",
          's.listen(0)',
          'print(s.getsockname()[1], flush=True)',
          'sys.stdin.readline()',
          'conns = []',
          'def serve():',
          '    while True:',
          '        c, _ = s.accept()',
          '        conns.append(c)',
          "        print('accepted', flush=True)",
          'threading.Thread(target=serve, daemon=True).start()',
          'sys.stdin.readline()',
        ].join('\n'),
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    )
    cleanups.push(() => {
      child.stdin.end()
      if (child.exitCode === null) child.kill()
      return Promise.resolve()
    })
    const port = await within(
      new Promise<number>((resolve, reject) => {
        child.stdout.once('data', (data: Buffer) => resolve(Number(data.toString().trim())))
        child.once('error', reject)
      }),
      5_000,
      'python listener',
    )
    const filler = await rawConnect(port, 2_000)
    cleanups.push(() => Promise.resolve(filler.destroy()))

    const client = new TcpClient({ host: '127.0.0.1', port, connectTimeout: 300 })
    const t0 = performance.now()
    const err = await rejectionOf(client.connect())
    expect(err).toBeInstanceOf(TimeoutError)
    expect((err as TimeoutError).message).toContain(`127.0.0.1:${port}`)
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290)

    // Let it accept the filler, which empties its queue; a connect made before that would have
    // its SYN dropped again and retried only after the kernel's 1 s SYN retransmit.
    const accepted = within(new Promise<void>((resolve) => child.stdout.once('data', () => resolve())), 5_000, 'python accept')
    child.stdin.write('accept\n')
    await accepted
    const session = await client.connect({ signal: AbortSignal.timeout(5_000) })
    await session.close()
  })
})

describe('idleTimeout', () => {
  // Regression: the idle timer's listener was registered with Node's once(), so a connection whose
  // timer fired while a request was being handled was never closed for idleness afterwards.
  it('closes a connection idle for idleTimeout ms: a pending read rejects ConnectionClosedError; a busy one is kept, then closed once idle', async () => {
    const idleTimeout = 150
    const { server, port, logger } = await startLineServer(
      async (s) => {
        if (s === 'slow') await new Promise<void>((resolve) => setTimeout(resolve, idleTimeout * 3))
        return s.toUpperCase()
      },
      { tcp: { idleTimeout } },
    )
    track(server)
    const line = new SentinelBytesMarshaller('\n')

    // A transport session whose next read is pending when the server closes it.
    const t0 = performance.now()
    const transport = track(await new TcpClient({ host: '127.0.0.1', port }).connect())
    expect(await line.unmarshall(transport.request(line.marshall(bytes('ping'))))).toEqual(bytes('PING'))
    const err = await rejectionOf(line.unmarshall(transport.stream), 5_000)
    expect(err).toBeInstanceOf(ConnectionClosedError)
    expect((err as ConnectionClosedError).partial).toEqual(new Uint8Array(0))
    expect(performance.now() - t0).toBeGreaterThanOrEqual(idleTimeout - 20)

    // A request that takes 3 × idleTimeout is answered, not cut off.
    const session = track(await lineClient(port).connect())
    expect(await session.sendReceive('slow')).toBe('SLOW')
    // Then, idle, it is closed too: the next call fails typed.
    const idleCloses = (): number => logger.at('debug').filter((r) => r.message === 'closing idle connection').length
    await until(() => idleCloses() >= 2, 5_000, 'second idle close')
    const next = await rejectionOf(session.sendReceive('after idle'))
    expect(next instanceof ConnectionError || next instanceof ConnectionClosedError, String(next)).toBe(true)
    expect(logger.at('error')).toEqual([])

    expect(await servesFreshClient(port)).toBe(true)
  })
})

describe('maxConnections', () => {
  it('accepts and at once closes connections over the limit; serves again once one leaves', async () => {
    const { server, port, logger } = await startLineServer(upper, { tcp: { maxConnections: 2 } })
    track(server)
    const a = await lineClient(port).connect()
    const b = track(await lineClient(port).connect())
    expect(await a.sendReceive('a')).toBe('A')
    expect(await b.sendReceive('b')).toBe('B')

    // Raw: accepted (the handshake completes), then closed without a byte.
    const raw = await rawConnect(port)
    const { data } = await readUntilClose(raw)
    expect(data.length).toBe(0)
    await logger.waitFor((r) => r.level === 'warn' && r.context.maxConnections === 2)
    // Through the client API: the connect succeeds, the call fails typed.
    const extra = track(await lineClient(port).connect())
    const err = await rejectionOf(extra.sendReceive('c'))
    expect(err).toBeInstanceOf(LabwireError)
    expect(err instanceof ConnectionClosedError || err instanceof ConnectionError, String(err)).toBe(true)

    // The served sessions are untouched; once one leaves, a new client is served.
    expect(await b.sendReceive('b2')).toBe('B2')
    await a.close()
    await until(() => server.connectionCount < 2, 5_000, 'server noticed the close')
    expect(await servesFreshClient(port)).toBe(true)
    expect(await b.sendReceive('b3')).toBe('B3')
  })
})
