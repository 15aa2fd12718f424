/**
 * ChildProcessClient / StdioServer specifics, with a real child: fixtures/line-device.mjs serves a
 * line device with StdioServer on its own stdin/stdout (the built packages: run `pnpm build`
 * first). Covers stderr to the logger, exit codes as ChildProcessExitError, a failing callback in
 * the child, close() and a child that ignores the end of its input, spawn failures, and
 * StdioServer on in-process streams.
 */
import { existsSync } from 'node:fs'
import { PassThrough } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ApplicationClient } from '@labwire/application'
import { ConnectionClosedError, ConnectionError, TimeoutError } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { ChildProcessClient, ChildProcessExitError, StdioServer, type ChildProcessClientOptions } from '@labwire/transport-stdio'
import { RecordingLogger, bytes, rejectionOf, text, within } from '../../../test/reliability/helpers.js'

const device = fileURLToPath(new URL('./fixtures/line-device.mjs', import.meta.url))
const built = fileURLToPath(new URL('../dist/index.js', import.meta.url))
const lines = textMarshaller(new SentinelBytesMarshaller('\n'))

beforeAll(() => {
  if (!existsSync(built)) throw new Error(`${built} is missing: run \`pnpm build\` first (\`npm test\` does); the child process imports the built package`)
})

const cleanups: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

function deviceClient(logger: RecordingLogger, options: Partial<ChildProcessClientOptions> = {}): ApplicationClient<string, string> {
  const transport = new ChildProcessClient({ command: process.execPath, args: [device], logger, ...options })
  return new ApplicationClient(transport, lines.marshall, lines.unmarshall, { timeout: 5_000 })
}

