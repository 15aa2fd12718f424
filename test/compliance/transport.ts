/**
 * The transport compliance suite: what every `TransportClient` + server pair must do. Run it from
 * a transport's test file with `transportCompliance(setup)`.
 */
import { afterEach, describe, expect } from 'vitest'
import {
  AbortError,
  ConnectionClosedError,
  ConnectionError,
  type ByteHandler,
  type TransportClientSession,
} from '@labwire/core'
import { FixedLengthBytesMarshaller, SentinelBytesMarshaller } from '@labwire/marshallers'
import { bytes, deferred, delay, rejectionOf, text, within, type TransportFixture, type TransportSetup } from '../helpers/fixtures.js'
import { caseRunner, type ComplianceOptions } from './cases.js'

const line = new SentinelBytesMarshaller('\n')
const WAIT = 5_000

/** Read one `\n`-terminated line from a session's stream, bounded. */
async function readLine(stream: AsyncIterator<Uint8Array>): Promise<string> {
  return text(await within(line.unmarshall(stream), WAIT, 'reading a line'))
}

/** A server handler: reads one line per request and writes whatever `answer` returns (framing included). */
function lineHandler(answer: (request: string) => string | undefined | Promise<string | undefined>): ByteHandler {
  return async (stream) => {
    const reply = await answer(text(await line.unmarshall(stream)))
    return reply === undefined ? undefined : bytes(reply)
  }
}

/** Uppercase echo; `two` answers two frames in one write, `six` six unframed bytes, `boom` throws. */
function defaultAnswer(request: string): string {
  if (request === 'two') return 'a\nb\n'
  if (request === 'six') return 'abcdef'
  if (request === 'boom') throw new Error('handler failed on purpose')
  return `${request.toUpperCase()}\n`
}

/** What a request on `session` fails with: either `request()` throws or reading its stream rejects. */
async function requestFailure(session: TransportClientSession, request: Uint8Array): Promise<unknown> {
  let stream: AsyncIterator<Uint8Array>
  try {
    stream = session.request(request)
  } catch (error) {
    return error
  }
  return rejectionOf(within(line.unmarshall(stream), WAIT, 'reading after close'))
}

