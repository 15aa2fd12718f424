import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import {
  ByteStream,
  ConnectionClosedError,
  ConnectionError,
  TimeoutError,
  abortErrorFrom,
  checkCount,
  checkDuration,
  logDebug,
  raceSignal,
  silentLogger,
  throwIfAborted,
  type AbortOptions,
  type LabwireError,
  type Logger,
  type PartialErrorOptions,
  type TransportClient,
  type TransportClientSession,
} from '@labwire/core'

/** The level the child's stderr lines are logged at. */
export type StderrLevel = 'debug' | 'info' | 'warn' | 'error'

/** Options for {@link ChildProcessClient}. */
export interface ChildProcessClientOptions {
  /** The program to run (looked up on `PATH`; no shell). */
  command: string
  args?: readonly string[]
  cwd?: string
  /** The child's environment. Default: this process's. */
  env?: NodeJS.ProcessEnv
  /** Read inactivity limit in milliseconds (`TimeoutError`). Default: none (the application layer times calls). */
  timeout?: number
  /** Unread bytes buffered before the child's stdout is paused (backpressure). Default 64 KiB. */
  bufferSize?: number
  /** After `close()` ends the child's stdin, how long (ms) it may take to exit before it gets SIGTERM, and SIGKILL as long again later. Default 2 000. */
  closeTimeout?: number
  /** Level of the child's stderr lines in the logger. Default `'info'`. */
  stderrLevel?: StderrLevel
  /**
   * A stderr line (a substring, or a pattern) by which the child says it is ready: `connect()`
   * then resolves only once such a line has been written, so the first request does not wait
   * behind the child's start-up. Default: none (`connect()` resolves once the process runs).
   */
  ready?: string | RegExp
  /** How long (ms) `connect()` waits for the `ready` line before it kills the child and rejects with `TimeoutError`. Default 10 000. */
  connectTimeout?: number
  logger?: Logger
}

/** Longest stderr line kept whole; longer ones are logged in pieces of this size. */
const STDERR_LINE_MAX = 4096

/**
 * The child process exited: a `ConnectionClosedError` (same `name` and `code`) that also carries
 * the exit code, or the signal that ended it.
 */
export class ChildProcessExitError extends ConnectionClosedError {
  /** The exit code, or `null` if a signal ended the child. */
  readonly exitCode: number | null
  /** The signal that ended the child, or `null`. */
  readonly signal: NodeJS.Signals | null

  constructor(message: string, options: PartialErrorOptions & { exitCode: number | null; signal: NodeJS.Signals | null }) {
    super(message, options)
    this.exitCode = options.exitCode
    this.signal = options.signal
  }
}

/** A byte stream whose end-of-stream error names the child's exit code. */
class ChildStream extends ByteStream {
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined

