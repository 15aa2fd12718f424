import { TcpClient, type TcpClientOptions, type TcpClientSession } from '@labwire/transport-tcp'
import { checkCount, checkDuration, type AbortOptions, type ByteStream, type TransportClient, type TransportClientSession } from '@labwire/core'
import { telnetClientFilter, type TelnetClientFilterOptions } from './filter.js'

/** Options for {@link TelnetClient}: the TCP options plus the Telnet ones. */
export interface TelnetClientOptions extends Omit<TcpClientOptions, 'filter'>, Omit<TelnetClientFilterOptions, 'mode'> {
  /**
   * `'plain'` (default): a line protocol over Telnet (SCPI ports, serial-device servers); the
   * session carries data bytes only, all 256 values. `'login'`: a CLI-style device; `connect()`
   * answers the login and password prompts and resolves at the shell prompt.
   */
  mode?: 'plain' | 'login'
}

/**
 * Connects to a Telnet server: TCP (labwire's `TcpClient`) with labwire's IAC codec on the byte
 * path. On connect it asks for BINARY both ways, answers the device's negotiation (accepting
 * SUPPRESS-GO-AHEAD, ECHO from the server, TTYPE and NAWS; refusing the rest) and, in login
 * mode, runs the login dialogue through `telnet-client`. No IAC byte ever reaches the session.
 *
 * @example
 * ```ts
 * const client = new TelnetClient({ host: '127.0.0.1', port: 2323 })
 * await using session = await client.connect({ signal: AbortSignal.timeout(5_000) })
 * const stream = session.request(new TextEncoder().encode('*IDN?\n'))
 * ```
 */
export class TelnetClient implements TransportClient {
  private readonly tcp: TcpClient

  constructor(options: TelnetClientOptions) {
    const {
      mode = 'plain', binary, negotiationTimeout, terminalType, windowSize, stripPrompt, maxSubnegotiation,
      username, password, loginPrompt, passwordPrompt, shellPrompt, failedLoginMatch, loginTimeout, promptWindow,
      ...tcp
    } = options
    if (mode !== 'plain' && mode !== 'login') throw new RangeError(`TelnetClient: mode must be 'plain' or 'login', got ${String(mode)}`)
    if (mode === 'plain' && stripPrompt === true) throw new RangeError("TelnetClient: stripPrompt needs mode: 'login'")
    checkDuration('TelnetClient', 'loginTimeout', loginTimeout)
    if (promptWindow !== undefined) checkCount('TelnetClient', 'promptWindow', promptWindow, { min: 16 })
    if (maxSubnegotiation !== undefined) checkCount('TelnetClient', 'maxSubnegotiation', maxSubnegotiation, { min: 4 })
    if (windowSize != null) {
      for (const [name, value] of Object.entries(windowSize)) checkCount('TelnetClient', `windowSize.${name}`, value, { min: 0 })
      if (windowSize.columns > 0xffff || windowSize.rows > 0xffff) throw new RangeError('TelnetClient: windowSize columns and rows must be ≤ 65535')
    }
    if (terminalType !== undefined && !/^[\x21-\x7e]{1,40}$/.test(terminalType)) throw new RangeError(`TelnetClient: terminalType must be 1–40 printable ASCII characters, got '${terminalType}'`)
    const telnet: TelnetClientFilterOptions = {
      mode, binary, negotiationTimeout, terminalType, windowSize, stripPrompt, maxSubnegotiation,
      username, password, loginPrompt, passwordPrompt, shellPrompt, failedLoginMatch, loginTimeout, promptWindow,
    }
    this.tcp = new TcpClient({ ...tcp, filter: telnetClientFilter(telnet) })
  }

  /** `host:port` of the peer. */
  get target(): string {
    return this.tcp.target
  }

  /**
   * Connect, negotiate and (login mode) log in. Rejects with `ConnectionError` (refused,
   * unreachable; a `TelnetLoginError` when the login fails), `TimeoutError` or `AbortError`.
   */
  async connect(options?: AbortOptions): Promise<TelnetClientSession> {
    return new TelnetClientSession(await this.tcp.connect(options))
  }
}

/** One Telnet connection; its stream carries data bytes only. Implements the transport contract's session. */
export class TelnetClientSession implements TransportClientSession {
  /** The transport kind, for events and logs. */
  readonly transport = 'telnet'

  /** @internal Created by {@link TelnetClient.connect}. */
  constructor(private readonly tcp: TcpClientSession) {}

  /** The connection's incoming data byte stream (what `request()` returns). */
  get stream(): ByteStream {
    return this.tcp.stream
  }

  /** `host:port` of the peer. */
  get target(): string {
    return this.tcp.target
  }

  /** True once the session is closed or the connection is gone. */
  get closed(): boolean {
    return this.tcp.closed
  }

  /** Write `request` (0xFF escaped) and return the connection's data stream. Throws `ConnectionError` if the session is closed. */
  request(request: Uint8Array): AsyncIterator<Uint8Array> {
    return this.tcp.request(request)
  }

  /** Write `bytes`; resolves when the socket's write buffer has room again (backpressure). */
  write(bytes: Uint8Array, options?: AbortOptions): Promise<void> {
    return this.tcp.write(bytes, options)
  }

  /** Close the connection. Idempotent. */
  close(): Promise<void> {
    return this.tcp.close()
  }

  /** Let the process exit while this connection is open (the application layer does this while a session is idle). */
  unref(): void {
    this.tcp.unref()
  }

  /** Hold the process open while this connection is open (the default). */
  ref(): void {
    this.tcp.ref()
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}
