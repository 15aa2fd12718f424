/**
 * Real peers, none written by labwire: Python 3's stdlib (`telnetlib` as a client of TelnetServer,
 * and a raw-socket negotiating server built on telnetlib's constants against TelnetClient) and
 * Debian's `telnet` (inetutils-telnet) driven through a pty (`script`) against TelnetServer.
 * A missing peer skips its tests with a loud warning.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { toText, type ByteHandler } from '@labwire/core'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { TelnetClient, TelnetLoginError, TelnetServer } from '@labwire/transport-telnet'
import { rejectionOf, within } from '../../../test/helpers/fixtures.js'

const PEERS = fileURLToPath(new URL('./peers/', import.meta.url))
const WAIT = 10_000

function has(command: string, args: string[]): boolean {
  const result = spawnSync(command, args, { stdio: 'ignore', timeout: 5_000 })
  return result.error === undefined && result.status === 0
}

const python = has('python3', ['-W', 'ignore', '-c', 'import telnetlib, sys; sys.exit(0 if sys.version_info >= (3, 8) else 1)'])
const telnet = has('sh', ['-c', 'command -v telnet && command -v script'])
if (!python) console.warn('SKIPPING the Python telnetlib peer tests: python3 with telnetlib not found (apt-get install python3)')
if (!telnet) console.warn('SKIPPING the Debian telnet peer test: `telnet` or `script` not found (apt-get install inetutils-telnet bsdutils)')

const children: ChildProcessWithoutNullStreams[] = []
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
})

/** Spawn a process and collect its stdout; `lines()` waits for the n-th JSON line. */
function run(command: string, args: string[]): { child: ChildProcessWithoutNullStreams; output: () => string; json: (n: number) => Promise<Record<string, unknown>>; exited: Promise<number | null> } {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  children.push(child)
  let out = ''
  let err = ''
  const waiters: (() => void)[] = []
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString('latin1')
    for (const waiter of waiters.splice(0)) waiter()
  })
  child.stderr.on('data', (chunk: Buffer) => {
    err += chunk.toString('latin1')
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => {
    for (const waiter of waiters.splice(0)) waiter()
    resolve(code)
  }))
  const json = async (n: number): Promise<Record<string, unknown>> => {
    const lines = (): string[] => out.split('\n').filter((line) => line.startsWith('{'))
    await within(
      new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (lines().length > n) resolve()
          else if (child.exitCode !== null) reject(new Error(`${command} exited (${child.exitCode}) before JSON line ${n}; stderr: ${err}`))
          else waiters.push(check)
        }
        check()
      }),
      WAIT,
      `${command}: JSON line ${n}`,
    )
    return JSON.parse(lines()[n] as string) as Record<string, unknown>
  }
  return { child, output: () => out, json, exited }
}

const hex = (...parts: (number[] | string)[]): string =>
  parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'latin1') : Buffer.from(part)).toString('hex')).join('')

describe.skipIf(!python)('Python negotiating server (DO TTYPE, WILL ECHO, DO NAWS, SB TTYPE SEND, login prompt) → TelnetClient', () => {
  it('logs in without a loop and sends back exactly the expected bytes; the prompt is stripped from the reply', async () => {
    const server = run('python3', ['-W', 'ignore', `${PEERS}negotiating_server.py`])
    const { port } = (await server.json(0)) as { port: number }
    const client = new TelnetClient({ host: '127.0.0.1', port, mode: 'login', username: 'lab', password: 's3cret', stripPrompt: true })
    const session = await client.connect({ signal: AbortSignal.timeout(WAIT) })
    const stream = session.request(Buffer.from('*IDN?\n'))
    const reply = await within(new SentinelBytesMarshaller('\r\n').unmarshall(stream), WAIT, 'reply')
    // The server echoes the command (it said WILL ECHO), then the answer; "psu> " is stripped.
    expect(toText(reply)).toBe('*IDN?\nLABWIRE,PSU-1,0,1.0')
    await session.close()
    const { received } = (await server.json(1)) as { received: string }
    expect(received).toBe(
      hex(
        [255, 251, 0, 255, 253, 0], // WILL BINARY, DO BINARY (our opening; the server refuses both, and we say nothing more)
        [255, 251, 24], // WILL TTYPE (answer to DO TTYPE)
        [255, 253, 1], // DO ECHO (answer to WILL ECHO)
        [255, 251, 31], // WILL NAWS (answer to DO NAWS)…
        [255, 250, 31, 0, 80, 0, 24, 255, 240], // …and SB NAWS 80 × 24 SE
        [255, 250, 24, 0], 'UNKNOWN', [255, 240], // SB TTYPE IS "UNKNOWN" SE (answer to SB TTYPE SEND)
        'lab\r\n', 's3cret\r\n', // the login dialogue (telnet-client, through labwire's encoder)
        '*IDN?\n', // the request, unchanged
      ),
    )
    expect(await within(server.exited, WAIT, 'python exit')).toBe(0)
  })

  it('a refused login rejects connect() with TelnetLoginError naming what the device said', async () => {
    const server = run('python3', ['-W', 'ignore', `${PEERS}negotiating_server.py`, 'reject'])
    const { port } = (await server.json(0)) as { port: number }
    const client = new TelnetClient({ host: '127.0.0.1', port, mode: 'login', username: 'lab', password: 'wrong' })
    const error = await rejectionOf(client.connect({ signal: AbortSignal.timeout(WAIT) }))
    expect(error).toBeInstanceOf(TelnetLoginError)
    expect((error as TelnetLoginError).failure).toBe('rejected')
    expect((error as TelnetLoginError).seen).toContain('Login incorrect')
    expect((error as TelnetLoginError).message).toContain('Login incorrect')
    expect((error as TelnetLoginError).code).toBe('ERR_CONNECTION')
    await within(server.exited, WAIT, 'python exit')
  })
})

