/**
 * The application compliance suite: ApplicationClient / ApplicationServer over any transport.
 * Run it from a transport's test file with `applicationCompliance(setup)`.
 */
import { afterEach, describe, expect } from 'vitest'
import { ApplicationClient, ApplicationServer, type ApplicationClientOptions } from '@labwire/application'
import {
  AbortError,
  ConnectionClosedError,
  ConnectionError,
  FrameTooLargeError,
  FramingError,
  TimeoutError,
  byteStreamOf,
  type ByteHandler,
  type ByteStream,
  type Logger,
} from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { bytes, deferred, delay, rejectionOf, text, within, type TransportFixture, type TransportSetup } from '../helpers/fixtures.js'
import { caseRunner, type ComplianceOptions } from './cases.js'

const WAIT = 5_000
const framer = new SentinelBytesMarshaller('\n')
const line = textMarshaller(framer)

/** What a probe answers: a line (the probe adds `\n`), raw wire text, or nothing. */
type Answer = string | { wire: string } | undefined

/**
 * A line server that watches the client: while it works on a request it keeps reading whatever
 * the client sends next, so `maxOutstanding` is the largest number of requests it has seen whose
 * replies it has not written yet. Replies are written in request order.
 */
interface Probe {
  readonly handler: ByteHandler
  /** Requests in arrival order. */
  readonly seen: string[]
  readonly maxOutstanding: number
}

function probeServer(answer: (request: string) => Answer | Promise<Answer>): Probe {
  const seen: string[] = []
  let maxOutstanding = 0
  const handler: ByteHandler = async (bytesIn) => {
    const stream = byteStreamOf(bytesIn)
    const pending: string[] = []
    let unwritten = 0
    const take = async (): Promise<void> => {
      const request = text(await framer.unmarshall(stream))
      seen.push(request)
      pending.push(request)
      unwritten++
      maxOutstanding = Math.max(maxOutstanding, unwritten)
    }
    await take()
    let out = ''
    while (pending.length > 0) {
      const answering = Promise.resolve().then(() => answer(pending[0] as string))
      // Read ahead while the answer is being worked out: a client that overshoots its limit shows here.
      for (;;) {
        const next = await Promise.race([answering.then(() => 'answered' as const), dataComing(stream)])
        if (next !== 'data') break
        await take()
      }
      const reply = await answering
      pending.shift()
      if (typeof reply === 'string') out += `${reply}\n`
      else if (reply !== undefined) out += reply.wire
      if (pending.length === 0 && (await dataNow(stream))) await take()
    }
    return out.length === 0 ? undefined : bytes(out)
  }
  return {
    handler,
    seen,
    get maxOutstanding() {
      return maxOutstanding
    },
  }
}

/** Resolves 'data' when bytes are buffered (consuming nothing), 'end' if the stream ends or fails. */
function dataComing(stream: ByteStream): Promise<'data' | 'end'> {
  return stream.waitForData().then(
    (ok) => (ok ? 'data' : 'end'),
    () => 'end',
  )
}

/** True if bytes are buffered or arrive before the event loop turns. */
function dataNow(stream: ByteStream): Promise<boolean> {
  if (stream.bufferedLength > 0) return Promise.resolve(true)
  return new Promise((resolve) => {
    const turn = setImmediate(() => resolve(false))
    void dataComing(stream).then((next) => {
      clearImmediate(turn)
      resolve(next === 'data')
    })
  })
}

const upper = (request: string): string => request.toUpperCase()

