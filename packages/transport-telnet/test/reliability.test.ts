/**
 * The reliability cases that apply to Telnet, over TelnetServer / TelnetClient on real loopback
 * sockets: an oversized frame (and an oversized subnegotiation), the peer closing mid-frame, a
 * throwing callback, a late reply, close() with busy clients, and fd churn. Built from the
 * reliability suite's helpers (test/reliability/helpers.ts); the misbehaving peers speak Telnet
 * through labwire's codec, refusing every option.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { ApplicationClient, ApplicationServer, type ApplicationClientOptions, type ApplicationServerOptions, type ServerCallback } from '@labwire/application'
import { ConnectionClosedError, ConnectionError, FrameTooLargeError, FramingError, TimeoutError } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TelnetClient, TelnetCodec, TelnetCommand, TelnetServer } from '@labwire/transport-telnet'
import { RecordingLogger, SOAK, bytes, closed, openFds, prng, rawConnect, readUntilClose, rejectionOf, until, within } from '../../../test/reliability/helpers.js'
import { reliabilityCases } from '../../../test/reliability/transport-cases.js'

// The shared, transport-generic reliability cases over Telnet (every case applies) …
reliabilityCases({
  name: 'telnet',
  async start(handler, logger) {
    const server = new TelnetServer({ port: 0, callback: handler, logger })
    const { port } = await server.listen()
    return { client: new TelnetClient({ host: '127.0.0.1', port }), connectionCount: () => server.connectionCount, close: () => server.close() }
  },
})

// … and the Telnet versions of the raw-socket cases of faults.test.ts / fds.test.ts, plus Telnet's own.

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

interface LineServer {
  server: TelnetServer
  port: number
  logger: RecordingLogger
}

async function startLineServer(callback: ServerCallback<string, string>, options: { maxLength?: number; errorResponse?: ApplicationServerOptions<string, string>['errorResponse'] } = {}): Promise<LineServer> {
  const logger = new RecordingLogger()
  const line = textMarshaller(new SentinelBytesMarshaller('\n', options.maxLength === undefined ? {} : { maxLength: options.maxLength }))
  const appOptions: ApplicationServerOptions<string, string> = { logger }
  if (options.errorResponse !== undefined) appOptions.errorResponse = options.errorResponse
  const server = new TelnetServer({ port: 0, callback: new ApplicationServer(line.unmarshall, line.marshall, callback, appOptions), logger })
  const { port } = await server.listen()
  return { server, port, logger }
}

function lineClient(port: number, options: ApplicationClientOptions & { maxLength?: number } = {}): ApplicationClient<string, string> {
  const { maxLength, ...clientOptions } = options
  const line = textMarshaller(new SentinelBytesMarshaller('\n', maxLength === undefined ? {} : { maxLength }))
  return new ApplicationClient(new TelnetClient({ host: '127.0.0.1', port }), line.marshall, line.unmarshall, clientOptions)
}

async function servesFreshClient(port: number, request = 'fresh', expected = request.toUpperCase()): Promise<boolean> {
  const session = await lineClient(port, { timeout: 5_000 }).connect({ signal: AbortSignal.timeout(5_000) })
  try {
    return (await session.sendReceive(request)) === expected
  } finally {
    await session.close()
  }
}

/** The data bytes of what a raw socket received from a Telnet server (negotiation removed). */
function dataOf(received: Buffer): string {
  return Buffer.from(new TelnetCodec({ send: () => undefined }).decode(received)).toString('latin1')
}

interface TelnetPeer {
  port: number
  sockets: Socket[]
  close(): Promise<void>
}

