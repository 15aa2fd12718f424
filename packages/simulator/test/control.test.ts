import { describe, expect, it } from 'vitest'
import { bundledDevice, ControlServer, Device, loadDevice, SimulatorServer } from '../src/index.js'
import { controlFixture } from './control-fixture.js'
import { RawClient } from './raw-client.js'

// Every control-channel endpoint, over real HTTP on 127.0.0.1.

const { cleanups } = controlFixture()

async function setup(): Promise<{ base: string; psu: SimulatorServer; meter: SimulatorServer }> {
  const psu = new SimulatorServer({ device: await loadDevice(bundledDevice('scpi-psu')) })
  const meter = new SimulatorServer({
    device: new Device({ name: 'meter', state: { reading: 1.5, label: 'a' } })
      .command('READ?', (_, d) => d.state.reading.toFixed(2))
      .method('scale', (d, factor) => {
        if (typeof factor !== 'number') throw new TypeError('factor must be a number')
        d.state.reading *= factor
        return d.state.reading
      }),
  })
  await psu.listen()
  await meter.listen()
  const control = new ControlServer({ servers: [psu, meter] })
  const { port } = await control.listen()
  cleanups.push(() => psu.close(), () => meter.close(), () => control.close())
  return { base: `http://127.0.0.1:${port}`, psu, meter }
}

