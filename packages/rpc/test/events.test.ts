/** Per-method server events: RpcServer publishes each finished call on `labwire:server:request` with its method name. */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { describe, expect, it } from 'vitest'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { RemoteError, RpcClient, RpcServer } from '../src/index.js'
import { handlers, svc } from './service.js'

interface Seen {
  kernel?: object
  transport: string
  peer: string
  duration: number
  bytesIn: number
  bytesOut: number
  method?: string
  error?: string
}

describe('RpcServer server events', () => {
  it('publishes one labwire:server:request per call, named by method, with the kernel, bytes and error codes', { timeout: 15_000 }, async () => {
    const server = new TcpServer({ host: '127.0.0.1', port: 0, callback: new RpcServer(svc, handlers({ notes: [], stopped: [] })) })
    const { port } = await server.listen()
    const seen: Seen[] = []
    const listener = (message: unknown): void => {
      const m = message as Seen
      if (m.kernel === server.kernel) seen.push(m)
    }
    subscribe('labwire:server:request', listener)
    try {
      const session = await new RpcClient(svc, new TcpClient({ host: '127.0.0.1', port })).connect({ signal: AbortSignal.timeout(5000) })
      expect(await session.hello('dmm')).toBe('hello dmm')
      expect(await session.add([2, 3])).toBe(5)
      expect(await session.add([4, 5])).toBe(9)
      expect(await session.sleep(20)).toBe('slept 20')
      await expect(session.fail(['ValueError', 'out of range'])).rejects.toBeInstanceOf(RemoteError)
      const items: number[] = []
      for await (const chunk of session.ramp({ n: 3 })) items.push(chunk[0] as number)
      expect(items).toEqual([0, 1, 2])
      await session.close()
    } finally {
      unsubscribe('labwire:server:request', listener)
      await server.close()
    }
    expect(seen.map((m) => m.method)).toEqual(['hello', 'add', 'add', 'sleep', 'fail', 'ramp'])
    for (const m of seen) {
      expect(m.transport).toBe('tcp')
      expect(m.peer).toMatch(/^127\.0\.0\.1:\d+$/)
      expect(m.duration).toBeGreaterThanOrEqual(0)
    }
    expect(seen[0]).toMatchObject({ bytesIn: 3, bytesOut: 9 }) // 'dmm' in, 'hello dmm' out
    expect(seen[1]).toMatchObject({ bytesIn: 8, bytesOut: 4 })
    expect(seen[3]?.duration).toBeGreaterThanOrEqual(15)
    expect(seen[3]?.error).toBeUndefined()
    expect(seen[4]?.error).toBe('ERR_HANDLER') // a plain Error with a non-labwire code
  })
})
