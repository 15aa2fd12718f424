import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ApplicationClient } from '@labwire/application'
import { LabwireError, type TransportClient } from '@labwire/core'
import { checksumCodec, compose, crc16Modbus, LengthFieldBytesMarshaller, SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { bundledDevice, loadDevice, Proxy, serveDevice, type TranscriptEntry } from '@labwire/simulator'
import { loadScript, scriptedDevice, scriptFromTranscript, ScriptIncompleteError, ScriptMismatchError, type ScriptStep } from '@labwire/testing'
import { TcpClient } from '@labwire/transport-tcp'
import { describe, expect, it } from 'vitest'

const lines = textMarshaller(new SentinelBytesMarshaller('\n'))

/** The "driver under test": a tiny power-supply driver. */
async function setVoltage(transport: TransportClient, volts: number): Promise<string> {
  const client = new ApplicationClient(transport, lines.marshall, lines.unmarshall, { timeout: 2_000 })
  await using session = await client.connect({ signal: AbortSignal.timeout(5_000) })
  const idn = await session.sendReceive('*IDN?')
  if (!idn.startsWith('ACME')) throw new Error(`not an ACME supply: ${idn}`)
  await session.send(`VOLT ${volts}`)
  return await session.sendReceive('VOLT?')
}

const script: ScriptStep[] = [
  { expect: '*IDN?', reply: 'ACME,PSU,1,1.0' },
  { expect: 'VOLT 5' },
  { expect: 'VOLT?', reply: '5.000' },
]

describe('scriptedDevice', () => {
  it('plays a conversation over the memory transport', async () => {
    const device = scriptedDevice(script)
    expect(await device.run(() => setVoltage(device.client(), 5))).toBe('5.000')
    expect(device.done).toBe(true)
  })

  it('plays a conversation over a real socket', async () => {
    await using device = scriptedDevice(script)
    const { port } = await device.listen()
    expect(await device.run(() => setVoltage(new TcpClient({ host: '127.0.0.1', port }), 5))).toBe('5.000')
  })

  it('a wrong request fails at once (the connection closes) and run() throws a readable diff', async () => {
    const device = scriptedDevice(script)
    const started = performance.now()
    const error = await device.run(() => setVoltage(device.client(), 5.5)).catch((e: unknown) => e)
    expect(performance.now() - started).toBeLessThan(1_000)
    expect(error).toBeInstanceOf(ScriptMismatchError)
    // The driver's own failure (the closed connection) is kept as the cause.
    expect((error as ScriptMismatchError).cause).toBeInstanceOf(LabwireError)
    expect((error as Error).message).toBe(
      [
        'scripted device: unexpected request at step 2 of 3',
        '  expected: "VOLT 5"',
        '  got:      "VOLT 5.5"',
        '                   ^ differs here',
        '  script:',
        '      1 ✓ "*IDN?"',
        '  →   2 ✗ "VOLT 5"',
        '      3   "VOLT?"',
      ].join('\n'),
    )
    expect(() => device.verify()).toThrow(ScriptMismatchError)
  })

  it('a request after the end of the script, bytes escaped in the message', async () => {
    const device = scriptedDevice([{ expect: '*IDN?', reply: 'ACME,PSU,1,1.0' }], { name: 'psu' })
    const error = await device
      .run(async () => {
        const client = new ApplicationClient(device.client(), lines.marshall, lines.unmarshall, { timeout: 2_000 })
        await using session = await client.connect()
        await session.sendReceive('*IDN?')
        await session.sendReceive('MEAS?\t\u00ff')
      })
      .catch((e: unknown) => e)
    expect((error as Error).message).toBe(['psu: request after the end of the script (all 1 steps done)', '  got:      "MEAS?\\t\\xc3\\xbf"', '  script:', '      1 ✓ "*IDN?"'].join('\n'))
  })

  it('a script not played to its end: verify() lists the steps never reached', async () => {
    const device = scriptedDevice(script)
    const error = await device.run(async () => {
      const client = new ApplicationClient(device.client(), lines.marshall, lines.unmarshall)
      await using session = await client.connect()
      await session.sendReceive('*IDN?')
    }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ScriptIncompleteError)
    expect((error as Error).message).toBe('scripted device: the script stopped at step 2 of 3; never received:\n    2  "VOLT 5"\n    3  "VOLT?"')
    expect((error as ScriptIncompleteError).remaining).toEqual([1, 2])
  })

  it('patterns, several reply frames, CR LF drivers, and a binary framer', async () => {
    const device = scriptedDevice([{ expect: /^VOLT \d+(\.\d+)?$/ }, { expect: 'LIST?', reply: ['a', 'b'] }])
    await device.run(async () => {
      const client = new ApplicationClient(device.client(), (s: string) => new TextEncoder().encode(`${s}\r\n`), lines.unmarshall)
      await using session = await client.connect()
      await session.send('VOLT 12.5')
      expect(await session.sendReceive('LIST?')).toBe('a')
    })
    const m = compose(new LengthFieldBytesMarshaller({ lengthFieldLength: 2, initialBytesToStrip: 2 }), checksumCodec(crc16Modbus))
    const framer = { decoder: new LengthFieldBytesMarshaller({ lengthFieldLength: 2, initialBytesToStrip: 2 }).decoder, marshall: m.marshall }
    // Requests are framed by length (the CRC is part of what the step expects); replies get length + CRC.
    const request = m.marshall(Uint8Array.of(1, 2)).subarray(2)
    const binary = scriptedDevice([{ expect: request, reply: Uint8Array.of(9, 9) }], { framer })
    await binary.run(async () => {
      const client = new ApplicationClient(binary.client(), m.marshall, m.unmarshall)
      await using session = await client.connect()
      expect(await session.sendReceive(Uint8Array.of(1, 2))).toEqual(Uint8Array.of(9, 9))
    })
  })

  it('a script from a proxy transcript replays what the instrument said, byte for byte', async () => {
    await using instrument = await serveDevice(await loadDevice(bundledDevice('scpi-psu')), { port: 0 })
    const entries: TranscriptEntry[] = []
    await using proxy = new Proxy({ upstream: new TcpClient({ host: '127.0.0.1', port: instrument.address?.port ?? 0 }), port: 0, onEntry: (e) => entries.push(e) })
    const { port } = await proxy.listen()
    const psu = async (transport: TransportClient): Promise<string[]> => {
      const client = new ApplicationClient(transport, lines.marshall, lines.unmarshall, { timeout: 2_000 })
      await using session = await client.connect()
      const out = [await session.sendReceive('*IDN?')]
      await session.send('VOLT 7')
      out.push(await session.sendReceive('VOLT?'))
      return out
    }
    const recorded = await psu(new TcpClient({ host: '127.0.0.1', port }))
    const jsonl = entries.map((e) => JSON.stringify(e)).join('\n')
    const steps = scriptFromTranscript(jsonl)
    expect(steps.map((s) => s.expect)).toEqual(['*IDN?', 'VOLT 7', 'VOLT?'])
    const device = scriptedDevice(steps)
    expect(await device.run(() => psu(device.client()))).toEqual(recorded)
    expect(recorded).toEqual(['labwire,SIM-PSU,0001,0.1.0', '7.000'])
    await expect(loadScript('/nonexistent/transcript.jsonl')).rejects.toThrow(/ENOENT/)
  })

  it('works under node:test: a passing file exits 0, a wrong request exits 1 with the diff', async () => {
    const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url))
    if (!existsSync(dist)) throw new Error(`${dist} is missing: run "pnpm build" first (the root "pnpm test" does)`)
    const fixture = fileURLToPath(new URL('./fixture-node-test.mjs', import.meta.url))
    const runNodeTest = (env: Record<string, string>): Promise<{ code: number | null; out: string }> =>
      new Promise((resolve, reject) => {
        const child = spawn(process.execPath, ['--test', fixture], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
        let out = ''
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
        const timer = setTimeout(() => {
          child.kill('SIGKILL')
          reject(new Error(`node --test did not finish: ${out}`))
        }, 15_000)
        child.once('close', (code) => {
          clearTimeout(timer)
          resolve({ code, out })
        })
      })
    const [pass, fail] = await Promise.all([runNodeTest({ WRONG: '0' }), runNodeTest({ WRONG: '1' })])
    expect(pass.code, pass.out).toBe(0)
    expect(pass.out).toContain('# pass 1')
    expect(fail.code).toBe(1)
    expect(fail.out).toContain('unexpected request at step 2 of 2')
    expect(fail.out).toContain('got:      "VOLT? MAX"')
  })
})
