/**
 * Random bytes from raw clients into TcpServers running a sentinel and a fixed-length
 * ApplicationServer: the server never crashes, answers exactly the complete frames (in order),
 * logs only labwire errors at warn/error level, and still serves a well-behaved client afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { ConnectionClosedError, FrameTooLargeError, LabwireError } from '@labwire/core'
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import { FixedLengthBytesMarshaller, SentinelBytesMarshaller } from '@labwire/marshallers'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { RecordingLogger, SOAK, nextTurn, rawConnect, readUntilClose, type Drained, type LogRecord } from './helpers.js'

const NUM_RUNS = SOAK ? 500 : 60
const MAX_LENGTH = 32 // small, so random input often exceeds it
const FRAME = 8
const NL = 10

type Outcome = 'clean' | 'partial' | 'too-large'

interface Expectation {
  replies: Uint8Array
  outcome: Outcome
  partial: Uint8Array
}

/** What the sentinel echo server must answer to `input`, and how the connection must end. */
function sentinelModel(input: Uint8Array): Expectation {
  const replies: number[] = []
  let rest = input
  for (;;) {
    const index = rest.indexOf(NL)
    if (index < 0) {
      if (rest.length > MAX_LENGTH) return { replies: Uint8Array.from(replies), outcome: 'too-large', partial: rest }
      return { replies: Uint8Array.from(replies), outcome: rest.length > 0 ? 'partial' : 'clean', partial: rest }
    }
    if (index > MAX_LENGTH) return { replies: Uint8Array.from(replies), outcome: 'too-large', partial: rest }
    replies.push(...rest.subarray(0, index), NL)
    rest = rest.subarray(index + 1)
  }
}

/** What the fixed-length reversing server must answer to `input`. */
function fixedModel(input: Uint8Array): Expectation {
  const whole = input.length - (input.length % FRAME)
  const replies = new Uint8Array(whole)
  for (let i = 0; i < whole; i += FRAME) replies.set(input.slice(i, i + FRAME).reverse(), i)
  const partial = input.subarray(whole)
  return { replies, outcome: partial.length > 0 ? 'partial' : 'clean', partial }
}

interface Target {
  name: string
  server: TcpServer
  port: number
  logger: RecordingLogger
  model: (input: Uint8Array) => Expectation
  /** A well-behaved request and its reply. */
  probe: [Uint8Array, Uint8Array]
  marshall: (payload: Uint8Array) => Uint8Array
  unmarshall: (bytes: AsyncIterator<Uint8Array>) => Promise<Uint8Array>
}

const targets: Target[] = []

beforeAll(async () => {
  {
    const logger = new RecordingLogger()
    const line = new SentinelBytesMarshaller('\n', { maxLength: MAX_LENGTH })
    const app = new ApplicationServer(line.unmarshall, line.marshall, (payload: Uint8Array) => payload, { logger })
    const server = new TcpServer({ port: 0, callback: app, logger })
    const { port } = await server.listen()
    const hello = new TextEncoder().encode('hello')
    targets.push({ name: 'sentinel', server, port, logger, model: sentinelModel, probe: [hello, hello], marshall: line.marshall, unmarshall: line.unmarshall })
  }
  {
    const logger = new RecordingLogger()
    const fixed = new FixedLengthBytesMarshaller(FRAME, { logger })
    const app = new ApplicationServer(fixed.unmarshall, fixed.marshall, (payload: Uint8Array) => payload.slice().reverse(), { logger })
    const server = new TcpServer({ port: 0, callback: app, logger })
    const { port } = await server.listen()
    const probe = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8])
    targets.push({ name: 'fixed-length', server, port, logger, model: fixedModel, probe: [probe, probe.slice().reverse()], marshall: fixed.marshall, unmarshall: fixed.unmarshall })
  }
})

afterAll(async () => {
  for (const target of targets.splice(0)) await target.server.close()
})

