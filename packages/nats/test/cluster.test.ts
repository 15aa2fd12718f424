// @labwire/nats on a real 3-node nats-server cluster (loopback): services on nodes 1 and 2, a
// client on node 3 that finds them with the plain `nats` client's services API (an independent
// ADR-32 implementation) and calls them; load spreads over both instances; SIGKILL of node 1 is
// survived; a 16 MiB raw argument crosses the cluster in chunks.
import { createHash } from 'node:crypto'
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import { ConnectionClosedError, toText, type ByteHandlerFunction } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { NatsClient, NatsServer, NatsServiceError } from '@labwire/nats'
import { connect, headers, type NatsConnection, type ServiceStats, type ServiceIdentity } from 'nats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NATS_SERVER, startCluster, type NatsNode } from './cluster.js'

if (NATS_SERVER === undefined) console.warn('SKIPPED: @labwire/nats cluster tests — nats-server is not installed (apt-get install nats-server)')

const lines = textMarshaller(new SentinelBytesMarshaller('\n'))

function device(tag: string): ApplicationServer<string, string> {
  return new ApplicationServer(lines.unmarshall, lines.marshall, async (command) => {
    if (command === 'FAIL') throw new Error('asked to fail')
    if (command === 'SLOW') await new Promise((resolve) => setTimeout(resolve, 200))
    return `${tag}:${command}`
  })
}

/** Raw endpoint: replies `length sha256` of the whole argument, or N bytes when asked `BIG N`. */
const raw: ByteHandlerFunction = async (bytes) => {
  const parts: Uint8Array[] = []
  for (;;) {
    const result = await bytes.next()
    if (result.done === true) break
    parts.push(result.value)
  }
  const all = Buffer.concat(parts)
  const text = all.length < 32 ? all.toString('latin1') : ''
  if (text.startsWith('BIG ')) return new Uint8Array(Number(text.slice(4))).map((_, i) => i & 0xff)
  return new TextEncoder().encode(`${all.length} ${createHash('sha256').update(all).digest('hex')}`)
}

const errorsOf = (server: NatsServer): number => server.stats().endpoints[0]?.num_errors ?? 0

async function collect<T>(iterator: Promise<AsyncIterable<T>>): Promise<T[]> {
  const out: T[] = []
  for await (const item of await iterator) out.push(item)
  return out
}

