/**
 * The Telnet byte codec (RFC 854 / 855 / 856 / 858 / 857 / 1073 / 1091, negotiation by the RFC 1143
 * Q method): a streaming decoder that takes socket chunks and hands up data bytes only, an encoder
 * that escapes 0xFF (and applies the NVT carriage-return rule outside BINARY mode), and loop-free
 * option negotiation. One instance per connection, shared by client and server.
 *
 * @module
 */
import { FramingError } from '@labwire/core'

/** Telnet command bytes (RFC 854). */
export const TelnetCommand = {
  SE: 240,
  NOP: 241,
  DM: 242,
  BRK: 243,
  IP: 244,
  AO: 245,
  AYT: 246,
  EC: 247,
  EL: 248,
  GA: 249,
  SB: 250,
  WILL: 251,
  WONT: 252,
  DO: 253,
  DONT: 254,
  IAC: 255,
} as const

/** Option codes labwire understands. */
export const TelnetOption = {
  /** RFC 856: 8-bit data, no NVT carriage-return rule. */
  BINARY: 0,
  /** RFC 857: the sender echoes what it receives. */
  ECHO: 1,
  /** RFC 858: no GO AHEAD after output. */
  SUPPRESS_GO_AHEAD: 3,
  /** RFC 1091: the client names its terminal type. */
  TERMINAL_TYPE: 24,
  /** RFC 1073: the client reports its window size. */
  NAWS: 31,
} as const

const { SE, SB, WILL, WONT, DO, DONT, IAC } = TelnetCommand

/**
 * Negotiation replies per option and side, at most; a peer that goes on negotiating the same
 * option is then ignored for it (and TERMINAL-TYPE SEND is answered at most this many times).
 */
export const MAX_NEGOTIATION_REPLIES = 8
const CR = 13
const LF = 10
const NUL = 0
const TTYPE_IS = 0
const TTYPE_SEND = 1

/** Which end of the connection performs an option: `'local'` = this side (WILL/WONT), `'remote'` = the peer (DO/DONT). */
export type OptionSide = 'local' | 'remote'

/** A window size in characters (NAWS). */
export interface WindowSize {
  columns: number
  rows: number
}

/** Options for {@link TelnetCodec}. */
export interface TelnetCodecOptions {
  /** Writes raw protocol bytes (negotiation, subnegotiation) straight to the socket. */
  send: (bytes: Uint8Array) => void
  /** Options this side agrees to perform when the peer sends DO (answered WILL); every other DO is refused with WONT. */
  acceptLocal?: Iterable<number>
  /** Options the peer may perform when it sends WILL (answered DO); every other WILL is refused with DONT. */
  acceptRemote?: Iterable<number>
  /** Longest subnegotiation (IAC SB … IAC SE) accepted, in bytes; longer → `FramingError`. Default 1024. */
  maxSubnegotiation?: number
  /** Terminal type reported when the peer asks (TTYPE SEND). Default `'UNKNOWN'`. */
  terminalType?: string
  /** Window size reported once NAWS is enabled locally. Default 80 × 24. */
  windowSize?: WindowSize
  /** Called whenever an option is switched on or off on either side (after the switch). */
  onChange?: (option: number, side: OptionSide, enabled: boolean) => void
}

// Q-method states (RFC 1143 §7).
const NO = 0
const YES = 1
const WANTNO = 2
const WANTYES = 3

// Decoder states.
const S_DATA = 0
const S_IAC = 1
const S_OPTION = 2
const S_SB_OPTION = 3
const S_SB_DATA = 4
const S_SB_IAC = 5

/**
 * One connection's Telnet codec. `decode(chunk)` returns the data bytes in `chunk` (commands
 * handled and answered through `send`), `encode(data)` returns the bytes to write for `data`.
 * Chunk boundaries may fall anywhere, including inside a command or subnegotiation.
 *
 * Carriage returns: outside BINARY mode (per direction), a CR that is not followed by LF in the
 * same write is sent as CR NUL, and a received CR NUL is handed up as CR, so every byte sequence
 * survives the trip; CR LF passes unchanged both ways. In BINARY mode bytes are untouched apart
 * from the 0xFF escape.
 */
