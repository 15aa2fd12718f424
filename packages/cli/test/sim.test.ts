import { spawnSync, type ChildProcess } from 'node:child_process'
import { createServer, type Server } from 'node:net'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { finished, run, runHere, spawnCli, type RunResult } from './helpers.js'

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
const simFixture = (name: string): string => fileURLToPath(new URL(`../../simulator/test/fixtures/${name}`, import.meta.url))
const SIGGEN = simFixture('signal-generators.yaml')
const QCODES = simFixture('qcodes-style.yaml')

const running = new Set<ChildProcess>()
afterEach(() => {
  for (const child of running) child.kill('SIGKILL')
  running.clear()
})

/** Start `labwire sim ...args`; resolve with the process and the ports it printed (one per listener line). */
async function startSim(args: string[], listeners = 1): Promise<{ child: ChildProcess; ports: number[]; done: Promise<RunResult> }> {
  const child = spawnCli(['sim', ...args])
  running.add(child)
  const lines: number[] = []
  let buffer = ''
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      buffer += chunk.toString()
      const found = [...buffer.matchAll(/^listening tcp:\/\/127\.0\.0\.1:(\d+)$/gm)].map((m) => Number(m[1]))
      if (found.length >= listeners) {
        lines.push(...found)
        child.stdout?.off('data', onData)
        resolve()
      }
    }
    child.stdout?.on('data', onData)
    child.once('exit', (code) => reject(new Error(`labwire sim exited (${code}) before listening; stdout: ${buffer}`)))
  })
  const done = finished(child, 20_000)
  await Promise.race([ready, done.then((r) => Promise.reject(new Error(`labwire sim exited ${r.code}: ${r.stderr}`)))])
  return { child, ports: lines, done }
}

