import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { bundledDevice, loadDevice, parseTranscript, serveDevice } from '@labwire/simulator'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { main } from '../packages/cli/src/main.js'
import { proxy } from '../packages/cli/src/proxy.js'
import type { Io } from '../packages/cli/src/style.js'
import { RawClient, tcp, type Step } from './proxy-helpers.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'labwire-proxy-cli-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

function fakeIo(): Io & { out: () => string; err: () => string } {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let out = ''
  let err = ''
  stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
  stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk))
  return { stdout, stderr, stdin: new PassThrough(), env: { NO_COLOR: '1' }, out: () => out, err: () => err }
}

async function listening(io: ReturnType<typeof fakeIo>): Promise<number> {
  const deadline = Date.now() + 5_000
  while (Date.now() < deadline) {
    const match = /listening tcp:\/\/[^:]+:(\d+)/.exec(io.out())
    if (match !== null) return Number(match[1])
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`the proxy did not start: ${io.err()}`)
}

describe('labwire proxy', () => {
  it('records a session into a device file and a JSONL transcript; the file replays byte for byte', async () => {
    await using instrument = await serveDevice(await loadDevice(bundledDevice('scpi-psu')), { port: 0 })
    const record = join(dir, 'psu.yaml')
    const transcript = join(dir, 'psu.jsonl')
    const io = fakeIo()
    let stop!: () => void
    const stopped = new Promise<void>((resolve) => (stop = resolve))
    const done = proxy(['tcp://127.0.0.1:' + String(instrument.address?.port), '--port', '0', '--record', record, '--transcript', transcript, '--name', 'psu'], io, stopped)
    const port = await listening(io)
    const steps: Step[] = [['*IDN?', true], ['VOLT 3.3', false], ['VOLT?', true], ['OUTP 1', false], ['OUTP?', true]]
    const recorded = await (async () => {
      await using client = await RawClient.connect(tcp(port))
      return await client.run(steps)
    })()
    expect(recorded).toEqual(['labwire,SIM-PSU,0001,0.1.0\n', null, '3.300\n', null, '1\n'])
    stop()
    expect(await done).toBe(0)
    const entries = parseTranscript(await readFile(transcript, 'utf8'))
    const frames = entries.filter((e) => 'direction' in e)
    expect(frames.map((e) => ('direction' in e ? `${e.direction} ${e.text}` : ''))).toEqual([
      'request *IDN?\n', 'response labwire,SIM-PSU,0001,0.1.0\n', 'request VOLT 3.3\n', 'request VOLT?\n', 'response 3.300\n', 'request OUTP 1\n', 'request OUTP?\n', 'response 1\n',
    ])
    expect(frames[0]).toMatchObject({ connection: 1, hex: '2a49444e3f0a' })
    const yaml = await readFile(record, 'utf8')
    expect(yaml).toContain('"psu":')
    await using replayServer = await serveDevice(await loadDevice(record), { port: 0 })
    await using replay = await RawClient.connect(tcp(replayServer.address?.port ?? 0))
    expect(await replay.run(steps)).toEqual(recorded)
    expect(io.err()).toContain('wrote')
  })

  it('--fault applies a simulator fault spec to the replies it names', async () => {
    await using instrument = await serveDevice(await loadDevice(bundledDevice('scpi-psu')), { port: 0 })
    const io = fakeIo()
    let stop!: () => void
    const done = proxy(['tcp://127.0.0.1:' + String(instrument.address?.port), '--port', '0', '--quiet', '--fault', '{"kind":"junk","junk":"XX","commands":["*IDN?"]}'], io, new Promise<void>((resolve) => (stop = resolve)))
    const port = await listening(io)
    await using client = await RawClient.connect(tcp(port))
    expect(await client.run([['*IDN?', true], ['*OPC?', true]])).toEqual(['XXlabwire,SIM-PSU,0001,0.1.0\n', '1\n'])
    stop()
    expect(await done).toBe(0)
    expect(io.err()).toBe('')
  })

  it('usage errors exit 2: no --port, an unknown framer, a bad fault', async () => {
    const io = fakeIo()
    expect(await main(['proxy', 'tcp://127.0.0.1:5025'], io)).toBe(2)
    expect(io.err()).toContain('--port')
    expect(await main(['proxy', 'tcp://127.0.0.1:5025', '--port', '0', '--framer', 'morse'], io)).toBe(2)
    expect(io.err()).toContain('unknown framer "morse"')
    expect(await main(['proxy', 'tcp://127.0.0.1:5025', '--port', '0', '--fault', '{"kind":"gremlins"}'], io)).toBe(2)
    expect(io.err()).toContain('kind: must be one of')
    const help = fakeIo()
    expect(await main(['proxy', '--help'], help)).toBe(0)
    expect(help.out()).toContain('Usage: labwire proxy RESOURCE')
  })
})
