import { execFileSync, spawnSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI, REPO, run, runHere, startInstrument, type TestInstrument } from './helpers.js'

let instrument: TestInstrument
beforeAll(async () => {
  instrument = await startInstrument()
})
afterAll(async () => {
  await instrument.close()
})

describe('labwire shell with piped stdin', () => {
  it('runs queries and writes in order, prints replies only, exits 0', async () => {
    const result = await run(['shell', `TCPIP::127.0.0.1::${instrument.port}::SOCKET`], { input: '*IDN?\nVOLT 3.25\nVOLT?\n\n' })
    expect(result.stderr).toBe('')
    expect(result.stdout).toBe('ACME,Model 1,0001,1.0\n3.250\n')
    expect(result.code).toBe(0)
  })

  it('shell commands: :hex, :timeout, :term, :trace, :help, :quit stops reading', async () => {
    const input = [':hex', 'VOLT?', ':hex', ':timeout 250', 'SLOW?', '*IDN?', ':term \\n', ':trace', '*IDN?', ':trace', ':help', ':quit', '*IDN?', ''].join('\n')
    const result = await runHere(['shell', `tcp://127.0.0.1:${instrument.port}`], { input })
    const out = result.stdout.split('\n')
    expect(out[0]).toBe('hex display on')
    expect(out[1]).toMatch(/^[0-9a-f]{2}( [0-9a-f]{2})*$/)
    expect(out).toContain('hex display off')
    expect(out).toContain('timeout 250 ms')
    expect(out).toContain('terminators: read \\n  write \\n')
    expect(out).toContain('trace on')
    expect(out).toContain('trace off')
    expect(out.filter((line) => line === 'ACME,Model 1,0001,1.0')).toHaveLength(2) // the one after :quit is never sent
    expect(result.stdout).toContain(':binary')
    expect(result.stderr).toMatch(/timeout \(command "SLOW\?"\): no reply within 250 ms/)
    expect(result.stderr).toMatch(/ -> 6 B {2}2a 49 44 4e 3f 0a/) // traced while :trace was on
    // The timed-out SLOW? left the session usable, and the last failure is the exit code.
    expect(result.code).toBe(4)
  })

  it('reconnects after the instrument dropped the connection, and reports unknown shell commands', async () => {
    const result = await runHere(['shell', `tcp://127.0.0.1:${instrument.port}`], { input: 'BYE?\n*IDN?\n:nope\n' })
    expect(result.stdout).toBe('ACME,Model 1,0001,1.0\n')
    expect(result.stderr).toMatch(/connection closed by the instrument \(command "BYE\?"\)/)
    expect(result.stderr).toMatch(/unknown shell command ":nope"/)
    expect(result.code).toBe(2)
  })

  it('exits 3 when it cannot connect', async () => {
    const result = await runHere(['shell', 'tcp://127.0.0.1:1'], { input: '*IDN?\n' })
    expect(result.code).toBe(3)
    expect(result.stderr).toContain('tcp://127.0.0.1:1: connection failed')
  })
})

const hasTmux = spawnSync('tmux', ['-V']).status === 0
if (!hasTmux) console.warn('labwire shell pty test SKIPPED: tmux is not installed (apt-get install tmux)')

describe.skipIf(!hasTmux)('labwire shell in a real terminal (tmux pty)', () => {
  const session = `labwire-shell-${process.pid}`
  const tmux = (...args: string[]): string => execFileSync('tmux', ['-L', session, ...args], { encoding: 'utf8' })
  const screen = (): string => tmux('capture-pane', '-p', '-t', session)
  /** Poll the screen until `predicate` holds (bounded). */
  async function screenUntil(predicate: (text: string) => boolean, what: string): Promise<string> {
    const deadline = Date.now() + 10_000
    for (;;) {
      const text = screen()
      if (predicate(text)) return text
      if (Date.now() > deadline) throw new Error(`terminal never showed ${what}; screen:\n${text}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  afterAll(() => {
    spawnSync('tmux', ['-L', session, 'kill-server'])
  })

  it('prompts, answers, recalls history with the up arrow, and leaves on :quit with exit 0', async () => {
    const command = `cd ${REPO} && TERM=xterm NO_COLOR=1 ${process.execPath} ${CLI} shell tcp://127.0.0.1:${instrument.port}; echo "exit=$?"; sleep 30`
    tmux('new-session', '-d', '-s', session, '-x', '120', '-y', '30', command)
    await screenUntil((text) => text.includes('labwire>'), 'the prompt')
    expect(screen()).toContain(`connected to tcp://127.0.0.1:${instrument.port}`)
    tmux('send-keys', '-t', session, '*IDN?', 'Enter')
    await screenUntil((text) => text.includes('ACME,Model 1,0001,1.0'), 'the *IDN? reply')
    tmux('send-keys', '-t', session, 'VOLT 4.5', 'Enter')
    tmux('send-keys', '-t', session, 'VOLT?', 'Enter')
    await screenUntil((text) => text.includes('4.500'), 'the VOLT? reply')
    // History: up once recalls VOLT?, three times *IDN?.
    tmux('send-keys', '-t', session, 'Up', 'Up', 'Up', 'Enter')
    await screenUntil((text) => text.split('ACME,Model 1,0001,1.0').length === 3, 'a second *IDN? reply from history')
    tmux('send-keys', '-t', session, ':quit', 'Enter')
    const final = await screenUntil((text) => /exit=\d+/.test(text), 'the exit status')
    expect(final).toContain('exit=0')
  })
})
