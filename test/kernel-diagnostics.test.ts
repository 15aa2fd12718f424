/**
 * Server events on node:diagnostics_channel (issue 15 item 4): connect, request (duration, bytes
 * in/out, error code), close; and the client helper.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { afterEach, describe, expect, it } from 'vitest'
import {
  FramingError,
  clientRequestChannel,
  publishClientRequest,
  type ClientRequestMessage,
  type ServerCloseMessage,
  type ServerConnectMessage,
  type ServerRequestMessage,
} from '@labwire/core'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { ApplicationServer } from '@labwire/application'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { bytes, text, within } from './helpers/fixtures.js'

const line = new SentinelBytesMarshaller('\n')
const WAIT = 5_000

const subscriptions: [string, (message: unknown) => void][] = []
function listen<T>(name: string): T[] {
  const seen: T[] = []
  const listener = (message: unknown): void => {
    seen.push(message as T)
  }
  subscribe(name, listener)
  subscriptions.push([name, listener])
  return seen
}

afterEach(() => {
  for (const [name, listener] of subscriptions.splice(0)) unsubscribe(name, listener)
})

describe('labwire:server:* events', () => {
  it('connect, one request event per request (sync fast path and async), an error code for a bad request, close with totals', async () => {
    const connects = listen<ServerConnectMessage>('labwire:server:connect')
    const requests = listen<ServerRequestMessage>('labwire:server:request')
    const closes = listen<ServerCloseMessage>('labwire:server:close')
    const app = new ApplicationServer(line.unmarshall, line.marshall, (request: Uint8Array) => {
      if (text(request) === 'bad') throw new FramingError('bad request', { recoverable: true })
      return bytes(text(request).toUpperCase())
    })
    await using server = new TcpServer({ port: 0, callback: app })
    const { port } = await server.listen()
    const session = await new TcpClient({ host: '127.0.0.1', port, timeout: WAIT }).connect()
    const stream = session.request(bytes('hello\n'))
    expect(text(await within(line.unmarshall(stream), WAIT, 'reply'))).toBe('HELLO')
    session.request(bytes('bad\nworld\n'))
    expect(text(await within(line.unmarshall(stream), WAIT, 'reply after the bad one'))).toBe('WORLD')
    await session.close()
    await within(
      (async () => {
        while (closes.length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
      })(),
      WAIT,
      'close event',
    )
    expect(connects).toEqual([{ server: 'TcpServer', kernel: expect.any(Object) as unknown, transport: 'tcp', peer: expect.stringMatching(/^127\.0\.0\.1:\d+$/) as unknown, connections: 1 }])
    expect(requests).toHaveLength(3)
    expect(requests[0]).toMatchObject({ transport: 'tcp', bytesIn: 6, bytesOut: 6 })
    expect(requests[0]?.duration).toBeGreaterThanOrEqual(0)
    expect(requests[0]?.error).toBeUndefined()
    expect(requests[1]).toMatchObject({ bytesIn: 4, bytesOut: 0, error: 'ERR_FRAMING' })
    expect(requests[2]).toMatchObject({ bytesIn: 6, bytesOut: 6 })
    expect(closes[0]).toMatchObject({ server: 'TcpServer', transport: 'tcp', bytesIn: 16, bytesOut: 12, requests: 2, connections: 0 })
  })

  it('publishClientRequest reaches subscribers of labwire:client:request, and costs nothing without them', () => {
    expect(clientRequestChannel.hasSubscribers).toBe(false)
    publishClientRequest({ transport: 'tcp', peer: 'x', duration: 1, bytesIn: 1, bytesOut: 1 })
    const seen = listen<ClientRequestMessage>('labwire:client:request')
    publishClientRequest({ transport: 'tcp', peer: '127.0.0.1:5025', duration: 2, bytesIn: 3, bytesOut: 4, error: 'ERR_TIMEOUT' })
    expect(seen).toEqual([{ transport: 'tcp', peer: '127.0.0.1:5025', duration: 2, bytesIn: 3, bytesOut: 4, error: 'ERR_TIMEOUT' }])
  })
})
