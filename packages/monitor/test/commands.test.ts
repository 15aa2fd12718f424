import { request as httpRequest } from 'node:http'
import { connect } from 'node:net'
import { serverRequestChannel, type ServerRequestMessage } from '@labwire/core'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { ApplicationServer } from '@labwire/application'
import { bundledDevice, loadDevice, parseDevices, SimulatorServer } from '@labwire/simulator'
import { afterEach, describe, expect, it } from 'vitest'
import { codecs, defineService, RemoteError, RpcClient, RpcServer } from '@labwire/rpc'
import { MAX_COMMANDS, Monitor, MonitorMetrics } from '../src/index.js'

/** GET a path from the monitor (bounded). */
function get(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, signal: AbortSignal.timeout(5000) }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString('utf8')) : reject(new Error(`GET ${path}: ${res.statusCode}`))))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

const METER = `spec: "1.1"
devices:
  meter:
    eom:
      TCPIP SOCKET:
        q: "\\n"
        r: "\\n"
    dialogues:
      - q: "*IDN?"
        r: "labwire,SIM-METER,0001,0.1.0"
      - q: "MEAS:VOLT?"
        r: "1.234"
`

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.()
})

async function meterWithMonitor() {
  const device = parseDevices(METER, 'meter.yaml').devices.get('meter')?.create()
  if (device === undefined) throw new Error('no meter device')
  const simulator = new SimulatorServer({ device, port: 0 })
  const { ask, port } = await watch(simulator)
  return { simulator, port, ask }
}

async function watch(simulator: SimulatorServer) {
  const address = await simulator.listen()
  cleanups.push(() => simulator.close())
  const monitor = new Monitor({ port: 0 })
  monitor.addService({ name: 'meter', simulator })
  const { port } = await monitor.listen()
  cleanups.push(() => monitor.close())
  const connectAsk = async () => {
    const session = await new TcpClient({ host: address.host, port: address.port, timeout: 2000 }).connect()
    cleanups.push(() => session.close())
    return async (query: string): Promise<string> => {
      const reply = await session.request(new TextEncoder().encode(`${query}\n`)).next()
      return new TextDecoder().decode(reply.value as Uint8Array)
    }
  }
  return { port, ask: await connectAsk(), connectAsk }
}

describe('per-command latency for simulators', () => {
  it('labels requests with the command word over real TCP: *IDN? and MEAS:VOLT? with their counts', async () => {
    const { port, ask } = await meterWithMonitor()
    for (let i = 0; i < 3; i++) expect(await ask('*IDN?')).toContain('SIM-METER')
    for (let i = 0; i < 5; i++) expect(await ask('MEAS:VOLT?')).toContain('1.234')
    const text = await get(port, '/metrics')
    expect(text).toMatch(/^labwire_requests_total\{service="meter",command="\*IDN\?",outcome="ok"\} 3$/m)
    expect(text).toMatch(/^labwire_requests_total\{service="meter",command="MEAS:VOLT\?",outcome="ok"\} 5$/m)
    expect(text).toMatch(/^labwire_request_duration_seconds_count\{service="meter",command="\*IDN\?"\} 3$/m)
    expect(text).toMatch(/^labwire_request_duration_seconds_count\{service="meter",command="MEAS:VOLT\?"\} 5$/m)
    expect(text).toMatch(/^labwire_request_duration_seconds_bucket\{le="\+Inf",service="meter",command="MEAS:VOLT\?"\} 5$/m)
    // Nothing went unlabelled: the command-less series of the simulator stays at zero.
    expect(text).toMatch(/^labwire_requests_total\{service="meter",command="",outcome="ok"\} 0$/m)
    // The device's own command counter agrees.
    expect(text).toMatch(/^labwire_simulator_commands_total\{service="meter",command="MEAS:VOLT\?"\} 5$/m)
    const json = JSON.parse(await get(port, '/metrics.json')) as { name: string; values: { labels: Record<string, string | number>; value: number; metricName?: string }[] }[]
    const histogram = json.find((m) => m.name === 'labwire_request_duration_seconds')
    expect(histogram?.values.find((v) => v.metricName === 'labwire_request_duration_seconds_count' && v.labels.command === 'MEAS:VOLT?')?.value).toBe(5)
  })

  it('labels each request right when the replies of two connections interleave (async, delayed replies)', async () => {
    const device = parseDevices(METER, 'meter.yaml').devices.get('meter')?.create()
    if (device === undefined) throw new Error('no meter device')
    const simulator = new SimulatorServer({ device, port: 0 })
    simulator.device.faults.add({ kind: 'latency', latency: 30, jitter: 20 })
    const { port, ask, connectAsk } = await watch(simulator)
    const other = await connectAsk()
    const rounds = 4
    await Promise.all([
      (async () => {
        for (let i = 0; i < rounds; i++) expect(await ask('MEAS:VOLT?')).toContain('1.234')
      })(),
      (async () => {
        for (let i = 0; i < rounds; i++) expect(await other('*IDN?')).toContain('SIM-METER')
      })(),
    ])
    const text = await get(port, '/metrics')
    expect(text).toMatch(new RegExp(`^labwire_requests_total\\{service="meter",command="MEAS:VOLT\\?",outcome="ok"\\} ${rounds}$`, 'm'))
    expect(text).toMatch(new RegExp(`^labwire_requests_total\\{service="meter",command="\\*IDN\\?",outcome="ok"\\} ${rounds}$`, 'm'))
    expect(text).toMatch(/^labwire_requests_total\{service="meter",command="",outcome="ok"\} 0$/m)
    // The latency fault shows in the histogram: every request took at least 10 ms.
    expect(text).toMatch(/^labwire_request_duration_seconds_bucket\{le="0.005",service="meter",command="MEAS:VOLT\?"\} 0$/m)
  })

  it('shows bytes outside printable ASCII in a command label as "?" (no control bytes in labels)', async () => {
    const { port, ask } = await meterWithMonitor()
    expect(await ask('\x1b[2JFOO?\n*IDN?')).toContain('SIM-METER')
    const text = await get(port, '/metrics')
    expect(text).toMatch(/^labwire_requests_total\{service="meter",command="\?\[2JFOO\?",outcome="ok"\} 1$/m)
    expect(text).not.toContain('\x1b')
  })

  it(`keeps at most ${MAX_COMMANDS} command labels per service over TCP; the rest count as "other"`, async () => {
    const { port, ask } = await meterWithMonitor()
    const distinct = MAX_COMMANDS + 6
    // An unknown command gets no reply from this device: follow each with *IDN? to keep lockstep.
    for (let i = 0; i < distinct; i++) expect(await ask(`CMD${i}\n*IDN?`)).toContain('SIM-METER')
    const text = await get(port, '/metrics')
    const labels = [...text.matchAll(/^labwire_request_duration_seconds_count\{service="meter",command="([^"]*)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])] as const)
    expect(labels.length).toBe(MAX_COMMANDS + 1)
    expect(labels.find(([command]) => command === '*IDN?')?.[1]).toBe(distinct)
    // CMD0..CMD62 got a label of their own (with *IDN?, 64); CMD63..CMD69 are "other".
    expect(labels.find(([command]) => command === 'other')?.[1]).toBe(distinct - (MAX_COMMANDS - 1))
    expect(labels.reduce((sum, [, count]) => sum + count, 0)).toBe(2 * distinct)
  })
})