export function transportCompliance(setup: TransportSetup, options: ComplianceOptions = {}): void {
  describe(`transport compliance: ${setup.name}`, () => {
    const it = caseRunner(`transport compliance: ${setup.name}`, options)
    let running: TransportFixture[] = []
    const start = async (answer: (request: string) => string | undefined | Promise<string | undefined> = defaultAnswer): Promise<TransportFixture> => {
      const fixture = await setup.start(lineHandler(answer))
      running.push(fixture)
      return fixture
    }
    afterEach(async () => {
      await Promise.all(running.map((fixture) => fixture.close()))
      running = []
    })

    it('connects and gets a response to a request', async () => {
      const { client } = await start()
      await using session = await client.connect({ signal: AbortSignal.timeout(WAIT) })
      expect(await readLine(session.request(bytes('hello\n')))).toBe('HELLO')
      expect(await readLine(session.request(bytes('again\n')))).toBe('AGAIN')
    })

    it('returns the same stream from every request() and keeps leftover bytes', async () => {
      const { client } = await start()
      await using session = await client.connect()
      // Two frames in one server write: read in two calls.
      const first = session.request(bytes('two\n'))
      expect(await readLine(first)).toBe('a')
      expect(await readLine(first)).toBe('b')
      // Leftovers survive the next request() too: read only 'a', then 'b' comes before the new answer.
      const second = session.request(bytes('two\n'))
      expect(second).toBe(first)
      expect(await readLine(second)).toBe('a')
      const third = session.request(bytes('hi\n'))
      expect(third).toBe(first)
      expect(await readLine(third)).toBe('b')
      expect(await readLine(third)).toBe('HI')
      // A fixed-length read that leaves bytes behind: 'abcdef' read two at a time.
      const pair = new FixedLengthBytesMarshaller(2)
      const fourth = session.request(bytes('six\n'))
      expect(fourth).toBe(first)
      const pairs = [await pair.unmarshall(fourth), await pair.unmarshall(fourth), await pair.unmarshall(fourth)]
      expect(pairs.map(text)).toEqual(['ab', 'cd', 'ef'])
    })

    it('answers pipelined requests sent in one write, in order', async () => {
      const { client } = await start()
      await using session = await client.connect()
      const stream = session.request(bytes('p1\np2\np3\n'))
      expect([await readLine(stream), await readLine(stream), await readLine(stream)]).toEqual(['P1', 'P2', 'P3'])
    })

    it('writes each reply without waiting for the next pipelined request to be handled', async () => {
      const gate = deferred()
      const { client } = await start(async (request) => {
        if (request === 'slow') await gate.promise
        return defaultAnswer(request)
      })
      await using session = await client.connect()
      const stream = session.request(bytes('fast\nslow\n'))
      try {
        expect(await readLine(stream)).toBe('FAST')
      } finally {
        gate.resolve()
      }
      expect(await readLine(stream)).toBe('SLOW')
    })

    const concurrent = setup.concurrentSessions ?? 50
    it(`serves ${concurrent} sessions at once, each answered in order`, async () => {
      // Random small delays make the server interleave the sessions.
      const { client } = await start(async (request) => {
        await delay(Math.floor(Math.random() * 3))
        return `${request.toUpperCase()}\n`
      })
      const sessions = concurrent
      const perSession = 5
      const results = await Promise.all(
        Array.from({ length: sessions }, async (_, s) => {
          await using session = await client.connect({ signal: AbortSignal.timeout(WAIT) })
          let stream: AsyncIterator<Uint8Array> | undefined
          for (let k = 0; k < perSession; k++) stream = session.request(bytes(`s${s}-r${k}\n`))
          const answers: string[] = []
          for (let k = 0; k < perSession; k++) answers.push(await readLine(stream as AsyncIterator<Uint8Array>))
          return answers
        }),
      )
      results.forEach((answers, s) => {
        expect(answers).toEqual(Array.from({ length: perSession }, (_, k) => `S${s}-R${k}`))
      })
    })

    it('close() is idempotent, `await using` closes, and a request after close is a ConnectionError', async () => {
      const { client } = await start()
      let kept: TransportClientSession | undefined
      {
        await using session = await client.connect()
        kept = session
        expect(await readLine(session.request(bytes('x\n')))).toBe('X')
      }
      const closed = kept
      expect(await requestFailure(closed, bytes('y\n'))).toBeInstanceOf(ConnectionError)
      await expect(closed.close()).resolves.toBeUndefined()
      await expect(Promise.all([closed.close(), closed.close()])).resolves.toEqual([undefined, undefined])

      const explicit = await client.connect()
      await explicit.close()
      await explicit.close()
      expect(await requestFailure(explicit, bytes('z\n'))).toBeInstanceOf(ConnectionError)
    })

    it('reports a server close between frames as ConnectionClosedError with an empty partial', async () => {
      const { client } = await start()
      await using session = await client.connect()
      const error = await rejectionOf(within(line.unmarshall(session.request(bytes('boom\n'))), WAIT, 'read'))
      expect(error).toBeInstanceOf(ConnectionClosedError)
      expect((error as ConnectionClosedError).partial).toEqual(new Uint8Array(0))
    })

    it('reports a server close in the middle of a frame as ConnectionClosedError with the partial bytes', async () => {
      // 'half' is answered with an unterminated 'abc'; the pipelined 'boom' then makes the server close.
      const { client } = await start((request) => (request === 'half' ? 'abc' : defaultAnswer(request)))
      await using session = await client.connect()
      const error = await rejectionOf(within(line.unmarshall(session.request(bytes('half\nboom\n'))), WAIT, 'read'))
      expect(error).toBeInstanceOf(ConnectionClosedError)
      expect(text((error as ConnectionClosedError).partial)).toBe('abc')
    })

    it('reports a server shutdown during a pending request as ConnectionClosedError', async () => {
      const seen = deferred()
      const gate = deferred()
      const fixture = await start(async (request) => {
        if (request !== 'wait') return defaultAnswer(request)
        seen.resolve()
        await gate.promise
        return 'late\n'
      })
      await using session = await fixture.client.connect()
      const reading = rejectionOf(within(line.unmarshall(session.request(bytes('wait\n'))), WAIT, 'read'))
      try {
        await within(seen.promise, WAIT, 'server saw the request')
        await fixture.close()
        expect(await reading).toBeInstanceOf(ConnectionClosedError)
      } finally {
        gate.resolve()
      }
    })

    it('closes only the connection whose handler throws; other sessions keep working', async () => {
      const { client } = await start()
      await using victim = await client.connect()
      await using bystander = await client.connect()
      expect(await readLine(bystander.request(bytes('before\n')))).toBe('BEFORE')
      expect(await rejectionOf(within(line.unmarshall(victim.request(bytes('boom\n'))), WAIT, 'read'))).toBeInstanceOf(ConnectionClosedError)
      expect(await readLine(bystander.request(bytes('after\n')))).toBe('AFTER')
      await using newcomer = await client.connect()
      expect(await readLine(newcomer.request(bytes('new\n')))).toBe('NEW')
    })

    it('rejects connect with AbortError (cause = the reason) when the signal is already aborted', async () => {
      const { client } = await start()
      const reason = new Error('cancelled by the test')
      let connecting: Promise<TransportClientSession> | undefined
      // Must reject, not throw synchronously.
      expect(() => {
        connecting = client.connect({ signal: AbortSignal.abort(reason) })
      }).not.toThrow()
      const error = await rejectionOf(connecting as Promise<TransportClientSession>)
      expect(error).toBeInstanceOf(AbortError)
      expect((error as AbortError).cause).toBe(reason)
    })

    it('write() resolves, and its bytes are answered in order with request()', async ({ skip }) => {
      const { client } = await start()
      await using session = await client.connect()
      if (session.write === undefined) {
        skip('this transport does not implement write()')
        return
      }
      await expect(session.write(bytes('w1\n'), { signal: AbortSignal.timeout(WAIT) })).resolves.toBeUndefined()
      await expect(session.write(bytes('w2\n'))).resolves.toBeUndefined()
      const stream = session.request(bytes('r3\n'))
      expect([await readLine(stream), await readLine(stream), await readLine(stream)]).toEqual(['W1', 'W2', 'R3'])
      const reason = new Error('no write')
      const error = await rejectionOf(session.write(bytes('w4\n'), { signal: AbortSignal.abort(reason) }))
      expect(error).toBeInstanceOf(AbortError)
      expect((error as AbortError).cause).toBe(reason)
    })
    it.done()
  })
}
