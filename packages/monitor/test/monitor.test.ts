import { request as httpRequest } from 'node:http'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { ApplicationServer } from '@labwire/application'
import { bundledDevice, loadDevice, SimulatorServer } from '@labwire/simulator'
import { afterEach, describe, expect, it } from 'vitest'
import { Monitor, MonitorConfigError } from '../src/index.js'

interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** One raw HTTP request (node:http, so Host and Origin can be anything). */
function http(port: number, path: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers ?? {}, signal: AbortSignal.timeout(5000) }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(options.body)
  })
}

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.()
})

async function simulatorWithMonitor(options: ConstructorParameters<typeof Monitor>[0] = {}) {
  const simulator = new SimulatorServer({ device: await loadDevice(bundledDevice('scpi-psu')), port: 0 })
  await simulator.listen()
  cleanups.push(() => simulator.close())
  const monitor = new Monitor({ port: 0, sampleInterval: 100, ...options })
  monitor.addService({ name: 'psu', simulator })
  const { port } = await monitor.listen()
  cleanups.push(() => monitor.close())
  return { simulator, monitor, port }
}

describe('Monitor HTTP surface', () => {
  it('answers /healthz and /readyz, and /readyz turns 503 during a drain', async () => {
    const { monitor, port } = await simulatorWithMonitor()
    expect((await http(port, '/healthz')).status).toBe(200)
    const ready = await http(port, '/readyz')
    expect(ready.status).toBe(200)
    expect(JSON.parse(ready.body)).toMatchObject({ ready: true, services: { psu: 'ready' } })
    monitor.drain()
    const draining = await http(port, '/readyz')
    expect(draining.status).toBe(503)
    expect(JSON.parse(draining.body)).toMatchObject({ ready: false, services: { psu: 'draining' } })
  })

  it('/readyz is 503 while a service is starting', async () => {
    const monitor = new Monitor({ port: 0 })
    const bound: { address?: { host: string; port: number } } = {}
    monitor.addService({ name: 'later', address: () => bound.address })
    const { port } = await monitor.listen()
    cleanups.push(() => monitor.close())
    expect((await http(port, '/readyz')).status).toBe(503)
    bound.address = { host: '127.0.0.1', port: 1 }
    expect((await http(port, '/readyz')).status).toBe(200)
  })

  it('serves Prometheus text with the labwire_* families', async () => {
    const { port } = await simulatorWithMonitor()
    const reply = await http(port, '/metrics')
    expect(reply.status).toBe(200)
    expect(reply.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(reply.body).toContain('# TYPE labwire_requests_total counter')
    expect(reply.body).toContain('# TYPE labwire_request_duration_seconds histogram')
    expect(reply.body).toContain('labwire_process_resident_memory_bytes')
    expect(reply.body).toContain('labwire_eventloop_delay_seconds{percentile="99"}')
    expect(reply.body).toMatch(/labwire_connections_open\{service="psu"\} 0/)
    const json = await http(port, '/metrics.json')
    expect(Array.isArray(JSON.parse(json.body))).toBe(true)
  })

  it('serves the page and its bundled script from itself (no CDN)', async () => {
    const { port } = await simulatorWithMonitor()
    const page = await http(port, '/')
    expect(page.status).toBe(200)
    expect(page.body).toContain('<script src="/page.js"></script>')
    expect(page.body).not.toMatch(/https?:\/\//)
    expect(page.headers['content-security-policy']).toContain("default-src 'self'")
  })

  it('refuses a foreign Host header (DNS rebinding)', async () => {
    const { port } = await simulatorWithMonitor()
    const reply = await http(port, '/api/snapshot', { headers: { host: 'evil.example' } })
    expect(reply.status).toBe(403)
    expect(reply.body).toContain('DNS rebinding')
    expect((await http(port, '/api/snapshot', { headers: { host: `localhost:${port}` } })).status).toBe(200)
  })

  it('refuses cross-origin requests and text/plain POSTs (cross-site simple requests)', async () => {
    const { simulator, port } = await simulatorWithMonitor()
    const crossOrigin = await http(port, '/api/services/psu/cable', { method: 'PUT', headers: { origin: 'http://evil.example', 'content-type': 'application/json' }, body: '{"connected":false}' })
    expect(crossOrigin.status).toBe(403)
    const simple = await http(port, '/api/services/psu/cable', { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: '{"connected":false}' })
    expect(simple.status).toBe(415)
    expect(simulator.cableConnected).toBe(true)
    const sameOrigin = await http(port, '/api/services/psu/cable', { method: 'PUT', headers: { origin: `http://127.0.0.1:${port}`, 'content-type': 'application/json' }, body: '{"connected":false}' })
    expect(sameOrigin.status).toBe(200)
    expect(simulator.cableConnected).toBe(false)
  })

  it('refuses to listen beyond loopback without a token, naming the option', () => {
    expect(() => new Monitor({ host: '0.0.0.0' })).toThrow(MonitorConfigError)
    expect(() => new Monitor({ host: '0.0.0.0' })).toThrow(/--monitor-token/)
  })

  it('requires the token on every request when one is set', async () => {
    const { port } = await simulatorWithMonitor({ token: 's3cret' })
    expect((await http(port, '/metrics')).status).toBe(401)
    expect((await http(port, '/metrics', { headers: { authorization: 'Bearer wrong!' } })).status).toBe(401)
    expect((await http(port, '/metrics', { headers: { authorization: 'Bearer s3cret' } })).status).toBe(200)
    const page = await http(port, '/?token=s3cret')
    expect(page.status).toBe(200)
    expect(String(page.headers['set-cookie'])).toContain('labwire_token=s3cret')
    expect((await http(port, '/api/snapshot', { headers: { cookie: 'labwire_token=s3cret' } })).status).toBe(200)
  })

  it('adds, toggles and removes a simulator fault through its API, and the client sees it', async () => {
    const { simulator, port } = await simulatorWithMonitor()
    const json = { 'content-type': 'application/json' }
    const added = await http(port, '/api/services/psu/faults', { method: 'POST', headers: json, body: JSON.stringify({ kind: 'no-reply', commands: ['*IDN?'] }) })
    expect(added.status).toBe(201)
    const fault = JSON.parse(added.body) as { id: number }
    const address = simulator.address
    if (address === undefined) throw new Error('not listening')
    await using session = await new TcpClient({ host: address.host, port: address.port, timeout: 300 }).connect()
    const idn = new TextEncoder().encode('*IDN?\n')
    const read = async (): Promise<string> => {
      const stream = session.request(idn)
      const first = await stream.next()
      return new TextDecoder().decode(first.value as Uint8Array)
    }
    await expect(read()).rejects.toMatchObject({ code: 'ERR_TIMEOUT' })
    const off = await http(port, `/api/services/psu/faults/${fault.id}`, { method: 'PATCH', headers: json, body: '{"enabled":false}' })
    expect(off.status).toBe(200)
    await using fresh = await new TcpClient({ host: address.host, port: address.port, timeout: 2000 }).connect()
    const reply = await fresh.request(idn).next()
    expect(new TextDecoder().decode(reply.value as Uint8Array)).toContain('SIM-PSU')
    expect((await http(port, `/api/services/psu/faults/${fault.id}`, { method: 'DELETE' })).status).toBe(200)
    expect(simulator.device.faults.list()).toEqual([])
    const bad = await http(port, '/api/services/psu/faults', { method: 'POST', headers: json, body: '{"kind":"nonsense"}' })
    expect(bad.status).toBe(400)
    expect((await http(port, '/api/services/nope/faults')).status).toBe(404)
  })

  it('keeps a bounded, escaped wire trace and log per service', async () => {
    const simulatorDevice = await loadDevice(bundledDevice('scpi-psu'))
    const monitor = new Monitor({ port: 0, traceLength: 4, logLines: 3 })
    const simulator = new SimulatorServer({ device: simulatorDevice, port: 0, filter: monitor.traceFilter('psu') })
    const address = await simulator.listen()
    cleanups.push(() => simulator.close())
    monitor.addService({ name: 'psu', simulator })
    await monitor.listen()
    cleanups.push(() => monitor.close())
    const log = monitor.serviceLogger('psu')
    for (let i = 0; i < 5; i++) log.warn({}, `line ${i}`)
    await using session = await new TcpClient({ host: address.host, port: address.port, timeout: 2000 }).connect()
    for (let i = 0; i < 3; i++) await session.request(new TextEncoder().encode('*IDN?\n')).next()
    await session.request(new TextEncoder().encode('\x1b]52;c;AAAA\x07\n*IDN?\n')).next()
    const snapshot = monitor.snapshot()
    const psu = snapshot.services.find((s) => s.name === 'psu')
    expect(psu?.trace.length).toBe(4)
    expect(psu?.trace.some((line) => line.text.includes('\\x1b]52'))).toBe(true)
    expect(psu?.trace.every((line) => !line.text.includes('\x1b'))).toBe(true)
    expect(snapshot.logs.map((l) => l.message)).toEqual(['line 2', 'line 3', 'line 4'])
  })

  it('counts the kernel\'s request and connection events per service, telling two servers of one class apart', async () => {
    const line = new SentinelBytesMarshaller('\n')
    const echo = new ApplicationServer(line.unmarshall, line.marshall, (payload: Uint8Array) => payload)
    const a = new TcpServer({ port: 0, callback: echo })
    const b = new TcpServer({ port: 0, callback: echo })
    const addressA = await a.listen()
    await b.listen()
    cleanups.push(() => a.close(), () => b.close())
    const monitor = new Monitor({ port: 0 })
    monitor.addService({ name: 'a', servers: [a], address: () => a.address })
    monitor.addService({ name: 'b', servers: [b], address: () => b.address })
    const { port } = await monitor.listen()
    cleanups.push(() => monitor.close())
    await using session = await new TcpClient({ host: addressA.host, port: addressA.port, timeout: 2000 }).connect()
    for (let i = 0; i < 5; i++) await session.request(new TextEncoder().encode(`ping ${i}\n`)).next()
    const text = (await http(port, '/metrics')).body
    expect(text).toMatch(/labwire_requests_total\{service="a",command="",outcome="ok"\} 5/)
    expect(text).toMatch(/labwire_requests_total\{service="b",command="",outcome="ok"\} 0/)
    expect(text).toMatch(/labwire_request_duration_seconds_count\{service="a",command=""\} 5/)
    expect(text).toMatch(/labwire_received_bytes_total\{service="a"\} 35/)
    expect(text).toMatch(/labwire_connections_open\{service="a"\} 1/)
    expect(monitor.snapshot().services.find((s) => s.name === 'a')?.connections.length).toBe(1)
  })
})
