import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { composeFilters, decodeFrom } from '@labwire/core'
import { bundledDevice, loadDevice, Proxy, recordDevice, serveDevice, SimulatorServer, type TranscriptEntry } from '@labwire/simulator'
import { TcpClient } from '@labwire/transport-tcp'
import { TelnetClient, telnetClientFilter } from '@labwire/transport-telnet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { promptDecoder, RawClient, tcp, type Step } from './proxy-helpers.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'labwire-proxy-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

/** Record `steps` through a proxy in front of `device`, serve the recording, replay: the replies must be byte-identical. */
async function roundTrip(name: 'scpi-psu' | 'dmm', steps: readonly Step[]): Promise<{ yaml: string; replies: (string | null)[] }> {
  const device = await loadDevice(bundledDevice(name))
  await using original = await serveDevice(device, { port: 0 })
  const entries: TranscriptEntry[] = []
  await using proxy = new Proxy({ upstream: tcp(original.address?.port ?? 0), port: 0, onEntry: (e) => entries.push(e) })
  const { port } = await proxy.listen()
  const recorded = await (async () => {
    await using client = await RawClient.connect(tcp(port))
    return await client.run(steps)
  })()
  const recording = recordDevice(entries, { name })
  expect(recording.varying).toEqual([])
  expect(recording.verified.matching).toBe(recording.verified.total)
  const file = join(dir, `${name}.yaml`)
  await writeFile(file, recording.yaml)
  await using replayServer = await serveDevice(await loadDevice(file), { port: 0 })
  await using replay = await RawClient.connect(tcp(replayServer.address?.port ?? 0))
  const replayed = await replay.run(steps)
  expect(replayed).toEqual(recorded)
  return { yaml: recording.yaml, replies: recorded }
}

