import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { closedPort, finished, run, runHere, spawnCli, startInstrument, type TestInstrument } from './helpers.js'

let instrument: TestInstrument
beforeAll(async () => {
  instrument = await startInstrument()
})
afterAll(async () => {
  await instrument.close()
})

describe('labwire query (the built binary once, then in process; real TCP instrument)', () => {
  it('sends each command in order, prints each reply, exits 0 (VISA SOCKET resource)', async () => {
    const result = await run(['query', `TCPIP0::127.0.0.1::${instrument.port}::SOCKET`, '*IDN?', 'VOLT 1.5', 'VOLT?'])
    expect(result.stderr).toBe('')
    expect(result.stdout).toBe('ACME,Model 1,0001,1.0\n1.500\n')
    expect(result.code).toBe(0)
    expect(instrument.received.slice(-3)).toEqual(['*IDN?', 'VOLT 1.5', 'VOLT?'])
  })

  it('accepts tcp:// with terminators in the URI query; an extra reply line is never taken for the next answer', async () => {
    await runHere(['query', `tcp://127.0.0.1:${instrument.port}`, 'VOLT 7'])
    const result = await runHere(['query', `tcp://127.0.0.1:${instrument.port}?read_term=%0A&write_term=%0A`, 'TWO?', 'VOLT?'])
    expect(result.stdout).toBe('one\n7.000\n')
    expect(result.code).toBe(0)
  })

  it('--json prints one machine-readable object', async () => {
    const result = await runHere(['query', `tcp://127.0.0.1:${instrument.port}`, 'VOLT 2', 'VOLT?', '--json'])
    expect(result.code).toBe(0)
    const parsed = JSON.parse(result.stdout) as { ok: boolean; resource: string; results: { command: string; kind: string; reply: string | null; elapsedMs: number }[] }
    expect(parsed.ok).toBe(true)
    expect(parsed.resource).toBe(`tcp://127.0.0.1:${instrument.port}`)
    expect(parsed.results.map(({ command, kind, reply }) => ({ command, kind, reply }))).toEqual([
      { command: 'VOLT 2', kind: 'write', reply: null },
      { command: 'VOLT?', kind: 'query', reply: '2.000' },
    ])
    expect(parsed.results[1]?.elapsedMs).toBeGreaterThanOrEqual(0)
  })

  it('--hex prints the reply bytes as hex', async () => {
    const result = await runHere(['query', `tcp://127.0.0.1:${instrument.port}`, '*IDN?', '--hex'])
    expect(result.stdout.trim()).toBe('41 43 4d 45 2c 4d 6f 64 65 6c 20 31 2c 30 30 30 31 2c 31 2e 30')
  })

  it('--trace writes every byte each way to stderr, stdout stays the replies', async () => {
    const result = await runHere(['query', `tcp://127.0.0.1:${instrument.port}`, '*IDN?', '--trace'])
    expect(result.stdout).toBe('ACME,Model 1,0001,1.0\n')
    const lines = result.stderr.trim().split('\n')
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\S+Z tcp:\/\/127\.0\.0\.1:\d+ == connected$/)
    expect(lines).toContainEqual(expect.stringMatching(/ -> 6 B {2}2a 49 44 4e 3f 0a {2}"\*IDN\?\\n"$/))
    expect(lines).toContainEqual(expect.stringMatching(/ <- 22 B {2}41 43 .* "ACME,Model 1,0001,1\.0\\n"$/))
    expect(lines.at(-1)).toMatch(/== closed$/)
  })
})

