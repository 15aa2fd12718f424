/**
 * The reliability cases of faults.test.ts / fds.test.ts that do not need a raw TCP socket, written
 * against any transport: an oversized frame (both directions), a peer closing mid-frame, a
 * callback that throws or rejects, late replies, server close with busy clients, and fd churn.
 * Each transport's test file calls `reliabilityCases(setup)`; a case that cannot apply is listed
 * in `options.skip` with the reason (reported as a skipped test).
 */
import { afterEach, describe, expect } from 'vitest'
import { ApplicationClient, ApplicationServer, type ApplicationClientOptions, type ApplicationServerOptions, type ServerCallback } from '@labwire/application'
import { ConnectionClosedError, ConnectionError, FrameTooLargeError, TimeoutError, type ByteHandler, type TransportClient } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { caseRunner, type ComplianceOptions } from '../compliance/cases.js'
import { RecordingLogger, bytes, openFds, prng, rejectionOf, until, within } from './helpers.js'

/** A server running `handler` (logging to `logger`) and a client for it. */
export interface ReliabilityFixture {
  client: TransportClient
  /** Connections the server holds now. */
  connectionCount(): number
  close(): Promise<void>
}

export interface ReliabilitySetup {
  name: string
  start(handler: ByteHandler, logger: RecordingLogger): Promise<ReliabilityFixture>
}

export interface ReliabilityOptions extends ComplianceOptions {
  /** connect / sendReceive / close cycles of the fd churn case (default 2 000). */
  churnCycles?: number
  /** Sessions at once in the fd churn case (default 50). */
  churnConcurrency?: number
}

const KiB = 1024

interface LineServer {
  fixture: ReliabilityFixture
  logger: RecordingLogger
  lineClient(options?: ApplicationClientOptions & { maxLength?: number }): ApplicationClient<string, string>
  servesFreshClient(): Promise<boolean>
}