export class TelnetCodec {
  private readonly send: (bytes: Uint8Array) => void
  private readonly acceptLocal: Set<number>
  private readonly acceptRemote: Set<number>
  private readonly maxSubnegotiation: number
  private readonly onChange: ((option: number, side: OptionSide, enabled: boolean) => void) | undefined
  private readonly terminalTypeName: string
  private readonly windowSize: WindowSize
  // Q-method state per option: us (local) and him (remote), each with its queue bit (true = OPPOSITE).
  /** Replies sent per option and side (index option, or 256 + option for the peer's side), saturating: see {@link MAX_NEGOTIATION_REPLIES}. */
  private readonly replies = new Uint8Array(512)
  private terminalTypeReplies = 0
  private readonly us = new Uint8Array(256)
  private readonly usq = new Uint8Array(256)
  private readonly him = new Uint8Array(256)
  private readonly himq = new Uint8Array(256)
  private state = S_DATA
  private verb = 0
  private crPending = false
  private sbOption = 0
  private readonly sb: Uint8Array
  private sbLength = 0
  private binaryIn = false
  private binaryOut = false
  private peerTerminal: string | undefined
  private peerWindow: WindowSize | undefined

  constructor(options: TelnetCodecOptions) {
    this.send = options.send
    this.acceptLocal = new Set(options.acceptLocal ?? [])
    this.acceptRemote = new Set(options.acceptRemote ?? [])
    const max = options.maxSubnegotiation ?? 1024
    if (!Number.isInteger(max) || max < 4) throw new RangeError(`TelnetCodec: maxSubnegotiation must be an integer ≥ 4, got ${String(max)}`)
    this.maxSubnegotiation = max
    this.sb = new Uint8Array(max)
    this.onChange = options.onChange
    this.terminalTypeName = options.terminalType ?? 'UNKNOWN'
    this.windowSize = options.windowSize ?? { columns: 80, rows: 24 }
  }

  /** True when `option` is on for `side`. */
  enabled(option: number, side: OptionSide): boolean {
    return (side === 'local' ? this.us[option] : this.him[option]) === YES
  }

  /** True while any negotiation this side started is unanswered. */
  get negotiating(): boolean {
    for (let i = 0; i < 256; i++) if (this.us[i] === WANTYES || this.us[i] === WANTNO || this.him[i] === WANTYES || this.him[i] === WANTNO) return true
    return false
  }

  /** The terminal type the peer reported (server side, after TTYPE IS). */
  get terminalType(): string | undefined {
    return this.peerTerminal
  }

  /** The window size the peer reported (server side, after NAWS). */
  get peerWindowSize(): WindowSize | undefined {
    return this.peerWindow
  }

  /** True when data this side sends is in BINARY mode (no NVT carriage-return rule). */
  get binaryOutput(): boolean {
    return this.binaryOut
  }

  /** True when data this side receives is in BINARY mode. */
  get binaryInput(): boolean {
    return this.binaryIn
  }

  /**
   * Ask to switch `option` on or off for `side` (`local`: WILL/WONT, `remote`: DO/DONT). Follows
   * RFC 1143: a request that repeats the current state or an unanswered one sends nothing.
   */
  request(option: number, side: OptionSide, enable: boolean): void {
    const state = side === 'local' ? this.us : this.him
    const queue = side === 'local' ? this.usq : this.himq
    const yes = side === 'local' ? WILL : DO
    const no = side === 'local' ? WONT : DONT
    switch (state[option]) {
      case NO:
        if (enable) {
          state[option] = WANTYES
          this.command(yes, option)
        }
        break
      case YES:
        if (!enable) {
          state[option] = WANTNO
          this.command(no, option)
          this.changed(option, side, false)
        }
        break
      case WANTNO:
        queue[option] = enable ? 1 : 0
        break
      case WANTYES:
        queue[option] = enable ? 0 : 1
        break
    }
  }

