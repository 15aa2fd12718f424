/**
 * Issue 16 #10 (the WebSocket server accepts any Origin) and #11 (unfinished fragmented messages
 * bypass bufferSize): regression tests.
 */
import { describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { toBytes, toText, type ByteHandler } from '@labwire/core'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { DEFAULT_SERVER_MAX_PAYLOAD, DEFAULT_WS_MAX_CONNECTIONS, WebSocketServer, type WebSocketServerOptions } from '@labwire/transport-websocket'

const line = new SentinelBytesMarshaller('\n')
const WAIT = 5_000
const echo: ByteHandler = async (stream) => toBytes(`${toText(await line.unmarshall(stream))}\n`)

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms)
  })
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer))
}

async function serve(options: Partial<WebSocketServerOptions> = {}): Promise<{ server: WebSocketServer; url: string; port: number }> {
  const server = new WebSocketServer({ port: 0, callback: echo, ...options })
  const { port } = await server.listen()
  return { server, url: server.url as string, port }
}

/** Open a socket with these headers: 'open' or the HTTP status of the refusal. */
function tryOpen(url: string, headers: Record<string, string>): Promise<'open' | number> {
  const ws = new WebSocket(url, { headers })
  return within(
    new Promise<'open' | number>((resolve) => {
      ws.on('open', () => {
        ws.close()
        resolve('open')
      })
      ws.on('unexpected-response', (_request, response) => {
        resolve(response.statusCode ?? 0)
        ws.terminate()
      })
      ws.on('error', () => resolve(-1))
    }),
    WAIT,
    'upgrade',
  )
}

describe('issue 16 #10: the WebSocket server accepts any Origin', () => {
  it('refuses a browser from another origin (403), accepts no-Origin clients and its own origin', async () => {
    const { server, url, port } = await serve()
    try {
      expect(await tryOpen(url, { Origin: 'http://evil.example' })).toBe(403)
      expect(await tryOpen(url, {})).toBe('open')
      expect(await tryOpen(url, { Origin: `http://127.0.0.1:${port}` })).toBe('open')
      expect(await tryOpen(url, { Origin: 'null' })).toBe(403)
    } finally {
      await server.close()
    }
  })

  it('origins: a list lets those origins in, "*" any', async () => {
    const listed = await serve({ origins: ['https://lab.example'] })
    try {
      expect(await tryOpen(listed.url, { Origin: 'https://lab.example' })).toBe('open')
      expect(await tryOpen(listed.url, { Origin: 'https://other.example' })).toBe(403)
    } finally {
      await listed.server.close()
    }
    const any = await serve({ origins: '*' })
    try {
      expect(await tryOpen(any.url, { Origin: 'https://other.example' })).toBe('open')
    } finally {
      await any.server.close()
    }
  })

  it('a loopback server refuses a foreign Host header (DNS rebinding), accepts localhost names; allowedHosts widens it', async () => {
    const { server, url } = await serve()
    try {
      expect(await tryOpen(url, { Host: 'evil.example' })).toBe(403)
      expect(await tryOpen(url, { Host: 'localhost:1234' })).toBe('open')
    } finally {
      await server.close()
    }
    const wide = await serve({ allowedHosts: ['gateway.lab'] })
    try {
      expect(await tryOpen(wide.url, { Host: 'gateway.lab:80' })).toBe('open')
      expect(await tryOpen(wide.url, { Host: 'evil.example' })).toBe(403)
    } finally {
      await wide.server.close()
    }
  })
})

describe('issue 16 #11: unfinished fragmented WebSocket messages bypass bufferSize', () => {
  it('maxPayload defaults to the framer limit (1 MiB): an unfinished message past it closes the connection with 1009', async () => {
    expect(DEFAULT_SERVER_MAX_PAYLOAD).toBe(1024 * 1024)
    expect(DEFAULT_WS_MAX_CONNECTIONS).toBe(1024)
    const { server, url } = await serve()
    try {
      const ws = new WebSocket(url)
      await within(new Promise<void>((resolve) => ws.once('open', () => resolve())), WAIT, 'open')
      const closed = within(new Promise<number>((resolve) => ws.once('close', (code: number) => resolve(code))), WAIT, 'closed')
      const fragment = Buffer.alloc(256 * 1024, 0x41)
      // Fragments of one message, never finished: 2 MiB in all.
      for (let i = 0; i < 8 && ws.readyState === WebSocket.OPEN; i++) ws.send(fragment, { fin: false, binary: true })
      expect(await closed).toBe(1009)
      expect(server.connectionCount).toBeLessThanOrEqual(1)
    } finally {
      await server.close()
    }
  })

  it('maxConnections bounds the connections (503 past it)', async () => {
    const { server, url } = await serve({ maxConnections: 2 })
    const open: WebSocket[] = []
    try {
      for (let i = 0; i < 2; i++) {
        const ws = new WebSocket(url)
        open.push(ws)
        await within(new Promise<void>((resolve) => ws.once('open', () => resolve())), WAIT, 'open')
      }
      expect(await tryOpen(url, {})).toBe(503)
    } finally {
      for (const ws of open) ws.terminate()
      await server.close()
    }
  })
})
