// @labwire/nats on one real nats-server (loopback): concurrency, no responders, limits, queue
// groups, reconnect after the server restarts.
import { spawn } from 'node:child_process'
import { ConnectionError, FrameTooLargeError, toBytes, toText, type ByteHandlerFunction } from '@labwire/core'
import { NatsClient, NatsServer, NatsServiceError, NoRespondersError, openConnection, reconnectBackoff } from '@labwire/nats'
import { connect, createInbox, headers, type Msg } from 'nats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NATS_SERVER, freePorts, startCluster, type NatsNode } from './cluster.js'

if (NATS_SERVER === undefined) console.warn('SKIPPED: @labwire/nats single-node tests — nats-server is not installed (apt-get install nats-server)')

/** Echo handler: reads the whole request; `slow:` requests wait 300 ms first. */
const echo = (tag = ''): ByteHandlerFunction => async (bytes) => {
  const first = await bytes.next()
  const text = first.done === true ? '' : toText(first.value)
  if (text.startsWith('slow:')) await new Promise((resolve) => setTimeout(resolve, 300))
  return toBytes(`${tag}${text}`)
}

async function ask(client: NatsClient, text: string): Promise<string> {
  await using session = await client.connect()
  const result = await session.request(toBytes(text)).next()
  return toText(result.value as Uint8Array)
}

let name = 0
const unique = (): string => `svc-${process.pid}-${++name}`

