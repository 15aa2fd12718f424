/**
 * Telnet as a {@link ConnectionFilter}: the IAC codec between a TCP socket and labwire's byte
 * stream, with the client's opening negotiation (and login dialogue) and the server's banner.
 *
 * @module
 */
import {
  abortErrorFrom,
  checkDuration,
  clampDelay,
  toBytes,
  type AbortOptions,
  type ConnectionFilter,
  type ConnectionFilterContext,
  type ConnectionFilterFactory,
} from '@labwire/core'
import { TelnetCodec, TelnetOption, type WindowSize } from './iac.js'
import { LoginDialogue, type LoginOptions } from './login.js'
import { PromptStripper } from './prompt.js'

/** Negotiation settings shared by client and server. */
export interface TelnetNegotiationOptions {
  /** Longest subnegotiation accepted, in bytes; longer closes the connection with a `FramingError`. Default 1024. */
  maxSubnegotiation?: number | undefined
}

/** Client-side Telnet settings. */
export interface TelnetClientFilterOptions extends TelnetNegotiationOptions, LoginOptions {
  /** `'plain'`: data bytes only; `'login'`: run the login dialogue before `connect()` resolves. */
  mode: 'plain' | 'login'
  /** Ask for BINARY both ways when connecting (8-bit clean, no CR NUL rule). Default true. */
  binary?: boolean | undefined
  /** How long `connect()` waits for the peer to answer the opening negotiation, in ms; then it goes on in NVT mode. Default 2000; 0 = no limit. */
  negotiationTimeout?: number | undefined
  /** Reported when the device asks (TTYPE). Default `'UNKNOWN'`. */
  terminalType?: string | undefined
  /** Reported when the device asks (NAWS); `null` refuses NAWS. Default 80 × 24. */
  windowSize?: WindowSize | null | undefined
  /** Login mode: remove the shell prompt from the response stream. Default false. */
  stripPrompt?: boolean | undefined
}

/** Server-side Telnet settings. */
export interface TelnetServerFilterOptions extends TelnetNegotiationOptions {
  /** Sent to each client once connected (after the opening negotiation). */
  banner?: Uint8Array | string | undefined
  /** Sent after the banner and after each reply. */
  prompt?: Uint8Array | string | undefined
}

const EMPTY = new Uint8Array(0)

/** A client's Telnet filter: opening negotiation, optional login, then the byte path. */
export function telnetClientFilter(options: TelnetClientFilterOptions): ConnectionFilterFactory {
  const negotiationTimeout = options.negotiationTimeout === undefined ? 2000 : checkDuration('TelnetClient', 'negotiationTimeout', options.negotiationTimeout)
  const acceptLocal: number[] = [TelnetOption.BINARY, TelnetOption.SUPPRESS_GO_AHEAD, TelnetOption.TERMINAL_TYPE]
  if (options.windowSize !== null) acceptLocal.push(TelnetOption.NAWS)
  const acceptRemote = [TelnetOption.BINARY, TelnetOption.SUPPRESS_GO_AHEAD, TelnetOption.ECHO]
  return (context: ConnectionFilterContext): ConnectionFilter => {
    const codec = new TelnetCodec({
      send: (bytes) => context.send(bytes),
      acceptLocal,
      acceptRemote,
      ...(options.maxSubnegotiation === undefined ? {} : { maxSubnegotiation: options.maxSubnegotiation }),
      ...(options.terminalType === undefined ? {} : { terminalType: options.terminalType }),
      ...(options.windowSize == null ? {} : { windowSize: options.windowSize }),
    })
    const login = options.mode === 'login' ? new LoginDialogue(options, (bytes) => context.send(codec.encode(bytes)), context.peer) : undefined
    const stripper = options.mode === 'login' && options.stripPrompt === true ? new PromptStripper(options.shellPrompt) : undefined
    let loggingIn = login !== undefined
    let settled: (() => void) | undefined
    return {
      open() {
        if (options.binary ?? true) {
          codec.request(TelnetOption.BINARY, 'local', true)
          codec.request(TelnetOption.BINARY, 'remote', true)
        }
      },
      input(chunk) {
        const data = codec.decode(chunk)
        if (settled !== undefined && !codec.negotiating) settled()
        if (loggingIn) {
          login?.feed(data)
          return EMPTY
        }
        return stripper === undefined ? data : stripper.strip(data)
      },
      output(bytes) {
        return codec.encode(bytes)
      },
      async ready(readyOptions?: AbortOptions) {
        await negotiated(codec, negotiationTimeout, readyOptions, (resolve) => {
          settled = resolve
        })
        settled = undefined
        if (login === undefined) return
        try {
          await login.run(readyOptions)
        } finally {
          loggingIn = false
        }
      },
      close() {
        settled?.()
        login?.close()
      },
    }
  }
}

/**
 * Resolve once `codec` has no unanswered request, or after `ms` (a peer that ignores negotiation:
 * go on in NVT mode; `undefined` = no limit). Rejects with `AbortError` when the signal fires.
 */
function negotiated(codec: TelnetCodec, ms: number | undefined, options: AbortOptions | undefined, register: (resolve: () => void) => void): Promise<void> {
  const signal = options?.signal
  if (signal?.aborted === true) return Promise.reject(abortErrorFrom(signal, 'telnet negotiation'))
  if (!codec.negotiating) return Promise.resolve()
  return new Promise<void>((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(abortErrorFrom(signal as AbortSignal, 'telnet negotiation'))
    }
    const timer = ms === undefined ? undefined : setTimeout(done, clampDelay(ms))
    signal?.addEventListener('abort', onAbort, { once: true })
    register(done)
  })
}

/** A server's Telnet filter: WILL SUPPRESS-GO-AHEAD, echo only when asked, the banner and first prompt. */
export function telnetServerFilter(options: TelnetServerFilterOptions): ConnectionFilterFactory {
  const acceptLocal = [TelnetOption.BINARY, TelnetOption.SUPPRESS_GO_AHEAD, TelnetOption.ECHO]
  const acceptRemote = [TelnetOption.BINARY, TelnetOption.SUPPRESS_GO_AHEAD, TelnetOption.NAWS, TelnetOption.TERMINAL_TYPE]
  const banner = options.banner === undefined ? undefined : toBytes(options.banner)
  const prompt = options.prompt === undefined ? undefined : toBytes(options.prompt)
  return (context: ConnectionFilterContext): ConnectionFilter => {
    const codec = new TelnetCodec({
      send: (bytes) => context.send(bytes),
      acceptLocal,
      acceptRemote,
      ...(options.maxSubnegotiation === undefined ? {} : { maxSubnegotiation: options.maxSubnegotiation }),
    })
    return {
      open() {
        codec.request(TelnetOption.SUPPRESS_GO_AHEAD, 'local', true)
        if (banner !== undefined && banner.length > 0) context.send(codec.encode(banner))
        if (prompt !== undefined && prompt.length > 0) context.send(codec.encode(prompt))
      },
      input(chunk) {
        const data = codec.decode(chunk)
        // Server echo only when the client asked for it (DO ECHO).
        if (data.length > 0 && codec.enabled(TelnetOption.ECHO, 'local')) context.send(codec.encode(data))
        return data
      },
      output(bytes) {
        return codec.encode(bytes)
      },
    }
  }
}