describe('the labwire:server:request event', () => {
  it('carries the simulator\'s command word and kernel to any subscriber; a plain server\'s has no command', async () => {
    const device = parseDevices(METER, 'meter.yaml').devices.get('meter')?.create()
    if (device === undefined) throw new Error('no meter device')
    const simulator = new SimulatorServer({ device, port: 0 })
    const simAddress = await simulator.listen()
    cleanups.push(() => simulator.close())
    const line = new SentinelBytesMarshaller('\n')
    const echo = new TcpServer({ port: 0, callback: new ApplicationServer(line.unmarshall, line.marshall, (payload: Uint8Array) => payload) })
    const echoAddress = await echo.listen()
    cleanups.push(() => echo.close())
    const seen: ServerRequestMessage[] = []
    const listener = (message: unknown): void => void seen.push(message as ServerRequestMessage)
    subscribe('labwire:server:request', listener)
    cleanups.push(() => {
      unsubscribe('labwire:server:request', listener)
      return Promise.resolve()
    })
    for (const address of [simAddress, echoAddress]) {
      await using session = await new TcpClient({ host: address.host, port: address.port, timeout: 2000 }).connect()
      await session.request(new TextEncoder().encode('MEAS:VOLT?\n')).next()
    }
    expect(seen.length).toBe(2)
    expect(seen[0]).toMatchObject({ kernel: simulator.kernel, transport: 'tcp', command: 'MEAS:VOLT?', bytesIn: 11 })
    expect(seen[0]?.duration).toBeGreaterThanOrEqual(0)
    expect(seen[1]).toMatchObject({ kernel: echo.kernel, bytesIn: 11, bytesOut: 11 })
    expect('command' in (seen[1] ?? {})).toBe(false)
    expect('error' in (seen[1] ?? {})).toBe(false)
  })
})