describe.skipIf(NATS_SERVER === undefined)('@labwire/nats on one nats-server', () => {
  let node: NatsNode
  beforeAll(async () => {
    node = (await startCluster(1))[0] as NatsNode
  }, 20_000)
  afterAll(() => node?.kill())

  it('an async handler does not hold up other requests (iterated, not run inline)', async () => {
    const service = unique()
    await using server = new NatsServer({ servers: node.url, name: service, callback: echo() })
    await server.listen()
    const client = new NatsClient({ servers: node.url, name: service, timeout: 5000 })
    const order: string[] = []
    const slow = ask(client, 'slow:1').then((r) => order.push(r))
    await new Promise((resolve) => setTimeout(resolve, 50))
    const fast = ask(client, 'fast').then((r) => order.push(r))
    await Promise.all([slow, fast])
    expect(order).toEqual(['fast', 'slow:1'])
  })

  it('maxConcurrent bounds the handlers running at once', async () => {
    const service = unique()
    let running = 0
    let peak = 0
    const handler: ByteHandlerFunction = async (bytes) => {
      running++
      peak = Math.max(peak, running)
      await bytes.next()
      await new Promise((resolve) => setTimeout(resolve, 150))
      running--
      return toBytes('ok')
    }
    await using server = new NatsServer({ servers: node.url, name: service, callback: handler, maxConcurrent: 3 })
    await server.listen()
    const client = new NatsClient({ servers: node.url, name: service })
    expect(await Promise.all(Array.from({ length: 12 }, () => ask(client, 'x')))).toEqual(Array(12).fill('ok'))
    expect(peak).toBe(3)
  })

  it('no instance: NoRespondersError (a ConnectionError) — at once, or after retrying until timeout', async () => {
    const service = unique()
    {
      await using session = await new NatsClient({ servers: node.url, name: service, timeout: 5000, retryNoResponders: false }).connect()
      const started = Date.now()
      const error = await session.request(toBytes('x')).next().catch((e: unknown) => e)
      expect(error).toBeInstanceOf(NoRespondersError)
      expect(error).toBeInstanceOf(ConnectionError)
      expect(Date.now() - started).toBeLessThan(2000)
    }
    {
      await using session = await new NatsClient({ servers: node.url, name: service, timeout: 400 }).connect()
      const started = Date.now()
      const error = await session.request(toBytes('x')).next().catch((e: unknown) => e)
      expect(error).toBeInstanceOf(NoRespondersError)
      expect(Date.now() - started).toBeGreaterThanOrEqual(350)
    }
    // A service that appears while the request is retried gets it.
    await using session = await new NatsClient({ servers: node.url, name: service, timeout: 5000 }).connect()
    const answer = session.request(toBytes('late')).next()
    await new Promise((resolve) => setTimeout(resolve, 200))
    await using server = new NatsServer({ servers: node.url, name: service, callback: echo('got:') })
    await server.listen()
    expect(toText((await answer).value as Uint8Array)).toBe('got:late')
  })

  it('a request over maxRequestLength is refused with a typed error, and the service goes on', async () => {
    const service = unique()
    await using server = new NatsServer({ servers: node.url, name: service, callback: echo(), maxRequestLength: 2 * 1024 * 1024 })
    await server.listen()
    const client = new NatsClient({ servers: node.url, name: service })
    {
      await using session = await client.connect()
      const error = await session.request(new Uint8Array(3 * 1024 * 1024)).next().catch((e: unknown) => e)
      expect(error).toBeInstanceOf(NatsServiceError)
      expect((error as NatsServiceError).statusCode).toBe(400)
      expect((error as NatsServiceError).description).toMatch(/maxRequestLength/)
    }
    expect(await ask(client, 'still here')).toBe('still here')
    expect(server.stats().endpoints[0]).toMatchObject({ num_requests: 2, num_errors: 1, last_error: expect.stringMatching(/maxRequestLength/) as unknown })
    server.resetStats()
    expect(server.stats().endpoints[0]).toMatchObject({ num_requests: 0, num_errors: 0, last_error: '', processing_time: 0 })
  })

  it('a hostile chunked request: a stalled upload is answered 408 after chunkTimeout, a forged size 400', async () => {
    const service = unique()
    await using server = new NatsServer({ servers: node.url, name: service, callback: echo(), chunkTimeout: 200 })
    await server.listen()
    const nc = await connect({ servers: node.url })
    try {
      const inbox = createInbox()
      const replies: Msg[] = []
      const sub = nc.subscribe(inbox, { callback: (_e, m) => replies.push(m) })
      const h = headers()
      h.set('Labwire-Size', String(60 * 1024 * 1024))
      nc.publish(service, toBytes('first chunk'), { reply: inbox, headers: h })
      const until = Date.now() + 3000
      while (replies.length < 2 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20))
      sub.unsubscribe()
      expect(replies[0]?.headers?.get('Labwire-Continue')).toMatch(/^_INBOX\./)
      expect(replies[1]?.headers?.get('Nats-Service-Error-Code')).toBe('408')
      const forged = headers()
      forged.set('Labwire-Size', '3')
      const refused = await nc.request(service, toBytes('longer than three'), { timeout: 2000, headers: forged })
      expect(refused.headers?.get('Nats-Service-Error-Code')).toBe('400')
    } finally {
      await nc.close()
    }
    expect(server.stats().endpoints[0]?.num_errors).toBe(2)
  })

  it('a reply over maxReplyLength fails the session with FrameTooLargeError (memory stays bounded)', async () => {
    const service = unique()
    await using server = new NatsServer({ servers: node.url, name: service, callback: () => new Uint8Array(3 * 1024 * 1024) })
    await server.listen()
    await using session = await new NatsClient({ servers: node.url, name: service, maxReplyLength: 1024 * 1024 }).connect()
    const stream = session.request(toBytes('x'))
    let error: unknown
    try {
      for (;;) if ((await stream.next()).done === true) break
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(FrameTooLargeError)
  })

  it('queue null: every instance gets every request; default q: one does', async () => {
    const service = unique()
    const seen: string[] = []
    const tagger = (tag: string): ByteHandlerFunction => async (bytes) => {
      await bytes.next()
      seen.push(tag)
      return toBytes(tag)
    }
    await using one = new NatsServer({ servers: node.url, name: service, callback: tagger('1'), queue: null })
    await using two = new NatsServer({ servers: node.url, name: service, callback: tagger('2'), queue: null })
    await one.listen()
    await two.listen()
    const nc = await connect({ servers: node.url })
    try {
      nc.publish(service, toBytes('to all'))
      await nc.flush()
      const until = Date.now() + 2000
      while (seen.length < 2 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10))
      expect(seen.sort()).toEqual(['1', '2'])
    } finally {
      await nc.close()
    }
  })

  it('$SRV.STATS numbers match the calls made: num_requests, num_errors, last_error, processing_time, average; reset zeroes them', async () => {
    const service = unique()
    const handler: ByteHandlerFunction = async (bytes) => {
      const text = toText((await bytes.next()).value as Uint8Array)
      await new Promise((resolve) => setTimeout(resolve, 20))
      if (text.startsWith('fail')) throw new Error(`refused ${text}`)
      return toBytes(text)
    }
    await using server = new NatsServer({ servers: node.url, name: service, callback: handler })
    await server.listen()
    const client = new NatsClient({ servers: node.url, name: service, timeout: 5000 })
    const started = process.hrtime.bigint()
    const oks = await Promise.all(Array.from({ length: 7 }, (_, i) => ask(client, `ok${i}`)))
    expect(oks).toHaveLength(7)
    for (const text of ['fail-1', 'fail-2']) await expect(ask(client, text)).rejects.toBeInstanceOf(NatsServiceError)
    const elapsed = Number(process.hrtime.bigint() - started)
    // Read back with the plain nats services client (an independent ADR-32 implementation).
    const nc = await connect({ servers: node.url })
    try {
      const read = async (): Promise<{ num_requests: number; num_errors: number; last_error: string; processing_time: number; average_processing_time: number }> => {
        const all = []
        for await (const s of await nc.services.client().stats(service)) all.push(s)
        expect(all).toHaveLength(1)
        return all[0]?.endpoints?.[0] as never
      }
      const stats = await read()
      expect(stats).toMatchObject({ num_requests: 9, num_errors: 2, last_error: 'refused fail-2' })
      // Every handler slept 20 ms: at least 9 × 20 ms of processing, at most the wall time of 9 calls
      // (7 of them concurrent) summed — bounded above by 9 × the whole elapsed time.
      expect(stats.processing_time).toBeGreaterThanOrEqual(9 * 20e6)
      expect(stats.processing_time).toBeLessThanOrEqual(9 * elapsed)
      expect(stats.average_processing_time).toBe(Math.floor(stats.processing_time / 9))
      server.resetStats()
      expect(await read()).toMatchObject({ num_requests: 0, num_errors: 0, last_error: '', processing_time: 0, average_processing_time: 0 })
    } finally {
      await nc.close()
    }
  })

  it('options are checked', () => {
    expect(() => new NatsServer({ name: 'bad name', callback: echo() })).toThrow(RangeError)
    expect(() => new NatsServer({ name: 'ok' })).toThrow(RangeError)
    expect(() => new NatsClient({ name: 'a.b' })).toThrow(RangeError)
    expect(() => new NatsClient({ name: 'ok', timeout: -1 })).toThrow(RangeError)
  })

  it('connect fails with a ConnectionError naming the server when nothing listens; abort is AbortError', async () => {
    const [port] = await freePorts(1)
    const error = await new NatsClient({ servers: `nats://127.0.0.1:${String(port)}`, name: 'x' }).connect().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ConnectionError)
    expect((error as Error).message).toContain(`127.0.0.1:${String(port)}`)
    await expect(new NatsClient({ servers: node.url, name: 'x' }).connect({ signal: AbortSignal.abort(new Error('stop')) })).rejects.toMatchObject({ name: 'AbortError' })
  })

  it('reconnect backoff: half the outage so far, 100 ms to 5 s, reset on reconnect', () => {
    let clock = 1000
    const backoff = reconnectBackoff(() => clock)
    const first = backoff.delay()
    expect(first).toBeGreaterThanOrEqual(100)
    expect(first).toBeLessThanOrEqual(120)
    expect(backoff.delay()).toBe(first) // asked again at the same moment: same answer
    clock += 4000
    expect(backoff.delay()).toBeGreaterThanOrEqual(2000)
    clock += 60_000
    expect(backoff.delay()).toBeLessThanOrEqual(6000)
    backoff.reset()
    expect(backoff.delay()).toBeLessThanOrEqual(120)
  })

  it('connections labwire opens reconnect forever, through the backoff (not nats.js\'s 10 attempts, 2 s apart)', async () => {
    const nc = await openConnection({ servers: node.url }, 'labwire test')
    try {
      const options = (nc as unknown as { options: { maxReconnectAttempts: number; reconnectDelayHandler?: () => number } }).options
      expect(options.maxReconnectAttempts).toBe(-1)
      expect(options.reconnectDelayHandler?.()).toBeLessThanOrEqual(120)
    } finally {
      await nc.close()
    }
  })
})