describe('labwire sim (the built binary) + labwire query (the binary once, then in process)', () => {
  it('serves each SOCKET resource of a pyvisa-sim file, answers like pyvisa-sim, exits 0 on SIGINT', async () => {
    const sim = await startSim([SIGGEN, '--port', '0'])
    const resource = `TCPIP::127.0.0.1::${sim.ports[0]}::SOCKET`
    const first = await run(['query', resource, '?IDN', '?FREQ'])
    expect(first.stderr).toBe('')
    expect(first.stdout).toBe('LSG Serial #1234\n100.00\n')
    // A setter that answers OK: --read-all reads a reply after every command.
    const set = await runHere(['query', resource, '!FREQ 12.5', '?FREQ', '--read-all'])
    expect(set.stdout).toBe('OK\n12.50\n')
    // Out of range: the setter's error reply.
    const bad = await runHere(['query', resource, '!FREQ 0.5', '--read-all'])
    expect(bad.stdout).toBe('FREQ_ERROR\n')
    sim.child.kill('SIGINT')
    const result = await sim.done
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`listening tcp://127.0.0.1:${sim.ports[0]}\n`)
    // Only the real port's VISA resource is printed, never the file's default port next to it.
    expect(result.stderr).toContain(`serving device "siggen" on tcp://127.0.0.1:${sim.ports[0]}, VISA resource TCPIP::127.0.0.1::${sim.ports[0]}::SOCKET`)
    expect(result.stderr).not.toContain('10001')
  })

  it('takes the terminators from the eom entry: TCPIP SOCKET by default, --eom to pick another', async () => {
    const sim = await startSim([QCODES, '--port', '0', '--quiet'])
    const port = sim.ports[0] as number
    const crlf = await runHere(['query', `tcp://127.0.0.1:${port}?read_term=%0D%0A&write_term=%0D%0A`, '*IDN?'])
    expect(crlf.stdout).toBe('QCoDeS, DAC-16, 1000, 0.1\n')
    sim.child.kill('SIGTERM')
    const stopped = await sim.done
    expect(stopped.code).toBe(0)
    expect(stopped.stderr).toBe('') // --quiet

    const gpib = await startSim([QCODES, '--port', '0', '--eom', 'GPIB INSTR', '--device', 'DAC'])
    const lf = await runHere(['query', `tcp://127.0.0.1:${gpib.ports[0]}`, '*IDN?'])
    expect(lf.stdout).toBe('QCoDeS, DAC-16, 1000, 0.1\n')
    gpib.child.kill('SIGINT')
    expect((await gpib.done).code).toBe(0)
  })

  it('--device picks one of several devices; without it the error lists them (exit 2)', async () => {
    const none = await runHere(['sim', fixture('two-devices.yaml'), '--port', '0'])
    expect(none.code).toBe(2)
    expect(none.stderr).toMatch(/2 devices and no TCPIP::host::port::SOCKET resource; pick one with --device NAME: alpha, beta/)
    const sim = await startSim([fixture('two-devices.yaml'), '--device', 'beta', '--port', '0'])
    expect((await runHere(['query', `tcp://127.0.0.1:${sim.ports[0]}`, '*IDN?'])).stdout).toBe('ACME,BETA,2,1.0\n')
    sim.child.kill('SIGINT')
    await sim.done
    // A resource name works as --device too, and a missing one is a usage error.
    const unknown = await runHere(['sim', fixture('two-devices.yaml'), '--device', 'gamma', '--port', '0'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain('no device or resource named "gamma"; devices: alpha, beta')
    const badEom = await runHere(['sim', fixture('two-devices.yaml'), '--device', 'beta', '--eom', 'USB RAW', '--port', '0'])
    expect(badEom.code).toBe(2)
    expect(badEom.stderr).toContain("no eom entry 'USB RAW'")
  })

  it('serves a module exporting a programmatic device', async () => {
    const sim = await startSim([fixture('psu-device.mjs'), '--port', '0'])
    const result = await runHere(['query', `tcp://127.0.0.1:${sim.ports[0]}`, '*IDN?', 'VOLT 2.5', 'VOLT?'])
    expect(result.stdout).toBe('labwire,PSU-MODULE,0,1.0\n2.500\n')
    sim.child.kill('SIGINT')
    expect((await sim.done).code).toBe(0)
  })

  it('--trace writes every byte each way to stderr', async () => {
    const sim = await startSim([SIGGEN, '--port', '0', '--trace'])
    await runHere(['query', `tcp://127.0.0.1:${sim.ports[0]}`, '?IDN'])
    sim.child.kill('SIGINT')
    const result = await sim.done
    expect(result.code).toBe(0)
    expect(result.stderr).toMatch(/127\.0\.0\.1:\d+ == connected/)
    expect(result.stderr).toMatch(/<- 5 B {2}3f 49 44 4e 0a {2}"\?IDN\\n"/)
    expect(result.stderr).toMatch(/-> 17 B {2}4c 53 47 .* "LSG Serial #1234\\n"/)
  })

  it('exit 8 for a missing or invalid device file, 3 when the port is taken, 2 for a bad port', async () => {
    const missing = await run(['sim', fixture('nope.yaml')])
    expect(missing.code).toBe(8)
    expect(missing.stderr).toContain('nope.yaml: no such file')
    const broken = await runHere(['sim', fixture('broken.yaml'), '--port', '0'])
    expect(broken.code).toBe(8)
    expect(broken.stderr).toMatch(/broken\.yaml:\d+:\d+: /)
    const badPort = await runHere(['sim', SIGGEN, '--port', '70000'])
    expect(badPort.code).toBe(2)

    const blocker: Server = createServer()
    await new Promise<void>((resolve) => blocker.listen({ host: '127.0.0.1', port: 0 }, resolve))
    const taken = (blocker.address() as { port: number }).port
    try {
      const result = await runHere(['sim', fixture('two-devices.yaml'), '--device', 'alpha', '--port', String(taken)])
      expect(result.code).toBe(3)
      expect(result.stderr).toMatch(/EADDRINUSE/)
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()))
    }
  })
})

const DMM = fileURLToPath(new URL('../../simulator/devices/dmm.yaml', import.meta.url))