describe.skipIf(NATS_SERVER === undefined)('@labwire/nats on a 3-node nats-server cluster', () => {
  let nodes: NatsNode[] = []
  let a: NatsServer
  let b: NatsServer
  let observer: NatsConnection
  const urls = (...order: number[]): string[] => order.map((i) => (nodes[i] as NatsNode).url)

  beforeAll(async () => {
    nodes = await startCluster(3)
    // noRandomize: each service starts on "its" node and fails over to the others in order.
    a = new NatsServer({ servers: urls(0, 1, 2), natsOptions: { noRandomize: true }, name: 'scope', version: '1.2.3', callback: device('A'), endpoints: [{ name: 'raw', callback: raw }] })
    b = new NatsServer({ servers: urls(1, 2, 0), natsOptions: { noRandomize: true }, name: 'scope', version: '1.2.3', callback: device('B'), endpoints: [{ name: 'raw', callback: raw }] })
    await a.listen()
    await b.listen()
    observer = await connect({ servers: urls(2), noRandomize: true, ignoreClusterUpdates: true })
    // Wait (bounded) until node 3 sees both instances through the routes.
    const until = Date.now() + 10_000
    for (;;) {
      const found = await collect(observer.services.client({ strategy: 'timer' as never, maxWait: 300 }).ping('scope'))
      if (found.length === 2) break
      if (Date.now() > until) throw new Error(`cluster did not form: ${found.length} instance(s) seen from node 3`)
    }
  }, 30_000)

  afterAll(async () => {
    await observer?.close().catch(() => undefined)
    await Promise.allSettled([a?.close(), b?.close()])
    for (const node of nodes) node.kill()
  })

  const clientOnNode3 = (options: { timeout?: number; endpoint?: string } = {}): NatsClient =>
    new NatsClient({ servers: urls(2), natsOptions: { noRandomize: true, ignoreClusterUpdates: true }, name: 'scope', ...options })

  it('the plain nats services API discovers both instances (PING, INFO)', async () => {
    const client = observer.services.client({ strategy: 'timer' as never, maxWait: 300 })
    const pings: ServiceIdentity[] = await collect(client.ping('scope'))
    expect(pings.map((p) => p.id).sort()).toEqual([a.id, b.id].sort())
    for (const p of pings) expect(p).toMatchObject({ type: 'io.nats.micro.v1.ping_response', name: 'scope', version: '1.2.3' })
    const infos = await collect(client.info('scope', a.id))
    expect(infos).toHaveLength(1)
    expect(infos[0]?.endpoints).toEqual([
      { name: 'scope', subject: 'scope', queue_group: 'q', metadata: {} },
      { name: 'raw', subject: 'scope.raw', queue_group: 'q', metadata: {} },
    ])
    expect((await collect(client.ping())).length).toBeGreaterThanOrEqual(2) // $SRV.PING: all services
  })

  it('ApplicationClient reaches the service by name; calls spread over both instances; STATS match', async () => {
    const before = new Map((await collect(observer.services.client({ strategy: 'timer' as never, maxWait: 300 }).stats('scope'))).map((s: ServiceStats) => [s.id, s.endpoints?.[0]?.num_requests ?? 0]))
    const client = new ApplicationClient(clientOnNode3(), lines.marshall, lines.unmarshall, { timeout: 2000, maxInFlight: 8 })
    await using session = await client.connect()
    const calls = 60
    const replies = await Promise.all(Array.from({ length: calls }, (_, i) => session.sendReceive(`CMD${i}`)))
    // Pipelined, answered by two instances, yet each reply is its own call's (in order).
    replies.forEach((reply, i) => expect(reply).toMatch(new RegExp(`^[AB]:CMD${i}$`)))
    const byA = replies.filter((r) => r.startsWith('A:')).length
    expect(byA).toBeGreaterThan(0)
    expect(byA).toBeLessThan(calls)
    const stats: ServiceStats[] = await collect(observer.services.client({ strategy: 'timer' as never, maxWait: 300 }).stats('scope'))
    expect(stats).toHaveLength(2)
    const made = new Map([[a.id, byA], [b.id, calls - byA]])
    for (const s of stats) {
      expect(s.type).toBe('io.nats.micro.v1.stats_response')
      const endpoint = s.endpoints?.find((e) => e.name === 'scope')
      expect(endpoint?.num_requests).toBe((before.get(s.id) ?? 0) + (made.get(s.id) ?? 0))
      expect(endpoint?.processing_time).toBeGreaterThan(0)
      expect(endpoint?.average_processing_time).toBeGreaterThan(0)
    }
  })

  it('a handler that throws answers with Nats-Service-Error headers; counted in num_errors', async () => {
    const nc = await connect({ servers: urls(2), ignoreClusterUpdates: true })
    try {
      const errorsBefore = errorsOf(a) + errorsOf(b)
      const reply = await nc.request('scope', new TextEncoder().encode('FAIL\n'), { timeout: 2000 })
      expect(reply.headers?.get('Nats-Service-Error')).toBe('asked to fail')
      expect(reply.headers?.get('Nats-Service-Error-Code')).toBe('500')
      expect(errorsOf(a) + errorsOf(b)).toBe(errorsBefore + 1)
      const failed = await nc.request('scope', new TextEncoder().encode('no terminator'), { timeout: 2000, headers: headers() })
      expect(failed.headers?.get('Nats-Service-Error-Code')).not.toBe('')
    } finally {
      await nc.close()
    }
    // Through labwire: a typed error, and the session ends (as a TCP server closes it).
    const client = new ApplicationClient(clientOnNode3(), lines.marshall, lines.unmarshall, { timeout: 2000 })
    await using session = await client.connect()
    const error = await session.sendReceive('FAIL').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ConnectionClosedError)
    expect(error instanceof NatsServiceError || (error as { cause?: unknown }).cause instanceof NatsServiceError).toBe(true)
  })

  it('a 16 MiB raw argument crosses the cluster (chunked past max_payload), and a 3 MiB reply comes back', async () => {
    await using session = await clientOnNode3({ endpoint: 'raw', timeout: 20_000 }).connect()
    const big = new Uint8Array(16 * 1024 * 1024)
    for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) & 0xff
    const stream = session.request(big)
    const first = await stream.next()
    expect(toText(first.value as Uint8Array)).toBe(`${big.length} ${createHash('sha256').update(big).digest('hex')}`)
    const reply = session.request(new TextEncoder().encode(`BIG ${3 * 1024 * 1024}`))
    let received = 0
    let ok = true
    while (received < 3 * 1024 * 1024) {
      const chunk = (await reply.next()).value as Uint8Array
      for (let i = 0; i < chunk.length; i += 9973) ok &&= chunk[i] === ((received + i) & 0xff)
      received += chunk.length
    }
    expect(received).toBe(3 * 1024 * 1024)
    expect(ok).toBe(true)
  }, 30_000)

  it('SIGKILL of node 1: calls keep succeeding through the others within seconds', async () => {
    const client = new ApplicationClient(clientOnNode3({ timeout: 1500 }), lines.marshall, lines.unmarshall, { timeout: 1000 })
    let session = await client.connect()
    try {
      expect(await session.sendReceive('before')).toMatch(/^[AB]:before$/)
      const killedAt = Date.now()
      const victim = nodes[0] as NatsNode
      victim.kill()
      let streak = 0
      let firstOk: number | undefined
      const deadline = killedAt + 10_000
      while (streak < 20) {
        if (Date.now() > deadline) throw new Error(`only ${streak} calls in a row succeeded within 10 s of the kill`)
        try {
          expect(await session.sendReceive(`after${streak}`)).toMatch(/^[AB]:after/)
          firstOk ??= Date.now()
          streak++
        } catch {
          streak = 0
          await session.close()
          session = await client.connect()
        }
      }
      expect((firstOk as number) - killedAt).toBeLessThan(5000)
      // Instance A (its node gone) reconnects to another node and serves again.
      const until = Date.now() + 10_000
      for (;;) {
        const found = await collect(observer.services.client({ strategy: 'timer' as never, maxWait: 300 }).ping('scope'))
        if (found.length === 2) break
        if (Date.now() > until) throw new Error('instance A did not come back after its node was killed')
      }
    } finally {
      await session.close()
    }
  }, 30_000)
})

if (NATS_SERVER === undefined) it.skip('@labwire/nats cluster tests: SKIPPED, nats-server is missing (apt-get install nats-server)', () => undefined)