/** A logger that records what it is given. */
function recordingLogger(): Logger & { entries: { level: string; context: object; message: string | undefined }[] } {
  const entries: { level: string; context: object; message: string | undefined }[] = []
  const at =
    (level: string) =>
    (context: object, message?: string): void => {
      entries.push({ level, context, message })
    }
  return { entries, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

export function applicationCompliance(setup: TransportSetup, options: ComplianceOptions = {}): void {
  describe(`application compliance: ${setup.name}`, () => {
    const it = caseRunner(`application compliance: ${setup.name}`, options)
    let running: TransportFixture[] = []
    const gates: (() => void)[] = []
    afterEach(async () => {
      for (const open of gates.splice(0)) open()
      await Promise.all(running.map((fixture) => fixture.close()))
      running = []
    })

    async function startClient(handler: ByteHandler, options: ApplicationClientOptions = {}): Promise<ApplicationClient<string, string>> {
      const fixture = await setup.start(handler)
      running.push(fixture)
      return new ApplicationClient(fixture.client, line.marshall, line.unmarshall, { timeout: WAIT, ...options })
    }

    /** A probe that holds its answer to `slow` until the test opens the gate. */
    function gatedProbe(): { probe: Probe; seenSlow: Promise<void>; open: () => void } {
      const seen = deferred()
      const gate = deferred()
      gates.push(() => gate.resolve())
      const probe = probeServer(async (request) => {
        if (request !== 'slow') return upper(request)
        seen.resolve()
        await gate.promise
        return 'SLOW'
      })
      return { probe, seenSlow: within(seen.promise, WAIT, 'server saw slow'), open: () => gate.resolve() }
    }

    it('round-trips a request with sendReceive', async () => {
      const probe = probeServer(upper)
      const client = await startClient(probe.handler)
      await using session = await client.connect({ signal: AbortSignal.timeout(WAIT) })
      expect(await session.sendReceive('hello')).toBe('HELLO')
      expect(await session.sendReceive('')).toBe('')
      expect(await session.sendReceive('héllo wörld')).toBe('HÉLLO WÖRLD')
    })

    it('answers concurrent callers in call order, one request on the wire at a time', async () => {
      // Later requests are answered faster: a client that let them overlap would mix answers up.
      const probe = probeServer(async (request) => {
        await delay(Math.max(0, 6 - Number(request.slice(1)) / 5))
        return upper(request)
      })
      const client = await startClient(probe.handler)
      await using session = await client.connect()
      const requests = Array.from({ length: 30 }, (_, i) => `r${i}`)
      const answers = await Promise.all(requests.map((request) => session.sendReceive(request)))
      expect(answers).toEqual(requests.map(upper))
      expect(probe.seen).toEqual(requests)
      expect(probe.maxOutstanding).toBe(1)
    })

    it('pipelines up to maxInFlight requests and answers them in order', async () => {
      const probe = probeServer(async (request) => {
        await delay(Math.floor(Math.random() * 3))
        return upper(request)
      })
      const client = await startClient(probe.handler, { maxInFlight: 4 })
      await using session = await client.connect()
      const requests = Array.from({ length: 40 }, (_, i) => `p${i}`)
      const answers = await Promise.all(requests.map((request) => session.sendReceive(request)))
      expect(answers).toEqual(requests.map(upper))
      expect(probe.seen).toEqual(requests)
      expect(probe.maxOutstanding).toBeLessThanOrEqual(4)
      expect(probe.maxOutstanding).toBeGreaterThan(1)
    })

    it('send() writes without waiting for a reply, in order with sendReceive()', async () => {
      let value = 'unset'
      const app = new ApplicationServer(line.unmarshall, line.marshall, (request: string) => {
        if (request.startsWith('SET ')) {
          value = request.slice(4)
          return undefined
        }
        return request === 'GET' ? value : `? ${request}`
      })
      const client = await startClient(app)
      await using session = await client.connect()
      await expect(session.send('SET 5')).resolves.toBeUndefined()
      expect(await session.sendReceive('GET')).toBe('5')
      // Not awaited in between: still in call order.
      const written = [session.send('SET 6'), session.send('SET 7')]
      expect(await session.sendReceive('GET')).toBe('7')
      await Promise.all(written)
      expect(await session.sendReceive('other')).toBe('? other')
    })

    it('an ApplicationServer callback that returns undefined sends no reply', async () => {
      const app = new ApplicationServer(line.unmarshall, line.marshall, (request: string) => (request === 'quiet' ? undefined : upper(request)))
      const client = await startClient(app)
      await using session = await client.connect()
      await session.send('quiet')
      await session.send('quiet')
      // Had the server answered 'quiet' with anything (even an empty line), this would read it.
      expect(await session.sendReceive('loud')).toBe('LOUD')
    })

    it('times out with TimeoutError; the late reply is never returned to the next caller', async () => {
      const { probe, seenSlow, open } = gatedProbe()
      const client = await startClient(probe.handler)
      await using session = await client.connect()
      const error = await rejectionOf(session.sendReceive('slow', { timeout: 50 }))
      expect(error).toBeInstanceOf(TimeoutError)
      await seenSlow
      // Issued before the late reply exists: it must wait for its own answer.
      const next = session.sendReceive('fast')
      open()
      expect(await next).toBe('FAST')
      expect(await session.sendReceive('after')).toBe('AFTER')
      expect(probe.seen).toEqual(['slow', 'fast', 'after'])
      // The abandoned request kept its slot: 'fast' was not written before 'slow' was answered.
      expect(probe.maxOutstanding).toBe(1)
    })

    it('discards a late reply when requests are pipelined (maxInFlight 2)', async () => {
      const { probe, seenSlow, open } = gatedProbe()
      const client = await startClient(probe.handler, { maxInFlight: 2 })
      await using session = await client.connect()
      expect(await rejectionOf(session.sendReceive('slow', { timeout: 50 }))).toBeInstanceOf(TimeoutError)
      await seenSlow
      const calls = [session.sendReceive('f1'), session.sendReceive('f2'), session.sendReceive('f3')]
      open()
      expect(await Promise.all(calls)).toEqual(['F1', 'F2', 'F3'])
      expect(probe.maxOutstanding).toBeLessThanOrEqual(2)
    })

    it('gives a timed-out call the partial bytes, and discards the rest of its frame', async () => {
      // 'a' is answered with an unterminated 'par'; the rest of that frame comes with the answer to 'b'.
      const answered = deferred()
      const probe = probeServer((request) => {
        if (request === 'a') {
          answered.resolve()
          return { wire: 'par' }
        }
        return request === 'b' ? { wire: 'tial\nB\n' } : upper(request)
      })
      const client = await startClient(probe.handler, { maxInFlight: 2 })
      await using session = await client.connect()
      const first = rejectionOf(session.sendReceive('a', { timeout: 400 }))
      await within(answered.promise, WAIT, 'server answered a')
      const error = await first
      expect(error).toBeInstanceOf(TimeoutError)
      expect(text((error as TimeoutError).partial)).toBe('par')
      expect(await session.sendReceive('b')).toBe('B')
      expect(await session.sendReceive('c')).toBe('C')
    })

    it('aborts a call with AbortError (cause = reason); its late reply is discarded', async () => {
      const { probe, seenSlow, open } = gatedProbe()
      const client = await startClient(probe.handler)
      await using session = await client.connect()
      const controller = new AbortController()
      const reason = new Error('operator pressed stop')
      const pending = session.sendReceive('slow', { signal: controller.signal })
      await seenSlow
      controller.abort(reason)
      const error = await rejectionOf(pending)
      expect(error).toBeInstanceOf(AbortError)
      expect((error as AbortError).cause).toBe(reason)
      const next = session.sendReceive('fast')
      open()
      expect(await next).toBe('FAST')
    })

    it('never sends a call aborted before it was written', async () => {
      const { probe, seenSlow, open } = gatedProbe()
      const client = await startClient(probe.handler)
      await using session = await client.connect()
      const reason = new Error('too late')
      const already = await rejectionOf(session.sendReceive('pre', { signal: AbortSignal.abort(reason) }))
      expect(already).toBeInstanceOf(AbortError)
      expect((already as AbortError).cause).toBe(reason)

      const slow = session.sendReceive('slow')
      await seenSlow
      const controller = new AbortController()
      const queued = session.sendReceive('queued', { signal: controller.signal })
      controller.abort(reason)
      expect(await rejectionOf(queued)).toBeInstanceOf(AbortError)
      open()
      expect(await slow).toBe('SLOW')
      expect(await session.sendReceive('last')).toBe('LAST')
      expect(probe.seen).toEqual(['slow', 'last'])
    })

    it('rejects with ConnectionClosedError (with partial) when the server closes mid-frame; then refuses calls', async () => {
      // Raw server: 'half' is answered with an unterminated 'hal', then 'boom' makes it close the connection.
      const handler: ByteHandler = async (stream) => {
        const request = text(await framer.unmarshall(stream))
        if (request === 'boom') throw new Error('closing on purpose')
        return bytes(request === 'half' ? 'hal' : `${upper(request)}\n`)
      }
      const client = await startClient(handler)
      await using session = await client.connect()
      expect(await session.sendReceive('ok')).toBe('OK')
      const error = await rejectionOf(session.sendReceive('half\nboom'))
      expect(error).toBeInstanceOf(ConnectionClosedError)
      expect(text((error as ConnectionClosedError).partial)).toBe('hal')
      expect(await rejectionOf(session.sendReceive('again'))).toBeInstanceOf(ConnectionError)
    })

    it('a FramingError (response over maxLength) makes the session refuse further calls with ConnectionError', async () => {
      const probe = probeServer((request) => (request === 'big' ? 'x'.repeat(100) : upper(request)))
      const fixture = await setup.start(probe.handler)
      running.push(fixture)
      const small = textMarshaller(new SentinelBytesMarshaller('\n', { maxLength: 8 }))
      const client = new ApplicationClient(fixture.client, small.marshall, small.unmarshall, { timeout: WAIT })
      await using session = await client.connect()
      expect(await session.sendReceive('ok')).toBe('OK')
      const error = await rejectionOf(session.sendReceive('big'))
      expect(error).toBeInstanceOf(FrameTooLargeError)
      expect(error).toBeInstanceOf(FramingError)
      const refused = await rejectionOf(session.sendReceive('ok'))
      expect(refused).toBeInstanceOf(ConnectionError)
      expect((refused as ConnectionError).cause).toBe(error)
      expect(await rejectionOf(session.send('ok'))).toBeInstanceOf(ConnectionError)
    })

    it('errorResponse answers a failing callback with an error frame and keeps the connection', async () => {
      const logger = recordingLogger()
      const app = new ApplicationServer(
        line.unmarshall,
        line.marshall,
        (request: string) => {
          if (request === 'BAD') throw new Error('unknown command')
          return upper(request)
        },
        { errorResponse: (error, request) => `ERR ${request}: ${(error as Error).message}`, logger },
      )
      const client = await startClient(app)
      await using session = await client.connect()
      expect(await session.sendReceive('BAD')).toBe('ERR BAD: unknown command')
      expect(await session.sendReceive('good')).toBe('GOOD')
      expect(logger.entries.filter((entry) => entry.level === 'error')).toHaveLength(1)
    })

    it('without errorResponse, a failing callback closes that connection only', async () => {
      const app = new ApplicationServer(line.unmarshall, line.marshall, (request: string) => {
        if (request === 'BAD') throw new Error('unknown command')
        return upper(request)
      })
      const client = await startClient(app)
      await using victim = await client.connect()
      await using bystander = await client.connect()
      expect(await rejectionOf(victim.sendReceive('BAD'))).toBeInstanceOf(ConnectionClosedError)
      expect(await rejectionOf(victim.sendReceive('good'))).toBeInstanceOf(ConnectionError)
      expect(await bystander.sendReceive('good')).toBe('GOOD')
    })

    it('close() rejects pending calls with ConnectionClosedError; later calls get ConnectionError', async () => {
      const { probe, seenSlow } = gatedProbe()
      const client = await startClient(probe.handler)
      const session = await client.connect()
      const inFlight = rejectionOf(session.sendReceive('slow'))
      const queued = rejectionOf(session.sendReceive('queued'))
      await seenSlow
      await session.close()
      expect(await inFlight).toBeInstanceOf(ConnectionClosedError)
      expect(await queued).toBeInstanceOf(ConnectionClosedError)
      expect(await rejectionOf(session.sendReceive('after'))).toBeInstanceOf(ConnectionError)
      expect(await rejectionOf(session.send('after'))).toBeInstanceOf(ConnectionError)
      await expect(session.close()).resolves.toBeUndefined()
      expect(probe.seen).toEqual(['slow'])
    })

    it('`await using` closes the session', async () => {
      const client = await startClient(probeServer(upper).handler)
      let kept: { sendReceive(request: string): Promise<string> } | undefined
      {
        await using session = await client.connect()
        kept = session
        expect(await session.sendReceive('x')).toBe('X')
      }
      expect(await rejectionOf(kept.sendReceive('y'))).toBeInstanceOf(ConnectionError)
    })
    it.done()
  })
}