describe('labwire query --binary against the simulated DMM (IEEE 488.2 blocks)', () => {
  it('prints a block as hex, as values with --datatype, and as JSON values; a non-block reply is a framing error (exit 5)', async () => {
    const sim = await startSim([DMM, '--port', '0', '--quiet'])
    const resource = `TCPIP::127.0.0.1::${sim.ports[0]}::SOCKET`
    const hex = await runHere(['query', resource, 'WAV:RAMP?', '--binary'])
    expect(hex.stdout).toBe('00 00 00 01 00 02 00 03 00 04 00 05 00 06 00 07 ff ff 00 ff\n')
    const values = await runHere(['query', resource, 'WAV:RAMP?', '--binary', '--datatype', 'int16', '--big-endian'])
    expect(values.stdout).toBe('0,1,2,3,4,5,6,7,-1,255\n')
    const json = await runHere(['query', resource, 'WAV:DATA?', '--binary', '--datatype', 'float32', '--json'])
    const parsed = JSON.parse(json.stdout) as { results: { values: number[] }[] }
    const sine = parsed.results[0]?.values ?? []
    expect(sine).toHaveLength(1000)
    expect(Math.max(...sine)).toBeCloseTo(1.5, 2)
    expect(Math.min(...sine)).toBeCloseTo(-1.5, 2)
    const notBlock = await runHere(['query', resource, '*IDN?', '--binary'])
    expect(notBlock.code).toBe(5)
    expect(notBlock.stderr).toContain(`${resource}: framing error (command "*IDN?")`)
    const usage = await runHere(['query', resource, 'WAV:RAMP?', '--datatype', 'int16'])
    expect(usage.code).toBe(2)
    expect(usage.stderr).toContain('--datatype needs --binary')
    const shell = await runHere(['shell', resource], { input: ':binary int16\nWAV:RAMP?\n:binary\n*IDN?\n' })
    expect(shell.stdout).toContain('binary block replies on (int16)')
    expect(shell.stdout).toContain('0,256,512,768,1024,1280,1536,1792,-1,-256\n') // little-endian view of big-endian data
    expect(shell.stdout).toMatch(/binary block replies off\n.*DMM/)
    sim.child.kill('SIGINT')
    expect((await sim.done).code).toBe(0)
  })
})

const PSU = fileURLToPath(new URL('../../simulator/devices/scpi-psu.yaml', import.meta.url))

describe('labwire sim + labwire query over Telnet', () => {
  it('serves the device on TCP and Telnet at once (one shared state), and the control channel over HTTP', async () => {
    const sim = await startSimUrls([PSU, '--port', '0', '--telnet-port', '0', '--control-port', '0'], 3)
    const tcp = sim.urls.find((u) => u.startsWith('tcp://')) as string
    const telnet = sim.urls.find((u) => u.startsWith('telnet://')) as string
    const http = sim.urls.find((u) => u.startsWith('http://')) as string
    const viaTelnet = await run(['query', telnet, '*IDN?', 'VOLT 4.25', 'VOLT?'])
    expect(viaTelnet.stderr).toBe('')
    expect(viaTelnet.stdout).toBe('labwire,SIM-PSU,0001,0.1.0\n4.250\n')
    expect(viaTelnet.code).toBe(0)
    // Same device behind both listeners: the TCP client sees the setpoint made over Telnet.
    expect((await runHere(['query', tcp, 'VOLT?'])).stdout).toBe('4.250\n')
    const devices = (await (await fetch(`${http}/devices`, { signal: AbortSignal.timeout(5_000) })).json()) as { name: string }[]
    expect(devices.map((d) => d.name)).toEqual(['scpi-psu'])
    // The wire trace over Telnet shows the IAC negotiation as well as the data.
    const traced = await runHere(['query', telnet, '*IDN?', '--trace'])
    expect(traced.stdout).toBe('labwire,SIM-PSU,0001,0.1.0\n')
    expect(traced.stderr).toMatch(/telnet:\/\/127\.0\.0\.1:\d+ -> \d+ B {2}ff f[bd] /)
    expect(traced.stderr).toMatch(/-> 6 B {2}2a 49 44 4e 3f 0a/)
    sim.child.kill('SIGINT')
    expect((await sim.done).code).toBe(0)
  })

  it('--trace on the Telnet listener shows the negotiation bytes', async () => {
    const sim = await startSimUrls([PSU, '--port', '0', '--telnet-port', '0', '--trace'], 2)
    const telnet = sim.urls.find((u) => u.startsWith('telnet://')) as string
    expect((await runHere(['query', telnet, '*IDN?'])).stdout).toBe('labwire,SIM-PSU,0001,0.1.0\n')
    sim.child.kill('SIGINT')
    const result = await sim.done
    expect(result.stderr).toMatch(/<- \d+ B {2}ff f[bd] /)
    expect(result.stderr).toMatch(/-> 27 B {2}6c 61 62 .*"labwire,SIM-PSU,0001,0\.1\.0\\n"/)
  })

  it('the shell works over Telnet with piped stdin', async () => {
    const sim = await startSimUrls([PSU, '--port', '0', '--telnet-port', '0'], 2)
    const telnet = sim.urls.find((u) => u.startsWith('telnet://')) as string
    const result = await run(['shell', telnet], { input: '*IDN?\nCURR 0.5\nCURR?\n' })
    expect(result.stdout).toBe('labwire,SIM-PSU,0001,0.1.0\n0.500\n')
    expect(result.code).toBe(0)
    sim.child.kill('SIGINT')
    await sim.done
  })
})

