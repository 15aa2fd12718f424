/**
 * Load: many clients, each with many requests of random sizes, some written by raw sockets in
 * random pieces and some by ApplicationClient (lockstep and pipelined). Every response must match
 * its request, in order per connection, within a bounded time.
 */
import type { Socket } from 'node:net'
import { expect, it } from 'vitest'
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { RecordingLogger, SOAK, nextTurn, prng, rawConnect, within } from './helpers.js'

const CLIENTS = SOAK ? 400 : 200
const REQUESTS = SOAK ? 1_000 : 500
const MAX_PAYLOAD = 8 * 1024
const NL = 10

/** Random bytes without '\n'; payloads are slices of it behind a unique header. */
const POOL = (() => {
  const random = prng(0x10ad)
  const pool = Buffer.alloc(256 * 1024)
  for (let i = 0; i < pool.length; i++) {
    const byte = Math.floor(random() * 256)
    pool[i] = byte === NL ? 0 : byte
  }
  return pool
})()

/** The payload of request `i` of client `c`: 1 B .. 8 KiB, starting with `c:i:` (cut short for tiny sizes). */
function payload(c: number, i: number, random: () => number): Buffer {
  const size = 1 + Math.floor(random() * MAX_PAYLOAD)
  const header = Buffer.from(`${c}:${i}:`)
  const offset = Math.floor(random() * (POOL.length - MAX_PAYLOAD))
  const out = Buffer.allocUnsafe(size)
  const headerBytes = header.copy(out, 0, 0, Math.min(size, header.length))
  POOL.copy(out, headerBytes, offset, offset + size - headerBytes)
  return out
}

/** Raw client: writes each request in 1..4 random pieces with a turn of the event loop between them; reads replies in order. */
async function rawClient(port: number, c: number): Promise<number> {
  const random = prng(c + 1)
  const socket: Socket = await rawConnect(port, 10_000)
  try {
    const expected: Buffer[] = []
    let matched = 0
    let pending: Buffer = Buffer.alloc(0)
    const allRead = new Promise<void>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
        let index: number
        while ((index = pending.indexOf(NL)) >= 0) {
          const reply = pending.subarray(0, index)
          pending = pending.subarray(index + 1)
          const want = expected.shift()
          if (want === undefined || !reply.equals(want)) {
            reject(new Error(`client ${c}: reply ${matched} does not match its request (${reply.length} vs ${want?.length ?? 'none'} bytes)`))
            return
          }
          matched++
          if (matched === REQUESTS) resolve()
        }
      })
      socket.once('error', reject)
      socket.once('close', () => reject(new Error(`client ${c}: closed after ${matched} replies`)))
    })
    allRead.catch(() => undefined) // observed below; a failure while still writing must not be unhandled
    for (let i = 0; i < REQUESTS; i++) {
      const body = payload(c, i, random)
      expected.push(body)
      const frame = Buffer.concat([body, Buffer.from([NL])])
      const pieces = 1 + Math.floor(random() * 4)
      let offset = 0
      for (let p = 1; p <= pieces; p++) {
        const end = p === pieces ? frame.length : Math.min(frame.length, offset + Math.floor(random() * (frame.length - offset + 1)))
        if (end > offset && !socket.write(frame.subarray(offset, end))) {
          await new Promise<void>((resolve) => socket.once('drain', resolve))
        }
        offset = end
        await nextTurn()
      }
    }
    await allRead
    return matched
  } finally {
    socket.destroy()
  }
}

/** ApplicationClient: `maxInFlight` requests on the wire; `window` callers at once so its queue is used too. */
async function appClient(port: number, c: number, maxInFlight: number): Promise<number> {
  const line = new SentinelBytesMarshaller('\n', { maxLength: MAX_PAYLOAD })
  const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), line.marshall, line.unmarshall, { maxInFlight, timeout: 0 })
  const random = prng(c + 1)
  await using session = await client.connect({ signal: AbortSignal.timeout(10_000) })
  let next = 0
  let matched = 0
  const caller = async (): Promise<void> => {
    while (next < REQUESTS) {
      const i = next++
      const body = payload(c, i, random)
      const reply = await session.sendReceive(body)
      if (!Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength).equals(body)) {
        throw new Error(`client ${c}: reply to request ${i} does not match it`)
      }
      matched++
    }
  }
  await Promise.all(Array.from({ length: maxInFlight === 1 ? 1 : maxInFlight * 2 }, () => caller()))
  return matched
}

it(`${CLIENTS} clients × ${REQUESTS} requests of 1 B..8 KiB, raw split writes and ApplicationClient (maxInFlight 1 and 8): every reply matches, in order`, { timeout: 120_000 }, async () => {
  const logger = new RecordingLogger()
  const line = new SentinelBytesMarshaller('\n', { maxLength: MAX_PAYLOAD })
  const app = new ApplicationServer(line.unmarshall, line.marshall, (request: Uint8Array) => request, { logger })
  await using server = new TcpServer({ port: 0, callback: app, logger })
  const { port } = await server.listen()
  const t0 = performance.now()
  const results = await within(
    Promise.all(
      Array.from({ length: CLIENTS }, (_, c) => {
        switch (c % 3) {
          case 0:
            return rawClient(port, c)
          case 1:
            return appClient(port, c, 1)
          default:
            return appClient(port, c, 8)
        }
      }),
    ),
    SOAK ? 240_000 : 60_000,
    'load',
  )
  const seconds = (performance.now() - t0) / 1000
  expect(results).toEqual(Array.from({ length: CLIENTS }, () => REQUESTS))
  expect(seconds).toBeLessThan(SOAK ? 240 : 60)
  expect(logger.at('warn')).toEqual([])
  expect(logger.at('error')).toEqual([])
})
