import { spawn } from 'node:child_process'
import { ApplicationClient } from '@labwire/application'
import { byteStreamOf, FramingError } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpClient } from '@labwire/transport-tcp'
import { afterEach, describe, expect, it } from 'vitest'
import { BUNDLED_DEVICES, bundledDevice, loadDevice, loadDevices, serveDevice, type SimulatorServer } from '../src/index.js'
import { findPython } from './python.js'
import { RawClient } from './raw-client.js'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f()
})

async function serveBundled(name: (typeof BUNDLED_DEVICES)[number]): Promise<SimulatorServer> {
  const server = await serveDevice(await loadDevice(bundledDevice(name)))
  cleanups.push(() => server.close())
  return server
}

/** An IEEE 488.2 definite-length block reader followed by '\n' (what a client of WAV:DATA? needs). */
async function readBlock(bytes: AsyncIterator<Uint8Array>): Promise<Uint8Array> {
  const stream = byteStreamOf(bytes)
  const head = await stream.readExactly(2)
  if (head[0] !== 0x23) throw new FramingError(`block must start with '#', got 0x${(head[0] ?? 0).toString(16)}`)
  const digits = (head[1] ?? 0) - 0x30
  if (digits < 1 || digits > 9) throw new FramingError('bad block header')
  const length = Number(new TextDecoder().decode(await stream.readExactly(digits)))
  const data = await stream.readExactly(length)
  const end = await stream.readExactly(1)
  if (end[0] !== 0x0a) throw new FramingError('block not followed by a line feed')
  return data
}

describe('the example devices shipped in devices/', () => {
  it('every shipped file loads', async () => {
    for (const name of BUNDLED_DEVICES) {
      const loaded = await loadDevices(bundledDevice(name))
      expect([...loaded.devices.keys()]).toEqual([name])
      expect(loaded.resources[0]?.device).toBe(name)
    }
  })

  it('scpi-psu: setpoints, limits, error queue and status register over a labwire client', async () => {
    const server = await serveBundled('scpi-psu')
    const text = textMarshaller(new SentinelBytesMarshaller('\n'))
    const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port: server.address?.port ?? 0 }), text.marshall, text.unmarshall, { timeout: 2_000 })
    await using s = await client.connect()
    expect(await s.sendReceive('*IDN?')).toBe('labwire,SIM-PSU,0001,0.1.0')
    await s.send('VOLT 12.5')
    await s.send('CURR 31')
    expect(await s.sendReceive('VOLT?')).toBe('12.500')
    expect(await s.sendReceive('CURR?')).toBe('1.000')
    expect(await s.sendReceive('SYST:ERR?')).toBe('-100,"Command error"')
    expect(await s.sendReceive('SYST:ERR?')).toBe('0,"No error"')
    expect(await s.sendReceive('*ESR?')).toBe('32')
    expect(await s.sendReceive('*ESR?')).toBe('0')
  })

  it('dmm: WAV:DATA? answers an IEEE 488.2 block of 1000 float32 samples of a sine; READ? drifts within bounds', async () => {
    const server = await serveBundled('dmm')
    const encode = (q: string): Uint8Array => new TextEncoder().encode(`${q}\n`)
    const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port: server.address?.port ?? 0 }), encode, readBlock, { timeout: 2_000 })
    await using s = await client.connect()
    const data = await s.sendReceive('WAV:DATA?')
    expect(data.length).toBe(4000)
    const samples = new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length))
    expect(Math.max(...samples)).toBeCloseTo(1.5, 3)
    expect(Math.min(...samples)).toBeCloseTo(-1.5, 3)
    expect(samples[0]).toBe(0)
    const ramp = await s.sendReceive('WAV:RAMP?')
    expect([...ramp]).toEqual([0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0xff, 0xff, 0, 0xff])
    // a text query on the same device
    const raw = await RawClient.open(server.address?.port ?? 0)
    cleanups.push(() => raw.destroy())
    raw.write('READ?\n')
    const reading = Number((await raw.waitFor('\n')).trim())
    expect(reading).toBeGreaterThanOrEqual(1.2)
    expect(reading).toBeLessThanOrEqual(1.3)
  })

  it('cli-switch over TCP: banner, login prompt, wrong password, login, commands with a prompt after each', async () => {
    const server = await serveBundled('cli-switch')
    const c = await RawClient.open(server.address?.port ?? 0)
    cleanups.push(() => c.destroy())
    await c.waitFor('login: ')
    c.write('admin\r\n')
    await c.waitFor('Password: ')
    c.write('wrong\r\n')
    await c.waitFor('% Login invalid\r\nlogin: ')
    c.write('admin\r\n')
    c.write('labwire\r\n')
    await c.waitFor('sw1> ')
    c.write('show version\r\n')
    await c.waitFor('uptime is 42 days\r\nsw1> ')
    c.write('port 2 up\r\n')
    c.write('show port 2\r\n')
    c.write('port 2 sideways\r\n')
    c.write('frobnicate\r\n')
    const all = await c.waitFor('% Invalid input detected\r\nsw1> ')
    expect(all).toBe(
      'labwire CLI switch\r\n\r\nlogin: Password: % Login invalid\r\nlogin: Password: sw1> ' +
        'labwire CLI switch, version 1.0\r\nuptime is 42 days\r\nsw1> ' +
        'ok\r\nsw1> port 2 is up\r\nsw1> % port state must be up or down\r\nsw1> % Invalid input detected\r\nsw1> ',
    )
  })

  const python = findPython()
  it.skipIf(python === undefined)('cli-switch with a real peer: Python telnetlib logs in and runs a command', async () => {
    const server = await serveBundled('cli-switch')
    const script = String.raw`
import sys, telnetlib
t = telnetlib.Telnet('127.0.0.1', int(sys.argv[1]), timeout=5)
t.read_until(b'login: ', 5); t.write(b'admin\r\n')
t.read_until(b'Password: ', 5); t.write(b'labwire\r\n')
t.read_until(b'sw1> ', 5); t.write(b'show interfaces\r\n')
print(t.read_until(b'sw1> ', 5).decode())
t.close()
`
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(python as string, ['-W', 'ignore', '-c', script, String(server.address?.port ?? 0)])
      let stdout = ''
      let stderr = ''
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      child.on('close', (code) => {
        clearTimeout(timer)
        if (code === 0) resolve(stdout)
        else reject(new Error(`telnetlib failed: ${stderr}`))
      })
    })
    expect(out).toBe('Port  Status\r\n1     up\r\n2     down\r\nsw1> \n')
  })
})
if (findPython() === undefined) console.warn('python3 not found: the telnetlib peer test is SKIPPED')
