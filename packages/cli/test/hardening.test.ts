/**
 * Hardening round two (issue 16), the `labwire` command: each test is named after the failure it pins.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { ApplicationServer } from '@labwire/application'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpServer } from '@labwire/transport-tcp'
import { TelnetClient, TelnetServer } from '@labwire/transport-telnet'
import { CLI, REPO, finished, run, runHere, spawnCli, waitForLine } from './helpers.js'

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
// eslint-disable-next-line no-control-regex -- what must never reach a terminal
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/
const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A line device answering from `answers` (command → reply text); unknown commands get no reply. */
async function device(answers: Record<string, string>): Promise<number> {
  const line = textMarshaller(new SentinelBytesMarshaller('\n', { maxLength: 64 * 1024 * 1024 }))
  const app = new ApplicationServer(line.unmarshall, line.marshall, (command: string) => answers[command])
  const server = new TcpServer({ port: 0, callback: app })
  const { port } = await server.listen()
  cleanups.push(() => server.close())
  return port
}

function startSim(args: string[]): ChildProcess {
  const child = spawnCli(['sim', ...args])
  cleanups.push(() => void child.kill('SIGKILL'))
  return child
}

const HOSTILE = '\x1b]52;c;ZXZpbA==\x07\x1b[2J\rFAKE: all tests passed\x9b31m'