describe('login devices', () => {
  it('never shows a user name or password as a command label (login lines count as "(login)")', async () => {
    const simulator = new SimulatorServer({ device: await loadDevice(bundledDevice('cli-switch')), port: 0 })
    const address = await simulator.listen()
    cleanups.push(() => simulator.close())
    const monitor = new Monitor({ port: 0 })
    monitor.addService({ name: 'switch', simulator })
    const { port } = await monitor.listen()
    cleanups.push(() => monitor.close())
    const socket = connect({ host: address.host, port: address.port })
    cleanups.push(() => {
      socket.destroy()
      return Promise.resolve()
    })
    let received = ''
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')))
    const until = async (text: string): Promise<void> => {
      const deadline = Date.now() + 3000
      while (!received.includes(text)) {
        if (Date.now() > deadline) throw new Error(`no '${text}' within 3 s; got ${JSON.stringify(received)}`)
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      received = ''
    }
    await until('login: ')
    socket.write('admin\n')
    await until('Password: ')
    socket.write('s3cret-wrong\n')
    await until('login: ')
    socket.write('admin\n')
    await until('Password: ')
    socket.write('labwire\n')
    await until('sw1> ')
    socket.write('show version\n')
    await until('sw1> ')
    const text = await get(port, '/metrics')
    expect(text).toMatch(/^labwire_requests_total\{service="switch",command="\(login\)",outcome="ok"\} 4$/m)
    expect(text).toMatch(/^labwire_requests_total\{service="switch",command="show",outcome="ok"\} 1$/m)
    expect(text).not.toMatch(/command="(admin|labwire|s3cret-wrong)"/)
  })
})

describe('per-method RPC and other publishers', () => {
  it('maps `method` on labwire:server:request to the command label, and an error code to outcome="error"', async () => {
    const line = new SentinelBytesMarshaller('\n')
    const server = new TcpServer({ port: 0, callback: new ApplicationServer(line.unmarshall, line.marshall, (payload: Uint8Array) => payload) })
    await server.listen()
    cleanups.push(() => server.close())
    const monitor = new Monitor({ port: 0 })
    monitor.addService({ name: 'rpc', servers: [server] })
    const { port } = await monitor.listen()
    cleanups.push(() => monitor.close())
    expect(serverRequestChannel.hasSubscribers).toBe(true)
    serverRequestChannel.publish({ kernel: server.kernel, transport: 'tcp', peer: 'p', duration: 0.2, bytesIn: 10, bytesOut: 4, method: 'add' })
    serverRequestChannel.publish({ kernel: server.kernel, transport: 'tcp', peer: 'p', duration: 0.3, bytesIn: 10, bytesOut: 0, method: 'add', error: 'ERR_HANDLER' })
    const text = await get(port, '/metrics')
    expect(text).toMatch(/^labwire_requests_total\{service="rpc",command="add",outcome="ok"\} 1$/m)
    expect(text).toMatch(/^labwire_requests_total\{service="rpc",command="add",outcome="error"\} 1$/m)
    expect(text).toMatch(/^labwire_errors_total\{service="rpc",code="ERR_HANDLER"\} 1$/m)
    expect(text).toMatch(/^labwire_request_duration_seconds_sum\{service="rpc",command="add"\} 0\.0005$/m)
  })
})

describe('per-method RPC, end to end', () => {
  it('a real RpcServer over TCP: labwire_requests_total and the latency histogram carry each method, failures count as errors', async () => {
    const spec = defineService({
      name: 'dmm',
      methods: {
        add: { id: 1, request: codecs.tuple(codecs.int32le, codecs.int32le), response: codecs.int32le },
        fail: { id: 2, request: codecs.none, response: codecs.none },
      },
    })
    const rpc = new RpcServer(spec, {
      add: ([a, b]) => a + b,
      fail: () => {
        throw new Error('overload')
      },
    })
    const server = new TcpServer({ host: '127.0.0.1', port: 0, callback: rpc })
    const address = await server.listen()
    cleanups.push(() => server.close())
    const monitor = new Monitor({ port: 0 })
    monitor.addService({ name: 'dmm', servers: [server] })
    const { port } = await monitor.listen()
    cleanups.push(() => monitor.close())
    const session = await new RpcClient(spec, new TcpClient({ host: '127.0.0.1', port: address.port })).connect({ signal: AbortSignal.timeout(5000) })
    cleanups.push(() => session.close())
    for (let i = 0; i < 3; i++) expect(await session.add([i, 1])).toBe(i + 1)
    await expect(session.fail(undefined)).rejects.toBeInstanceOf(RemoteError)
    const text = await get(port, '/metrics')
    expect(text).toMatch(/^labwire_requests_total\{service="dmm",command="add",outcome="ok"\} 3$/m)
    expect(text).toMatch(/^labwire_requests_total\{service="dmm",command="fail",outcome="error"\} 1$/m)
    expect(text).toMatch(/^labwire_request_duration_seconds_count\{service="dmm",command="add"\} 3$/m)
  })
})

describe('MonitorMetrics accumulation', () => {
  it('fills the histogram buckets cumulatively, as prom-client would', async () => {
    const metrics = new MonitorMetrics()
    try {
      const stats = metrics.serviceStats('s')
      for (const ms of [0.01, 0.2, 0.2, 3, 20_000]) stats.request('Q', ms, 1, 1, undefined)
      const text = await metrics.text()
      const bucket = (le: string): number => Number(new RegExp(`^labwire_request_duration_seconds_bucket\\{le="${le.replace(/[.+]/g, '\\$&')}",service="s",command="Q"\\} (\\d+)$`, 'm').exec(text)?.[1])
      expect(bucket('0.00005')).toBe(1)
      expect(bucket('0.00025')).toBe(3)
      expect(bucket('0.0025')).toBe(3)
      expect(bucket('0.005')).toBe(4)
      expect(bucket('10')).toBe(4)
      expect(bucket('+Inf')).toBe(5)
      expect(text).toMatch(/^labwire_received_bytes_total\{service="s"\} 5$/m)
    } finally {
      metrics.close()
    }
  })
})