/** A simulated instrument: requests end in CR (CR LF or CR NUL from a terminal); answers `*idn?` and `bin …` (hex of the bytes). */
function instrument(requests: string[]): ByteHandler {
  const line = new SentinelBytesMarshaller('\r')
  return async (bytes) => {
    const raw = await line.unmarshall(bytes)
    const request = Buffer.from(raw).toString('latin1').replace(/^[\n\0]/, '')
    requests.push(request)
    if (request.toLowerCase() === '*idn?') return Buffer.from('LABWIRE,SIM,0,1.0\r\n')
    if (request.startsWith('bin ')) return Buffer.from(`${Buffer.from(request.slice(4), 'latin1').toString('hex')}\r\n`)
    return Buffer.from(`? ${request}\r\n`)
  }
}

describe.skipIf(!python)('Python telnetlib client → TelnetServer', () => {
  it('reads the banner and prompt, gets answers, 0xFF survives, and sees only WILL SUPPRESS-GO-AHEAD offered', async () => {
    const requests: string[] = []
    await using server = new TelnetServer({ port: 0, callback: instrument(requests), banner: 'labwire simulated DMM\r\n', prompt: 'dmm> ' })
    const { port } = await server.listen()
    const client = run('python3', ['-W', 'ignore', `${PEERS}telnetlib_client.py`, String(port)])
    const out = (await client.json(0)) as { banner: string; idn: string; bin: string; negotiation: number[][] }
    expect(out.banner).toBe('labwire simulated DMM\r\ndmm> ')
    expect(out.idn).toBe('LABWIRE,SIM,0,1.0\r\ndmm> ')
    expect(out.bin).toBe('fffe\r\ndmm> ')
    expect(out.negotiation).toEqual([[251, 3]]) // WILL SUPPRESS-GO-AHEAD, nothing else (echo stays off)
    expect(requests).toEqual(['*idn?', 'bin \xff\xfe'])
    expect(await within(client.exited, WAIT, 'python exit')).toBe(0)
  })
})

describe.skipIf(!telnet)('Debian telnet (inetutils) in a pty → TelnetServer', () => {
  it('shows the banner and prompt, sends a typed command, and prints the answer', async () => {
    const requests: string[] = []
    await using server = new TelnetServer({ port: 0, callback: instrument(requests), banner: 'labwire simulated DMM\r\n', prompt: 'dmm> ' })
    const { port } = await server.listen()
    // `script` gives telnet a pty (it refuses to be interactive otherwise); its stdin is our pipe.
    const term = run('script', ['-qfec', `telnet 127.0.0.1 ${port}`, '/dev/null'])
    const waitFor = (pattern: RegExp, what: string): Promise<void> =>
      within(
        new Promise<void>((resolve) => {
          const check = (): void => {
            if (pattern.test(term.output())) resolve()
            else term.child.stdout.once('data', check)
          }
          check()
        }),
        WAIT,
        `telnet output ${what}; got ${JSON.stringify(term.output())}`,
      )
    await waitFor(/labwire simulated DMM\r?\n[\s\S]*dmm> /, 'banner and prompt')
    term.child.stdin.write('*idn?\r')
    await waitFor(/LABWIRE,SIM,0,1\.0/, 'the answer')
    await waitFor(/LABWIRE,SIM,0,1\.0\r?\n[\s\S]*dmm> /, 'the next prompt')
    expect(requests).toEqual(['*idn?'])
    term.child.kill('SIGTERM')
    await within(term.exited, WAIT, 'telnet exit')
  })
})