describe.skipIf(NATS_SERVER === undefined)('@labwire/nats reconnects', () => {
  it('the service and the client survive a nats-server restart on the same port', async () => {
    const [port] = await freePorts(1)
    const url = `nats://127.0.0.1:${String(port)}`
    const start = (): ReturnType<typeof spawn> => spawn(NATS_SERVER as string, ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' })
    let child = start()
    const kill = (): void => {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL')
    }
    try {
      const until = async (check: () => Promise<boolean>, ms: number): Promise<void> => {
        const end = Date.now() + ms
        while (!(await check())) {
          if (Date.now() > end) throw new Error(`not within ${ms} ms`)
          await new Promise((resolve) => setTimeout(resolve, 50))
        }
      }
      const service = unique()
      let server: NatsServer | undefined
      await until(async () => {
        server = new NatsServer({ servers: url, name: service, callback: echo('r:') })
        return server.listen().then(() => true, () => false)
      }, 10_000)
      await using session = await new NatsClient({ servers: url, name: service, timeout: 5000 }).connect()
      const client = new NatsClient({ servers: url, name: service, timeout: 1000 })
      expect(toText((await session.request(toBytes('one')).next()).value as Uint8Array)).toBe('r:one')
      kill()
      await new Promise((resolve) => child.once('exit', resolve))
      await new Promise((resolve) => setTimeout(resolve, 300)) // the client notices the dead socket
      // A request sent while NATS is down is held and sent once the connection is back
      // (nats.js alone would drop it), then retried until the service has resubscribed.
      const duringOutage = session.request(toBytes('during'))
      child = start()
      // The service reconnects (backoff) and resubscribes; poll with fresh sessions until it answers.
      const restarted = Date.now()
      let answer = ''
      await until(async () => {
        try {
          const fresh = await client.connect()
          try {
            answer = toText((await fresh.request(toBytes('two')).next()).value as Uint8Array)
          } finally {
            await fresh.close()
          }
          return true
        } catch {
          return false
        }
      }, 15_000)
      expect(answer).toBe('r:two')
      console.info(`service answered again ${Date.now() - restarted} ms after nats-server restarted`)
      expect(toText((await duringOutage.next()).value as Uint8Array)).toBe('r:during')
      expect(toText((await session.request(toBytes('three')).next()).value as Uint8Array)).toBe('r:three')
      await server?.close()
    } finally {
      kill()
    }
  }, 30_000)
})

if (NATS_SERVER === undefined) it.skip('@labwire/nats single-node tests: SKIPPED, nats-server is missing (apt-get install nats-server)', () => undefined)
