import { ApplicationClient } from '@labwire/application'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpClient } from '@labwire/transport-tcp'
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest'
import { Device, ieeeBlock, serveDevice, type SimulatorServer } from '../src/index.js'
import { RawClient } from './raw-client.js'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f()
})

async function serve<S>(device: Device<S>): Promise<SimulatorServer> {
  const server = await serveDevice(device)
  cleanups.push(() => server.close())
  return server
}

async function session(port: number) {
  const text = textMarshaller(new SentinelBytesMarshaller('\n'))
  const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), text.marshall, text.unmarshall, { timeout: 2_000 })
  const s = await client.connect({ signal: AbortSignal.timeout(5_000) })
  cleanups.push(() => s.close())
  return s
}

interface Psu {
  volts: number
  target: number
  output: boolean
  name: string
}

function psu(): Device<Psu> {
  return new Device<Psu>({ name: 'psu', state: { volts: 0, target: 0, output: false, name: 'x' }, delimiter: ';', unknownCommand: 'ERR' })
    .command('*IDN?', () => 'ACME,PSU,7,2.0')
    .command('VOLT {v:f}', ({ v }, d) => {
      expectTypeOf(v).toEqualTypeOf<number>()
      d.state.target = v
    })
    .command('VOLT?', (_, d) => d.state.volts.toFixed(3))
    .command('NAME {label}', ({ label }, d) => {
      expectTypeOf(label).toEqualTypeOf<string>()
      d.state.name = label
      return `NAME=${label}`
    })
    .command('COUNT {n:d} {unit:s}', ({ n, unit }) => {
      expectTypeOf(n).toEqualTypeOf<number>()
      expectTypeOf(unit).toEqualTypeOf<string>()
      return `${n * 2}${unit}`
    })
    .command(/^OUTP (ON|OFF)$/, (m, d) => {
      d.state.output = m[1] === 'ON'
    })
    .command('OUTP?', (_, d) => (d.state.output ? '1' : '0'))
    .command('SLOW?', async () => {
      await new Promise((resolve) => setTimeout(resolve, 30))
      return 'slow'
    })
    .command('LATE?', () => 'late', { delay: 60 })
    .command('BIN?', () => ieeeBlock(new Uint8Array([0, 10, 255])))
    .onTick(10, (d, elapsed) => {
      // a ramp: 100 V/s towards the target
      const step = (100 * elapsed) / 1000
      const diff = d.state.target - d.state.volts
      d.state.volts = Math.abs(diff) <= step ? d.state.target : d.state.volts + Math.sign(diff) * step
    })
}

describe('programmatic devices', () => {
  it('typed templates, RegExp patterns, async handlers, delays, delimiter, unknown commands', async () => {
    const device = psu()
    const server = await serve(device)
    const s = await session(server.address?.port ?? 0)
    expect(await s.sendReceive('*IDN?')).toBe('ACME,PSU,7,2.0')
    expect(await s.sendReceive('NAME bench one')).toBe('NAME=bench one')
    expect(device.state.name).toBe('bench one')
    expect(await s.sendReceive('COUNT 21 mV')).toBe('42mV')
    await s.send('OUTP ON')
    expect(await s.sendReceive('OUTP?')).toBe('1')
    expect(await s.sendReceive('SLOW?')).toBe('slow')
    const t0 = performance.now()
    expect(await s.sendReceive('LATE?')).toBe('late')
    expect(performance.now() - t0).toBeGreaterThanOrEqual(50)
    expect(await s.sendReceive('BOGUS')).toBe('ERR')
    // stringparser rules: {:f} needs two digits, so 'VOLT 5' is not a match
    expect(await s.sendReceive('VOLT 5')).toBe('ERR')
    // ';' splits: each query of the message answers on its own line
    const raw = await RawClient.open(server.address?.port ?? 0)
    cleanups.push(() => raw.destroy())
    raw.write('OUTP OFF;OUTP?;*IDN?;NOPE\n')
    expect(await raw.waitFor('ERR\n')).toBe('0\nACME,PSU,7,2.0\nERR\n')
  })

  it('the tick loop ramps the output towards the setpoint over time', async () => {
    const device = psu()
    const server = await serve(device)
    const s = await session(server.address?.port ?? 0)
    await s.send('VOLT 10.0')
    expect(Number(await s.sendReceive('VOLT?'))).toBeLessThan(10)
    const deadline = AbortSignal.timeout(3_000)
    let volts = 0
    while (!deadline.aborted && volts < 10) {
      volts = Number(await s.sendReceive('VOLT?'))
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    expect(volts).toBe(10)
  })

  it('binary replies pass through byte for byte', async () => {
    const server = await serve(psu())
    const raw = await RawClient.open(server.address?.port ?? 0)
    cleanups.push(() => raw.destroy())
    raw.write('BIN?\n')
    const got = await raw.waitForLength(7)
    expect([...got]).toEqual([0x23, 0x31, 0x33, 0, 10, 255, 0x0a])
  })

  it('unsolicited messages go to every connected client; `to` picks one', async () => {
    const device = psu()
    const server = await serve(device)
    const port = server.address?.port ?? 0
    const a = await RawClient.open(port)
    const b = await RawClient.open(port)
    cleanups.push(() => a.destroy(), () => b.destroy())
    a.write('*IDN?\n')
    b.write('*IDN?\n')
    await a.waitFor('\n')
    await b.waitFor('\n')
    expect(device.connectionList).toHaveLength(2)
    expect(device.broadcast('SRQ')).toBe(2)
    await a.waitFor('SRQ\n')
    await b.waitFor('SRQ\n')
    const first = device.connectionList[0]
    expect(device.broadcast('ONLY A', { to: first?.id ?? 0 })).toBe(1)
    await a.waitFor('ONLY A\n')
    b.write('*IDN?\n')
    expect(await b.waitFor('2.0\nSRQ\nACME,PSU,7,2.0\n')).not.toContain('ONLY A')
  })

  it('a handler that throws is logged and answers nothing; the connection and device go on', async () => {
    const errors: unknown[] = []
    const device = new Device({ name: 'crashy', state: {}, logger: { debug() {}, info() {}, warn() {}, error: (o: unknown) => errors.push(o) } })
      .command('BOOM', () => {
        throw new Error('kaput')
      })
      .command('OK?', () => 'OK')
    const server = await serve(device)
    const s = await session(server.address?.port ?? 0)
    await s.send('BOOM')
    expect(await s.sendReceive('OK?')).toBe('OK')
    expect(errors).toHaveLength(1)
  })
})