/** A misbehaving Telnet server: labwire's codec refusing every option, `onLine` per '\n' line; `send` writes data bytes (0xFF escaped). */
async function startTelnetLinePeer(onLine: (line: string, send: (data: string) => void, socket: Socket) => void): Promise<TelnetPeer> {
  const sockets: Socket[] = []
  const server: Server = createServer((socket) => {
    sockets.push(socket)
    socket.on('error', () => undefined)
    const codec = new TelnetCodec({ send: (b) => socket.write(b) })
    const send = (data: string): void => {
      if (socket.writable) socket.write(codec.encode(Buffer.from(data, 'latin1')))
    }
    let pending = ''
    socket.on('data', (chunk: Buffer) => {
      pending += Buffer.from(codec.decode(chunk)).toString('latin1')
      let index: number
      while ((index = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, index)
        pending = pending.slice(index + 1)
        onLine(line, send, socket)
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no address')
  return {
    port: address.port,
    sockets,
    close: () =>
      within(
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy()
          server.close(() => resolve())
        }),
        5_000,
        'telnet peer close',
      ),
  }
}

async function writeUntilClosed(socket: Socket, chunk: Buffer, total: number): Promise<number> {
  let written = 0
  while (written < total && socket.writable) {
    const ok = socket.write(chunk)
    written += chunk.length
    if (!ok) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          for (const event of ['drain', 'close', 'end', 'error']) socket.off(event, done)
          resolve()
        }
        for (const event of ['drain', 'close', 'end', 'error']) socket.on(event, done)
      })
    }
  }
  return written
}

describe('telnet: a frame that grows past maxLength', () => {
  it('server: logs FrameTooLargeError, closes that connection early, memory bounded; others served', async () => {
    const maxLength = 64 * KiB
    const { server, port, logger } = await startLineServer(upper, { maxLength })
    track(server)
    const bystander = track(await lineClient(port).connect())
    expect(await bystander.sendReceive('before')).toBe('BEFORE')
    const raw = await rawConnect(port)
    cleanups.push(() => Promise.resolve(raw.destroy()))
    const received = readUntilClose(raw, 15_000)
    raw.write('first\n')
    const attempted = 64 * MiB
    const written = await within(writeUntilClosed(raw, Buffer.alloc(64 * KiB, 0x61), attempted), 15_000, 'flood write')
    const { data } = await received
    expect(written).toBeLessThan(attempted)
    expect(dataOf(data)).toBe('FIRST\n')
    const errors = logger.at('error')
    expect(errors, logger.describe()).toHaveLength(1)
    expect(errors[0]?.context.err).toBeInstanceOf(FrameTooLargeError)
    expect(await bystander.sendReceive('after')).toBe('AFTER')
    expect(await servesFreshClient(port)).toBe(true)
  })

  it('server: an endless subnegotiation is a FramingError that closes only that connection', async () => {
    const { server, port, logger } = await startLineServer(upper)
    track(server)
    const bystander = track(await lineClient(port).connect())
    const raw = await rawConnect(port)
    cleanups.push(() => Promise.resolve(raw.destroy()))
    // A protocol error closes the connection at once: what came before it is answered first
    // when it arrived before (data in the same chunk as the violation is dropped with it).
    const chunks: Buffer[] = []
    const answered = new Promise<void>((resolve) => {
      raw.on('data', (chunk: Buffer) => {
        chunks.push(chunk)
        if (dataOf(Buffer.concat(chunks)) === 'FIRST\n') resolve()
      })
    })
    const received = readUntilClose(raw)
    raw.write('first\n')
    await within(answered, 5_000, 'reply before the bad subnegotiation')
    raw.write(Buffer.from([TelnetCommand.IAC, TelnetCommand.SB, 24]))
    raw.write(Buffer.alloc(4 * KiB, 0x41))
    await received
    expect(dataOf(Buffer.concat(chunks))).toBe('FIRST\n')
    const record = await logger.waitFor((r) => r.context.err instanceof FramingError)
    expect((record.context.err as FramingError).message).toMatch(/subnegotiation/)
    expect(await bystander.sendReceive('after')).toBe('AFTER')
    expect(await servesFreshClient(port)).toBe(true)
  })

  it('client: an endless reply rejects FrameTooLargeError and closes the session; an endless subnegotiation rejects FramingError', async () => {
    const peer = track(
      await startTelnetLinePeer((line, send, socket) => {
        if (line === 'flood') {
          const chunk = 'x'.repeat(16 * KiB)
          const pump = (): void => {
            while (socket.writable) {
              send(chunk)
              if (socket.writableNeedDrain) {
                socket.once('drain', pump)
                return
              }
            }
          }
          pump()
        } else if (line === 'sb') {
          socket.write(Buffer.concat([Buffer.from([TelnetCommand.IAC, TelnetCommand.SB, 31]), Buffer.alloc(2 * KiB, 1)]))
        } else send(`${line.toUpperCase()}\n`)
      }),
    )
    const maxLength = 64 * KiB
    const session = track(await lineClient(peer.port, { maxLength, maxInFlight: 2 }).connect())
    const first = session.sendReceive('ping')
    const flood = rejectionOf(session.sendReceive('flood'))
    expect(await first).toBe('PING')
    expect(await flood).toBeInstanceOf(FrameTooLargeError)
    expect(await rejectionOf(session.sendReceive('later'))).toBeInstanceOf(ConnectionError)
    await closed(peer.sockets[0] as Socket)

    const second = track(await lineClient(peer.port).connect())
    expect(await second.sendReceive('ping')).toBe('PING')
    const err = await rejectionOf(second.sendReceive('sb'))
    expect(err).toBeInstanceOf(FramingError)
    expect(await rejectionOf(second.sendReceive('later'))).toBeInstanceOf(ConnectionError)
  })
})

