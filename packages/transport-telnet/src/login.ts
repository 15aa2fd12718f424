/**
 * The login / password / shell-prompt dialogue of CLI-style Telnet devices, run by the npm package
 * `telnet-client` over an in-process duplex that sits BEHIND labwire's IAC codec: it only ever sees
 * data bytes (no IAC), and everything it writes goes out through the codec's encoder (0xFF escaped),
 * so no malformed negotiation can reach the device.
 *
 * @module
 */
import { Duplex } from 'node:stream'
import { Telnet } from 'telnet-client'
import { ConnectionError, TimeoutError, abortErrorFrom, checkCount, checkDuration, clampDelay, type AbortOptions } from '@labwire/core'

/** What the login dialogue looks for and answers with. */
export interface LoginOptions {
  username?: string | undefined
  password?: string | undefined
  /** Default `/login[: ]*$/i`. */
  loginPrompt?: string | RegExp | undefined
  /** Default `/password[: ]*$/i`. */
  passwordPrompt?: string | RegExp | undefined
  /** The device's command prompt; seeing it ends the dialogue. Default `/[$#>%]\s?$/` (a line ending in `$ # > %`). */
  shellPrompt?: string | RegExp | undefined
  /** Text that means the device refused the login. Default: "login incorrect", "authentication failed", "access denied", … */
  failedLoginMatch?: string | RegExp | undefined
  /** Limit for the whole dialogue, in ms. Default 10 000; 0 = no limit (the `signal` still applies). */
  loginTimeout?: number | undefined
  /**
   * How much of the device's latest output (characters) the prompts are matched against: only this
   * tail is kept, so an endless banner costs bounded memory and linear time. Default 4096 (min 16).
   */
  promptWindow?: number | undefined
}

