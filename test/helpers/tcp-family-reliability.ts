/**
 * The reliability cases of `test/reliability/faults.test.ts` and `fds.test.ts` (which are wired to
 * plain TCP on 127.0.0.1) over another flavour of the TCP transport: TLS, or a Unix domain socket.
 * A {@link TcpFamilySetup} says how to make the server, a client and a raw socket; the cases are
 * the same: oversize frame, mid-frame close, throwing callback, late reply, close with busy
 * clients, fd churn.
 */
import type { Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { ApplicationClient, ApplicationServer, type ApplicationClientOptions, type ServerCallback } from '@labwire/application'
import { ConnectionClosedError, ConnectionError, FrameTooLargeError, TimeoutError } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpClient, TcpServer, type TcpClientOptions, type TcpServerAddress, type TcpServerOptions } from '@labwire/transport-tcp'
import { RecordingLogger, SOAK, bytes, openFds, prng, readUntilClose, rejectionOf, until, within } from '../reliability/helpers.js'

export interface TcpFamilySetup {
  name: string
  /** Server options that select the flavour (`tls`, `path`…), fresh per server. */
  server(): Omit<TcpServerOptions, 'callback' | 'logger' | 'maxConnections'>
  /** Client options to reach a server listening at `address`. */
  client(address: TcpServerAddress): TcpClientOptions
  /** A raw connected socket to `address` (TLS: handshake done). */
  raw(address: TcpServerAddress): Promise<Socket>
  /** Connect / sendReceive / close cycles for the fd test. */
  churnCycles: number
  /** Bytes the oversize case tries to push. */
  floodBytes: number
}

const KiB = 1024
const MiB = 1024 * KiB
const upper = (s: string): string => s.toUpperCase()

interface LineServer {
  server: TcpServer
  address: TcpServerAddress
  logger: RecordingLogger
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
          for (const event of ['drain', 'close', 'end', 'error']) socket.off(event, done)
          resolve()
        }
        for (const event of ['drain', 'close', 'end', 'error']) socket.on(event, done)
      })
    }
  }
  return written
}

