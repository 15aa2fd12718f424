import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { createServer } from 'node:net'
import { PassThrough, Readable } from 'node:stream'
import { finished as streamEnded } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { ApplicationServer } from '@labwire/application'
import { main } from '@labwire/cli'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpServer } from '@labwire/transport-tcp'

/** The built binary the tests spawn (the root `pnpm test` builds first). */
export const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url))
export const REPO = fileURLToPath(new URL('../../../', import.meta.url))

if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "pnpm build" first (the root "pnpm test" does)`)
{
  const built = statSync(CLI).mtimeMs
  const srcDir = fileURLToPath(new URL('../src/', import.meta.url))
  const stale = readdirSync(srcDir).filter((name) => statSync(srcDir + name).mtimeMs > built)
  if (stale.length > 0) console.warn(`labwire CLI tests: dist/cli.js is older than src (${stale.join(', ')}); run "pnpm build" to test the current code`)
}

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Run `labwire ...args` to completion (bounded: killed after `limitMs`). */
export function run(args: readonly string[], options: { input?: string; limitMs?: number; env?: Record<string, string> } = {}): Promise<RunResult> {
  const child = spawnCli(args, options.env)
  if (options.input !== undefined) child.stdin?.end(options.input)
  else child.stdin?.end()
  return finished(child, options.limitMs ?? 10_000)
}

/**
 * Run `labwire ...args` in this process: `main(argv, io)` from the sources, with piped (non-TTY)
 * streams. For tests about what a command does (replies, messages, exit codes); what only the
 * binary does (flushing to a slow reader, signals, memory, the process exiting) is tested with
 * `run`, and every command keeps at least one test that spawns the real binary. Bounded by `limitMs`.
 */
export async function runHere(args: readonly string[], options: { input?: string; limitMs?: number; env?: Record<string, string> } = {}): Promise<RunResult> {
  let stdout = ''
  let stderr = ''
  const out = new PassThrough().setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  const err = new PassThrough().setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const stdin = Readable.from(options.input === undefined ? [] : [options.input])
  const env = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', ...options.env }
  const limitMs = options.limitMs ?? 10_000
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`labwire ${args.join(' ')} (in process) did not return within ${limitMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`)), limitMs)
  })
  try {
    const code = await Promise.race([main(args, { stdout: out, stderr: err, stdin, env }), limit])
    // Everything written is read before the result is taken.
    out.end()
    err.end()
    await Promise.race([Promise.all([streamEnded(out), streamEnded(err)]), limit])
    return { code, signal: null, stdout, stderr }
  } finally {
    clearTimeout(timer)
  }
}

/** Spawn `labwire ...args` with piped stdio. */
export function spawnCli(args: readonly string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [CLI, ...args], { cwd: REPO, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
}

/** Wait for `child` to exit, collecting its output; kill it (and fail) after `limitMs`. */
export function finished(child: ChildProcess, limitMs: number): Promise<RunResult> {
  let stdout = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`labwire did not exit within ${limitMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, limitMs)
    child.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

/** Resolve with the first line of `child`'s stdout matching `pattern` (bounded). */
export function waitForLine(child: ChildProcess, pattern: RegExp, limitMs = 10_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buffer = ''
    let errors = ''
    const onErr = (chunk: Buffer): void => {
      errors += chunk.toString()
    }
    const onData = (chunk: Buffer): void => {
      buffer += chunk.toString()
      for (const line of buffer.split('\n')) {
        const match = pattern.exec(line)
        if (match !== null) {
          done()
          resolve(match)
          return
        }
      }
    }
    const onExit = (code: number | null): void => {
      done()
      reject(new Error(`labwire exited (${code}) before printing ${pattern}\nstdout: ${buffer}\nstderr: ${errors}`))
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error(`no line matching ${pattern} within ${limitMs} ms\nstdout: ${buffer}\nstderr: ${errors}`))
    }, limitMs)
    const done = (): void => {
      clearTimeout(timer)
      child.stdout?.off('data', onData)
      child.stderr?.off('data', onErr)
      child.off('exit', onExit)
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onErr)
    child.once('exit', onExit)
  })
}

/** A small SCPI-like instrument for the client tests. */
export interface TestInstrument {
  port: number
  /** Commands received, in order. */
  received: string[]
  /** Resolves when the next command arrives. */
  nextCommand(): Promise<string>
  close(): Promise<void>
}

/**
 * `*IDN?` → `ACME,Model 1,0001,1.0`; `VOLT x` sets, `VOLT?` reads; `SLOW?` never answers;
 * `BIG?` answers 100 bytes; `BYE?` closes the connection; `TWO?` answers two lines at once.
 */
export async function startInstrument(): Promise<TestInstrument> {
  const line = textMarshaller(new SentinelBytesMarshaller('\n'))
  let volts = '0.000'
  const received: string[] = []
  const waiters: ((command: string) => void)[] = []
  const app = new ApplicationServer(line.unmarshall, line.marshall, (command: string) => {
    received.push(command)
    for (const waiter of waiters.splice(0)) waiter(command)
    if (command === '*IDN?') return 'ACME,Model 1,0001,1.0'
    if (command.startsWith('VOLT ')) volts = Number(command.slice(5)).toFixed(3)
    if (command === 'VOLT?') return volts
    if (command === 'BIG?') return 'x'.repeat(100)
    if (command === 'TWO?') return 'one\ntwo'
    if (command === 'BYE?') throw new Error('closing on purpose')
    return undefined
  })
  const server = new TcpServer({ port: 0, callback: app })
  const { port } = await server.listen()
  return {
    port,
    received,
    nextCommand: () => new Promise((resolve) => waiters.push(resolve)),
    close: () => server.close(),
  }
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no TCP address')
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return address.port
}