describe('telnet: the peer closes in the middle of a frame', () => {
  it('server: answers the complete requests and logs ConnectionClosedError with the partial frame', async () => {
    const { server, port, logger } = await startLineServer(upper)
    track(server)
    const raw = await rawConnect(port)
    const received = readUntilClose(raw)
    raw.end('one\ntwo\nhalf-a-fr')
    expect(dataOf((await received).data)).toBe('ONE\nTWO\n')
    const record = await logger.waitFor((r) => r.context.err instanceof ConnectionClosedError)
    expect(record.level).toBe('warn')
    expect((record.context.err as ConnectionClosedError).partial).toEqual(bytes('half-a-fr'))
    expect(logger.at('error')).toEqual([])
    expect(await servesFreshClient(port)).toBe(true)
  })

  it('client: half a reply then end rejects ConnectionClosedError with the half as partial', async () => {
    const peer = track(
      await startTelnetLinePeer((line, send, socket) => {
        if (line === 'half') {
          send('hal')
          socket.end()
        } else send(`${line.toUpperCase()}\n`)
      }),
    )
    const session = track(await lineClient(peer.port).connect())
    expect(await session.sendReceive('ping')).toBe('PING')
    const err = await rejectionOf(session.sendReceive('half'))
    expect(err).toBeInstanceOf(ConnectionClosedError)
    expect((err as ConnectionClosedError).partial).toEqual(bytes('hal'))
    expect(await rejectionOf(session.sendReceive('later'))).toBeInstanceOf(ConnectionError)
  })
})

describe('telnet: a server callback that throws', () => {
  it('is logged once at error level and closes only its connection', async () => {
    const failure = new Error('device fault')
    const { server, port, logger } = await startLineServer((s) => {
      if (s === 'boom') throw failure
      return s.toUpperCase()
    })
    track(server)
    const bystander = track(await lineClient(port).connect())
    expect(await bystander.sendReceive('hello')).toBe('HELLO')
    const victim = track(await lineClient(port, { maxInFlight: 4 }).connect())
    const one = victim.sendReceive('one')
    const boom = rejectionOf(victim.sendReceive('boom'))
    const two = rejectionOf(victim.sendReceive('two'))
    expect(await one).toBe('ONE')
    expect(await boom).toBeInstanceOf(ConnectionClosedError)
    expect(await two).toBeInstanceOf(ConnectionClosedError)
    const errors = logger.at('error')
    expect(errors, logger.describe()).toHaveLength(1)
    expect(errors[0]?.context.err).toBe(failure)
    expect(await bystander.sendReceive('still here')).toBe('STILL HERE')
    expect(await servesFreshClient(port)).toBe(true)
  })
})

describe('telnet: a reply that arrives after the client timed out', () => {
  it('is never returned to a later request (delays 0..80 ms vs a 40 ms timeout)', async () => {
    const { server, port } = await startLineServer(async (s) => {
      await new Promise<void>((resolve) => setTimeout(resolve, Number(s.split(':')[1])))
      return s
    })
    track(server)
    const session = track(await lineClient(port, { timeout: 40 }).connect())
    const random = prng(0x7e1)
    let answered = 0
    let timedOut = 0
    for (let i = 0; i < 40; i++) {
      const request = `${i}:${Math.floor(random() * 80)}`
      try {
        expect(await session.sendReceive(request)).toBe(request)
        answered++
      } catch (error) {
        expect(error).toBeInstanceOf(TimeoutError)
        timedOut++
      }
    }
    expect(answered).toBeGreaterThan(0)
    expect(timedOut).toBeGreaterThan(0)
    expect(await session.sendReceive('final:0', { timeout: 5_000 })).toBe('final:0')
  })
})