describe('ChildProcessClient with a StdioServer child', () => {
  it('talks to the child over its stdin/stdout; its stderr lines reach the logger; close() lets it exit 0', async () => {
    const logger = new RecordingLogger()
    const session = await deviceClient(logger, { stderrLevel: 'warn' }).connect()
    cleanups.push(() => session.close())
    expect(await session.sendReceive('hello')).toBe('HELLO')
    expect(await Promise.all(['a', 'b', 'c'].map((s) => session.sendReceive(s)))).toEqual(['A', 'B', 'C'])
    expect(await session.sendReceive('stderr')).toBe('LOGGED')
    const stderr = (): string[] => logger.at('warn').filter((r) => r.context.stream === 'stderr').map((r) => r.message ?? '')
    await logger.waitFor((r) => r.message === 'second diagnostic line')
    expect(stderr()).toEqual(expect.arrayContaining(['ready', 'first diagnostic line', 'second diagnostic line']))
    await within(session.close(), 5_000, 'close')
    await logger.waitFor((r) => r.message === 'served')
  })

  it('the child exiting is a ChildProcessExitError (a ConnectionClosedError) with its exit code; later calls get ConnectionError', async () => {
    const logger = new RecordingLogger()
    const transport = new ChildProcessClient({ command: process.execPath, args: [device], logger })
    const raw = await transport.connect()
    cleanups.push(() => raw.close())
    const line = new SentinelBytesMarshaller('\n')
    const error = await rejectionOf(line.unmarshall(raw.request(bytes('exit 3\n'))))
    expect(error).toBeInstanceOf(ChildProcessExitError)
    expect(error).toBeInstanceOf(ConnectionClosedError)
    expect((error as ChildProcessExitError).code).toBe('ERR_CONNECTION_CLOSED')
    expect((error as ChildProcessExitError).exitCode).toBe(3)
    expect((error as ChildProcessExitError).signal).toBeNull()
    expect((error as Error).message).toContain('exited with code 3')
    expect((error as Error).message).toContain(device)
    expect(raw.exitCode).toBe(3)
    expect(() => raw.request(bytes('more\n'))).toThrow(ConnectionError)
  })

  it('a child that exits in the middle of a reply: the partial bytes are on the error', async () => {
    const raw = await new ChildProcessClient({ command: process.execPath, args: [device] }).connect()
    cleanups.push(() => raw.close())
    const line = new SentinelBytesMarshaller('\n')
    const error = await rejectionOf(line.unmarshall(raw.request(bytes('half\nboom\n'))))
    expect(error).toBeInstanceOf(ChildProcessExitError)
    expect(text((error as ChildProcessExitError).partial)).toBe('abc')
    expect((error as ChildProcessExitError).exitCode).toBe(0)
  })

  it('a callback that throws in the child is logged on its stderr; the child ends its session and exits 0', async () => {
    const logger = new RecordingLogger()
    const session = await deviceClient(logger).connect()
    cleanups.push(() => session.close())
    expect(await session.sendReceive('ok')).toBe('OK')
    const error = await rejectionOf(session.sendReceive('boom'))
    expect(error).toBeInstanceOf(ChildProcessExitError)
    expect((error as ChildProcessExitError).exitCode).toBe(0)
    await logger.waitFor((r) => r.message?.startsWith('error request handler failed') === true)
    expect(await rejectionOf(session.sendReceive('again'))).toBeInstanceOf(ConnectionError)
  })

  it('close() signals a child that ignores the end of its input: SIGTERM after closeTimeout, then SIGKILL', async () => {
    const transport = new ChildProcessClient({ command: process.execPath, args: ['-e', 'process.stdin.resume(); setInterval(() => {}, 1000)'], closeTimeout: 100 })
    const session = await transport.connect()
    const t0 = performance.now()
    await within(session.close(), 5_000, 'close')
    expect(performance.now() - t0).toBeGreaterThanOrEqual(90)
    expect(session.exitCode).toBeNull() // ended by a signal
    const error = await rejectionOf(new SentinelBytesMarshaller('\n').unmarshall(session.stream))
    expect(error).toBeInstanceOf(ChildProcessExitError)
    // SIGTERM first; SIGKILL closeTimeout later if SIGTERM did not end it (a child may inherit SIGTERM ignored).
    expect(['SIGTERM', 'SIGKILL']).toContain((error as ChildProcessExitError).signal)
    await session.close() // idempotent
  })

  it('ready: connect() waits for the ready line on stderr; a child that never says it times out (and is killed), one that exits first is a ConnectionError', async () => {
    const logger = new RecordingLogger()
    const session = await new ChildProcessClient({ command: process.execPath, args: [device], ready: /^ready$/, logger }).connect()
    cleanups.push(() => session.close())
    expect(logger.records.some((r) => r.message === 'ready')).toBe(true)
    const silent = new ChildProcessClient({ command: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'], ready: 'ready', connectTimeout: 300 })
    const timedOut = await rejectionOf(silent.connect())
    expect(timedOut).toBeInstanceOf(TimeoutError)
    expect((timedOut as Error).message).toContain('did not report ready')
    const quitter = new ChildProcessClient({ command: process.execPath, args: ['-e', 'process.exit(4)'], ready: 'ready' })
    const exited = await rejectionOf(quitter.connect())
    expect(exited).toBeInstanceOf(ConnectionError)
    expect((exited as Error).message).toContain('code 4')
  })

  it('a command that does not exist rejects ConnectionError naming it (cause ENOENT)', async () => {
    const error = await rejectionOf(new ChildProcessClient({ command: 'labwire-no-such-command', args: ['x'] }).connect())
    expect(error).toBeInstanceOf(ConnectionError)
    expect((error as Error).message).toContain('labwire-no-such-command x')
    expect(((error as ConnectionError).cause as NodeJS.ErrnoException).code).toBe('ENOENT')
  })

  it('validates options', () => {
    expect(() => new ChildProcessClient({ command: '' })).toThrow(TypeError)
    expect(() => new ChildProcessClient({ command: 'x', closeTimeout: -1 })).toThrow(/closeTimeout.*-1/)
    expect(() => new ChildProcessClient({ command: 'x', bufferSize: 0 })).toThrow(/bufferSize.*0/)
    expect(() => new ChildProcessClient({ command: 'x', stderrLevel: 'loud' as 'info' })).toThrow(/stderrLevel.*loud/)
  })
})

describe('StdioServer on in-process streams', () => {
  it('serves until the input ends, then ends the output; serve() resolves', async () => {
    const input = new PassThrough()
    const output = new PassThrough()
    const line = new SentinelBytesMarshaller('\n')
    const server = new StdioServer({ input, output, callback: async (stream) => bytes(`${text(await line.unmarshall(stream)).toUpperCase()}\n`) })
    const serving = server.serve()
    expect(server.serve()).toBe(serving)
    let out = ''
    output.on('data', (chunk: Buffer) => (out += chunk.toString()))
    const ended = new Promise<void>((resolve) => output.once('end', () => resolve()))
    input.end('one\ntwo\n')
    await within(serving, 5_000, 'serve() resolved')
    await within(ended, 5_000, 'output ended')
    expect(out).toBe('ONE\nTWO\n')
    await server.close()
    expect(await rejectionOf(new StdioServer({ input, output, callback: () => undefined, peer: 'x' }).serve({ signal: AbortSignal.abort() }))).toHaveProperty('name', 'AbortError')
  })

  it('close() ends a connection whose callback hangs, at once', async () => {
    const input = new PassThrough()
    const output = new PassThrough()
    const server = new StdioServer({ input, output, callback: () => new Promise<undefined>(() => undefined) })
    const serving = server.serve()
    input.write('hang\n')
    await new Promise<void>((resolve) => setImmediate(resolve))
    await within(server.close(), 1_000, 'close')
    expect(output.writableEnded).toBe(true)
    void serving // the callback never returns, so the loop never finishes; the connection is closed regardless
  })
})