/** Like startSim, for any listener scheme: resolves with the URLs printed. */
async function startSimUrls(args: string[], listeners: number): Promise<{ child: ChildProcess; urls: string[]; done: Promise<RunResult> }> {
  const child = spawnCli(['sim', ...args])
  running.add(child)
  let buffer = ''
  const urls: string[] = []
  const ready = new Promise<void>((resolve) => {
    const onData = (chunk: Buffer): void => {
      buffer += chunk.toString()
      const found = [...buffer.matchAll(/^listening (\S+)$/gm)].map((m) => m[1] as string)
      if (found.length >= listeners) {
        urls.push(...found)
        child.stdout?.off('data', onData)
        resolve()
      }
    }
    child.stdout?.on('data', onData)
  })
  const done = finished(child, 20_000)
  await Promise.race([ready, done.then((r) => Promise.reject(new Error(`labwire sim exited ${r.code}: ${r.stderr}`)))])
  return { child, urls, done }
}

/** The Debian python3 first (it has python3-pyvisa-py), then whatever python3 is on PATH. */
const python = ['/usr/bin/python3', 'python3'].find((candidate) => spawnSync(candidate, ['-c', 'import pyvisa, pyvisa_py'], { timeout: 20_000 }).status === 0)
const hasPyvisa = python !== undefined
if (!hasPyvisa) console.warn('labwire sim pyvisa-py test SKIPPED: no python3 with pyvisa and pyvisa-py (apt-get install python3-pyvisa-py)')

describe.skipIf(!hasPyvisa)('pyvisa-py queries a labwire sim process over TCPIP SOCKET', () => {
  it('*IDN-style query, a setter, and read back', async () => {
    const sim = await startSim([SIGGEN, '--port', '0'])
    const script = `
import sys, json, pyvisa
rm = pyvisa.ResourceManager('@py')
inst = rm.open_resource(sys.argv[1], read_termination='\\n', write_termination='\\n', timeout=5000)
out = [inst.query('?IDN'), inst.query('!AMP 2.50'), inst.query('?AMP')]
inst.close(); rm.close()
print(json.dumps(out))
`
    const result = spawnSync(python as string, ['-c', script, `TCPIP::127.0.0.1::${sim.ports[0]}::SOCKET`], { encoding: 'utf8', timeout: 30_000 })
    expect(result.stderr).toBe('')
    expect(JSON.parse(result.stdout)).toEqual(['LSG Serial #1234', 'OK', '2.50'])
    sim.child.kill('SIGINT')
    expect((await sim.done).code).toBe(0)
  })
})

