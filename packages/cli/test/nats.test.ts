// `labwire query` and `labwire shell` on nats://host:port/NAME: a simulated instrument published
// as a NATS service with NatsServer, on a real nats-server (loopback), the CLI run in-process.
import { createServer, type Socket } from 'node:net'
import { PassThrough, Readable } from 'node:stream'
import { ApplicationClient } from '@labwire/application'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { NatsServer } from '@labwire/nats'
import { TcpClient } from '@labwire/transport-tcp'
import { bundledDevice, loadDevice } from '@labwire/simulator'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { main, parseResource, ResourceError } from '../src/index.js'
import { proxy } from '../src/proxy.js'
import type { Io } from '../src/style.js'
import { NATS_SERVER, freePorts, startCluster, type NatsNode } from '../../nats/test/cluster.js'

if (NATS_SERVER === undefined) console.warn('SKIPPED: labwire CLI on nats:// — nats-server is not installed (apt-get install nats-server)')

interface Captured {
  io: Io
  stdout: () => string
  stderr: () => string
}

function capture(input?: string): Captured {
  const out = new PassThrough()
  const err = new PassThrough()
  let stdout = ''
  let stderr = ''
  out.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  err.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const stdin = Readable.from(input === undefined ? [] : [input])
  return { io: { stdout: out, stderr: err, stdin, env: { NO_COLOR: '1' } }, stdout: () => stdout, stderr: () => stderr }
}

describe('parseResource: nats://', () => {
  it('reads servers, service name, endpoint and the query parameters', () => {
    const r = parseResource('nats://127.0.0.1:4333/psu')
    expect(r).toMatchObject({ scheme: 'nats', host: '127.0.0.1', port: 4333, nats: { servers: ['nats://127.0.0.1:4333'], name: 'psu' } })
    expect(parseResource('NATS://lab1/psu').nats).toEqual({ servers: ['nats://lab1:4222'], name: 'psu' })
    const several = parseResource('nats://10.0.0.1:4222,10.0.0.2:4223/scope/wave?read_term=%0D%0A&timeout=2500')
    expect(several.nats).toEqual({ servers: ['nats://10.0.0.1:4222', 'nats://10.0.0.2:4223'], name: 'scope', endpoint: 'wave' })
    expect(several.readTerm).toEqual(new Uint8Array([0x0d, 0x0a]))
    expect(several.timeout).toBe(2500)
    expect(several.port).toBe(4222)
  })

  it('refuses what is not a NATS service resource, naming the forms', () => {
    for (const bad of ['nats://127.0.0.1:4222', 'nats://127.0.0.1:4222/', 'nats://127.0.0.1:4222/ps u', 'nats://127.0.0.1:99999/psu', 'nats://127.0.0.1:0/psu', 'nats://u:p@127.0.0.1/psu', 'nats://127.0.0.1/psu?nope=1', 'nats://127.0.0.1/psu#x']) {
      expect(() => parseResource(bad), bad).toThrow(ResourceError)
    }
    expect(() => parseResource('nats://127.0.0.1:4222/')).toThrow(/nats:\/\/host\[:port\]/)
  })
})