export const DEFAULT_LOGIN_PROMPT = /login[: ]*$/i
export const DEFAULT_PASSWORD_PROMPT = /password[: ]*$/i
export const DEFAULT_SHELL_PROMPT = /[$#>%]\s?$/
export const DEFAULT_FAILED_LOGIN = /login incorrect|authentication failed|access denied|permission denied|login failed|bad password|invalid (?:login|password|user(?:name)?|credentials)/i

/** Why a login failed. */
export type LoginFailure = 'rejected' | 'no-prompt' | 'missing-credential' | 'closed'

/**
 * The device refused the login, or the dialogue did not reach the shell prompt. `seen` is the text
 * the device sent last (its tail, at most 512 characters), `failure` says which way it failed.
 * A `ConnectionError` (its `code` is `ERR_CONNECTION`): `connect()` rejects with it.
 */
export class TelnetLoginError extends ConnectionError {
  /** The last text the device sent (bytes as Latin-1), at most 512 characters. */
  readonly seen: string
  /** Which way the login failed. */
  readonly failure: LoginFailure

  constructor(message: string, options: { seen: string; failure: LoginFailure; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.seen = options.seen
    this.failure = options.failure
  }
}

export function toRegExp(pattern: string | RegExp): RegExp {
  return typeof pattern === 'string' ? new RegExp(escapeRegExp(pattern)) : pattern
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** The duplex telnet-client talks to: reads are the device's data bytes, writes go to the codec. */
class LoginChannel extends Duplex {
  constructor(private readonly sendData: (bytes: Uint8Array) => void) {
    super()
  }
  override _read(): void {
    // Data is pushed by the dialogue as it arrives.
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (chunk.length > 0) this.sendData(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))
    callback()
  }
  /** telnet-client calls `socket.setTimeout()`; labwire's own login timeout governs instead. */
  setTimeout(): this {
    return this
  }
}

const SEEN_LIMIT = 512
/** Default of {@link LoginOptions.promptWindow}. */
export const DEFAULT_PROMPT_WINDOW = 4096

/** The one step telnet-client takes per prompt: it is handed the matched window and returns it. */
const MATCHED = /[\s\S]$/

/**
 * One connection's login dialogue. Feed it the device's data bytes with {@link LoginDialogue.feed};
 * {@link LoginDialogue.run} resolves once the shell prompt is seen.
 *
 * Bounded and linear: of what the device sends, only the last `promptWindow` characters are kept,
 * and the prompts are tested once per chunk against that window (never against everything
 * received), so an endless banner costs time proportional to its length, holds at most the
 * window in memory, and the dialogue ends at `loginTimeout`. `telnet-client` sends the answers
 * and is handed only the window that matched.
 */
export class LoginDialogue {
  private readonly channel: LoginChannel
  private readonly telnet = new Telnet()
  /** The tail of what arrived since the last prompt was answered (at most `promptWindow` characters). */
  private window = ''
  private seenText = ''
  private closedReason: TelnetLoginError | undefined
  private onClosed: ((error: TelnetLoginError) => void) | undefined
  /** Set while a step waits: called with the window when a prompt pattern matches it. */
  private onMatch: ((text: string) => void) | undefined
  private patterns: readonly RegExp[] = []
  private readonly windowSize: number

  constructor(
    private readonly options: LoginOptions,
    sendData: (bytes: Uint8Array) => void,
    private readonly target: string,
  ) {
    this.channel = new LoginChannel(sendData)
    this.windowSize = options.promptWindow === undefined ? DEFAULT_PROMPT_WINDOW : checkCount('TelnetClient', 'promptWindow', options.promptWindow, { min: 16 })
    // telnet-client emits 'error' from its socket; errors are reported through run() instead.
    this.telnet.on('error', () => undefined)
  }

  /** The tail of what the device has sent during the dialogue. */
  get seen(): string {
    return this.seenText
  }

  /** Device data bytes (already IAC-decoded) that arrived during the dialogue. O(chunk) however much came before. */
  feed(data: Uint8Array): void {
    if (data.length === 0) return
    const size = this.windowSize
    // Only the part of the chunk that can end up in the window is decoded.
    const tail = data.length > size ? data.subarray(data.length - size) : data
    const latin1 = Buffer.from(tail.buffer, tail.byteOffset, tail.byteLength).toString('latin1')
    this.window = this.window.length + latin1.length > size ? (this.window + latin1).slice(-size) : this.window + latin1
    this.seenText = this.window.length >= SEEN_LIMIT ? this.window.slice(-SEEN_LIMIT) : (this.seenText + latin1).slice(-SEEN_LIMIT)
    this.check()
  }

  /** The connection closed during the dialogue. */
  close(): void {
    this.closedReason ??= this.error('closed', 'the connection closed during the login dialogue')
    this.onClosed?.(this.closedReason)
    this.channel.destroy()
  }

  /** While a step waits: if a prompt pattern matches the window, hand the window over and start a new one. */
  private check(): void {
    const onMatch = this.onMatch
    if (onMatch === undefined || this.window.length === 0) return
    if (!this.patterns.some((pattern) => test(pattern, this.window))) return
    const text = this.window
    this.window = ''
    this.onMatch = undefined
    onMatch(text)
  }

  /**
   * Run the dialogue to the shell prompt. Rejects with `TelnetLoginError` (refused, a prompt with
   * no credential configured, connection closed), `TimeoutError` (no shell prompt within
   * `loginTimeout`; its message quotes what was seen) or `AbortError`.
   */
  async run(options?: AbortOptions): Promise<void> {
    const o = this.options
    const login = toRegExp(o.loginPrompt ?? DEFAULT_LOGIN_PROMPT)
    const password = toRegExp(o.passwordPrompt ?? DEFAULT_PASSWORD_PROMPT)
    const shell = toRegExp(o.shellPrompt ?? DEFAULT_SHELL_PROMPT)
    const failed = toRegExp(o.failedLoginMatch ?? DEFAULT_FAILED_LOGIN)
    this.patterns = [failed, shell, password, login]
    const limit = o.loginTimeout === undefined ? 10_000 : checkDuration('TelnetClient', 'loginTimeout', o.loginTimeout)
    const signal = options?.signal
    if (signal?.aborted === true) throw abortErrorFrom(signal, `login to ${this.target}`)
    if (this.closedReason !== undefined) throw this.closedReason
    // The channel is given to telnet-client as an existing socket: it neither connects nor negotiates.
    try {
      await this.telnet.connect({ sock: this.channel, negotiationMandatory: false, encoding: 'latin1', ors: '\r\n', shellPrompt: shell, timeout: 0, sendTimeout: 0 })
    } catch (error) {
      throw this.closedReason ?? this.error('closed', 'telnet-client could not start the dialogue', error)
    }

    let stop: ((error: unknown) => void) | undefined
    const stopped = new Promise<never>((_, reject) => {
      stop = reject
    })
    stopped.catch(() => undefined)
    const timer = limit === undefined ? undefined : setTimeout(() => stop?.(new TimeoutError(`login to ${this.target} did not reach the shell prompt within ${limit} ms; last seen: ${quote(this.seenText)}`)), clampDelay(limit))
    const onAbort = (): void => stop?.(abortErrorFrom(signal as AbortSignal, `login to ${this.target}`))
    signal?.addEventListener('abort', onAbort, { once: true })
    this.onClosed = (error) => stop?.(error)
    if (this.closedReason !== undefined) stop?.(this.closedReason)
    try {
      /**
       * Send `send` (through telnet-client, which waits for the answer), then wait until a prompt
       * pattern matches the window of what the device said since; telnet-client is handed that
       * window (only it) and resolves with it.
       */
      const step = async (send: string): Promise<string> => {
        const reply = this.telnet.write(send, { waitFor: MATCHED, sendTimeout: 0 })
        reply.catch(() => undefined)
        const matched = new Promise<string>((resolve) => {
          this.onMatch = (text) => {
            // telnet-client treats a chunk starting with 0xFF as negotiation (and answers it): it never sees one.
            this.channel.push(Buffer.from(text.replace(/\xff/g, '?'), 'latin1'))
            resolve(text)
          }
        })
        this.check()
        const text = await Promise.race([matched, stopped])
        // telnet-client was handed the same window; its write resolves with it.
        await Promise.race([reply, stopped])
        return text
      }
      let sentUser = false
      let sentPassword = false
      let text = await step('')
      for (;;) {
        if (test(failed, text)) throw this.error('rejected', 'the device refused the login')
        if (test(shell, text)) return
        if (test(password, text)) {
          if (sentPassword) throw this.error('rejected', 'the device asked for the password again')
          if (o.password === undefined) throw this.error('missing-credential', 'the device asked for a password and none is configured')
          sentPassword = true
          text = await step(`${o.password}\r\n`)
        } else if (test(login, text)) {
          if (sentUser) throw this.error('rejected', 'the device asked for the login again')
          if (o.username === undefined) throw this.error('missing-credential', 'the device asked for a login name and none is configured')
          sentUser = true
          text = await step(`${o.username}\r\n`)
        } else {
          throw this.error('no-prompt', 'the device sent no login, password or shell prompt')
        }
      }
    } finally {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      this.onClosed = undefined
      this.onMatch = undefined
      this.telnet.removeAllListeners()
      this.channel.destroy()
    }
  }

  private error(failure: LoginFailure, what: string, cause?: unknown): TelnetLoginError {
    return new TelnetLoginError(`login to ${this.target} failed: ${what}; last seen: ${quote(this.seenText)}`, { seen: this.seenText, failure, cause })
  }
}

function test(pattern: RegExp, text: string): boolean {
  pattern.lastIndex = 0
  return pattern.test(text)
}

/** The tail of `text` as a JSON string (control characters visible), for messages. */
export function quote(text: string): string {
  return JSON.stringify(text.slice(-120))
}
