import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ApplicationClient, type ApplicationClientSession } from '@labwire/application'
import type { Logger, TransportClient } from '@labwire/core'
import { parseConfig, ServiceHost, ServiceStartError, type HostEvent, type ServiceAddress } from '@labwire/host'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { RegistryClient, RegistryServer } from '@labwire/registry'
import { bundledDevice, loadDevice, SimulatorServer } from '@labwire/simulator'
import { TcpClient } from '@labwire/transport-tcp'
import { TelnetClient } from '@labwire/transport-telnet'
import { UdpClient } from '@labwire/transport-udp'
import { WebSocketClient } from '@labwire/transport-websocket'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined }
const line = textMarshaller(new SentinelBytesMarshaller('\n'))

let dir: string
const hosts: ServiceHost[] = []
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'labwire-serve-host-'))
  // Fixture modules: no imports, so they load from anywhere.
  await writeFile(join(dir, 'upper.mjs'), 'export default (text) => text.toUpperCase()\n')
  await writeFile(join(dir, 'raw.mjs'), 'export async function RawEcho(bytes) { const r = await bytes.next(); return r.done ? undefined : r.value }\n')
  await writeFile(join(dir, 'slow.mjs'), "await new Promise((r) => setTimeout(r, 300))\nexport default (text) => 'slow ' + text\n")
  await writeFile(join(dir, 'wait.mjs'), "export default async (ms) => { await new Promise((r) => setTimeout(r, Number(ms))); return 'waited ' + ms }\n")
  await writeFile(join(dir, 'broken.mjs'), "throw new Error('this module is broken')\n")
})
afterEach(async () => {
  await Promise.all(hosts.splice(0).map((host) => host.close()))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

function host(ini: string, events: HostEvent[] = []): ServiceHost {
  const config = parseConfig(ini, join(dir, 'lab.ini'), { env: {} })
  const h = new ServiceHost(config, { mode: 'inprocess', loggerFor: () => quiet, onEvent: (event) => events.push(event) })
  hosts.push(h)
  return h
}

async function ask(transport: TransportClient, request: string): Promise<string> {
  const session = await new ApplicationClient(transport, line.marshall, line.unmarshall, { timeout: 2_000 }).connect({ signal: AbortSignal.timeout(2_000) })
  try {
    return await session.sendReceive(request)
  } finally {
    await session.close()
  }
}

const tcp = (a: ServiceAddress | undefined): TcpClient => new TcpClient({ host: '127.0.0.1', port: a?.port as number })

describe('ServiceHost in-process', () => {
  it('serves a device file, a request function and a ByteHandler over tcp, telnet, websocket, udp and unix', async () => {
    const sock = join(dir, 'raw.sock')
    const h = host(
      [
        '[defaults]',
        'port = 0',
        '[psu]',
        `import_from = ${bundledDevice('scpi-psu')}`,
        '[dmm]',
        `import_from = ${bundledDevice('dmm')}`,
        'transport = telnet',
        '[upper]',
        'import_from = upper.mjs',
        'framer = line',
        'transport = websocket',
        'endpoint = /upper',
        '[upper-udp]',
        'import_from = upper',
        'framer = line',
        'transport = udp',
        '[RawEcho]',
        'import_from = raw',
        'transport = unix',
        `path = ${sock}`,
      ].join('\n'),
    )
    await h.start()
    expect(h.addresses().map((a) => a.service)).toEqual(['psu', 'dmm', 'upper', 'upper-udp', 'RawEcho'])
    expect(await ask(tcp(h.address('psu')), '*IDN?')).toMatch(/PSU/i)
    expect(await ask(new TelnetClient({ host: '127.0.0.1', port: h.address('dmm')?.port as number }), '*IDN?')).toMatch(/DMM|multimeter|34461/i)
    expect(h.address('upper')?.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/upper$/)
    expect(await ask(new WebSocketClient({ url: h.address('upper')?.url as string }), 'hello')).toBe('HELLO')
    expect(await ask(new UdpClient({ host: '127.0.0.1', port: h.address('upper-udp')?.port as number, timeout: 2_000 }), 'udp')).toBe('UDP')
    expect(await ask(new TcpClient({ path: sock }), 'raw echo')).toBe('raw echo')
    expect(await h.close({ drain: 1_000 })).toBe(true)
  })

  it('boots in file order: a wait_until_completed service listens before the next starts', async () => {
    const events: HostEvent[] = []
    const h = host('[slow]\nimport_from = slow.mjs\nframer = line\nwait_until_completed = true\n[fast]\nimport_from = upper.mjs\nframer = line\n', events)
    await h.start()
    const order = events.map((e) => `${e.type} ${'service' in e ? e.service : ''}`)
    expect(order).toEqual(['starting slow', 'listening slow', 'starting fast', 'listening fast'])
    expect(await ask(tcp(h.address('slow')), 'x')).toBe('slow x')
  })

  it('a wait_until_completed service that fails stops the host with its error', async () => {
    const events: HostEvent[] = []
    const h = host('[first]\nimport_from = upper.mjs\nframer = line\n[broken]\nimport_from = broken.mjs\nwait_until_completed = true\n[never]\nimport_from = upper.mjs\nframer = line\n', events)
    const error = await h.start().then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(ServiceStartError)
    expect((error as ServiceStartError).service).toBe('broken')
    expect((error as Error).message).toContain('this module is broken')
    expect(events.some((e) => e.type === 'starting' && e.service === 'never')).toBe(false)
    expect(h.addresses()).toEqual([])
  })

  it('a port in use fails that service (not waited: the others serve on)', async () => {
    const blocker = host('[a]\nimport_from = upper.mjs\nframer = line\n')
    await blocker.start()
    const port = blocker.address('a')?.port as number
    const h = host(`[b]\nimport_from = upper.mjs\nframer = line\nport = ${port}\n[c]\nimport_from = upper.mjs\nframer = line\n`)
    await h.start()
    expect(h.failed.get('b')?.message).toMatch(/cannot listen/)
    expect(await ask(tcp(h.address('c')), 'c')).toBe('C')
  })

  it('reload restarts changed services only; an unchanged one keeps its connections', async () => {
    const h = host('[keep]\nimport_from = upper.mjs\nframer = line\n[change]\nimport_from = upper.mjs\nframer = line\n[drop]\nimport_from = upper.mjs\nframer = line\n')
    await h.start()
    const keepPort = h.address('keep')?.port as number
    const session: ApplicationClientSession<string, string> = await new ApplicationClient(tcp(h.address('keep')), line.marshall, line.unmarshall, { timeout: 2_000 }).connect()
    expect(await session.sendReceive('before')).toBe('BEFORE')
    const next = parseConfig('[keep]\nimport_from = upper.mjs\nframer = line\n[change]\nimport_from = slow.mjs\nframer = line\n[added]\nimport_from = upper.mjs\nframer = line\n', join(dir, 'lab.ini'), { env: {} })
    const result = await h.reload(next, { drain: 500 })
    expect(result).toMatchObject({ unchanged: ['keep'], restarted: ['change'], stopped: ['drop'], started: ['added'], failed: [] })
    expect(await session.sendReceive('after')).toBe('AFTER')
    expect(h.address('keep')?.port).toBe(keepPort)
    expect(await ask(tcp(h.address('change')), 'y')).toBe('slow y')
    expect(h.address('drop')).toBeUndefined()
    await session.close()
  })
})

describe('ServiceHost lifecycle (serving kernel: drain, access)', () => {
  it('close({ drain }) lets a request in flight finish: clean', async () => {
    const h = host('[w]\nimport_from = wait.mjs\nframer = line\n')
    await h.start()
    const session = await new ApplicationClient(tcp(h.address('w')), line.marshall, line.unmarshall, { timeout: 3_000 }).connect()
    const reply = session.sendReceive('300')
    await new Promise((r) => setTimeout(r, 50))
    const clean = await h.close({ drain: 2_000 })
    expect(await reply).toBe('waited 300')
    expect(clean).toBe(true)
    await session.close()
  })

  it('a request longer than the drain is cut: not clean', async () => {
    const h = host('[w]\nimport_from = wait.mjs\nframer = line\n')
    await h.start()
    const session = await new ApplicationClient(tcp(h.address('w')), line.marshall, line.unmarshall, { timeout: 3_000 }).connect()
    const reply = session.sendReceive('1500').then(
      () => 'answered',
      (error: unknown) => (error as Error).name,
    )
    await new Promise((r) => setTimeout(r, 50))
    expect(await h.close({ drain: 200 })).toBe(false)
    expect(await reply).toBe('ConnectionClosedError')
    await session.close()
  })

  it('access: max_sessions = 1, exclusive = refuse turns a second client away', async () => {
    const h = host('[one]\nimport_from = upper.mjs\nframer = line\nmax_sessions = 1\nexclusive = refuse\n')
    await h.start()
    const first = await new ApplicationClient(tcp(h.address('one')), line.marshall, line.unmarshall, { timeout: 2_000 }).connect()
    expect(await first.sendReceive('a')).toBe('A')
    const second = await ask(tcp(h.address('one')), 'b').then(
      (answer) => answer,
      (error: unknown) => (error as Error).name,
    )
    expect(second).not.toBe('B')
    await first.close()
  })
})

describe('auto_register', () => {
  it('registers the service with an RPyC-compatible registry while it runs, unregisters on close', async () => {
    await using registry = new RegistryServer({ port: 0 })
    const { port } = await registry.listen()
    const h = host(`[Upper]\nimport_from = upper.mjs\nframer = line\nauto_register = true\nregistry = 127.0.0.1:${port}\n`)
    await h.start()
    const client = new RegistryClient({ port, timeout: 2_000 })
    expect(await client.discover('upper')).toEqual([{ host: '127.0.0.1', port: h.address('Upper')?.port }])
    await h.close()
    expect(await client.discover('UPPER')).toEqual([])
  })
})

describe('instrument gateway', () => {
  let instrument: SimulatorServer
  let instrumentPort: number
  beforeAll(async () => {
    instrument = new SimulatorServer({ device: await loadDevice(bundledDevice('scpi-psu')), port: 0 })
    instrumentPort = (await instrument.listen()).port
  })
  afterAll(async () => {
    await instrument.close()
  })

  it('re-serves the instrument to several clients, one request at a time, with a lock', async () => {
    const h = host(`[psu-gw]\nresource = TCPIP::127.0.0.1::${instrumentPort}::SOCKET\nlock_wait = 3000\n`)
    await h.start()
    const connect = (): Promise<ApplicationClientSession<string, string>> => new ApplicationClient(tcp(h.address('psu-gw')), line.marshall, line.unmarshall, { timeout: 5_000 }).connect()
    const a = await connect()
    const b = await connect()
    // Many queries from both at once: each gets its own answer.
    const answers = await Promise.all([...Array(10).keys()].map((i) => (i % 2 === 0 ? a : b).sendReceive('*IDN?')))
    expect(new Set(answers).size).toBe(1)
    expect(answers[0]).toMatch(/PSU/i)
    // A sets a voltage under the lock; B's query waits until A unlocks.
    expect(await a.sendReceive('@lock 2000')).toBe('@ok locked 2000')
    expect(await b.sendReceive('@lock')).toMatch(/^@error locked by client \d+/)
    await a.send('VOLT 7.5')
    const started = Date.now()
    const bAnswer = b.sendReceive('VOLT?')
    await new Promise((r) => setTimeout(r, 200))
    expect(await a.sendReceive('VOLT?')).toMatch(/^7\.50*$/)
    expect(await a.sendReceive('@status')).toMatch(/^@ok locked by client \d+ \(you\)/)
    expect(await a.sendReceive('@unlock')).toBe('@ok unlocked')
    expect(await bAnswer).toMatch(/^7\.50*$/)
    expect(Date.now() - started).toBeGreaterThanOrEqual(180)
    // A lock is released when its holder disconnects.
    expect(await b.sendReceive('@lock 60000')).toBe('@ok locked 60000')
    await b.close()
    await new Promise((r) => setTimeout(r, 100))
    expect(await a.sendReceive('@lock 100')).toBe('@ok locked 100')
    await a.close()
  })

  it('a lease expires; a request waiting past lock_wait gets an error line', async () => {
    const h = host(`[gw]\nresource = tcp://127.0.0.1:${instrumentPort}\nlock_wait = 200\n`)
    await h.start()
    const connect = (): Promise<ApplicationClientSession<string, string>> => new ApplicationClient(tcp(h.address('gw')), line.marshall, line.unmarshall, { timeout: 5_000 }).connect()
    const a = await connect()
    const b = await connect()
    expect(await a.sendReceive('@lock 600')).toBe('@ok locked 600')
    expect(await b.sendReceive('*IDN?')).toMatch(/^@error locked by client \d+; waited 200 ms$/)
    await new Promise((r) => setTimeout(r, 700))
    expect(await b.sendReceive('@status')).toBe('@ok free')
    expect(await b.sendReceive('*IDN?')).toMatch(/PSU/i)
    await a.close()
    await b.close()
  })
})
