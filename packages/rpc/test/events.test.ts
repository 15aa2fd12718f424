/** labwire:server:request / labwire:client:request from the RPC server and client, over real TCP. */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { afterEach, describe, expect, it } from 'vitest'
import type { ClientRequestMessage, ServerRequestMessage } from '@labwire/core'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { RemoteError, RpcClient, RpcServer, RpcUnknownMethodError, codecs, defineService } from '../src/index.js'
import { handlers, svc, type Probe } from './service.js'

const subscriptions: Array<[string, (message: unknown) => void]> = []
function listen<T>(name: string): T[] {
  const seen: T[] = []
  const fn = (message: unknown): void => void seen.push(message as T)
  subscribe(name, fn)
  subscriptions.push([name, fn])
  return seen
}
afterEach(() => {
  for (const [name, fn] of subscriptions.splice(0)) unsubscribe(name, fn)
})

async function start(): Promise<{ server: TcpServer; port: number }> {
  const probe: Probe = { notes: [], stopped: [] }
  const server = new TcpServer({ host: '127.0.0.1', port: 0, callback: new RpcServer(svc, handlers(probe)) })
  const { port } = await server.listen()
  return { server, port }
}

describe('RPC diagnostics events', { timeout: 15_000 }, () => {
  it('publishes one labwire:server:request per finished call, with method, kernel, sizes and error codes', async () => {
    const events = listen<ServerRequestMessage>('labwire:server:request')
    const { server, port } = await start()
    try {
      const s = await new RpcClient(svc, new TcpClient({ host: '127.0.0.1', port })).connect({ signal: AbortSignal.timeout(5000) })
      try {
        expect(await s.hello('bob')).toBe('hello bob')
        expect(await s.add([2, 3])).toBe(5)
        expect(await s.add([4, 5], { timeout: 2000 })).toBe(9)
        await expect(s.fail(['ValueError', 'bad range'])).rejects.toBeInstanceOf(RemoteError)
        const items: number[] = []
        for await (const chunk of s.ramp({ n: 3 })) items.push(chunk.length)
        expect(items).toEqual([1, 1, 1])
      } finally {
        await s.close()
      }
      // The stream's completion message is published after its END frame is queued: wait for it, bounded.
      const deadline = Date.now() + 2000
      while (events.length < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
      expect(events.map((e) => e.method)).toEqual(['hello', 'add', 'add', 'fail', 'ramp'])
      for (const e of events) {
        expect(e.kernel).toBe(server.kernel)
        expect(e.transport).toBe('tcp')
        expect(e.peer).toMatch(/^127\.0\.0\.1:\d+$/)
        expect(e.duration).toBeGreaterThanOrEqual(0)
      }
      const [hello, add, addTimed, fail, ramp] = events as [ServerRequestMessage, ServerRequestMessage, ServerRequestMessage, ServerRequestMessage, ServerRequestMessage]
      // hello: 12-byte header + 'bob'; reply: header + 'hello bob'.
      expect([hello.bytesIn, hello.bytesOut, hello.error]).toEqual([15, 21, undefined])
      expect([add.bytesIn, add.bytesOut]).toEqual([20, 16])
      // The deadline adds its u32 to the request frame.
      expect(addTimed.bytesIn).toBe(24)
      // A handler's own non-ERR_ code becomes ERR_HANDLER.
      expect(fail.error).toBe('ERR_HANDLER')
      expect(fail.bytesOut).toBeGreaterThan(12)
      // Three 1-byte chunks and the end frame.
      expect([ramp.bytesOut, ramp.error]).toEqual([3 * 13 + 12, undefined])
    } finally {
      await server.close()
    }
  })

  it('a call stopped by its deadline or by a cancel is published with ERR_TIMEOUT / ERR_ABORTED and no reply bytes', async () => {
    const events = listen<ServerRequestMessage>('labwire:server:request')
    const { server, port } = await start()
    try {
      const s = await new RpcClient(svc, new TcpClient({ host: '127.0.0.1', port })).connect({ signal: AbortSignal.timeout(5000) })
      try {
        await expect(s.sleep(5000, { timeout: 50 })).rejects.toMatchObject({ code: 'ERR_TIMEOUT' })
        await expect(s.sleep(5000, { signal: AbortSignal.timeout(50) })).rejects.toBeInstanceOf(Error)
        const deadline = Date.now() + 3000
        while (events.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
      } finally {
        await s.close()
      }
      expect(events.map((e) => [e.method, e.error, e.bytesOut])).toEqual([
        ['sleep', 'ERR_TIMEOUT', 0],
        ['sleep', 'ERR_ABORTED', 0],
      ])
    } finally {
      await server.close()
    }
  })

  it('names an unknown method by id and reports the RPC error code; nothing is published without subscribers', async () => {
    const { server, port } = await start()
    // A client spec the server does not have in full: method 99 passes the handshake only if both agree,
    // so speak to it with a spec that matches, then call an id the server lacks through a second spec.
    const wider = defineService({ name: 'test', methods: { ...svc.methods, ghost: { id: 99, request: codecs.none, response: codecs.none } } })
    try {
      // Without subscribers: nothing published (the check is `hasSubscribers`).
      const quiet = await new RpcClient(svc, new TcpClient({ host: '127.0.0.1', port })).connect({ signal: AbortSignal.timeout(5000) })
      expect(await quiet.hello('x')).toBe('hello x')
      await quiet.close()

      const events = listen<ServerRequestMessage>('labwire:server:request')
      const s = await new RpcClient(wider, new TcpClient({ host: '127.0.0.1', port })).connect({ signal: AbortSignal.timeout(5000) }).catch((error: unknown) => error)
      // The server refuses the wider spec at the handshake (it names the extra method): no call, no event.
      expect(s).toBeInstanceOf(Error)
      expect(events).toEqual([])

      // An unknown id reaches the server only from a client whose handshake passed: send a raw frame.
      const raw = await new TcpClient({ host: '127.0.0.1', port }).connect({ signal: AbortSignal.timeout(5000) })
      try {
        const hello = new TextEncoder().encode(JSON.stringify({ v: 1, service: 'test', methods: svc.fingerprint }))
        const frame = (type: number, method: number, call: number, payload: Uint8Array): Uint8Array => {
          const out = new Uint8Array(12 + payload.length)
          const view = new DataView(out.buffer)
          view.setUint32(0, 8 + payload.length, true)
          out[4] = type
          view.setUint16(6, method, true)
          view.setUint32(8, call, true)
          out.set(payload, 12)
          return out
        }
        raw.request(frame(0x01, 0, 0, hello))
        raw.request(frame(0x10, 99, 1, new Uint8Array(0)))
        const deadline = Date.now() + 2000
        while (events.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
      } finally {
        await raw.close()
      }
      expect(events).toHaveLength(1)
      expect(events[0]?.method).toBe('#99')
      expect(events[0]?.error).toBe(new RpcUnknownMethodError('x').code)
    } finally {
      await server.close()
    }
  })

  it('RpcClient publishes labwire:client:request per unary call', async () => {
    const { server, port } = await start()
    try {
      const events = listen<ClientRequestMessage>('labwire:client:request')
      const s = await new RpcClient(svc, new TcpClient({ host: '127.0.0.1', port })).connect({ signal: AbortSignal.timeout(5000) })
      try {
        expect(await s.hello('ann')).toBe('hello ann')
        await expect(s.fail(['RangeError', 'no'])).rejects.toBeInstanceOf(RemoteError)
      } finally {
        await s.close()
      }
      expect(events).toHaveLength(2)
      expect(events[0]).toMatchObject({ transport: 'tcp', peer: `127.0.0.1:${port}`, bytesOut: 15, bytesIn: 21 })
      expect(events[0]?.error).toBeUndefined()
      expect(events[1]?.error).toBe('ERR_RPC_REMOTE')
    } finally {
      await server.close()
    }
  })
})