export function tcpFamilyReliability(setup: TcpFamilySetup): void {
  describe(`reliability: ${setup.name}`, () => {
    const cleanups: (() => Promise<unknown>)[] = []
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
    })
    function track<T extends { close(): Promise<unknown> }>(thing: T): T {
      cleanups.push(() => thing.close())
      return thing
    }

    async function startLineServer(callback: ServerCallback<string, string>, options: { maxLength?: number } = {}): Promise<LineServer> {
      const logger = new RecordingLogger()
      const line = textMarshaller(new SentinelBytesMarshaller('\n', options.maxLength === undefined ? {} : { maxLength: options.maxLength }))
      const app = new ApplicationServer(line.unmarshall, line.marshall, callback, { logger })
      const server = track(new TcpServer({ ...setup.server(), callback: app, logger }))
      const address = await server.listen()
      return { server, address, logger }
    }

    function lineClient(address: TcpServerAddress, options: ApplicationClientOptions = {}): ApplicationClient<string, string> {
      const line = textMarshaller(new SentinelBytesMarshaller('\n'))
      return new ApplicationClient(new TcpClient(setup.client(address)), line.marshall, line.unmarshall, options)
    }

    async function servesFreshClient(address: TcpServerAddress, request = 'fresh'): Promise<boolean> {
      const session = await lineClient(address, { timeout: 5_000 }).connect({ signal: AbortSignal.timeout(5_000) })
      try {
        return (await session.sendReceive(request)) === request.toUpperCase()
      } finally {
        await session.close()
      }
    }

    it('a frame past maxLength: the server logs FrameTooLargeError and closes that connection before the flood is through; others go on', async () => {
      const maxLength = 64 * KiB
      const { address, logger } = await startLineServer(upper, { maxLength })
      const bystander = track(await lineClient(address).connect())
      expect(await bystander.sendReceive('before')).toBe('BEFORE')

      const raw = await setup.raw(address)
      cleanups.push(() => Promise.resolve(raw.destroy()))
      const received = readUntilClose(raw, 15_000)
      raw.write('first\n') // accepted before the flood: its reply must not be lost
      const attempted = setup.floodBytes
      const written = await within(writeUntilClosed(raw, Buffer.alloc(64 * KiB, 0x61), attempted), 15_000, 'flood write')
      const { data } = await received
      expect(written).toBeLessThan(attempted)
      expect(data.toString('latin1')).toBe('FIRST\n')
      const errors = logger.at('error')
      expect(errors, logger.describe()).toHaveLength(1)
      expect(errors[0]?.context.err).toBeInstanceOf(FrameTooLargeError)
      expect(await bystander.sendReceive('after')).toBe('AFTER')
      expect(await servesFreshClient(address)).toBe(true)
    })

    it('the peer closes mid-frame: the complete requests are answered, ConnectionClosedError with the partial bytes is logged', async () => {
      const { address, logger } = await startLineServer(upper)
      const raw = await setup.raw(address)
      const received = readUntilClose(raw)
      raw.end('one\ntwo\nhalf-a-fr')
      const { data } = await received
      expect(data.toString('latin1')).toBe('ONE\nTWO\n')
      const record = await logger.waitFor((r) => r.context.err instanceof ConnectionClosedError)
      expect(record.level).toBe('warn')
      expect((record.context.err as ConnectionClosedError).partial).toEqual(bytes('half-a-fr'))
      expect(logger.at('error')).toEqual([])
      expect(await servesFreshClient(address)).toBe(true)
    })

    it('a callback that throws is logged at error and closes only its own connection', async () => {
      const failure = new Error('device fault')
      const { address, logger } = await startLineServer((s) => {
        if (s === 'boom') throw failure
        return s.toUpperCase()
      })
      const bystander = track(await lineClient(address).connect())
      expect(await bystander.sendReceive('hello')).toBe('HELLO')
      const victim = track(await lineClient(address, { maxInFlight: 4 }).connect())
      const one = victim.sendReceive('one')
      const boom = rejectionOf(victim.sendReceive('boom'))
      const two = rejectionOf(victim.sendReceive('two'))
      expect(await one).toBe('ONE')
      expect(await boom).toBeInstanceOf(ConnectionClosedError)
      expect(await two).toBeInstanceOf(ConnectionClosedError)
      expect(await rejectionOf(victim.sendReceive('three'))).toBeInstanceOf(ConnectionError)
      const errors = logger.at('error')
      expect(errors, logger.describe()).toHaveLength(1)
      expect(errors[0]?.context.err).toBe(failure)
      expect(await bystander.sendReceive('still here')).toBe('STILL HERE')
      expect(await servesFreshClient(address)).toBe(true)
    })

    it('a reply that arrives after the client timed out is never returned to a later request', async () => {
      const { address } = await startLineServer(async (s) => {
        await new Promise<void>((resolve) => setTimeout(resolve, Number(s.split(':')[1])))
        return s
      })
      const session = track(await lineClient(address, { timeout: 40 }).connect())
      const random = prng(0x7153)
      let answered = 0
      let timedOut = 0
      for (let round = 0; round < 30; round++) {
        const request = `${round}:${Math.floor(random() * 80)}`
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

    it('server.close() closes idle and busy connections within 1 s; pending calls reject ConnectionClosedError, new connects ConnectionError', async () => {
      let hangStarted!: () => void
      const started = new Promise<void>((resolve) => {
        hangStarted = resolve
      })
      const { server, address } = await startLineServer((s) => {
        if (s !== 'hang') return s.toUpperCase()
        hangStarted()
        return new Promise<string>(() => undefined)
      })
      const idle = track(await lineClient(address).connect())
      expect(await idle.sendReceive('idle')).toBe('IDLE')
      const busy = track(await lineClient(address, { maxInFlight: 2 }).connect())
      const hanging = rejectionOf(busy.sendReceive('hang'))
      const queued = rejectionOf(busy.sendReceive('queued'))
      await within(started, 5_000, 'callback started')
      const t0 = performance.now()
      await within(server.close(), 1_000, 'server.close()')
      expect(performance.now() - t0).toBeLessThan(1_000)
      expect(server.connectionCount).toBe(0)
      expect(await hanging).toBeInstanceOf(ConnectionClosedError)
      expect(await queued).toBeInstanceOf(ConnectionClosedError)
      const first = await rejectionOf(idle.sendReceive('later'))
      expect(first instanceof ConnectionError || first instanceof ConnectionClosedError, String(first)).toBe(true)
      expect(await rejectionOf(lineClient(address).connect())).toBeInstanceOf(ConnectionError)
      await server.close()
    })

    it(`${setup.churnCycles} connect / sendReceive / close cycles leave open fds at the baseline and warn about no listeners`, { timeout: SOAK ? 600_000 : 60_000 }, async () => {
      const warnings: Error[] = []
      const onWarning = (warning: Error): void => {
        warnings.push(warning)
      }
      process.on('warning', onWarning)
      try {
        const { server, address, logger } = await startLineServer(upper)
        const client = lineClient(address, { timeout: 10_000 })
        expect(await servesFreshClient(address, 'warm-up')).toBe(true)
        await until(() => server.connectionCount === 0, 5_000, 'warm-up connection closed on the server')
        const baseline = openFds()
        const concurrency = 50
        let answered = 0
        const worker = async (w: number): Promise<void> => {
          const signal = new AbortController().signal
          for (let i = w; i < setup.churnCycles; i += concurrency) {
            const session = await client.connect({ signal })
            try {
              expect(await session.sendReceive(`c${i}`, { signal })).toBe(`C${i}`)
              answered++
            } finally {
              await session.close()
            }
          }
        }
        await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)))
        expect(answered).toBe(setup.churnCycles)
        await until(() => server.connectionCount === 0, 10_000, 'all connections closed on the server')
        await until(() => openFds() - baseline <= 5, 5_000, `open fds back near the baseline of ${baseline} (now ${openFds()})`)
        expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([])
        expect(logger.at('warn'), logger.describe()).toEqual([])
        expect(logger.at('error')).toEqual([])
      } finally {
        process.off('warning', onWarning)
      }
    })
  })
}

export { MiB }