describe('labwire: hardening round two', () => {
  it('query and shell escape control bytes visibly (OSC 52, CSI 2J, CR), except newline and tab, unless --raw (hardening #13)', async () => {
    const port = await device({ 'EVIL?': HOSTILE, 'TAB?': 'a\tb' })
    const escaped = await run(['query', `tcp://127.0.0.1:${port}`, 'EVIL?', 'TAB?'])
    expect(escaped.code).toBe(0)
    expect(escaped.stdout).toBe('\\x1b]52;c;ZXZpbA==\\x07\\x1b[2J\\rFAKE: all tests passed\\x9b31m\na\tb\n')
    const raw = await runHere(['query', `tcp://127.0.0.1:${port}`, 'EVIL?', '--raw'])
    expect(raw.stdout).toBe(`${HOSTILE}\n`)
    const json = await runHere(['query', `tcp://127.0.0.1:${port}`, 'EVIL?', '--json'])
    expect(json.stdout).not.toMatch(CONTROL)
    expect((JSON.parse(json.stdout) as { results: { reply: string }[] }).results[0]?.reply).toBe(HOSTILE)
    const shell = await runHere(['shell', `tcp://127.0.0.1:${port}`], { input: 'EVIL?\n' })
    expect(shell.stdout).toBe('\\x1b]52;c;ZXZpbA==\\x07\\x1b[2J\\rFAKE: all tests passed\\x9b31m\n')
  })

  it('labwire query over Telnet prints the reply, not the banner the server sent first (hardening #12)', async () => {
    const line = textMarshaller(new SentinelBytesMarshaller('\n'))
    const app = new ApplicationServer(line.unmarshall, line.marshall, (command: string) => (command === '*IDN?' ? 'ACME,DMM,1,1.0' : undefined))
    const server = new TelnetServer({ port: 0, callback: app, banner: 'labwire DMM simulator\r\n' })
    const { port } = await server.listen()
    cleanups.push(() => server.close())
    const result = await runHere(['query', `telnet://127.0.0.1:${port}`, '*IDN?'])
    expect(result.code).toBe(0)
    expect(result.stdout).toBe('ACME,DMM,1,1.0\n')
  })

  it('error messages that quote device text escape it; a timeout says what arrived and suggests --read-term (hardening #13)', async () => {
    const port = await device({ 'MEAS?': 'x' }) // answers "x\n": with --read-term \r it never completes
    const result = await runHere(['query', `tcp://127.0.0.1:${port}`, 'MEAS?', '--read-term', '\\r', '--timeout', '300'])
    expect(result.code).toBe(4)
    expect(result.stderr).toContain('timeout (command "MEAS?"): no complete reply within 300 ms: 2 bytes arrived without the read terminator "\\r": "x\\n"; they end with "\\n": try --read-term "\\n"')
    const hostile = await device({ 'EVIL?': HOSTILE })
    const quoted = await runHere(['query', `tcp://127.0.0.1:${hostile}`, 'EVIL?', '--read-term', 'CRLF', '--timeout', '300'])
    expect(quoted.code).toBe(4)
    expect(quoted.stderr).toContain('\\x1b]52;c;')
    expect(quoted.stderr).not.toMatch(CONTROL)
  })

  it('query never exits before stdout is flushed to a slow reader; a reader that goes away is a non-zero exit (hardening #14)', async () => {
    const size = 1024 * 1024
    const port = await device({ 'HUGE?': 'x'.repeat(size) })
    const child = spawnCli(['query', `tcp://127.0.0.1:${port}`, 'HUGE?'])
    child.stdin?.end()
    child.stdout?.pause()
    // The reader is slow: nothing is read for 2.5 s (the old exit timer fired after 2 s).
    await new Promise((resolve) => setTimeout(resolve, 2_500))
    child.stdout?.resume()
    const result = await finished(child, 15_000)
    expect(result.code).toBe(0)
    expect(result.stdout.length).toBe(size + 1)

    const gone = spawnCli(['query', `tcp://127.0.0.1:${port}`, 'HUGE?'])
    gone.stdin?.end()
    gone.stdout?.destroy() // the reader goes away before the reply is written
    const lost = await finished(gone, 15_000)
    expect(lost.code).not.toBe(0)
  })

  it('--trace memory stays bounded: 4 MiB traced costs a few MB more than untraced, not 80x the traffic (hardening #15)', async () => {
    const size = 4 * 1024 * 1024
    const port = await device({ 'HUGE?': 'y'.repeat(size) })
    // --timeout: on a loaded machine 4 MiB of trace can take longer than the default reply timeout.
    const peak = async (flags: string[]): Promise<{ rss: number; stderr: string }> => {
      const child = spawn(process.execPath, [fixture('max-rss.mjs'), 'query', `tcp://127.0.0.1:${port}`, 'HUGE?', '--timeout', '50000', ...flags], { cwd: REPO, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] })
      const result = await finished(child, 60_000)
      expect(result.code).toBe(0)
      expect(result.stdout.length).toBe(size + 1)
      const rss = Number(/max-rss-kib (\d+)/.exec(result.stderr)?.[1]) * 1024
      expect(rss).toBeGreaterThan(0)
      return { rss, stderr: result.stderr }
    }
    const plain = await peak([])
    const traced = await peak(['--trace'])
    // Every line is bounded: a 64 KiB read is shown over 1 KiB lines, each written before the next is made.
    const longest = Math.max(...traced.stderr.split('\n').map((line) => line.length))
    expect(longest).toBeLessThan(8 * 1024)
    expect(traced.stderr.length).toBeGreaterThan(4 * size) // it is all there: hex and text of every byte
    // Before: 804 MB for 10 MiB (80x the traffic). Now the trace adds a few MB; the bound is 8x the traffic because
    // peak RSS depends on when the collector runs, which moves with the load of the test files running beside this one.
    expect(traced.rss - plain.rss).toBeLessThan(8 * size)
  }, 90_000)

  it('?read_term=%ZZ and other malformed escapes are refused (exit 2), %FF is the byte 0xFF (hardening #18)', async () => {
    const bad = await runHere(['query', 'tcp://127.0.0.1:5025?read_term=%ZZ', '*IDN?'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/malformed percent escape "%ZZ"/)
    const lone = await runHere(['query', 'tcp://127.0.0.1:5025?read_term=%0', '*IDN?'])
    expect(lone.code).toBe(2)
    const { parseResource } = await import('../src/resource.js')
    expect(parseResource('tcp://h:1?read_term=%FF').readTerm).toEqual(Uint8Array.of(0xff))
    expect(parseResource('tcp://h:1?write_term=%5Cr%0A').writeTerm).toEqual(Uint8Array.of(0x0d, 0x0a))
  })

  it('labwire sim prints device errors on stderr by default; --log-level silent hides them; --quiet keeps errors (hardening #18)', async () => {
    for (const [flags, shown] of [[[], true], [['--quiet'], true], [['--log-level', 'silent'], false]] as const) {
      const sim = startSim([fixture('bad-format.yaml'), '--port', '0', ...flags])
      let stderr = ''
      sim.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
      const port = Number((await waitForLine(sim, /^listening tcp:\/\/127\.0\.0\.1:(\d+)$/))[1])
      const query = await runHere(['query', `tcp://127.0.0.1:${port}`, 'VOLT?', '--timeout', '300'])
      expect(query.code).not.toBe(0)
      sim.kill('SIGTERM')
      await finished(sim, 10_000).catch(() => undefined)
      if (shown) expect(stderr, flags.join(' ')).toMatch(/labwire sim: error: .*VOLT\?/)
      else expect(stderr).not.toMatch(/error:/)
    }
  })

  it('labwire sim FILE --telnet-port serves Telnet through the simulator: banner, login prompt, shell (rough edge)', async () => {
    const sim = startSim(['cli-switch', '--port', '0', '--telnet-port', '0', '--quiet'])
    const port = Number((await waitForLine(sim, /^listening telnet:\/\/127\.0\.0\.1:(\d+)$/))[1])
    const client = new TelnetClient({ host: '127.0.0.1', port, mode: 'login', username: 'admin', password: 'labwire', shellPrompt: /sw1> $/, stripPrompt: true, negotiationTimeout: 200, loginTimeout: 5_000 })
    await using session = await client.connect({ signal: AbortSignal.timeout(10_000) })
    const line = new SentinelBytesMarshaller('\r\n')
    const reply = await line.unmarshall(session.request(new TextEncoder().encode('show version\n')))
    expect(new TextDecoder().decode(reply)).toBe('labwire CLI switch, version 1.0')
  })

  it('bundled devices by name and --list; --help shows no path that does not exist (rough edge)', async () => {
    const list = await run(['sim', '--list'])
    expect(list.code).toBe(0)
    for (const name of ['scpi-psu', 'dmm', 'cli-switch']) expect(list.stdout).toMatch(new RegExp(`^  ${name} +\\S+${name}\\.yaml$`, 'm'))
    for (const path of list.stdout.match(/\S+\.yaml/g) ?? []) expect(existsSync(path), path).toBe(true)
    const help = await run(['sim', '--help'])
    for (const path of help.stdout.match(/\S+\/\S+\.ya?ml/g) ?? []) expect(existsSync(`${REPO}${path}`), path).toBe(true)
    expect(help.stdout).toContain('labwire sim scpi-psu')
    const file = await runHere(['sim', '--list', fixture('two-devices.yaml')])
    expect(file.stdout).toMatch(/devices: alpha, beta/)
    const unknown = await runHere(['sim', 'no-such-device'])
    expect(unknown.code).toBe(8)
    expect(unknown.stderr).toMatch(/bundled devices: scpi-psu, dmm, cli-switch/)
    const sim = startSim(['scpi-psu', '--port', '0', '--quiet'])
    const port = Number((await waitForLine(sim, /^listening tcp:\/\/127\.0\.0\.1:(\d+)$/))[1])
    const idn = await runHere(['query', `TCPIP::127.0.0.1::${port}::SOCKET`, '*IDN?'])
    expect(idn.code).toBe(0)
    expect(idn.stdout).toMatch(/SIM-PSU|PSU/i)
  })

  it('query --version works; a misspelt flag gets "did you mean", not Node\'s raw message (rough edge)', async () => {
    const version = await run(['query', '--version'])
    expect(version.code).toBe(0)
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+\n$/)
    const typo = await runHere(['query', 'tcp://127.0.0.1:5025', '*IDN?', '--tiemout', '5'])
    expect(typo.code).toBe(2)
    expect(typo.stderr).toBe('labwire query: unknown option --tiemout; did you mean --timeout? (labwire query --help)\n')
    const missing = await runHere(['query', 'tcp://127.0.0.1:5025', '*IDN?', '--timeout'])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/option --timeout needs a value/)
    const command = await runHere(['qeury'])
    expect(command.stderr).toMatch(/did you mean query\?/)
  })

  it('the control channel stays on loopback unless --control-host, which needs --control-token (rough edge)', async () => {
    const open = await runHere(['sim', 'scpi-psu', '--port', '0', '--control-port', '0', '--control-host', '0.0.0.0'])
    expect(open.code).toBe(2)
    expect(open.stderr).toMatch(/needs --control-token/)
    const alone = await runHere(['sim', 'scpi-psu', '--port', '0', '--control-token', 'x'])
    expect(alone.code).toBe(2)
    // --control-token reaches the simulator's control server: requests without it are refused.
    const sim = startSim(['scpi-psu', '--port', '0', '--host', '127.0.0.1', '--control-port', '0', '--control-token', 's3cret', '--quiet'])
    const port = Number((await waitForLine(sim, /^listening http:\/\/127\.0\.0\.1:(\d+)$/))[1])
    const refused = await fetch(`http://127.0.0.1:${port}/devices`, { signal: AbortSignal.timeout(5_000) })
    expect(refused.status).toBe(401)
    const allowed = await fetch(`http://127.0.0.1:${port}/devices`, { headers: { authorization: 'Bearer s3cret' }, signal: AbortSignal.timeout(5_000) })
    expect(allowed.status).toBe(200)
  })

  it('a script that forgets close() still exits: an idle client session does not hold the event loop open (rough edge)', async () => {
    const port = await device({ '*IDN?': 'ACME,1' })
    const child = spawn(process.execPath, [fixture('forgets-close.mjs'), String(port)], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] })
    const result = await finished(child, 5_000)
    expect(result.code).toBe(0)
    expect(result.stdout).toBe('ACME,1\n')
    expect(CLI).toBeDefined()
  })

  it('a pending call holds the process open (a late answer still arrives), then the idle session lets it exit', async () => {
    const line = textMarshaller(new SentinelBytesMarshaller('\n'))
    const app = new ApplicationServer(line.unmarshall, line.marshall, async (command: string) => {
      await new Promise((resolve) => setTimeout(resolve, 400))
      return `late answer to ${command}`
    })
    const server = new TcpServer({ port: 0, callback: app })
    const { port } = await server.listen()
    cleanups.push(() => server.close())
    const child = spawn(process.execPath, [fixture('keep-alive.mjs'), String(port), 'slow'], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] })
    const result = await finished(child, 5_000)
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toBe('connected\nlate answer to SLOW?\n')
  })

  it('a session listening for unsolicited messages holds the process open while its connection lives, and lets it exit once the device closes it', async () => {
    let connected: (socket: Socket) => void = () => undefined
    const accepted = new Promise<Socket>((resolve) => {
      connected = resolve
    })
    const server = createServer((socket) => connected(socket))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())))
    const port = (server.address() as AddressInfo).port
    const child = spawn(process.execPath, [fixture('keep-alive.mjs'), String(port), 'unsolicited'], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] })
    cleanups.push(() => void child.kill('SIGKILL'))
    const socket = await accepted
    const exited = finished(child, 5_000)
    // No call pending, yet the listener keeps the process alive.
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(child.exitCode).toBeNull()
    socket.write('ALARM overtemperature\n')
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(child.exitCode).toBeNull()
    socket.end()
    const result = await exited
    expect(result.code).toBe(0)
    expect(result.stdout).toBe('connected\nunsolicited ALARM overtemperature\n')
  })
})