  override closedError(detail?: string): ConnectionClosedError | LabwireError {
    const error = super.closedError(detail)
    const exit = this.exit
    if (exit === undefined || !(error instanceof ConnectionClosedError)) return error
    const how = exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${exit.code ?? '?'}`
    const partial = error.partial.length > 0 ? ` in the middle of a frame (${detail ?? `${error.partial.length} bytes received`})` : ''
    return new ChildProcessExitError(`${this.label ?? 'child process'} ${how}${partial}`, { partial: error.partial, exitCode: exit.code, signal: exit.signal })
  }
}

/**
 * Spawns a command and talks to it over its stdin/stdout: one child process per session, no
 * ports. Made for a simulator per test (a script that serves with {@link StdioServer}) and for
 * command-line tools that speak a line protocol on stdio. The child's stderr goes to the logger,
 * line by line; its exit ends the session with a {@link ChildProcessExitError}
 * (a `ConnectionClosedError`) carrying the exit code.
 *
 * @example
 * ```ts
 * const client = new ChildProcessClient({ command: process.execPath, args: ['simulator.mjs'] })
 * await using session = await client.connect()
 * const stream = session.request(new TextEncoder().encode('*IDN?\n'))
 * ```
 */
export class ChildProcessClient implements TransportClient {
  private readonly options: Required<Omit<ChildProcessClientOptions, 'timeout' | 'cwd' | 'env' | 'ready' | 'connectTimeout'>> & {
    ready: string | RegExp | undefined
    connectTimeout: number | undefined
    cwd: string | undefined
    env: NodeJS.ProcessEnv | undefined
    timeout: number | undefined
  }

  constructor(options: ChildProcessClientOptions) {
    if (typeof options.command !== 'string' || options.command.length === 0) throw new TypeError('ChildProcessClient: command is required')
    if (options.args !== undefined && !isStringArray(options.args)) {
      throw new TypeError('ChildProcessClient: args must be an array of strings')
    }
    const stderrLevel = options.stderrLevel ?? 'info'
    if (options.ready !== undefined && typeof options.ready !== 'string' && !(options.ready instanceof RegExp)) throw new TypeError('ChildProcessClient: ready must be a string or a RegExp')
    if (!['debug', 'info', 'warn', 'error'].includes(stderrLevel)) throw new RangeError(`ChildProcessClient: stderrLevel must be debug, info, warn or error, got ${stderrLevel as string}`)
    this.options = {
      command: options.command,
      args: options.args === undefined ? [] : [...options.args],
      cwd: options.cwd,
      env: options.env,
      timeout: checkDuration('ChildProcessClient', 'timeout', options.timeout),
      bufferSize: checkCount('ChildProcessClient', 'bufferSize', options.bufferSize ?? 64 * 1024),
      closeTimeout: checkDuration('ChildProcessClient', 'closeTimeout', options.closeTimeout ?? 2_000) ?? 0,
      ready: options.ready,
      connectTimeout: checkDuration('ChildProcessClient', 'connectTimeout', options.connectTimeout ?? 10_000),
      stderrLevel,
      logger: options.logger ?? silentLogger,
    }
  }

  /** The command line, for messages. */
  get target(): string {
    return [this.options.command, ...this.options.args].join(' ')
  }

  /**
   * Spawn the child. Resolves once it runs (and, with `ready`, once it has said so on stderr);
   * rejects with `ConnectionError` (e.g. ENOENT, naming the command; or the child exited before it
   * was ready), `TimeoutError` (`ready` not seen within `connectTimeout`) or `AbortError`; the
   * child is killed on every failure.
   */
  async connect(options?: AbortOptions): Promise<ChildProcessSession> {
    const session = await this.spawnChild(options)
    const ready = this.options.ready
    if (ready === undefined) return session
    try {
      await session.waitForStderr(ready, this.options.connectTimeout, options?.signal)
    } catch (error) {
      session.kill()
      throw error
    }
    return session
  }

  private spawnChild(options: AbortOptions | undefined): Promise<ChildProcessSession> {
    const target = this.target
    if (options?.signal?.aborted === true) return Promise.reject(abortErrorFrom(options.signal, `starting ${target}`))
    return new Promise<ChildProcessSession>((resolve, reject) => {
      let child: ChildProcessWithoutNullStreams
      try {
        child = spawn(this.options.command, this.options.args, {
          stdio: ['pipe', 'pipe', 'pipe'],
          windowsHide: true,
          ...(this.options.cwd === undefined ? {} : { cwd: this.options.cwd }),
          ...(this.options.env === undefined ? {} : { env: this.options.env }),
        })
      } catch (error) {
        reject(new ConnectionError(`could not start '${target}': ${error instanceof Error ? error.message : String(error)}`, { cause: error }))
        return
      }
      const signal = options?.signal
      const cleanup = (): void => {
        child.off('spawn', onSpawn)
        child.off('error', onError)
        signal?.removeEventListener('abort', onAbort)
      }
      const onSpawn = (): void => {
        cleanup()
        logDebug(this.options.logger, () => [{ target, pid: child.pid }, 'child process started'])
        resolve(new ChildProcessSession(child, target, this.options))
      }
      const onError = (error: Error): void => {
        cleanup()
        reject(new ConnectionError(`could not start '${target}': ${error.message}`, { cause: error }))
      }
      const onAbort = (): void => {
        cleanup()
        child.on('error', () => undefined)
        child.kill('SIGKILL')
        reject(abortErrorFrom(signal as AbortSignal, `starting ${target}`))
      }
      child.once('spawn', onSpawn)
      child.once('error', onError)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}

/** One child process. Implements the transport contract's session. */
export class ChildProcessSession implements TransportClientSession {
  /** The child's stdout as the session's byte stream (what `request()` returns). */
  readonly stream: ByteStream
  /** The transport kind, for events and logs. */
  readonly transport = 'stdio'
  private readonly childStream: ChildStream
  private exited = false
  private closing: Promise<void> | undefined
  private readonly exitPromise: Promise<void>
  private stderrWatcher: ((line: string) => void) | undefined
  private drainWait: Promise<void> | undefined

  /** @internal Created by {@link ChildProcessClient.connect}. */
  constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    /** The command line. */
    readonly target: string,
    private readonly options: { bufferSize: number; timeout: number | undefined; closeTimeout: number; stderrLevel: StderrLevel; logger: Logger },
  ) {
    const { logger } = options
    const label = `child process '${target}' (pid ${child.pid ?? '?'})`
    const stream = (this.childStream = new ChildStream(undefined, {
      timeout: options.timeout,
      highWaterMark: options.bufferSize,
      onPause: () => child.stdout.pause(),
      onResume: () => child.stdout.resume(),
      label,
    }))
    this.stream = this.childStream
    child.stdout.on('data', (chunk: Buffer) => stream.push(chunk))
    child.stdout.on('error', (error) => stream.fail(new ConnectionError(`${label}: stdout failed: ${error.message}`, { cause: error })))
    // A write after the child exited fails with EPIPE; the exit itself is what the reader learns.
    child.stdin.on('error', (error) => logDebug(logger, () => [{ target, err: error }, 'child stdin error']))
    this.pipeStderr(label)
    this.exitPromise = new Promise<void>((resolve) => {
      child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        this.exited = true
        this.childStream.exit = { code, signal }
        logDebug(logger, () => [{ target, pid: child.pid, code, signal }, 'child process exited'])
        stream.end()
        resolve()
      })
    })
  }

  /** The child's process id. */
  get pid(): number | undefined {
    return this.child.pid
  }

  /** The exit code once the child has exited (`null` if a signal ended it); `undefined` while it runs. */
  get exitCode(): number | null | undefined {
    return this.exited ? this.child.exitCode : undefined
  }

  /** True once the session is closed or the child has exited. */
  get closed(): boolean {
    return this.closing !== undefined || this.exited || !this.child.stdin.writable
  }

  /** Write `request` to the child's stdin and return its stdout stream. Throws `ConnectionError` once the session is closed or the child has exited. */
  request(request: Uint8Array): AsyncIterator<Uint8Array> {
    this.writeNow(request)
    return this.stream
  }

  /**
   * Write `bytes` to the child's stdin once the pipe has room (backpressure): while stdin's buffer
   * is full this waits for drain first. Rejecting with `AbortError` means the bytes were not
   * written (and the aborted call holds nothing).
   */
  async write(bytes: Uint8Array, options?: AbortOptions): Promise<void> {
    throwIfAborted(options)
    if (this.closed) this.writeNow(bytes) // throws the closed-session error
    while (this.child.stdin.writableNeedDrain) await raceSignal(this.drained(), options?.signal, 'write')
    this.writeNow(bytes)
  }

  /** Let the process exit while the child runs (the application layer does this while a session is idle). */
  unref(): void {
    this.child.unref()
    for (const pipe of [this.child.stdin, this.child.stdout, this.child.stderr]) (pipe as { unref?: () => void }).unref?.()
  }

  /** Hold the process open while the child runs (the default). */
  ref(): void {
    this.child.ref()
    for (const pipe of [this.child.stdin, this.child.stdout, this.child.stderr]) (pipe as { ref?: () => void }).ref?.()
  }

  /** One shared wait for stdin's drain (many waiting writers add no listeners); rejects if stdin closes first. */
  private drained(): Promise<void> {
    this.drainWait ??= new Promise<void>((resolve, reject) => {
      const stdin = this.child.stdin
      const done = (): void => {
        stdin.off('close', gone)
        this.drainWait = undefined
        resolve()
      }
      const gone = (): void => {
        stdin.off('drain', done)
        this.drainWait = undefined
        reject(new ConnectionError(`${this.target}: stdin closed during a write`))
      }
      stdin.once('drain', done)
      stdin.once('close', gone)
    })
    return this.drainWait
  }

  /**
   * End the child's stdin (a {@link StdioServer} then finishes and exits) and wait for it to exit;
   * after `closeTimeout` ms it gets SIGTERM, and SIGKILL as long again later. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.exited) return
      this.child.stdin.end()
      const { closeTimeout } = this.options
      for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
        if (await this.exitWithin(closeTimeout)) return
        logDebug(this.options.logger, () => [{ target: this.target, pid: this.child.pid, signal }, 'child did not exit; signalling it'])
        this.child.kill(signal)
      }
      await this.exitPromise
    })()
    return this.closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  /** @internal Resolve once a stderr line matches `match` (used by `connect()` with `ready`). */
  waitForStderr(match: string | RegExp, ms: number | undefined, signal: AbortSignal | undefined): Promise<void> {
    const test = typeof match === 'string' ? (line: string) => line.includes(match) : (line: string) => match.test(line)
    return new Promise<void>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      let settled = false
      const finish = (error?: Error): void => {
        if (settled) return
        settled = true
        this.stderrWatcher = undefined
        if (timer !== undefined) clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        if (error === undefined) resolve()
        else reject(error)
      }
      const onAbort = (): void => finish(abortErrorFrom(signal as AbortSignal, `starting ${this.target}`))
      if (signal?.aborted === true) {
        onAbort()
        return
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      if (ms !== undefined) timer = setTimeout(() => finish(new TimeoutError(`'${this.target}' did not report ready (${String(match)}) on stderr within ${ms} ms`)), ms)
      this.stderrWatcher = (line) => {
        if (test(line)) finish()
      }
      void this.exitPromise.then(() => finish(new ConnectionError(`'${this.target}' exited (code ${String(this.child.exitCode)}) before it reported ready`)))
    })
  }

  /** @internal Kill the child at once (SIGKILL). */
  kill(): void {
    this.closing ??= this.exitPromise
    if (!this.exited) this.child.kill('SIGKILL')
  }

  private exitWithin(ms: number): Promise<boolean> {
    if (this.exited) return Promise.resolve(true)
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), ms)
      void this.exitPromise.then(() => {
        clearTimeout(timer)
        resolve(true)
      })
    })
  }

  private writeNow(bytes: Uint8Array): boolean {
    if (this.closed) throw new ConnectionError(`${this.target}: session is closed${this.exited ? ' (the child process exited)' : ''}`)
    return this.child.stdin.write(bytes)
  }

  private pipeStderr(label: string): void {
    const { logger, stderrLevel } = this.options
    const pid = this.child.pid
    let pending = ''
    const log = (line: string): void => {
      logger[stderrLevel]({ child: label, pid, stream: 'stderr' }, line)
      this.stderrWatcher?.(line)
    }
    this.child.stderr.setEncoding('utf8')
    this.child.stderr.on('data', (text: string) => {
      pending += text
      let newline: number
      while ((newline = pending.indexOf('\n')) >= 0) {
        log(pending.slice(0, newline).replace(/\r$/, ''))
        pending = pending.slice(newline + 1)
      }
      while (pending.length > STDERR_LINE_MAX) {
        log(pending.slice(0, STDERR_LINE_MAX))
        pending = pending.slice(STDERR_LINE_MAX)
      }
    })
    this.child.stderr.on('end', () => {
      if (pending.length > 0) log(pending)
      pending = ''
    })
  }
}

/** True for an array of strings (a plain boolean, so that it does not narrow `readonly string[]` to `any[]`). */
function isStringArray(value: unknown): boolean {
  return Array.isArray(value) && value.every((item) => typeof item === 'string')
}