describe('proxy --record: record a session, serve the recording, replay it byte for byte', () => {
  it('scpi-psu: dialogues, VOLT/CURR/OUTP become properties, an out-of-range setter and the error queue stay errors', async () => {
    const { yaml, replies } = await roundTrip('scpi-psu', [
      ['*IDN?', true],
      ['VOLT?', true],
      ['VOLT 5', false],
      ['VOLT?', true],
      ['CURR 0.5', false],
      ['CURR?', true],
      ['OUTP 1', false],
      ['OUTP?', true],
      ['VOLT 100', false],
      ['VOLT?', true],
      ['SYST:ERR?', true],
      ['VOLT 12.5', false],
      ['VOLT?', true],
      ['*OPC?', true],
    ])
    expect(replies[0]).toBe('labwire,SIM-PSU,0001,0.1.0\n')
    expect(replies[9]).toBe('5.000\n')
    expect(replies[10]).toBe('-100,"Command error"\n')
    expect(yaml).toMatch(/volt:\n\s+default: "0.0"\n\s+getter:\n\s+q: "VOLT\?"\n\s+r: "\{:.3f\}"/)
    expect(yaml).toContain('- q: "VOLT 100"')
  })

  it('dmm: IEEE blocks with 0xFF and newline bytes are recorded as exact bytes, FUNC and RANG as properties', async () => {
    const { yaml, replies } = await roundTrip('dmm', [
      ['*IDN?', true],
      ['FUNC?', true],
      ['FUNC CURR', false],
      ['FUNC?', true],
      ['RANG?', true],
      ['RANG 100', false],
      ['RANG?', true],
      ['WAV:DATA?', true],
      ['WAV:RAMP?', true],
      ['READ?', true],
      ['SYST:ERR?', true],
    ])
    expect(replies[7]?.startsWith('#44000')).toBe(true)
    expect(yaml).toContain('hex:')
    expect(yaml).toMatch(/func:\n\s+default: "VOLT"/)
  })

  it('cli-switch over TCP with its login: the login becomes labwire.login, errors stay errors', async () => {
    const device = await loadDevice(bundledDevice('cli-switch'))
    await using original = await serveDevice(device, { port: 0 })
    const entries: TranscriptEntry[] = []
    await using proxy = new Proxy({ upstream: tcp(original.address?.port ?? 0), port: 0, responseFramer: 'crlf', onEntry: (e) => entries.push(e) })
    const { port } = await proxy.listen()
    const steps: Step[] = [['show version', true], ['show interfaces', true], ['hostname core1', true], ['show hostname', true], ['port 2 sideways', true], ['bogus', true], ['frobnicate', true], ['', true]]
    const session = async (p: number): Promise<(string | null)[]> => {
      await using client = await RawClient.connect(tcp(p), { reply: promptDecoder('sw1> ') })
      await expectPrompt(client, 'login: ')
      await client.send('admin')
      await expectPrompt(client, 'Password: ')
      await client.send('labwire')
      await expectPrompt(client, 'sw1> ')
      return await client.run(steps)
    }
    const recorded = await session(port)
    expect(recorded[0]).toBe('labwire CLI switch, version 1.0\r\nuptime is 42 days\r\nsw1> ')
    expect(recorded[5]).toBe('% Invalid input detected\r\nsw1> ')
    const recording = recordDevice(entries, { name: 'cli-switch', responseTerminator: '\r\n' })
    expect(recording.login).toBe(true)
    expect(recording.varying).toEqual([])
    expect(recording.yaml).toContain('error: "% Invalid input detected"')
    const file = join(dir, 'cli-switch.yaml')
    await writeFile(file, recording.yaml)
    await using replayServer = await serveDevice(await loadDevice(file), { port: 0 })
    expect(await session(replayServer.address?.port ?? 0)).toEqual(recorded)
  })

  it('a Telnet CLI device with a login, recorded through the proxy, replays through TelnetClient login mode', async () => {
    await using original = new SimulatorServer({ device: await loadDevice(bundledDevice('cli-switch')), telnet: true })
    const upstreamPort = (await original.listen()).port
    const entries: TranscriptEntry[] = []
    // What `labwire proxy telnet://…` builds: TCP with labwire's Telnet codec to the instrument, Telnet to the client.
    await using proxy = new Proxy({
      upstream: new TcpClient({ host: '127.0.0.1', port: upstreamPort, filter: composeFilters(telnetClientFilter({ mode: 'plain' })) }),
      port: 0,
      telnet: true,
      responseFramer: 'crlf',
      onEntry: (e) => entries.push(e),
    })
    const { port } = await proxy.listen()
    const commands = ['show version', 'show interfaces', 'hostname core1', 'show hostname', 'bogus', 'nonsense']
    const session = async (p: number): Promise<string[]> => {
      const client = new TelnetClient({ host: '127.0.0.1', port: p, mode: 'login', username: 'admin', password: 'labwire', shellPrompt: 'sw1> ', loginTimeout: 3_000 })
      await using s = await client.connect({ signal: AbortSignal.timeout(5_000) })
      const out: string[] = []
      for (const command of commands) {
        const stream = s.request(new TextEncoder().encode(`${command}\r\n`))
        out.push(new TextDecoder().decode(await decodeFrom(promptDecoder('sw1> '), stream)))
      }
      return out
    }
    const recorded = await session(port)
    expect(recorded[0]).toBe('labwire CLI switch, version 1.0\r\nuptime is 42 days\r\n')
    const recording = recordDevice(entries, { name: 'cli-switch', responseTerminator: '\r\n' })
    expect(recording.login).toBe(true)
    expect(recording.varying).toEqual([])
    const file = join(dir, 'cli-switch-telnet.yaml')
    await writeFile(file, recording.yaml)
    await using replayServer = new SimulatorServer({ device: await loadDevice(file), telnet: true })
    const replayPort = (await replayServer.listen()).port
    expect(await session(replayPort)).toEqual(recorded)
  })
})

async function expectPrompt(client: RawClient, prompt: string): Promise<void> {
  const bytes = Buffer.from(await client.read(promptDecoder(prompt))).toString('latin1')
  expect(bytes.endsWith(prompt)).toBe(true)
}

