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
import { ConnectionError, LabwireError, TimeoutError, abortErrorFrom, checkDuration, clampDelay, type AbortOptions } from '@labwire/core'

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

/** A RegExp that matches when any of several patterns (with their own flags) matches: what telnet-client's `waitFor` accepts. */
class AnyOf extends RegExp {
  constructor(private readonly patterns: readonly RegExp[]) {
    super('(?:)')
  }
  override test(text: string): boolean {
    return this.patterns.some((pattern) => {
      pattern.lastIndex = 0
      return pattern.test(text)
    })
  }
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
/** How long telnet-client listens per call before labwire looks again (its timer cannot be cancelled). */
const WINDOW_MS = 250

/**
 * One connection's login dialogue. Feed it the device's data bytes with {@link LoginDialogue.feed};
 * {@link LoginDialogue.run} resolves once the shell prompt is seen.
 */
export class LoginDialogue {
  private readonly channel: LoginChannel
  private readonly telnet = new Telnet()
  private held: Buffer[] = []
  private active = false
  private seenText = ''
  private closedReason: TelnetLoginError | undefined
  private onClosed: ((error: TelnetLoginError) => void) | undefined

  constructor(
    private readonly options: LoginOptions,
    sendData: (bytes: Uint8Array) => void,
    private readonly target: string,
  ) {
    this.channel = new LoginChannel(sendData)
    // telnet-client emits 'error' from its socket; errors are reported through run() instead.
    this.telnet.on('error', () => undefined)
  }

  /** The tail of what the device has sent during the dialogue. */
  get seen(): string {
    return this.seenText
  }

  /** Device data bytes (already IAC-decoded) that arrived during the dialogue. */
  feed(data: Uint8Array): void {
    if (data.length === 0) return
    const latin1 = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('latin1')
    this.seenText = (this.seenText + latin1).slice(-SEEN_LIMIT)
    // telnet-client treats a chunk starting with 0xFF as negotiation; it must never see one.
    const safe = Buffer.from(latin1.replace(/\xff/g, '?'), 'latin1')
    if (this.active) this.channel.push(safe)
    else this.held.push(safe)
  }

  /** The connection closed during the dialogue. */
  close(): void {
    this.closedReason ??= this.error('closed', 'the connection closed during the login dialogue')
    this.onClosed?.(this.closedReason)
    this.channel.destroy()
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
    const any = new AnyOf([failed, shell, password, login])
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
       * Send `send`, then collect what the device says until one of the patterns matches. telnet-client
       * listens in short windows (so its timer never outlives the dialogue by more than one window);
       * labwire's own timer ends the whole dialogue at the deadline.
       */
      const step = async (send: string): Promise<string> => {
        let text = ''
        for (let first = true; ; first = false) {
          // telnet-client's write() starts listening before it returns; only then is held data released to it.
          const reply = this.telnet.write(first ? send : '', { waitFor: any, sendTimeout: WINDOW_MS })
          this.active = true
          for (const chunk of this.held) this.channel.push(chunk)
          this.held = []
          try {
            text += await Promise.race([reply, stopped])
            if (any.test(text)) return text
          } catch (error) {
            // A plain Error from telnet-client ("response not received"): nothing came in this window.
            if (!(error instanceof Error) || error instanceof LabwireError || error.name !== 'Error') throw error
          } finally {
            this.active = false
          }
        }
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
      this.active = false
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