describe.skipIf(NATS_SERVER === undefined)('labwire query / shell on nats://host:port/NAME (real nats-server)', () => {
  let node: NatsNode
  let service: NatsServer
  let resource: string
  const name = `psu-${process.pid}`

  beforeAll(async () => {
    node = (await startCluster(1))[0] as NatsNode
    const device = await loadDevice(bundledDevice('scpi-psu'))
    service = new NatsServer({ servers: node.url, name, callback: device.handler(), maxConcurrent: 1 })
    await service.listen()
    resource = `nats://127.0.0.1:${node.port}/${name}`
  }, 20_000)
  afterAll(async () => {
    await service?.close()
    node?.kill()
  })

  it('query: answers queries, acknowledges writes, in order', async () => {
    const c = capture()
    const code = await main(['query', resource, '*IDN?', 'VOLT 5', 'VOLT?', '--timeout', '3000'], c.io)
    expect(c.stderr()).toBe('')
    expect(code).toBe(0)
    expect(c.stdout()).toBe('labwire,SIM-PSU,0001,0.1.0\n5.000\n')
    const stats = service.stats().endpoints[0]
    expect(stats?.num_errors).toBe(0)
  })

  it('query --json, through a list of servers whose first is down (failover)', async () => {
    const [dead] = await freePorts(1)
    const c = capture()
    const code = await main(['query', `nats://127.0.0.1:${dead},127.0.0.1:${node.port}/${name}`, 'VOLT 1.5', 'VOLT?', '--json'], c.io)
    expect(code).toBe(0)
    const result = JSON.parse(c.stdout()) as { ok: boolean; results: { command: string; kind: string; reply: string | null }[] }
    expect(result.ok).toBe(true)
    expect(result.results.map((r) => [r.kind, r.reply])).toEqual([
      ['write', null],
      ['query', '1.500'],
    ])
  })

  it('query --trace shows the bytes each way', async () => {
    const c = capture()
    expect(await main(['query', resource, '*OPC?', '--trace'], c.io)).toBe(0)
    expect(c.stdout()).toBe('1\n')
    expect(c.stderr()).toMatch(/-> 6 B {2}2a 4f 50 43 3f 0a {2}"\*OPC\?\\n"/)
    expect(c.stderr()).toMatch(/<- 2 B {2}31 0a {2}"1\\n"/)
  })

  it('shell: stdin-driven session', async () => {
    const c = capture('*IDN?\nVOLT 2.25\nVOLT?\n:timeout 2000\nOUTP?\n')
    const code = await main(['shell', resource], c.io)
    expect(c.stderr()).toBe('')
    expect(code).toBe(0)
    expect(c.stdout()).toBe('labwire,SIM-PSU,0001,0.1.0\n2.250\ntimeout 2000 ms\n0\n')
  })

  it('proxy: a TCP port in front of the NATS service (what a VISA client can reach)', async () => {
    const c = capture()
    let stop: () => void = () => undefined
    const stopped = new Promise<void>((resolve) => (stop = resolve))
    const running = proxy([resource, '--port', '0', '--quiet'], c.io, stopped)
    try {
      const limit = Date.now() + 5000
      while (!/listening tcp:\/\/127\.0\.0\.1:\d+/.test(c.stdout())) {
        if (Date.now() > limit) throw new Error(`proxy did not listen within 5 s: ${c.stderr()}`)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      const port = Number(/listening tcp:\/\/127\.0\.0\.1:(\d+)/.exec(c.stdout())?.[1])
      const lines = textMarshaller(new SentinelBytesMarshaller('\n'))
      await using session = await new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), lines.marshall, lines.unmarshall, { timeout: 3000 }).connect()
      expect(await session.sendReceive('*IDN?')).toBe('labwire,SIM-PSU,0001,0.1.0')
      await session.send('VOLT 3.5')
      expect(await session.sendReceive('VOLT?')).toBe('3.500')
    } finally {
      stop()
      expect(await running).toBe(0)
    }
  })

  it('no instance of the service: exit 3, "no responders", at once (a write too: it waits for the acknowledgement)', async () => {
    for (const command of ['*IDN?', 'VOLT 1']) {
      const c = capture()
      const started = Date.now()
      const code = await main(['query', `nats://127.0.0.1:${node.port}/nobody-${process.pid}`, command, '--timeout', '5000'], c.io)
      expect(code, command).toBe(3)
      expect(c.stderr()).toMatch(/connection failed.*no responders/)
      expect(Date.now() - started).toBeLessThan(3000)
    }
  })

  it('nats-server unreachable: exit 3, a clear message naming the server, bounded in time', async () => {
    const [dead] = await freePorts(1)
    for (const command of ['query', 'shell']) {
      const c = capture('*IDN?\n')
      const started = Date.now()
      const args = command === 'query' ? ['query', `nats://127.0.0.1:${dead}/${name}`, '*IDN?', '--timeout', '2000'] : ['shell', `nats://127.0.0.1:${dead}/${name}`, '--timeout', '2000']
      const code = await main(args, c.io)
      expect(code, command).toBe(3)
      expect(c.stderr()).toContain(`127.0.0.1:${dead}`)
      expect(c.stderr()).toMatch(/connection failed: NATS nats:\/\/127\.0\.0\.1:\d+: connection refused \(is nats-server running there\?\)/)
      expect(Date.now() - started).toBeLessThan(4000)
    }
  })

  it('a listener that never speaks NATS: exit 4 (timeout) within --timeout, not nats.js\'s 20 s', async () => {
    const sockets = new Set<Socket>()
    const silent = createServer((socket) => sockets.add(socket))
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    const { port } = silent.address() as { port: number }
    try {
      const c = capture()
      const started = Date.now()
      const code = await main(['query', `nats://127.0.0.1:${port}/${name}`, '*IDN?', '--timeout', '700'], c.io)
      expect(code).toBe(4)
      expect(c.stderr()).toContain(`nats://127.0.0.1:${port}/${name}: timeout: no connection within 700 ms`)
      expect(Date.now() - started).toBeLessThan(3000)
    } finally {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => silent.close(resolve))
    }
  })

  it('a service whose handler fails: exit 6 (closed by the instrument), the service error in the message', async () => {
    const failing = new NatsServer({
      servers: node.url,
      name: `broken-${process.pid}`,
      callback: () => {
        throw new Error('relay stuck')
      },
    })
    await failing.listen()
    try {
      const c = capture()
      const code = await main(['query', `nats://127.0.0.1:${node.port}/broken-${process.pid}`, '*IDN?'], c.io)
      expect(code).toBe(6)
      expect(c.stderr()).toMatch(/error 500: relay stuck/)
      expect(failing.stats().endpoints[0]).toMatchObject({ num_requests: 1, num_errors: 1, last_error: 'relay stuck' })
    } finally {
      await failing.close()
    }
  })
})