/** Random bytes, and random lines (bodies of 0..48 random bytes, most '\n'-terminated): short frames and oversized ones. */
const wireBytes = fc.oneof(
  fc.uint8Array({ maxLength: 400, size: 'max' }),
  fc
    .array(fc.record({ body: fc.uint8Array({ maxLength: 48, size: 'max' }), terminated: fc.nat(3) }), { maxLength: 12, size: 'max' })
    .map((lines) => Uint8Array.from(lines.flatMap(({ body, terminated }) => (terminated > 0 ? [...body, NL] : [...body])))),
)
const cuts = fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 12, size: 'max' })

/** Write `input` in pieces (a turn of the event loop between them), then end or reset; collect what comes back. */
async function exchange(port: number, input: Uint8Array, pieces: number[], abrupt: boolean): Promise<{ drained: Drained; peer: string }> {
  const raw = await rawConnect(port)
  const peer = `127.0.0.1:${raw.localPort ?? 0}`
  const drained = readUntilClose(raw, 5_000)
  let offset = 0
  let i = 0
  while (offset < input.length && raw.writable) {
    const size = pieces.length === 0 ? input.length : (pieces[i++ % pieces.length] as number)
    raw.write(input.subarray(offset, offset + size))
    offset += size
    await nextTurn()
  }
  if (abrupt) raw.resetAndDestroy()
  else raw.end()
  return { drained: await drained, peer }
}

/** How serveConnection reports the end of a connection: at debug, or as the warning / error that ended it. */
function isEndOfConnection(record: LogRecord): boolean {
  return record.level === 'warn' || record.level === 'error' || record.message === 'connection ended by peer' || record.message === 'connection failed'
}

function checkTyped(records: readonly LogRecord[]): void {
  for (const record of records) {
    if (record.level === 'warn' || record.level === 'error') {
      expect(record.context.err, record.message).toBeInstanceOf(LabwireError)
    }
  }
}

describe.each(['sentinel', 'fixed-length'])('random bytes into a %s server', (name) => {
  it('never crash it, are answered frame by frame, are logged as labwire errors only; a good client is served after', async () => {
    const target = targets.find((t) => t.name === name) as Target
    const { logger } = target
    let abrupts = 0
    await fc.assert(
      fc.asyncProperty(wireBytes, cuts, fc.boolean(), async (input, pieces, abrupt) => {
        const since = logger.records.length
        const { drained, peer } = await exchange(target.port, input, pieces, abrupt)
        // The server has finished with this connection once it logs how it ended; only then are
        // its records complete (and a later connection reusing the port is not confused with it).
        await logger.waitFor((r) => r.context.peer === peer && isEndOfConnection(r), 5_000, since)
        const mine = logger.records.slice(since).filter((r) => r.context.peer === peer && (r.level === 'warn' || r.level === 'error'))
        checkTyped(mine)
        if (abrupt) {
          abrupts++
          return
        }
        const expected = target.model(input)
        expect(new Uint8Array(drained.data)).toEqual(expected.replies)
        if (expected.outcome === 'clean') {
          expect(mine).toEqual([])
        } else if (expected.outcome === 'partial') {
          expect(mine.map((r) => r.level)).toEqual(['warn'])
          const err = mine[0]?.context.err as ConnectionClosedError
          expect(err).toBeInstanceOf(ConnectionClosedError)
          expect(err.partial).toEqual(expected.partial)
        } else {
          expect(mine.map((r) => r.level)).toEqual(['error'])
          expect(mine[0]?.context.err).toBeInstanceOf(FrameTooLargeError)
        }
      }),
      { numRuns: NUM_RUNS, seed: SOAK ? Date.now() : 0x1abe1, endOnFailure: true },
    )
    expect(abrupts).toBeGreaterThan(0)
    checkTyped(logger.records)

    const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port: target.port }), target.marshall, target.unmarshall, { timeout: 5_000 })
    await using session = await client.connect()
    const [request, reply] = target.probe
    expect(await session.sendReceive(request)).toEqual(reply)
    expect(await session.sendReceive(request)).toEqual(reply)
  })
})