  /** Data bytes → the bytes to write: 0xFF doubled; outside BINARY mode a CR not followed by LF becomes CR NUL. Returns `data` itself when nothing changes. */
  encode(data: Uint8Array): Uint8Array {
    const escapeCr = !this.binaryOut
    let extra = 0
    for (let i = data.indexOf(IAC); i !== -1; i = data.indexOf(IAC, i + 1)) extra++
    if (escapeCr) for (let i = data.indexOf(CR); i !== -1; i = data.indexOf(CR, i + 1)) if (data[i + 1] !== LF) extra++
    if (extra === 0) return data
    const out = new Uint8Array(data.length + extra)
    let o = 0
    for (let i = 0; i < data.length; i++) {
      const byte = data[i] as number
      out[o++] = byte
      if (byte === IAC) out[o++] = IAC
      else if (byte === CR && escapeCr && data[i + 1] !== LF) out[o++] = NUL
    }
    return out
  }

  /**
   * Bytes read from the socket → the data bytes among them (possibly empty; `chunk` itself when it
   * holds data only). Negotiation is answered through `send` as it is parsed. Throws `FramingError`
   * when a subnegotiation grows past `maxSubnegotiation`.
   */
  decode(chunk: Uint8Array): Uint8Array {
    if (this.state === S_DATA && !this.crPending && chunk.indexOf(IAC) === -1 && (this.binaryIn || chunk.indexOf(CR) === -1)) return chunk
    const out = new Uint8Array(chunk.length)
    let o = 0
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i] as number
      switch (this.state) {
        case S_DATA:
          if (byte === IAC) {
            this.state = S_IAC
          } else if (this.crPending) {
            this.crPending = false
            if (byte !== NUL) {
              out[o++] = byte
              if (byte === CR && !this.binaryIn) this.crPending = true
            }
          } else {
            out[o++] = byte
            if (byte === CR && !this.binaryIn) this.crPending = true
          }
          break
        case S_IAC:
          this.state = S_DATA
          if (byte === IAC) {
            out[o++] = IAC
            this.crPending = false
          } else if (byte === WILL || byte === WONT || byte === DO || byte === DONT) {
            this.verb = byte
            this.state = S_OPTION
          } else if (byte === SB) {
            this.state = S_SB_OPTION
          }
          // Other commands (NOP, DM, GA, AYT, a stray SE, …) carry no data and are dropped.
          break
        case S_OPTION:
          this.state = S_DATA
          this.negotiate(this.verb, byte)
          break
        case S_SB_OPTION:
          this.sbOption = byte
          this.sbLength = 0
          this.state = S_SB_DATA
          break
        case S_SB_DATA:
          if (byte === IAC) this.state = S_SB_IAC
          else this.sbByte(byte)
          break
        case S_SB_IAC:
          if (byte === IAC) {
            this.sbByte(IAC)
            this.state = S_SB_DATA
          } else {
            // IAC SE ends it; any other command also ends it (a peer that forgot SE) and is then handled.
            this.state = S_DATA
            this.subnegotiation(this.sbOption, this.sb.subarray(0, this.sbLength))
            if (byte !== SE) {
              this.state = S_IAC
              i--
            }
          }
          break
      }
    }
    return o === chunk.length ? out : out.subarray(0, o)
  }

  private sbByte(byte: number): void {
    if (this.sbLength >= this.maxSubnegotiation) {
      this.state = S_DATA
      this.sbLength = 0
      throw new FramingError(`telnet subnegotiation of option ${this.sbOption} is longer than ${this.maxSubnegotiation} bytes`)
    }
    this.sb[this.sbLength++] = byte
  }

  private sentCommands = 0

  private command(verb: number, option: number): void {
    this.sentCommands++
    this.send(Uint8Array.of(IAC, verb, option))
  }

  /**
   * Handle a received WILL/WONT/DO/DONT by the Q method (RFC 1143 §7). A peer that keeps
   * negotiating one option (a flood of `DO <unknown>`) is answered at most
   * {@link MAX_NEGOTIATION_REPLIES} times for it; after that its negotiation of that option is
   * ignored, so negotiation-only input cannot make this side write without bound.
   */
  private negotiate(verb: number, option: number): void {
    const local = verb === DO || verb === DONT
    const slot = local ? option : 256 + option
    const answered = this.replies[slot] as number
    if (answered >= MAX_NEGOTIATION_REPLIES) return
    const sentBefore = this.sentCommands
    const state = local ? this.us : this.him
    const queue = local ? this.usq : this.himq
    const accept = local ? this.acceptLocal : this.acceptRemote
    const yes = local ? WILL : DO
    const no = local ? WONT : DONT
    const side: OptionSide = local ? 'local' : 'remote'
    const positive = verb === DO || verb === WILL
    const before = state[option]
    if (positive) {
      switch (before) {
        case NO:
          if (accept.has(option)) {
            state[option] = YES
            this.command(yes, option)
          } else {
            this.command(no, option)
          }
          break
        case WANTNO:
          // "DONT answered by WILL": the peer is wrong; settle as the RFC says.
          if (queue[option] === 0) state[option] = NO
          else {
            state[option] = YES
            queue[option] = 0
          }
          break
        case WANTYES:
          if (queue[option] === 0) state[option] = YES
          else {
            state[option] = WANTNO
            queue[option] = 0
            this.command(no, option)
          }
          break
        // YES: already on, nothing to say (this is what stops loops).
      }
    } else {
      switch (before) {
        case YES:
          state[option] = NO
          this.command(no, option)
          break
        case WANTNO:
          if (queue[option] === 0) state[option] = NO
          else {
            state[option] = WANTYES
            queue[option] = 0
            this.command(yes, option)
          }
          break
        case WANTYES:
          state[option] = NO
          queue[option] = 0
          break
        // NO: already off.
      }
    }
    const after = state[option]
    if ((before === YES) !== (after === YES)) this.changed(option, side, after === YES)
    if (this.sentCommands !== sentBefore) this.replies[slot] = answered + 1
  }

  private changed(option: number, side: OptionSide, enabled: boolean): void {
    if (option === TelnetOption.BINARY) {
      if (side === 'local') this.binaryOut = enabled
      else {
        this.binaryIn = enabled
        if (enabled) this.crPending = false
      }
    }
    if (enabled && side === 'local' && option === TelnetOption.NAWS) this.sendWindowSize()
    if (enabled && side === 'remote' && option === TelnetOption.TERMINAL_TYPE) {
      this.send(Uint8Array.of(IAC, SB, TelnetOption.TERMINAL_TYPE, TTYPE_SEND, IAC, SE))
    }
    this.onChange?.(option, side, enabled)
  }

  private subnegotiation(option: number, data: Uint8Array): void {
    if (option === TelnetOption.TERMINAL_TYPE) {
      if (data[0] === TTYPE_SEND && this.us[option] === YES && this.terminalTypeReplies++ < MAX_NEGOTIATION_REPLIES) {
        const name = Array.from(this.terminalTypeName, (c) => c.charCodeAt(0) & 0x7f)
        this.send(this.subnegotiationBytes(option, [TTYPE_IS, ...name]))
      } else if (data[0] === TTYPE_IS && this.him[option] === YES) {
        this.peerTerminal = String.fromCharCode(...data.subarray(1))
      }
    } else if (option === TelnetOption.NAWS && this.him[option] === YES && data.length === 4) {
      this.peerWindow = { columns: ((data[0] as number) << 8) | (data[1] as number), rows: ((data[2] as number) << 8) | (data[3] as number) }
    }
    // Subnegotiation of any other option is dropped: we never agreed to it.
  }

  private sendWindowSize(): void {
    const { columns, rows } = this.windowSize
    this.send(this.subnegotiationBytes(TelnetOption.NAWS, [(columns >> 8) & 0xff, columns & 0xff, (rows >> 8) & 0xff, rows & 0xff]))
  }

  /** IAC SB option <data with 0xFF doubled> IAC SE. */
  private subnegotiationBytes(option: number, data: readonly number[]): Uint8Array {
    const out: number[] = [IAC, SB, option]
    for (const byte of data) {
      out.push(byte)
      if (byte === IAC) out.push(IAC)
    }
    out.push(IAC, SE)
    return Uint8Array.from(out)
  }
}