async function call(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(base + path, {
    method,
    signal: AbortSignal.timeout(5_000),
    // Every mutating request declares JSON (the control channel refuses others: issue 16 #6).
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  return { status: res.status, json: await res.json() }
}

async function ask(port: number, line: string, expect_: string): Promise<string> {
  const raw = await RawClient.open(port)
  cleanups.push(() => raw.destroy())
  raw.write(`${line}\n`)
  return raw.waitFor(expect_)
}

describe('control channel (HTTP JSON on loopback)', () => {
  it('GET /devices lists the devices; GET /devices/:name describes one; unknown names are 404', async () => {
    const { base, psu } = await setup()
    const list = await call(base, 'GET', '/devices')
    expect(list.status).toBe(200)
    expect(list.json).toEqual([
      { name: 'scpi-psu', address: psu.address, connections: 0, cable: true, quiet: false },
      expect.objectContaining({ name: 'meter' }),
    ])
    const one = await call(base, 'GET', '/devices/scpi-psu')
    expect(one.json).toMatchObject({ name: 'scpi-psu', state: { voltage: 0, current_limit: 1, output: 0 }, faults: [], cable: true })
    expect((await call(base, 'GET', '/devices/nope')).status).toBe(404)
    expect((await call(base, 'GET', '/elsewhere')).status).toBe(404)
  })

  it('GET/PATCH state: reads and sets (validated by the file’s specs), the device answers with it', async () => {
    const { base, psu } = await setup()
    expect((await call(base, 'GET', '/devices/scpi-psu/state')).json).toEqual({ voltage: 0, current_limit: 1, output: 0 })
    const set = await call(base, 'PATCH', '/devices/scpi-psu/state', { voltage: 12.5 })
    expect(set).toEqual({ status: 200, json: { voltage: 12.5, current_limit: 1, output: 0 } })
    expect(await ask(psu.address?.port ?? 0, 'VOLT?', '\n')).toBe('12.500\n')
    const bad = await call(base, 'PATCH', '/devices/scpi-psu/state', { voltage: 99 })
    expect(bad.status).toBe(400)
    expect((bad.json as { error: string }).error).toMatch(/voltage.*maximum/)
    expect((await call(base, 'PATCH', '/devices/scpi-psu/state', { nope: 1 })).status).toBe(400)
    expect((await call(base, 'PATCH', '/devices/meter/state', { reading: 'x' })).status).toBe(400)
    expect((await call(base, 'PATCH', '/devices/meter/state', { reading: 2.25 })).json).toEqual({ reading: 2.25, label: 'a' })
  })

  it('POST methods/:method calls a device method with args', async () => {
    const { base, meter } = await setup()
    expect(await call(base, 'POST', '/devices/meter/methods/scale', { args: [4] })).toEqual({ status: 200, json: { result: 6 } })
    expect(await ask(meter.address?.port ?? 0, 'READ?', '\n')).toBe('6.00\n')
    expect((await call(base, 'POST', '/devices/meter/methods/nope', {})).status).toBe(404)
    expect((await call(base, 'POST', '/devices/meter/methods/scale', { args: 'x' })).status).toBe(400)
  })

  it('faults: POST adds, GET lists, PATCH switches, DELETE removes; bad specs are 400', async () => {
    const { base, psu } = await setup()
    const added = await call(base, 'POST', '/devices/scpi-psu/faults', { kind: 'junk', junk: '##', commands: ['*IDN?'] })
    expect(added.status).toBe(201)
    const id = (added.json as { id: number }).id
    expect(await ask(psu.address?.port ?? 0, '*IDN?', '\n')).toBe('##labwire,SIM-PSU,0001,0.1.0\n')
    expect((await call(base, 'GET', '/devices/scpi-psu/faults')).json).toEqual([expect.objectContaining({ id, kind: 'junk', enabled: true, triggered: 1 })])
    expect((await call(base, 'PATCH', `/devices/scpi-psu/faults/${id}`, { enabled: false })).json).toMatchObject({ id, enabled: false })
    expect(await ask(psu.address?.port ?? 0, '*IDN?', '\n')).toBe('labwire,SIM-PSU,0001,0.1.0\n')
    expect((await call(base, 'DELETE', `/devices/scpi-psu/faults/${id}`)).json).toEqual([])
    expect((await call(base, 'DELETE', `/devices/scpi-psu/faults/${id}`)).status).toBe(404)
    await call(base, 'POST', '/devices/scpi-psu/faults', { kind: 'latency', latency: 5 })
    expect((await call(base, 'DELETE', '/devices/scpi-psu/faults')).json).toEqual([])
    const bad = await call(base, 'POST', '/devices/scpi-psu/faults', { kind: 'meteor' })
    expect(bad.status).toBe(400)
    expect((await call(base, 'POST', '/devices/scpi-psu/faults', { kind: 'latency', probability: 3 })).status).toBe(400)
    const broken = await fetch(`${base}/devices/scpi-psu/faults`, { method: 'POST', body: '{not json', headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(5_000) })
    expect(broken.status).toBe(400)
  })

  it('POST reset wakes a quiet device', async () => {
    const { base, psu } = await setup()
    psu.device.quiet = true
    expect((await call(base, 'GET', '/devices/scpi-psu')).json).toMatchObject({ quiet: true })
    expect(await call(base, 'POST', '/devices/scpi-psu/reset')).toEqual({ status: 200, json: { quiet: false } })
    expect(await ask(psu.address?.port ?? 0, '*IDN?', '\n')).toBe('labwire,SIM-PSU,0001,0.1.0\n')
  })

  it('connections: GET lists them, DELETE closes one', async () => {
    const { base, psu } = await setup()
    const a = await RawClient.open(psu.address?.port ?? 0)
    cleanups.push(() => a.destroy())
    a.write('*IDN?\n')
    await a.waitFor('\n')
    const list = (await call(base, 'GET', '/devices/scpi-psu/connections')).json as { id: number; peer: string }[]
    expect(list).toHaveLength(1)
    expect(list[0]?.peer).toMatch(/^127\.0\.0\.1:\d+$/)
    expect((await call(base, 'DELETE', `/devices/scpi-psu/connections/${list[0]?.id ?? 0}`)).status).toBe(200)
    await a.waitForLength(Number.MAX_SAFE_INTEGER)
    expect(a.isEnded).toBe(true)
    expect((await call(base, 'DELETE', '/devices/scpi-psu/connections/999')).status).toBe(404)
  })

  it('PUT cable cuts and restores the cable', async () => {
    const { base, psu } = await setup()
    expect(await call(base, 'PUT', '/devices/scpi-psu/cable', { connected: false })).toEqual({ status: 200, json: { connected: false } })
    const refused = await RawClient.open(psu.address?.port ?? 0)
    cleanups.push(() => refused.destroy())
    await refused.waitForLength(Number.MAX_SAFE_INTEGER)
    expect(refused.isEnded).toBe(true)
    expect((await call(base, 'PUT', '/devices/scpi-psu/cable', { connected: true })).json).toEqual({ connected: true })
    expect(await ask(psu.address?.port ?? 0, '*IDN?', '\n')).toBe('labwire,SIM-PSU,0001,0.1.0\n')
    expect((await call(base, 'PUT', '/devices/scpi-psu/cable', {})).status).toBe(400)
  })

  it('POST broadcast sends an unsolicited line to every client (or one)', async () => {
    const { base, psu } = await setup()
    const port = psu.address?.port ?? 0
    const a = await RawClient.open(port)
    const b = await RawClient.open(port)
    cleanups.push(() => a.destroy(), () => b.destroy())
    a.write('*OPC?\n')
    b.write('*OPC?\n')
    await a.waitFor('1\n')
    await b.waitFor('1\n')
    expect((await call(base, 'POST', '/devices/scpi-psu/broadcast', { message: 'ALARM OVP' })).json).toEqual({ sent: 2 })
    expect(await a.waitFor('ALARM OVP\n')).toBe('1\nALARM OVP\n')
    expect(await b.waitFor('ALARM OVP\n')).toBe('1\nALARM OVP\n')
    const ids = ((await call(base, 'GET', '/devices/scpi-psu/connections')).json as { id: number }[]).map((c) => c.id)
    expect((await call(base, 'POST', '/devices/scpi-psu/broadcast', { message: 'ONLY', to: ids[0] })).json).toEqual({ sent: 1 })
    expect((await call(base, 'POST', '/devices/scpi-psu/broadcast', { message: 3 })).status).toBe(400)
  })
})
