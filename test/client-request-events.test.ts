/**
 * `labwire:client:request` from ApplicationClient sessions (issue 15, server events): one event per
 * settled call with the transport, the peer, the duration, bytes in and out and the error code;
 * calls made while nobody subscribes are not timed and publish nothing. Real servers on loopback.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { describe, expect, it } from 'vitest'
import { ApplicationClient } from '@labwire/application'
import { AccessRefusedError, MemoryClient, MemoryServer, TimeoutError, type ByteHandler, type ClientRequestMessage } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { WebSocketClient, WebSocketServer } from '@labwire/transport-websocket'
import { bytes, rejectionOf, text } from './helpers/fixtures.js'

const raw = new SentinelBytesMarshaller('\n')
const line = textMarshaller(raw)
/** Upper-cases a line; `drop` gets no answer; `long` gets 100 bytes plus the line end. */
const handler: ByteHandler = async (stream) => {
  const request = text(await raw.unmarshall(stream))
  if (request === 'drop') return undefined
  if (request === 'long') return bytes(`${'x'.repeat(100)}\n`)
  return bytes(`${request.toUpperCase()}\n`)
}

function record(): { events: ClientRequestMessage[]; stop(): void } {
  const events: ClientRequestMessage[] = []
  const listener = (message: unknown): void => {
    events.push(message as ClientRequestMessage)
  }
  subscribe('labwire:client:request', listener)
  return { events, stop: () => unsubscribe('labwire:client:request', listener) }
}

describe('labwire:client:request', () => {
  it('tcp: one event per call with transport, peer, duration, bytes in/out; errors carry their code', async () => {
    await using server = new TcpServer({ port: 0, callback: handler })
    const { port } = await server.listen()
    const rec = record()
    try {
      const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), line.marshall, line.unmarshall, { timeout: 2_000 })
      await using session = await client.connect()
      expect(await session.sendReceive('abc')).toBe('ABC')
      expect(await session.sendReceive('long')).toHaveLength(100)
      expect(await rejectionOf(session.sendReceive('drop', { timeout: 50 }))).toBeInstanceOf(TimeoutError)
      expect(rec.events).toHaveLength(3)
      const [ok, long, dropped] = rec.events
      expect(ok).toMatchObject({ transport: 'tcp', peer: `127.0.0.1:${port}`, bytesOut: 4, bytesIn: 4 })
      expect(ok?.error).toBeUndefined()
      expect(ok?.duration).toBeGreaterThan(0)
      expect(long).toMatchObject({ bytesOut: 5, bytesIn: 101 })
      expect(dropped).toMatchObject({ transport: 'tcp', bytesOut: 5, bytesIn: 0, error: 'ERR_TIMEOUT' })
      expect(dropped?.duration).toBeGreaterThanOrEqual(45)
    } finally {
      rec.stop()
    }
  })

  it('pipelined calls (maxInFlight 4): each event counts its own reply', async () => {
    await using server = new TcpServer({ port: 0, callback: handler })
    const { port } = await server.listen()
    const rec = record()
    try {
      const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), line.marshall, line.unmarshall, { timeout: 2_000, maxInFlight: 4 })
      await using session = await client.connect()
      const replies = await Promise.all(['a', 'long', 'bb', 'long', 'ccc'].map((request) => session.sendReceive(request)))
      expect(replies.map((reply) => reply.length)).toEqual([1, 100, 2, 100, 3])
      expect(rec.events.map((event) => event.bytesIn)).toEqual([2, 101, 3, 101, 4])
      expect(rec.events.map((event) => event.bytesOut)).toEqual([2, 5, 3, 5, 4])
    } finally {
      rec.stop()
    }
  })

  it('websocket, and a call refused by the access policy: ERR_ACCESS_REFUSED', async () => {
    await using server = new WebSocketServer({ port: 0, callback: handler, access: { exclusive: 'refuse' } })
    await server.listen()
    const url = server.url as string
    const rec = record()
    try {
      const client = new ApplicationClient(new WebSocketClient({ url }), line.marshall, line.unmarshall, { timeout: 2_000 })
      await using first = await client.connect()
      expect(await first.sendReceive('one')).toBe('ONE')
      await using second = await client.connect()
      expect(await rejectionOf(second.sendReceive('two'))).toBeInstanceOf(AccessRefusedError)
      expect(rec.events).toHaveLength(2)
      expect(rec.events[0]).toMatchObject({ transport: 'websocket', peer: url, bytesOut: 4, bytesIn: 4 })
      expect(rec.events[1]).toMatchObject({ transport: 'websocket', peer: url, error: 'ERR_ACCESS_REFUSED' })
    } finally {
      rec.stop()
    }
  })

  it('no subscriber when the call is made: nothing is timed or published, even if one subscribes before it settles', async () => {
    await using server = new TcpServer({ port: 0, callback: handler })
    const { port } = await server.listen()
    const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), line.marshall, line.unmarshall, { timeout: 2_000 })
    await using session = await client.connect()
    const unobserved = session.sendReceive('quiet')
    const rec = record()
    try {
      expect(await unobserved).toBe('QUIET')
      expect(rec.events).toHaveLength(0)
      expect(await session.sendReceive('seen')).toBe('SEEN')
      expect(rec.events).toHaveLength(1)
      // The unobserved reply's bytes are not counted into the next one.
      expect(rec.events[0]).toMatchObject({ bytesIn: 5, bytesOut: 5 })
    } finally {
      rec.stop()
    }
  })
})

describe('labwire:client:request on the memory transport', () => {
  it('names the transport from the session class (memory) and counts the bytes', async () => {
    const server = new MemoryServer({ callback: handler })
    const rec = record()
    try {
      const client = new ApplicationClient(new MemoryClient(server), line.marshall, line.unmarshall, { timeout: 2_000 })
      await using session = await client.connect()
      expect(await session.sendReceive('hi')).toBe('HI')
      expect(rec.events).toHaveLength(1)
      expect(rec.events[0]).toMatchObject({ transport: 'memory', bytesOut: 3, bytesIn: 3 })
    } finally {
      rec.stop()
      await server.close()
    }
  })
})
