import { createSocket } from 'node:dgram'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { connect } from 'node:net'
import { ConnectionError, TimeoutError } from '@labwire/core'
import { RegistryClient, RegistryRegistration, RegistryReplyError, RegistryServer, encodeBrine, type RegistryChangeEvent, type RegistryMode } from '@labwire/registry'
import { describe, expect, it } from 'vitest'

async function poll(check: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms
  while (!check()) {
    if (Date.now() > until) throw new Error(`condition not met within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

for (const mode of ['udp', 'tcp'] as const satisfies readonly RegistryMode[]) {
  describe(`labwire registry over ${mode}`, () => {
    it('register, discover (case-insensitive), list, unregister', async () => {
      await using server = new RegistryServer({ port: 0, mode })
      const { port } = await server.listen()
      const client = new RegistryClient({ port, mode, timeout: 1000 })
      expect(await client.register(['Scope', 'dmm'], 5025)).toBe(1)
      expect(await client.register('scope', 5026)).toBe(1)
      expect(await client.discover('SCOPE')).toEqual([
        { host: '127.0.0.1', port: 5025 },
        { host: '127.0.0.1', port: 5026 },
      ])
      expect(await client.discover('sCoPe')).toHaveLength(2)
      expect((await client.list()).sort()).toEqual(['DMM', 'SCOPE'])
      expect(await client.list({ filterHost: '10.9.9.9' })).toEqual([])
      expect(await client.discover('nothing')).toEqual([])
      await client.unregister('scope', 5025)
      expect(await client.discover('scope')).toEqual([{ host: '127.0.0.1', port: 5026 }])
      expect(await client.discover('dmm')).toEqual([]) // RPyC semantics: the server leaves under all its names
    })

    it('a service advertises its own host (multihomed, containers)', async () => {
      await using server = new RegistryServer({ port: 0, mode })
      const { port } = await server.listen()
      const client = new RegistryClient({ port, mode, timeout: 1000 })
      await client.register('psu', 7000, { host: 'psu-7.lab.example' })
      expect(await client.discover('psu')).toEqual([{ host: 'psu-7.lab.example', port: 7000 }])
      await client.unregister('psu', 7000) // from 127.0.0.1: not that entry
      expect(await client.discover('psu')).toHaveLength(1)
      await client.unregister('psu', 7000, { host: 'psu-7.lab.example' })
      expect(await client.discover('psu')).toEqual([])
      await expect(client.register('psu', 7000, { host: 'bad host!' })).rejects.toThrow(RangeError)
    })

    it('prunes stale entries on a timer, not only on query (short TTL)', async () => {
      await using server = new RegistryServer({ port: 0, mode, pruneTimeout: 150 })
      const { port } = await server.listen()
      const client = new RegistryClient({ port, mode, timeout: 1000 })
      await client.register('stale', 6000)
      expect(server.services().get('STALE')).toHaveLength(1)
      // Nobody queries: the timer alone removes it.
      await poll(() => !server.services().has('STALE'), 2000)
      // A service that keeps re-registering stays.
      const keep = new RegistryRegistration({ client, name: 'kept', port: 6001, period: 40 })
      expect(await keep.start()).toBe(true)
      await new Promise((resolve) => setTimeout(resolve, 400))
      expect(await client.discover('kept')).toEqual([{ host: '127.0.0.1', port: 6001 }])
      await keep.stop()
      await keep.stop() // idempotent
      expect(await client.discover('kept')).toEqual([])
    })

    it('several registries: merged answers, one down is tolerated, all down is a typed error', async () => {
      await using a = new RegistryServer({ port: 0, mode })
      await using b = new RegistryServer({ port: 0, mode })
      const pa = (await a.listen()).port
      const pb = (await b.listen()).port
      await new RegistryClient({ port: pa, mode }).register('a-only', 1111)
      await new RegistryClient({ port: pb, mode }).register('both', 2222)
      await new RegistryClient({ port: pa, mode }).register('both', 3333)
      const dead = new RegistryServer({ port: 0, mode })
      const pd = (await dead.listen()).port
      await dead.close()
      const client = new RegistryClient({ registries: [`127.0.0.1:${pa}`, { host: '127.0.0.1', port: pb }, `127.0.0.1:${pd}`], mode, timeout: 300 })
      expect(await client.discover('both')).toEqual([
        { host: '127.0.0.1', port: 3333 },
        { host: '127.0.0.1', port: 2222 },
      ])
      expect((await client.list()).sort()).toEqual(['A-ONLY', 'BOTH'])
      expect(await client.register('new', 4444)).toBe(2)
      const none = new RegistryClient({ registries: [`127.0.0.1:${pd}`], mode, timeout: 300 })
      const error = await none.discover('both').catch((e: unknown) => e)
      expect(error instanceof ConnectionError || error instanceof TimeoutError).toBe(true)
    })

    it('a full table refuses with RegistryReplyError; listing off answers None', async () => {
      await using server = new RegistryServer({ port: 0, mode, maxEntries: 2, allowListing: false })
      const { port } = await server.listen()
      const client = new RegistryClient({ port, mode, timeout: 1000 })
      await client.register(['a', 'b'], 1000)
      await client.register(['a', 'b'], 1000) // a refresh needs no room
      await expect(client.register('c', 1000)).rejects.toThrow(RegistryReplyError)
      await expect(client.list()).rejects.toThrow(/listing is disabled/)
    })

    it('hostile input is dropped and the registry goes on', async () => {
      await using server = new RegistryServer({ port: 0, mode, requestTimeout: 300 })
      const { port } = await server.listen()
      const garbage = [
        Buffer.from('not brine at all'),
        Buffer.from(encodeBrine(['RPYC', 'REGISTER', [['x'], 99999]])),
        Buffer.from(encodeBrine(['RPYC', 'REGISTER', [[], 80]])),
        Buffer.from(encodeBrine(['XXXX', 'LIST', [[null]]])),
        Buffer.from(encodeBrine(['RPYC', 'NOPE', []])),
        Buffer.from(encodeBrine(['RPYC', 'REGISTER', [['x'], 80, 'a b']])),
        Buffer.from([0x15, 0xff, 0xff, 0xff, 0xff]),
      ]
      for (const bytes of garbage) {
        if (mode === 'udp') {
          const socket = createSocket('udp4')
          await new Promise<void>((resolve) => socket.send(bytes, port, '127.0.0.1', () => resolve()))
          socket.close()
        } else {
          const socket = connect(port, '127.0.0.1')
          socket.on('error', () => undefined)
          socket.end(bytes)
          await new Promise((resolve) => socket.on('close', resolve))
        }
      }
      expect(server.services().size).toBe(0)
      const client = new RegistryClient({ port, mode, timeout: 1000 })
      await client.register('alive', 80)
      expect(await client.discover('alive')).toHaveLength(1)
    })

    it('abort and timeout are typed', async () => {
      await using server = new RegistryServer({ port: 0, mode })
      const { port } = await server.listen()
      const client = new RegistryClient({ port, mode })
      await expect(client.discover('x', { signal: AbortSignal.abort(new Error('stop')) })).rejects.toMatchObject({ name: 'AbortError' })
    })
  })
}

it('a UDP registry that does not answer is a TimeoutError naming host:port', async () => {
  // A bound socket that never replies.
  const mute = createSocket('udp4')
  await new Promise<void>((resolve) => mute.bind(0, '127.0.0.1', () => resolve()))
  const { port } = mute.address()
  try {
    const client = new RegistryClient({ port, timeout: 150 })
    await expect(client.discover('x')).rejects.toThrow(new RegExp(`127\\.0\\.0\\.1:${port}.*150 ms`))
    await expect(client.discover('x')).rejects.toBeInstanceOf(TimeoutError)
  } finally {
    mute.close()
  }
})

it('rate limit: a source over rateLimit requests per second is not answered', async () => {
  await using server = new RegistryServer({ port: 0, rateLimit: 5 })
  const { port } = await server.listen()
  const client = new RegistryClient({ port, timeout: 300 })
  const results = await Promise.allSettled(Array.from({ length: 8 }, () => client.discover('x')))
  expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(5)
  expect(results.filter((r) => r.status === 'rejected').every((r) => r.reason instanceof TimeoutError)).toBe(true)
  await new Promise((resolve) => setTimeout(resolve, 1000))
  expect(await client.discover('x')).toEqual([])
})

it('publishes joins and leaves on the labwire:registry:change diagnostics channel', async () => {
  const events: RegistryChangeEvent[] = []
  const listener = (message: unknown): void => {
    events.push(message as RegistryChangeEvent)
  }
  subscribe('labwire:registry:change', listener)
  try {
    await using server = new RegistryServer({ port: 0, pruneTimeout: 100 })
    const { port } = await server.listen()
    const client = new RegistryClient({ port })
    await client.register('scope', 5025)
    await client.register('scope', 5025) // a refresh is not a join
    await client.unregister('scope', 5025)
    await client.register('dmm', 5026)
    await poll(() => events.length === 4, 2000)
    expect(events).toEqual([
      { type: 'added', reason: 'register', name: 'SCOPE', host: '127.0.0.1', port: 5025 },
      { type: 'removed', reason: 'unregister', name: 'SCOPE', host: '127.0.0.1', port: 5025 },
      { type: 'added', reason: 'register', name: 'DMM', host: '127.0.0.1', port: 5026 },
      { type: 'removed', reason: 'pruned', name: 'DMM', host: '127.0.0.1', port: 5026 },
    ])
  } finally {
    unsubscribe('labwire:registry:change', listener)
  }
})

it('constructor options are checked', () => {
  expect(() => new RegistryServer({ mode: 'x' as RegistryMode })).toThrow(RangeError)
  expect(() => new RegistryServer({ pruneTimeout: -1 })).toThrow(RangeError)
  expect(() => new RegistryClient({ registries: [] })).toThrow(RangeError)
  expect(() => new RegistryClient({ registries: ['h:99999'] })).toThrow(RangeError)
})