describe('telnet: server.close() with busy clients', () => {
  it('closes idle and busy connections within 1 s; pending calls reject ConnectionClosedError, later ones ConnectionError', async () => {
    let hangStarted!: () => void
    const started = new Promise<void>((resolve) => {
      hangStarted = resolve
    })
    const { server, port } = await startLineServer((s) => {
      if (s !== 'hang') return s.toUpperCase()
      hangStarted()
      return new Promise<string>(() => undefined)
    })
    const idle = track(await lineClient(port).connect())
    expect(await idle.sendReceive('idle')).toBe('IDLE')
    const busy = track(await lineClient(port, { maxInFlight: 2 }).connect())
    const hanging = rejectionOf(busy.sendReceive('hang'))
    const queued = rejectionOf(busy.sendReceive('queued'))
    await within(started, 5_000, 'callback started')
    const t0 = performance.now()
    await within(server.close(), 1_000, 'server.close()')
    expect(performance.now() - t0).toBeLessThan(1_000)
    expect(await hanging).toBeInstanceOf(ConnectionClosedError)
    expect(await queued).toBeInstanceOf(ConnectionClosedError)
    expect(await rejectionOf(busy.sendReceive('later'))).toBeInstanceOf(ConnectionError)
    const first = await rejectionOf(idle.sendReceive('later'))
    expect(first instanceof ConnectionError || first instanceof ConnectionClosedError, String(first)).toBe(true)
    expect(await rejectionOf(lineClient(port).connect())).toBeInstanceOf(ConnectionError)
    await server.close()
  })
})

const CYCLES = SOAK ? 20_000 : 2_000
const CONCURRENCY = 50

it(`telnet: ${CYCLES} connect / sendReceive / close cycles (${CONCURRENCY} at a time) leave open fds at the baseline`, { timeout: 60_000 }, async () => {
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => {
    warnings.push(warning)
  }
  process.on('warning', onWarning)
  const { server, port, logger } = await startLineServer(upper)
  try {
    const client = lineClient(port, { timeout: 10_000 })
    expect(await servesFreshClient(port, 'warm-up')).toBe(true)
    await until(() => server.connectionCount === 0, 5_000, 'warm-up connection closed')
    const baseline = openFds()
    let answered = 0
    const worker = async (w: number): Promise<void> => {
      const signal = new AbortController().signal
      for (let i = w; i < CYCLES; i += CONCURRENCY) {
        const session = await client.connect({ signal })
        try {
          expect(await session.sendReceive(`c${i}`, { signal })).toBe(`C${i}`)
          answered++
        } finally {
          await session.close()
        }
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)))
    expect(answered).toBe(CYCLES)
    await until(() => server.connectionCount === 0, 10_000, 'all connections closed')
    await until(() => openFds() - baseline <= 5, 5_000, `open fds back near the baseline of ${baseline}`)
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([])
    expect(logger.at('warn')).toEqual([])
    expect(logger.at('error')).toEqual([])
  } finally {
    process.off('warning', onWarning)
    await server.close()
  }
})

describe('telnet: backpressure', () => {
  it('a server whose handler stalls stops reading: the client cannot push 64 MiB through, and sees ConnectionError once the server closes', async () => {
    const logger = new RecordingLogger()
    const server = track(new TelnetServer({ port: 0, bufferSize: 64 * KiB, logger, callback: () => new Promise<undefined>(() => undefined) }))
    const { port } = await server.listen()
    const session = track(await new TelnetClient({ host: '127.0.0.1', port }).connect({ signal: AbortSignal.timeout(5_000) }))
    const chunk = new Uint8Array(64 * KiB).fill(0x61)
    let written = 0
    const writing = (async () => {
      while (written < 64 * MiB) {
        await session.write(chunk)
        written += chunk.length
      }
    })()
    const outcome = await Promise.race([writing.then(() => 'finished' as const, () => 'failed' as const), new Promise<'stalled'>((resolve) => setTimeout(() => resolve('stalled'), 1_000))])
    expect(outcome).toBe('stalled')
    // What was accepted fits in the server's buffer plus the kernel's socket buffers, far from 64 MiB.
    expect(written).toBeLessThan(32 * MiB)
    await server.close()
    expect(await rejectionOf(writing)).toBeInstanceOf(ConnectionError)
  })
})
