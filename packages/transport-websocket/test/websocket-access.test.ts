/**
 * The access policy on WebSocketServer with several real clients: a session turned away is closed
 * with 4403 (refused, holder in the reason) or 4408 (queueTimeout) — issue 15 item 2.
 */
import { describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { AccessRefusedError, AccessTimeoutError, accessErrorFromClose, toBytes, toText, type ByteHandler, type TransportClientSession } from '@labwire/core'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { WebSocketClient, WebSocketServer } from '@labwire/transport-websocket'

const line = new SentinelBytesMarshaller('\n')
const WAIT = 5_000
const bytes = toBytes
const text = toText

const echo: ByteHandler = async (stream) => bytes(`${text(await line.unmarshall(stream)).toUpperCase()}\n`)

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms)
  })
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer))
}

async function ask(session: TransportClientSession, request: string): Promise<string> {
  return text(await within(line.unmarshall(session.request(bytes(`${request}\n`))), WAIT, `reply to ${request}`))
}

/** A raw `ws` client, to see the close code and reason a turned-away WebSocket session gets. */
async function wsClose(url: string, send?: string): Promise<{ code: number; reason: string }> {
  const ws = new WebSocket(url)
  return within(
    new Promise<{ code: number; reason: string }>((resolve, reject) => {
      ws.on('open', () => {
        if (send !== undefined) ws.send(bytes(send))
      })
      ws.on('error', reject)
      ws.on('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }))
    }),
    WAIT,
    'websocket close',
  )
}

describe('access policy on websocket', () => {
  it("exclusive: 'refuse' closes a second session with 4403 and the holder in the reason; 'queue' serves in turn; queueTimeout closes with 4408", async () => {
    const refusing = new WebSocketServer({ port: 0, callback: echo, access: { exclusive: 'refuse' } })
    await refusing.listen()
    try {
      const url = refusing.url as string
      await using first = await new WebSocketClient({ url, timeout: WAIT }).connect()
      expect(await ask(first, 'one')).toBe('ONE')
      const { code, reason } = await wsClose(url)
      expect(code).toBe(4403)
      const error = accessErrorFromClose(code, reason)
      expect(error).toBeInstanceOf(AccessRefusedError)
      expect((error as AccessRefusedError).holder).toMatch(/^127\.0\.0\.1:\d+$/)
      expect(await ask(first, 'still')).toBe('STILL')
    } finally {
      await refusing.close()
    }

    const queueing = new WebSocketServer({ port: 0, callback: echo, access: { exclusive: 'queue', queueTimeout: 5_000 } })
    await queueing.listen()
    try {
      const url = queueing.url as string
      const first = await new WebSocketClient({ url, timeout: WAIT }).connect()
      expect(await ask(first, 'a')).toBe('A')
      await using second = await new WebSocketClient({ url, timeout: WAIT }).connect()
      const reply = ask(second, 'b')
      const early = await Promise.race([reply.then(() => 'answered'), new Promise((resolve) => setTimeout(() => resolve('waiting'), 200))])
      expect(early).toBe('waiting')
      await first.close()
      expect(await reply).toBe('B')
    } finally {
      await queueing.close()
    }

    const timing = new WebSocketServer({ port: 0, callback: echo, access: { exclusive: 'queue', queueTimeout: 150 } })
    await timing.listen()
    try {
      const url = timing.url as string
      await using first = await new WebSocketClient({ url, timeout: WAIT }).connect()
      expect(await ask(first, 'a')).toBe('A')
      const { code, reason } = await wsClose(url, 'b\n')
      expect(code).toBe(4408)
      const error = accessErrorFromClose(code, reason)
      expect(error).toBeInstanceOf(AccessTimeoutError)
      expect(error?.message).toMatch(/waited 150 ms for exclusive access/)
    } finally {
      await timing.close()
    }
  })
})