describe('labwire query exit codes', () => {
  it('2: a bad resource string shows the accepted forms', async () => {
    const result = await runHere(['query', 'GPIB0::5::INSTR', '*IDN?'])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('invalid resource "GPIB0::5::INSTR"')
    expect(result.stderr).toContain('TCPIP[board]::host::port::SOCKET')
    expect(result.stderr).toContain('tcp://host')
    expect(result.stderr).toContain('telnet://host')
    expect(result.stdout).toBe('')
  })

  it('2: an unknown flag, a missing command, a bad terminator, a bad timeout', async () => {
    for (const args of [
      ['query', 'tcp://127.0.0.1:1', '*IDN?', '--bogus'],
      ['query', 'tcp://127.0.0.1:1'],
      ['query', 'tcp://127.0.0.1:1', '*IDN?', '--read-term', '\\q'],
      ['query', 'tcp://127.0.0.1:1', '*IDN?', '--timeout', 'soon'],
      ['query', 'tcp://127.0.0.1:1?color=red', '*IDN?'],
      ['frobnicate'],
    ]) {
      const result = await runHere(args)
      expect(result.code, args.join(' ')).toBe(2)
      expect(result.stderr, args.join(' ')).toMatch(/^labwire/)
    }
  })

  it('3: a refused connection, one line naming the resource', async () => {
    const port = await closedPort()
    const resource = `TCPIP::127.0.0.1::${port}::SOCKET`
    const result = await run(['query', resource, '*IDN?'])
    expect(result.code).toBe(3)
    expect(result.stderr.trim().split('\n')).toHaveLength(1)
    expect(result.stderr).toContain(resource)
    expect(result.stderr).toMatch(/ECONNREFUSED/)
  })

  it('4: no reply within --timeout, one line naming the resource and the command', async () => {
    const resource = `tcp://127.0.0.1:${instrument.port}`
    const result = await runHere(['query', resource, '*IDN?', 'SLOW?', '--timeout', '300'])
    expect(result.code).toBe(4)
    expect(result.stdout).toBe('ACME,Model 1,0001,1.0\n')
    expect(result.stderr.trim()).toBe(`labwire query: ${resource}: timeout (command "SLOW?"): no reply within 300 ms`)
  })

  it('4 with --json: the error is in the object too', async () => {
    const result = await runHere(['query', `tcp://127.0.0.1:${instrument.port}?timeout=200`, 'SLOW?', '--json'])
    expect(result.code).toBe(4)
    const parsed = JSON.parse(result.stdout) as { ok: boolean; error: { exitCode: number; kind: string; code: string; command: string } }
    expect(parsed.ok).toBe(false)
    expect(parsed.error).toMatchObject({ exitCode: 4, kind: 'timeout', code: 'ERR_TIMEOUT', command: 'SLOW?' })
  })

  it('5: a reply longer than --max-length is a framing error', async () => {
    const resource = `tcp://127.0.0.1:${instrument.port}`
    const result = await runHere(['query', resource, 'BIG?', '--max-length', '50'])
    expect(result.code).toBe(5)
    expect(result.stderr.trim().split('\n')).toHaveLength(1)
    expect(result.stderr).toContain(`${resource}: framing error (command "BIG?")`)
  })

  it('6: the instrument closes the connection before replying', async () => {
    const resource = `tcp://127.0.0.1:${instrument.port}`
    const result = await runHere(['query', resource, 'BYE?'])
    expect(result.code).toBe(6)
    expect(result.stderr).toContain(`${resource}: connection closed by the instrument (command "BYE?")`)
  })

  it('130: Ctrl-C (SIGINT) while waiting for a reply', async () => {
    const arrived = instrument.nextCommand()
    const child = spawnCli(['query', `tcp://127.0.0.1:${instrument.port}`, 'SLOW?', '--timeout', '0'])
    const done = finished(child, 10_000)
    expect(await arrived).toBe('SLOW?')
    child.kill('SIGINT')
    const result = await done
    expect(result.code).toBe(130)
    expect(result.stderr).toMatch(/interrupted \(command "SLOW\?"\)/)
  })
})

describe('labwire --help, --version', () => {
  it('prints the help and the version', async () => {
    const help = await run(['--help'])
    expect(help.code).toBe(0)
    for (const word of ['sim FILE', 'query RESOURCE', 'shell RESOURCE', 'serve CONFIG', 'registry', 'Exit codes']) expect(help.stdout).toContain(word)
    for (const command of ['sim', 'query', 'shell']) {
      const sub = await runHere([command, '--help'])
      expect(sub.code).toBe(0)
      expect(sub.stdout).toMatch(new RegExp(`^Usage: labwire ${command}`))
    }
    const version = await runHere(['--version'])
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/)
    const none = await run([])
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('Usage: labwire')
  })

  it('uses colour only on a TTY (here: none, not even with a colourful TERM)', async () => {
    const result = await run(['query', 'nope', 'x'], { env: { TERM: 'xterm-256color', NO_COLOR: '', FORCE_COLOR: '' } })
    expect(result.stderr).not.toContain('\x1b[')
  })
})