export function reliabilityCases(setup: ReliabilitySetup, options: ReliabilityOptions = {}): void {
  describe(`reliability: ${setup.name}`, () => {
    const it = caseRunner(`reliability: ${setup.name}`, options)
    const cleanups: (() => Promise<unknown>)[] = []
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
    })
    function track<T extends { close(): Promise<unknown> }>(thing: T): T {
      cleanups.push(() => thing.close())
      return thing
    }

    async function startLineServer(callback: ServerCallback<string, string>, serverOptions: { maxLength?: number; errorResponse?: ApplicationServerOptions<string, string>['errorResponse'] } = {}): Promise<LineServer> {
      const logger = new RecordingLogger()
      const line = textMarshaller(new SentinelBytesMarshaller('\n', serverOptions.maxLength === undefined ? {} : { maxLength: serverOptions.maxLength }))
      const appOptions: ApplicationServerOptions<string, string> = { logger }
      if (serverOptions.errorResponse !== undefined) appOptions.errorResponse = serverOptions.errorResponse
      const fixture = track(await setup.start(new ApplicationServer(line.unmarshall, line.marshall, callback, appOptions), logger))
      const lineClient = (clientOptions: ApplicationClientOptions & { maxLength?: number } = {}): ApplicationClient<string, string> => {
        const { maxLength, ...rest } = clientOptions
        const framing = textMarshaller(new SentinelBytesMarshaller('\n', maxLength === undefined ? {} : { maxLength }))
        return new ApplicationClient(fixture.client, framing.marshall, framing.unmarshall, { timeout: 5_000, ...rest })
      }
      return {
        fixture,
        logger,
        lineClient,
        async servesFreshClient() {
          const session = await lineClient().connect({ signal: AbortSignal.timeout(5_000) })
          try {
            return (await session.sendReceive('fresh')) === 'FRESH'
          } finally {
            await session.close()
          }
        },
      }
    }
    const upper = (s: string): string => s.toUpperCase()

    it('a request frame over maxLength: the server logs FrameTooLargeError and closes that connection only; memory bounded', async () => {
      const maxLength = 64 * KiB
      const server = await startLineServer(upper, { maxLength })
      const bystander = track(await server.lineClient().connect())
      expect(await bystander.sendReceive('before')).toBe('BEFORE')

      const flooder = track(await server.fixture.client.connect())
      const stream = flooder.request(bytes('first\n'))
      const framer = new SentinelBytesMarshaller('\n')
      expect(await within(framer.unmarshall(stream), 5_000, 'reply to first')).toEqual(bytes('FIRST'))
      // 4 KiB chunks, no newline, far past maxLength, until the server closes the connection.
      const chunk = new Uint8Array(4 * KiB).fill(0x61)
      const attempted = 4 * 1024 * KiB
      let written = 0
      const ended = rejectionOf(framer.unmarshall(stream), 10_000)
      let closedByServer = false
      void ended.then(() => (closedByServer = true))
      while (written < attempted && !closedByServer) {
        try {
          if (flooder.write === undefined) flooder.request(chunk)
          else await within(flooder.write(chunk), 5_000, 'flood write')
        } catch {
          break // the connection is gone
        }
        written += chunk.length
        if (written % (64 * KiB) === 0) await new Promise<void>((resolve) => setImmediate(resolve))
      }
      expect(await ended).toBeInstanceOf(ConnectionClosedError)
      expect(written).toBeLessThan(attempted)
      const record = await server.logger.waitFor((r) => r.context.err instanceof FrameTooLargeError)
      expect(record.level).toBe('error')
      expect((record.context.err as FrameTooLargeError).maxLength).toBe(maxLength)
      expect(await bystander.sendReceive('after')).toBe('AFTER')
      expect(await server.servesFreshClient()).toBe(true)
    })

    it('a reply over the client maxLength rejects FrameTooLargeError; the session then refuses calls', async () => {
      // Two 40 KiB answers without a newline: 80 KiB pile up against a 64 KiB limit.
      const decoder = new TextDecoder()
      const raw = track(
        await setup.start(async (bytesIn) => {
          const request = decoder.decode(await new SentinelBytesMarshaller('\n').unmarshall(bytesIn))
          return request === 'flood' ? new Uint8Array(40 * KiB).fill(0x78) : bytes(`${request.toUpperCase()}\n`)
        }, new RecordingLogger()),
      )
      const framing = textMarshaller(new SentinelBytesMarshaller('\n', { maxLength: 64 * KiB }))
      const session = track(await new ApplicationClient(raw.client, framing.marshall, framing.unmarshall, { maxInFlight: 2, timeout: 5_000 }).connect())
      expect(await session.sendReceive('ping')).toBe('PING')
      const flood = [rejectionOf(session.sendReceive('flood')), rejectionOf(session.sendReceive('flood'))]
      const err = await flood[0]
      expect(err).toBeInstanceOf(FrameTooLargeError)
      expect((err as FrameTooLargeError).maxLength).toBe(64 * KiB)
      expect(await flood[1]).toBeInstanceOf(ConnectionError)
      expect(await rejectionOf(session.sendReceive('later'))).toBeInstanceOf(ConnectionError)
    })

    it('the client closes in the middle of a frame: the server answers the complete ones and logs ConnectionClosedError with the partial', async () => {
      const server = await startLineServer(upper)
      const session = await server.fixture.client.connect()
      const framer = new SentinelBytesMarshaller('\n')
      const stream = session.request(bytes('one\ntwo\nhalf-a-fr'))
      expect(await within(framer.unmarshall(stream), 5_000, 'ONE')).toEqual(bytes('ONE'))
      expect(await within(framer.unmarshall(stream), 5_000, 'TWO')).toEqual(bytes('TWO'))
      await session.close()
      const record = await server.logger.waitFor((r) => r.context.err instanceof ConnectionClosedError)
      expect(record.level).toBe('warn')
      expect((record.context.err as ConnectionClosedError).partial).toEqual(bytes('half-a-fr'))
      expect(server.logger.at('error')).toEqual([])
      expect(await server.servesFreshClient()).toBe(true)
    })

    for (const mode of ['throws', 'rejects'] as const) {
      it(`a callback that ${mode} is logged at error level once, and only its connection is closed`, async () => {
        const failure = new Error('device fault')
        const server = await startLineServer((s) => {
          if (s !== 'boom') return s.toUpperCase()
          if (mode === 'throws') throw failure
          return Promise.reject(failure)
        })
        const bystander = track(await server.lineClient().connect())
        expect(await bystander.sendReceive('hello')).toBe('HELLO')
        const victim = track(await server.lineClient({ maxInFlight: 4 }).connect())
        const one = victim.sendReceive('one')
        const boom = rejectionOf(victim.sendReceive('boom'))
        const two = rejectionOf(victim.sendReceive('two'))
        expect(await one).toBe('ONE')
        expect(await boom).toBeInstanceOf(ConnectionClosedError)
        expect(await two).toBeInstanceOf(ConnectionClosedError)
        expect(await rejectionOf(victim.sendReceive('three'))).toBeInstanceOf(ConnectionError)
        const errors = server.logger.at('error')
        expect(errors, server.logger.describe()).toHaveLength(1)
        expect(errors[0]?.context.err).toBe(failure)
        expect(await bystander.sendReceive('still here')).toBe('STILL HERE')
        expect(await server.servesFreshClient()).toBe(true)
      })
    }

    for (const [maxInFlight, batch, maxDelay] of [
      [1, 1, 80],
      [4, 4, 30],
    ] as const) {
      it(`a late reply is never returned to a later request (maxInFlight ${maxInFlight}, delays 0..${maxDelay} ms vs a 40 ms timeout)`, async () => {
        const server = await startLineServer(async (s) => {
          await new Promise<void>((resolve) => setTimeout(resolve, Number(s.split(':')[1])))
          return s
        })
        const session = track(await server.lineClient({ maxInFlight, timeout: 40 }).connect())
        // Warm up first: a transport whose peer starts slowly (a child process) would otherwise
        // time out the whole first round, and every round after it would queue behind late replies.
        expect(await session.sendReceive('warm:0', { timeout: 5_000 })).toBe('warm:0')
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
        expect(await session.sendReceive('final:0', { timeout: 5_000 })).toBe('final:0')
        expect(session.pending).toBe(0)
      })
    }

    it('server close() with idle and busy clients resolves within 1 s; pending calls reject ConnectionClosedError, later ones ConnectionError', async () => {
      let hangStarted!: () => void
      const started = new Promise<void>((resolve) => {
        hangStarted = resolve
      })
      const server = await startLineServer((s) => {
        if (s !== 'hang') return s.toUpperCase()
        hangStarted()
        return new Promise<string>(() => undefined)
      })
      const idle = track(await server.lineClient().connect())
      expect(await idle.sendReceive('idle')).toBe('IDLE')
      const busy = track(await server.lineClient({ maxInFlight: 2 }).connect())
      expect(await busy.sendReceive('busy')).toBe('BUSY')
      const hanging = rejectionOf(busy.sendReceive('hang'))
      const queued = rejectionOf(busy.sendReceive('queued'))
      await within(started, 5_000, 'callback started')

      const t0 = performance.now()
      await within(server.fixture.close(), 1_000, 'server close()')
      expect(performance.now() - t0).toBeLessThan(1_000)
      expect(await hanging).toBeInstanceOf(ConnectionClosedError)
      expect(await queued).toBeInstanceOf(ConnectionClosedError)
      expect(await rejectionOf(busy.sendReceive('later'))).toBeInstanceOf(ConnectionError)
      const first = await rejectionOf(idle.sendReceive('later'))
      expect(first instanceof ConnectionError || first instanceof ConnectionClosedError, String(first)).toBe(true)
      expect(await rejectionOf(idle.sendReceive('later still'))).toBeInstanceOf(ConnectionError)
      await server.fixture.close()
    })

    const cycles = options.churnCycles ?? 2_000
    const concurrency = options.churnConcurrency ?? 50
    it(`${cycles} connect / sendReceive / close cycles leave open fds at the baseline and warn about no listeners`, async () => {
      const warnings: Error[] = []
      const onWarning = (warning: Error): void => {
        warnings.push(warning)
      }
      process.on('warning', onWarning)
      try {
        const server = await startLineServer(upper)
        expect(await server.servesFreshClient()).toBe(true)
        await until(() => server.fixture.connectionCount() === 0, 5_000, 'warm-up connection closed on the server')
        const baseline = openFds()
        const client = server.lineClient({ timeout: 10_000 })
        let answered = 0
        const worker = async (w: number): Promise<void> => {
          const signal = new AbortController().signal
          for (let i = w; i < cycles; i += concurrency) {
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
        expect(answered).toBe(cycles)
        await until(() => server.fixture.connectionCount() === 0, 10_000, 'all connections closed on the server')
        await until(() => openFds() - baseline <= 5, 5_000, `open fds back near the baseline of ${baseline} (now ${openFds()})`)
        expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([])
        expect(server.logger.at('warn')).toEqual([])
        expect(server.logger.at('error')).toEqual([])
        expect(await server.servesFreshClient()).toBe(true)
      } finally {
        process.off('warning', onWarning)
      }
    }, 60_000)
    it.done()
  })
}
