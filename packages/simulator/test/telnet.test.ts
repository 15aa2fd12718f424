import { spawn } from 'node:child_process'
import { ApplicationClient } from '@labwire/application'
import { ConnectionClosedError, byteStreamOf } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TelnetClient } from '@labwire/transport-telnet'
import { afterEach, describe, expect, it } from 'vitest'
import { bundledDevice, loadDevice, SimulatorServer } from '../src/index.js'
import { findPython } from './python.js'

// The simulator over Telnet (SimulatorServer({ telnet: true }): labwire's IAC codec under the framing).

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f()
})

async function serveTelnet(name: 'scpi-psu' | 'dmm' | 'cli-switch'): Promise<number> {
  const server = new SimulatorServer({ device: await loadDevice(bundledDevice(name)), telnet: true })
  const { port } = await server.listen()
  cleanups.push(() => server.close())
  return port
}

describe('devices over Telnet', () => {
  it('cli-switch: labwire TelnetClient in login mode logs in, then commands answer up to the prompt', async () => {
    const port = await serveTelnet('cli-switch')
    const untilPrompt = textMarshaller(new SentinelBytesMarshaller('sw1> '))
    const crlf = (command: string): Uint8Array => new TextEncoder().encode(`${command}\r\n`)
    const client = new ApplicationClient(
      new TelnetClient({ host: '127.0.0.1', port, mode: 'login', username: 'admin', password: 'labwire', shellPrompt: /sw1> $/ }),
      crlf,
      untilPrompt.unmarshall,
      { timeout: 2_000 },
    )
    await using session = await client.connect({ signal: AbortSignal.timeout(10_000) })
    expect(await session.sendReceive('show version')).toBe('labwire CLI switch, version 1.0\r\nuptime is 42 days\r\n')
    expect(await session.sendReceive('hostname core1')).toBe('hostname set\r\n')
    expect(await session.sendReceive('show hostname')).toBe('core1\r\n')
    expect(await session.sendReceive('reboot')).toBe('% Invalid input detected\r\n')
  })

  it('dmm: binary blocks survive Telnet (0xFF escaped by the server, unescaped by the client)', async () => {
    const port = await serveTelnet('dmm')
    const readAll = async (bytes: AsyncIterator<Uint8Array>): Promise<Uint8Array> => {
      const stream = byteStreamOf(bytes)
      const head = await stream.readExactly(2)
      const digits = (head[1] ?? 0) - 0x30
      const length = Number(new TextDecoder().decode(await stream.readExactly(digits)))
      const data = await stream.readExactly(length + 1)
      return data.subarray(0, length)
    }
    const client = new ApplicationClient(new TelnetClient({ host: '127.0.0.1', port }), (q: string) => new TextEncoder().encode(`${q}\n`), readAll, { timeout: 2_000 })
    await using session = await client.connect({ signal: AbortSignal.timeout(5_000) })
    const data = await session.sendReceive('WAV:DATA?')
    expect(data.length).toBe(4000)
    const samples = new Float32Array(data.slice().buffer)
    expect(Math.max(...samples)).toBeCloseTo(1.5, 3)
    // 0xFF data bytes (IAC on the wire, escaped as IAC IAC) come through unchanged
    expect([...(await session.sendReceive('WAV:RAMP?'))]).toEqual([0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0xff, 0xff, 0, 0xff])
  })

  it('scpi-psu: a disconnect fault over Telnet is a ConnectionClosedError', async () => {
    const server = new SimulatorServer({ device: await loadDevice(bundledDevice('scpi-psu')), telnet: true })
    const { port } = await server.listen()
    cleanups.push(() => server.close())
    server.device.fault({ kind: 'disconnect', commands: ['*RST'] })
    const lines = textMarshaller(new SentinelBytesMarshaller('\n'))
    const client = new ApplicationClient(new TelnetClient({ host: '127.0.0.1', port }), lines.marshall, lines.unmarshall, { timeout: 2_000 })
    await using session = await client.connect({ signal: AbortSignal.timeout(5_000) })
    expect(await session.sendReceive('*IDN?')).toBe('labwire,SIM-PSU,0001,0.1.0')
    await expect(session.sendReceive('*RST')).rejects.toBeInstanceOf(ConnectionClosedError)
  })

  const python = findPython()
  it.skipIf(python === undefined)('cli-switch with Python telnetlib over real Telnet negotiation', async () => {
    const port = await serveTelnet('cli-switch')
    const script = String.raw`
import sys, telnetlib
t = telnetlib.Telnet('127.0.0.1', int(sys.argv[1]), timeout=5)
t.read_until(b'login: ', 5); t.write(b'admin\r\n')
t.read_until(b'Password: ', 5); t.write(b'labwire\r\n')
t.read_until(b'sw1> ', 5); t.write(b'show port 2\r\n')
print(t.read_until(b'sw1> ', 5).decode())
t.close()
`
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(python as string, ['-W', 'ignore', '-c', script, String(port)])
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
    expect(out).toBe('port 2 is down\r\nsw1> \n')
  })
})
if (findPython() === undefined) console.warn('python3 not found: the telnetlib-over-Telnet test is SKIPPED')
