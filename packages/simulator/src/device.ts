import { Buffer } from 'node:buffer'
/**
 * The device engine: state, an ordered command table (pattern → handler → optional reply), error
 * handling, faults, a tick loop and unsolicited messages. pyvisa-sim device files and the
 * programmatic API both build a {@link Device}.
 *
 * @module
 */
import { ApplicationServer } from '@labwire/application'
import { clampDelay, longTimeout, serverRequestChannel, setRequestCommand, silentLogger, type ByteHandlerObject, type ByteStream, type Logger } from '@labwire/core'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { concatBytes, splitBytes, utf8 } from './bytes.js'
import { FaultSet, type Fault, type FaultSpec } from './faults.js'
import { Parser } from './python/stringparser.js'
import type { PyValue } from './python/values.js'

/** What a command handler may return: text or bytes to send (the response terminator is added), or nothing. */
// eslint-disable-next-line @typescript-eslint/no-invalid-void-type -- handlers that return nothing are the common case
export type Reply = string | Uint8Array | undefined | void

/**
 * What a handler of a device with {@link DeviceOptions.framing} returns for a message type `M`:
 * the reply value (the framing's `marshall` turns it into bytes), or nothing. For text devices
 * (`M` = string) it is {@link Reply}.
 */
// eslint-disable-next-line @typescript-eslint/no-invalid-void-type -- handlers that return nothing are the common case
export type ReplyOf<M> = [M] extends [string] ? Reply : M | undefined | void

/**
 * The request message type a handler sees: `M`, or text for a device without framing (whose `M`
 * is left at its default, `any`, so that every device fits where a `Device<S>` is expected).
 */
export type MessageOf<M> = 0 extends 1 & M ? string : M

/**
 * How a device frames and decodes requests and encodes replies when it is not a text-line device:
 * any labwire framer (`new LengthFieldBytesMarshaller(…)`, `new StartStopBytesMarshaller(…)`, …) or
 * a `compose(framer, ...codecs)` marshaller. A labwire decoder (every framer except the idle-gap
 * one, and `compose` of one) keeps the server's synchronous fast path.
 */
export interface DeviceFraming<M> {
  /** Reads one request message from a connection's byte stream. */
  readonly unmarshall: (bytes: AsyncIterator<Uint8Array>) => M | Promise<M>
  /** Turns one reply value into the bytes sent (frame, checksum and all). */
  readonly marshall: (reply: M) => Uint8Array
}

/** Returned by a command's `run` when it does not handle the query: the next command is tried. */
export const NOT_MATCHED: unique symbol = Symbol('labwire.simulator.notMatched')
/** Returned by a command's `run` when it handled the query and sends nothing. */
export const NO_REPLY: unique symbol = Symbol('labwire.simulator.noReply')

/** The outcome of one command: reply bytes (terminator not yet added), no reply, or not matched. */
export type Outcome = Uint8Array | typeof NO_REPLY | typeof NOT_MATCHED

/** One entry of a device's command table. */
export interface Command {
  /** Shown in listings and logs, e.g. the pattern. */
  readonly label: string
  /** Milliseconds to wait before the reply (labwire extension `delay`). */
  delay?: number
  /**
   * Handle `query` (one `delimiter`-separated unit, decoded as UTF-8; `raw` is its bytes). On a
   * device with {@link DeviceOptions.framing}, `message` is the decoded request message (then
   * `query` is that message when it is a string, else `''`, and `raw` its bytes when it is bytes).
   */
  run(query: string, raw: Uint8Array, context: CommandContext, message?: unknown): Outcome | Promise<Outcome>
  /** True when `run` reads only `raw` (and `message`), never `query`: the engine then skips decoding the text for it (`query` is `''`). */
  readonly bytesOnly?: boolean
  /** Whether this command takes `message` (without running it); faults' `commands` match the label of the command that would. */
  matches?(message: unknown): boolean
}

/** What a handler sees besides its arguments. */
export interface CommandContext {
  /** The connection the request came on, when the server tracks connections. */
  readonly connection: SimConnection | undefined
  /** Per-connection scratch state (one object per client connection). */
  readonly session: Record<string, unknown>
}

/**
 * A per-connection login dialogue in front of the device (CLI-style devices; labwire extension
 * `labwire.login`). On connect the server sends `banner` and `loginPrompt`; the first line is the
 * user name, the second the password; then every reply is followed by `prompt`.
 */
export interface LoginDef {
  username: string
  password: string
  /** Sent on connect, before the login prompt. */
  banner: string
  loginPrompt: string
  passwordPrompt: string
  /** Sent after the login and after every command. */
  prompt: string
  /** Sent (with a line end) after a wrong user name or password, before a new login prompt. */
  failure: string
}

/** A client connection as the simulator sees it (tracked by {@link SimulatorServer}). */
export interface SimConnection {
  readonly id: number
  readonly peer: string
  /** Write bytes now (unsolicited messages, reply fragments). */
  write(bytes: Uint8Array): void
  /** Close the connection now. */
  destroy(): void
  readonly closed: boolean
}

const connectionsByStream = new WeakMap<object, SimConnection>()

/** Tell the engine which connection a transport's byte stream belongs to (servers that own sockets call this). */
export function registerConnection(bytes: AsyncIterator<Uint8Array>, connection: SimConnection): void {
  connectionsByStream.set(bytes, connection)
}

/** Thrown by a handler served on a plain transport server when a `disconnect` fault fires: the transport closes the connection. */
export class SimulatedDisconnect extends Error {
  override readonly name = 'SimulatedDisconnect'
}

/** Typed placeholder values of a command template such as `'VOLT {value:f}'`. */
export type TemplateArgs<T extends string> = T extends `${string}{${infer Field}}${infer Rest}` ? FieldArg<Field> & TemplateArgs<Rest> : unknown

type FieldArg<F extends string> = F extends `${infer Name}:${infer Spec}` ? NamedArg<Name, SpecType<Spec>> : NamedArg<F, string>
type NamedArg<Name extends string, V> = Name extends '' | '_' ? unknown : { [K in Name]: V }
type SpecType<S extends string> = S extends `${string}${'d' | 'b' | 'o' | 'x' | 'X' | 'e' | 'E' | 'f' | 'F' | 'g' | 'G' | '%'}` ? number : string

/** A command handler of the programmatic API. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see MessageOf
export type CommandHandler<S, A, M = any> = (args: A, device: Device<S, M>, context: CommandContext) => Reply | Promise<Reply>

/** A handler of a command matched by a function (see {@link Device.command}). */
export type MessageHandler<S, M, A> = (args: A, device: Device<S, M>, context: CommandContext) => ReplyOf<M> | Promise<ReplyOf<M>>

/** What the handler of a function-matched command gets: the message when the matcher returned `true`, else what it returned. */
export type MatchArgs<A, M> = A extends true ? M : Exclude<A, false | undefined | null>

/** Options of one programmatic command. */
export interface CommandOptions {
  /** Milliseconds to wait before replying. */
  delay?: number
  /** The command's label (listings, logs, a fault's `commands`). Default: the pattern, or the matcher function's name. */
  label?: string
}

/** Options for {@link Device}. `M` is the request message type: text by default, what {@link DeviceOptions.framing} decodes otherwise. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see MessageOf
export interface DeviceOptions<S, M = any> {
  /** The device's name (control channel, logs). */
  name: string
  /** Initial state; handlers read and change `device.state`. */
  state: S
  /** Request terminator (pyvisa-sim's eom `q`). Default `'\n'`. */
  requestTerminator?: string | Uint8Array
  /** Response terminator (pyvisa-sim's eom `r`). Default `'\n'`. */
  responseTerminator?: string | Uint8Array
  /** Several commands per message separated by this (pyvisa-sim's `delimiter`); `null` for none. Default `null`. */
  delimiter?: string | Uint8Array | null
  /**
   * A binary (or any non-line) device: requests are read with `framing.unmarshall` and replies
   * written with `framing.marshall`, instead of the terminators (which must then not be given, nor
   * `delimiter`, `maxRequestLength` or a login). Pass a framer or a `compose(framer, ...codecs)`
   * marshaller; its own `maxLength` bounds a request. Faults act on the framed reply bytes.
   *
   * @example
   * ```ts
   * framing: compose(new LengthFieldBytesMarshaller({ lengthFieldOffset: 1, lengthFieldLength: 1, lengthAdjustment: 2 }),
   *                  checksumCodec(crc16Modbus, { byteOrder: 'little' }), header)
   * ```
   */
  framing?: DeviceFraming<M>
  /**
   * What an unknown command answers (pyvisa-sim's `error`): text or bytes (a reply value with
   * `framing`), or a function of the request. Default: no reply.
   */
  unknownCommand?: ReplyOf<M> | ((query: MessageOf<M>, device: Device<S, M>) => ReplyOf<M>)
  /** Maximum request length in bytes. Default 64 KiB. */
  maxRequestLength?: number
  logger?: Logger
  /** Read and write state as JSON for the control channel; default: the `state` object's own fields. */
  stateAccess?: StateAccess
}

/** How the control channel reads and changes a device's state. */
export interface StateAccess {
  get(): Record<string, unknown>
  /** Set one field; throw a `TypeError`/`RangeError` with a message for a bad value. */
  set(key: string, value: unknown): void
}

/** A method callable through the control channel. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see MessageOf
export type DeviceMethod<S, M = any> = (device: Device<S, M>, ...args: unknown[]) => unknown

/**
 * A simulated device. Requests are framed by `requestTerminator`, split by `delimiter`, and each
 * unit goes through the command table in order; the first command that matches answers. An
 * unmatched unit answers `unknownCommand`. Each reply is followed by `responseTerminator`.
 *
 * @example
 * ```ts
 * const psu = new Device({ name: 'psu', state: { volts: 0 } })
 *   .command('VOLT {v:f}', ({ v }, d) => { d.state.volts = v })
 *   .command('VOLT?', (_, d) => d.state.volts.toFixed(3))
 * const server = new SimulatorServer({ device: psu })
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see MessageOf
export class Device<S = Record<string, unknown>, M = any> {
  readonly name: string
  /** The device state, shared by every connection. */
  state: S
  /** Request terminator; empty on a device with {@link DeviceOptions.framing}. */
  readonly requestTerminator: Uint8Array
  /** Response terminator; empty on a device with {@link DeviceOptions.framing}. */
  readonly responseTerminator: Uint8Array
  readonly delimiter: Uint8Array | undefined
  /** The command table, tried in order. */
  readonly commands: Command[] = []
  /** Faults, switchable at run time. */
  readonly faults = new FaultSet()
  readonly methods = new Map<string, DeviceMethod<S, M>>()
  /**
   * Where device errors go (a bad format spec, a handler that throws): `logger.error` with
   * `{ err, device, command }`. Writable, so a server or the CLI can give a device built
   * without one its own logger.
   */
  logger: Logger
  readonly maxRequestLength: number
  /** True after a `quiet` fault fired, until {@link Device.reset}. */
  quiet = false
  /** A login dialogue per connection (CLI devices), or undefined. */
  login: LoginDef | undefined
  /** The framing of a non-line device ({@link DeviceOptions.framing}), or undefined for a text device. */
  readonly framing: DeviceFraming<unknown> | undefined
  private readonly unknownCommand: ((query: unknown) => Outcome) | undefined
  /** Reply value → outcome: text devices add nothing here (the terminator comes later); framed devices marshall. */
  private readonly outcomeOf: (reply: unknown) => Outcome
  private readonly stateAccess: StateAccess | undefined
  private readonly tickers: { interval: number; fn: (device: Device<S, M>, elapsed: number) => void }[] = []
  private readonly timers: ReturnType<typeof setInterval>[] = []
  private readonly connections = new Set<SimConnection>()
  private readonly listeners = new Set<(event: DeviceEvent) => void>()

  constructor(options: DeviceOptions<S, M>) {
    this.name = options.name
    this.state = options.state
    const framing = options.framing
    if (framing === undefined) {
      this.framing = undefined
      this.requestTerminator = utf8(options.requestTerminator ?? '\n')
      if (this.requestTerminator.length === 0) throw new RangeError('requestTerminator must not be empty')
      this.responseTerminator = utf8(options.responseTerminator ?? '\n')
      const delimiter = options.delimiter ?? null
      this.delimiter = delimiter === null || delimiter.length === 0 ? undefined : utf8(delimiter)
      this.outcomeOf = toOutcome as (reply: unknown) => Outcome
    } else {
      if (typeof framing !== 'object' || framing === null || typeof framing.marshall !== 'function' || typeof framing.unmarshall !== 'function')
        throw new TypeError(`Device ${options.name}: framing must have marshall(reply) and unmarshall(bytes) (a framer or a compose() marshaller)`)
      for (const key of ['requestTerminator', 'responseTerminator', 'delimiter', 'maxRequestLength'] as const) {
        if (options[key] !== undefined) throw new RangeError(`Device ${options.name}: ${key} does not apply to a device with framing (the framer frames requests and bounds their length)`)
      }
      this.framing = framing as DeviceFraming<unknown>
      this.requestTerminator = new Uint8Array(0)
      this.responseTerminator = new Uint8Array(0)
      this.delimiter = undefined
      const marshall = framing.marshall as (reply: unknown) => Uint8Array
      this.outcomeOf = (reply) => (reply === undefined ? NO_REPLY : marshall(reply))
    }
    this.logger = options.logger ?? silentLogger
    this.maxRequestLength = options.maxRequestLength ?? 64 * 1024
    this.stateAccess = options.stateAccess
    const unknown = options.unknownCommand
    const outcomeOf = this.outcomeOf
    if (typeof unknown === 'function') {
      const fn = unknown as (query: unknown, device: this) => unknown
      this.unknownCommand = (query) => outcomeOf(fn(query, this))
    } else if (unknown !== undefined) this.unknownCommand = () => outcomeOf(unknown)
  }

  /**
   * Add a command. `pattern` is exact text, a template with typed placeholders (`'VOLT {value:f}'`:
   * `:d :f :e :g :x …` give numbers, `{name}`/`:s` strings; stringparser rules), or a RegExp (the
   * handler gets the match). Returns the device, for chaining.
   */
  command<T extends string>(pattern: T, handler: CommandHandler<S, TemplateArgs<T>, M>, options?: CommandOptions): this
  command(pattern: RegExp, handler: CommandHandler<S, RegExpExecArray, M>, options?: CommandOptions): this
  /**
   * Add a command matched by a function of the request message (the decoded message of a device
   * with `framing`, the query text otherwise): `match` returns `false`/`undefined`/`null` for "not
   * mine", `true` (the handler gets the message) or anything else (the handler gets that, e.g. the
   * fields it parsed). `match` should be pure: faults with `commands` call it too.
   *
   * @example
   * ```ts
   * device.command((body) => body[0] === 0x01, (_body, d) => Uint8Array.of(0x81, d.state.temperature))
   * ```
   */
  command<A>(match: (message: MessageOf<M>) => A, handler: MessageHandler<S, M, MatchArgs<A, MessageOf<M>>>, options?: CommandOptions): this
  command(pattern: string | RegExp | ((message: never) => unknown), handler: CommandHandler<S, never, M> | MessageHandler<S, M, never>, options: CommandOptions = {}): this {
    if (typeof pattern === 'function') return this.addMatcher(pattern as (message: unknown) => unknown, handler as unknown as MessageHandler<S, M, unknown>, options)
    const run = handler as unknown as CommandHandler<S, unknown, M>
    let match: (query: string) => unknown
    if (pattern instanceof RegExp) {
      match = (query) => {
        pattern.lastIndex = 0
        return pattern.exec(query) ?? undefined
      }
    } else if (pattern.includes('{')) {
      const parser = new Parser(pattern)
      match = (query) => {
        const values = parser.fieldValues(query)
        if (values === undefined) return undefined
        const args: Record<string, unknown> = {}
        for (const [key, value] of values) args[key] = typeof value === 'bigint' ? Number(value) : value
        return args
      }
    } else {
      match = (query) => (query === pattern ? {} : undefined)
    }
    const outcomeOf = this.outcomeOf
    const command: Command =
      this.framing === undefined
        ? {
            label: options.label ?? String(pattern),
            run: (query, _raw, context) => {
              const args = match(query)
              if (args === undefined) return NOT_MATCHED
              const reply = run(args, this, context)
              return reply instanceof Promise ? reply.then(toOutcome) : toOutcome(reply)
            },
          }
        : {
            // A framed device: text patterns match messages that decode to strings (a textCodec), nothing else.
            label: options.label ?? String(pattern),
            run: (_query, _raw, context, message) => {
              if (typeof message !== 'string') return NOT_MATCHED
              const args = match(message)
              if (args === undefined) return NOT_MATCHED
              const reply = run(args, this, context)
              return reply instanceof Promise ? reply.then(outcomeOf) : outcomeOf(reply)
            },
            matches: (message) => typeof message === 'string' && match(message) !== undefined,
          }
    if (options.delay !== undefined) command.delay = options.delay
    this.commands.push(command)
    return this
  }

  private addMatcher(match: (message: unknown) => unknown, handler: MessageHandler<S, M, unknown>, options: CommandOptions): this {
    const outcomeOf = this.outcomeOf
    const framed = this.framing !== undefined
    const command: Command = {
      label: options.label ?? (match.name === '' ? 'match' : match.name),
      run: (query, _raw, context, message) => {
        const subject = framed ? message : query
        const matched = match(subject)
        if (matched === false || matched === undefined || matched === null) return NOT_MATCHED
        const reply = handler(matched === true ? subject : matched, this, context)
        return reply instanceof Promise ? reply.then(outcomeOf) : outcomeOf(reply)
      },
      matches: (message) => {
        const matched = match(message)
        return matched !== false && matched !== undefined && matched !== null
      },
    }
    if (options.delay !== undefined) command.delay = options.delay
    this.commands.push(command)
    return this
  }

  /** Add a method the control channel can call (`POST /devices/<name>/methods/<method>`). */
  method(name: string, fn: DeviceMethod<S, M>): this {
    this.methods.set(name, fn)
    return this
  }

  /**
   * Call `fn` every `interval` ms while the device is served (drift, ramps); `elapsed` is the time
   * since the last tick. `interval` must be positive; one over 2³¹ − 1 ms is clamped to that
   * (Node would otherwise tick every millisecond).
   */
  onTick(interval: number, fn: (device: Device<S, M>, elapsed: number) => void): this {
    if (typeof interval !== 'number' || !(interval > 0)) throw new RangeError(`Device ${this.name}: onTick interval must be a positive number of milliseconds, got ${String(interval)}`)
    this.tickers.push({ interval: clampDelay(interval), fn })
    return this
  }

  /** Start the tick loops (servers call this; idempotent). Timers do not keep the process alive. */
  start(): void {
    if (this.timers.length > 0) return
    for (const ticker of this.tickers) {
      let last = performance.now()
      const timer = setInterval(() => {
        const now = performance.now()
        try {
          ticker.fn(this, now - last)
        } catch (error) {
          this.logger.error({ err: error, device: this.name }, `device "${this.name}": tick failed: ${error instanceof Error ? error.message : String(error)}`)
        }
        last = now
      }, ticker.interval)
      timer.unref()
      this.timers.push(timer)
    }
  }

  /** Stop the tick loops. */
  stop(): void {
    for (const timer of this.timers.splice(0)) clearInterval(timer)
  }

  /** Leave `quiet` mode (the "reset" that a quiet device waits for). */
  reset(): void {
    this.quiet = false
    this.emit({ type: 'reset' })
  }

  /** Add a fault (shorthand for `device.faults.add`). */
  fault(spec: FaultSpec): Fault {
    return this.faults.add(spec)
  }

  /**
   * Send an unsolicited message (the response terminator is added; on a device with `framing`,
   * the message value is marshalled) to every connected client, or to the connection with id
   * `to`. Returns the number of connections written to.
   */
  broadcast(message: string | Uint8Array | M, options: { to?: number } = {}): number {
    const bytes = this.framing === undefined ? concatBytes([utf8(message as string | Uint8Array), this.responseTerminator]) : this.framing.marshall(message)
    let count = 0
    for (const connection of this.connections) {
      if (connection.closed || (options.to !== undefined && connection.id !== options.to)) continue
      connection.write(bytes)
      count++
    }
    return count
  }

  /** Connections currently attached to this device. */
  get connectionList(): readonly SimConnection[] {
    return [...this.connections].filter((c) => !c.closed)
  }

  /** Attach a connection (servers call this). */
  attach(connection: SimConnection): void {
    this.connections.add(connection)
    this.emit({ type: 'connect', connection })
  }

  /** Detach a connection (servers call this). */
  detach(connection: SimConnection): void {
    if (this.connections.delete(connection)) this.emit({ type: 'disconnect', connection })
  }

  /** Subscribe to device events. Returns the unsubscribe function. */
  on(listener: (event: DeviceEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  private emit(event: DeviceEvent): void {
    if (this.listeners.size === 0) return
    for (const listener of this.listeners) listener(event)
  }

  /** The state as JSON (control channel). */
  getState(): Record<string, unknown> {
    if (this.stateAccess !== undefined) return this.stateAccess.get()
    return JSON.parse(JSON.stringify(this.state, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v))) as Record<string, unknown>
  }

  /** Change state fields (control channel). Unknown fields and wrongly typed values throw `TypeError`. */
  setState(patch: Record<string, unknown>): void {
    for (const [key, value] of Object.entries(patch)) {
      if (this.stateAccess !== undefined) {
        this.stateAccess.set(key, value)
        continue
      }
      const state = this.state as Record<string, unknown>
      if (state === null || typeof state !== 'object' || !Object.hasOwn(state, key)) throw new TypeError(`${key}: no such state field`)
      const current = state[key]
      if (current !== null && current !== undefined && typeof current !== typeof value)
        throw new TypeError(`${key}: expected ${typeof current}, got ${value === null ? 'null' : typeof value}`)
      state[key] = value
    }
  }

  /**
   * Execute one request message (terminator removed): split by the delimiter, run each unit,
   * return the replies, each followed by the response terminator. Synchronous when every
   * command that ran was. Text devices only: a device with `framing` runs {@link Device.executeMessage}.
   */
  execute(message: Uint8Array, context: CommandContext = { connection: undefined, session: {} }): Uint8Array[] | Promise<Uint8Array[]> {
    if (this.framing !== undefined) throw new TypeError(`Device ${this.name}: execute() is for text devices; a device with framing runs executeMessage(decoded message)`)
    const units = this.delimiter === undefined ? [message] : splitBytes(message, this.delimiter)
    const replies: Uint8Array[] = []
    for (let i = 0; i < units.length; i++) {
      const raw = units[i] as Uint8Array
      const outcome = this.runUnit(raw, context)
      if (outcome instanceof Promise) return this.executeAsync(units, i, outcome, replies, context)
      if (outcome === CRASH) break
      if (outcome !== NO_REPLY) replies.push(terminated(outcome, this.responseTerminator))
    }
    return replies
  }

  private async executeAsync(
    units: Uint8Array[],
    from: number,
    pending: Promise<Outcome | typeof CRASH>,
    replies: Uint8Array[],
    context: CommandContext,
  ): Promise<Uint8Array[]> {
    let outcome = await pending
    for (let i = from; ; ) {
      if (outcome === CRASH) break
      if (outcome !== NO_REPLY) replies.push(concatBytes([outcome as Uint8Array, this.responseTerminator]))
      i++
      if (i >= units.length) break
      outcome = await this.runUnit(units[i] as Uint8Array, context)
    }
    return replies
  }

  /**
   * Run one unit through the command table. `message` is given (the decoded request) on a device
   * with framing; then `query` is the message when it is a string, else `''`.
   */
  private runUnit(
    raw: Uint8Array,
    context: CommandContext,
    message?: unknown,
  ): Exclude<Outcome, typeof NOT_MATCHED> | typeof CRASH | Promise<Exclude<Outcome, typeof NOT_MATCHED> | typeof CRASH> {
    // The text is decoded only when a command that reads it is reached (table lookups match bytes).
    let query = message === undefined ? undefined : typeof message === 'string' ? message : ''
    for (let index = 0; index < this.commands.length; index++) {
      const command = this.commands[index] as Command
      if (query === undefined && command.bytesOnly !== true) query = decoder.decode(raw)
      let outcome: Outcome | Promise<Outcome>
      try {
        outcome = command.run(query ?? '', raw, context, message)
      } catch (error) {
        return this.crashed(error, query ?? decoder.decode(raw), message)
      }
      if (outcome instanceof Promise) return this.continueAsync(outcome, index, query ?? decoder.decode(raw), raw, context, message)
      if (outcome === NOT_MATCHED) continue
      if (command.delay !== undefined && command.delay > 0) return delay(command.delay).then(() => outcome)
      return outcome
    }
    return this.unmatched(query ?? decoder.decode(raw), message)
  }

  private async continueAsync(
    pending: Promise<Outcome>,
    index: number,
    query: string,
    raw: Uint8Array,
    context: CommandContext,
    message: unknown,
  ): Promise<Exclude<Outcome, typeof NOT_MATCHED> | typeof CRASH> {
    let outcome: Outcome
    try {
      outcome = await pending
    } catch (error) {
      return this.crashed(error, query, message)
    }
    let command = this.commands[index] as Command
    while (outcome === NOT_MATCHED) {
      index++
      if (index >= this.commands.length) return this.unmatched(query, message)
      command = this.commands[index] as Command
      try {
        outcome = await command.run(query, raw, context, message)
      } catch (error) {
        return this.crashed(error, query, message)
      }
    }
    if (command.delay !== undefined && command.delay > 0) await delay(command.delay)
    return outcome
  }

  private unmatched(query: string, message: unknown): Exclude<Outcome, typeof NOT_MATCHED> | typeof CRASH {
    if (this.unknownCommand === undefined) return NO_REPLY
    try {
      const outcome = this.unknownCommand(message === undefined ? query : message)
      return outcome === NOT_MATCHED ? NO_REPLY : outcome
    } catch (error) {
      return this.crashed(error, query, message)
    }
  }

  private crashed(error: unknown, text: string, message?: unknown): typeof CRASH {
    // Like an exception inside pyvisa-sim's Device.write: the rest of the message is dropped.
    const query = message === undefined || typeof message === 'string' ? text : describeMessage(message)
    const reason = error instanceof Error ? error.message : String(error)
    this.logger.error(
      { err: error, device: this.name, command: query },
      `device "${this.name}": command ${JSON.stringify(query)} failed: ${reason} (no reply; the rest of the message is dropped)`,
    )
    this.emit({ type: 'error', error, query })
    return CRASH
  }

  /**
   * This device as a `ByteHandler` for any transport server (`TcpServer`, `TelnetServer`, …): an
   * `ApplicationServer` framing requests by the request terminator. Faults that need the socket
   * (`fragment`, `cable-cut`) work fully under {@link SimulatorServer}; on other servers `fragment`
   * degrades to one delayed write and `disconnect`/`cable-cut` close only the current connection.
   */
  handler(): ByteHandlerObject {
    const unmarshall = this.framing?.unmarshall ?? new SentinelBytesMarshaller(this.requestTerminator, { maxLength: this.maxRequestLength }).unmarshall
    const apps = new WeakMap<object, ApplicationServer<unknown, Uint8Array>>()
    // The last connection's application: a burst of requests on one connection skips the WeakMap
    // lookup. (It keeps that one connection's objects alive until another connection sends a request.)
    let lastStream: object | undefined
    let lastApp: ApplicationServer<unknown, Uint8Array> | undefined
    const appFor = (bytes: object): ApplicationServer<unknown, Uint8Array> => {
      if (lastStream === bytes && lastApp !== undefined) return lastApp
      let app = apps.get(bytes)
      if (app === undefined) {
        const connection = connectionsByStream.get(bytes)
        const context: CommandContext = { connection, session: {} }
        app = new ApplicationServer<unknown, Uint8Array>(unmarshall, identity, (message) => {
          // Name the request for the `labwire:server:request` event (a monitor's per-command latency); free when nobody listens.
          if (serverRequestChannel.hasSubscribers) this.labelRequest(bytes, message, context)
          return this.respond(message as M, context)
        })
        apps.set(bytes, app)
      }
      lastStream = bytes
      lastApp = app
      return app
    }
    return {
      handle: (bytes) => appFor(bytes).handle(bytes),
      // The synchronous fast path of labwire's servers: decode and answer what is buffered without awaiting.
      handleBuffered: (stream: ByteStream) => {
        const app = appFor(stream)
        return app.handleBuffered === undefined ? app.handle(stream) : app.handleBuffered(stream)
      },
    }
  }

  /** Name a request for the `labwire:server:request` event: its command word; login lines (user name, password) never show. */
  private labelRequest(stream: object, message: unknown, context: CommandContext): void {
    if (this.login !== undefined && context.session.loginStage !== 'shell') setRequestCommand(stream, '(login)')
    else if (message instanceof Uint8Array) setRequestCommand(stream, commandWord(message))
    else if (typeof message === 'string') setRequestCommand(stream, commandWord(utf8(message)))
  }

  /**
   * One request message in (terminator removed; on a device with `framing`, the decoded message),
   * the bytes to send (or undefined) out, with faults applied.
   */
  respond(message: Uint8Array | M, context: CommandContext): Uint8Array | undefined | Promise<Uint8Array | undefined> {
    if (this.framing !== undefined) return this.respondFramed(message, context)
    const bytes = message as Uint8Array
    if (this.listeners.size > 0) this.emit({ type: 'request', message: bytes, connection: context.connection })
    if (this.quiet) return undefined
    if (this.login !== undefined) return this.respondWithLogin(this.login, bytes, context)
    if (!this.faults.active) {
      const replies = this.execute(bytes, context)
      return replies instanceof Promise ? replies.then(joinReplies) : joinReplies(replies)
    }
    return this.respondWithFaults(bytes, context)
  }

  private respondFramed(message: unknown, context: CommandContext): Uint8Array | undefined | Promise<Uint8Array | undefined> {
    if (this.listeners.size > 0) this.emit({ type: 'request', message: messageBytes(message), value: message, connection: context.connection })
    if (this.quiet) return undefined
    if (this.faults.active) return this.respondWithFaults(message, context)
    return this.executeMessage(message as M, context)
  }

  /**
   * Execute one decoded request message of a device with `framing`: the first command that takes
   * it answers; returns the framed reply bytes, or undefined for no reply. Synchronous when the
   * command that ran was.
   */
  executeMessage(message: M, context: CommandContext = { connection: undefined, session: {} }): Uint8Array | undefined | Promise<Uint8Array | undefined> {
    if (this.framing === undefined) throw new TypeError(`Device ${this.name}: executeMessage needs a device with framing; use execute() for a text device`)
    const raw = message instanceof Uint8Array ? message : typeof message === 'string' ? utf8(message) : EMPTY
    const outcome = this.runUnit(raw, context, message)
    return outcome instanceof Promise ? outcome.then(framedReply) : framedReply(outcome)
  }

  /** What a framed device's faults match in `commands`: the message as text (hex for bytes) and the label of the command that takes it. */
  private faultKeys(message: unknown): string[] {
    const keys = [describeMessage(message)]
    for (const command of this.commands) {
      try {
        if (command.matches?.(message) === true) {
          keys.push(command.label)
          break
        }
      } catch {
        // A matcher that throws takes nothing here; running the command logs the error.
      }
    }
    return keys
  }

  /** The greeting a login device sends when a client connects (banner and login prompt). */
  greeting(): Uint8Array | undefined {
    if (this.login === undefined) return undefined
    return utf8(this.login.banner + this.login.loginPrompt)
  }

  private async respondWithLogin(login: LoginDef, message: Uint8Array, context: CommandContext): Promise<Uint8Array | undefined> {
    const session = context.session
    const line = decoder.decode(message).replace(/\r$/, '')
    const stage = (session.loginStage as string | undefined) ?? 'user'
    if (stage === 'user') {
      session.loginUser = line
      session.loginStage = 'password'
      return utf8(login.passwordPrompt)
    }
    if (stage === 'password') {
      if (session.loginUser === login.username && line === login.password) {
        session.loginStage = 'shell'
        return utf8(login.prompt)
      }
      session.loginStage = 'user'
      return utf8(`${login.failure}\r\n${login.loginPrompt}`)
    }
    const stripped = message.length > 0 && message[message.length - 1] === 0x0d ? message.subarray(0, -1) : message
    const reply = this.faults.active ? await this.respondWithFaults(stripped, context) : joinReplies(await this.execute(stripped, context))
    return concatBytes([reply ?? new Uint8Array(0), utf8(login.prompt)])
  }

  private async respondWithFaults(message: unknown, context: CommandContext): Promise<Uint8Array | undefined> {
    let keys: string[]
    if (this.framing !== undefined) keys = this.faultKeys(message)
    else {
      const bytes = message as Uint8Array
      const units = this.delimiter === undefined ? [bytes] : splitBytes(bytes, this.delimiter)
      keys = units.map((unit) => decoder.decode(unit))
    }
    const faults = this.faults.triggered(keys)
    if (faults.some((f) => f.kind === 'quiet')) {
      this.quiet = true
      this.emit({ type: 'fault', fault: 'quiet' })
      return undefined
    }
    let reply = this.framing !== undefined ? await this.executeMessage(message as M, context) : joinReplies(await this.execute(message as Uint8Array, context))
    for (const fault of faults) {
      this.emit({ type: 'fault', fault: fault.kind })
      switch (fault.kind) {
        case 'latency': {
          const jitter = fault.jitter ?? 0
          const wait = Math.max(0, (fault.latency ?? 100) + (jitter === 0 ? 0 : (this.faults.random() * 2 - 1) * jitter))
          await delay(wait)
          break
        }
        case 'no-reply':
          reply = undefined
          break
        case 'disconnect':
        case 'cable-cut':
          if (fault.kind === 'cable-cut') this.emit({ type: 'cable-cut' })
          if (context.connection === undefined) throw new SimulatedDisconnect(`${fault.kind} fault`)
          context.connection.destroy()
          return undefined
        case 'junk': {
          const junk = fault.junk === undefined ? randomJunk(16, this.responseTerminator, this.faults.random) : utf8(fault.junk)
          reply = fault.replace === true || reply === undefined ? junk : concatBytes([junk, reply])
          break
        }
        case 'truncate':
          if (reply !== undefined) reply = reply.subarray(0, Math.min(reply.length - 1, fault.keep ?? Math.floor(reply.length / 2)))
          break
        case 'fragment':
          if (reply !== undefined) {
            const pieces = Math.max(1, Math.floor(fault.fragments ?? 3))
            const gap = fault.fragmentDelay ?? 20
            const size = Math.max(1, Math.ceil(reply.length / pieces))
            if (context.connection === undefined) {
              await delay(gap * (pieces - 1))
              break
            }
            for (let at = 0; at < reply.length; at += size) {
              if (at > 0) await delay(gap)
              if (context.connection.closed) return undefined
              context.connection.write(reply.subarray(at, at + size))
            }
            reply = undefined
          }
          break
        case 'quiet':
          break
      }
    }
    return reply
  }
}

/** Something that happened on a device (for logs, traces, the control channel). */
export type DeviceEvent =
  /** `message`: the request's bytes (terminator removed); on a device with framing, `value` is the decoded message and `message` its bytes when it is bytes or text. */
  | { type: 'request'; message: Uint8Array; value?: unknown; connection: SimConnection | undefined }
  | { type: 'connect' | 'disconnect'; connection: SimConnection }
  | { type: 'fault'; fault: string }
  | { type: 'cable-cut' }
  | { type: 'reset' }
  | { type: 'error'; error: unknown; query: string }

const CRASH: unique symbol = Symbol('labwire.simulator.crash')
const decoder = new TextDecoder()
const identity = (bytes: Uint8Array): Uint8Array => bytes
const EMPTY = new Uint8Array(0)

function framedReply(outcome: Exclude<Outcome, typeof NOT_MATCHED> | typeof CRASH): Uint8Array | undefined {
  return outcome === CRASH || outcome === NO_REPLY ? undefined : outcome
}

/**
 * A request's command word for event labels: its first word (`VOLT 5` → `VOLT`, `MEAS:VOLT?` as
 * is), at most 32 characters, bytes outside printable ASCII shown as `?`; `(empty)` for none.
 */
function commandWord(message: Uint8Array): string {
  let start = 0
  while (start < message.length && (message[start] === 0x20 || message[start] === 0x09 || message[start] === 0x0d || message[start] === 0x0a)) start++
  let word = ''
  for (let i = start; i < message.length && i < start + 32; i++) {
    const byte = message[i] as number
    if (byte === 0x20 || byte === 0x09 || byte === 0x3b || byte === 0x0d || byte === 0x0a) break
    word += byte > 0x20 && byte < 0x7f ? String.fromCharCode(byte) : '?'
  }
  return word === '' ? '(empty)' : word
}

/** A decoded message's bytes for events: itself, its UTF-8, or empty. */
function messageBytes(message: unknown): Uint8Array {
  return message instanceof Uint8Array ? message : typeof message === 'string' ? utf8(message) : EMPTY
}

/** A decoded message as text for logs and fault matching: strings as is, bytes as lower-case hex pairs, anything else as JSON. */
export function describeMessage(message: unknown): string {
  if (typeof message === 'string') return message
  if (message instanceof Uint8Array) return Array.from(message, (b) => b.toString(16).padStart(2, '0')).join(' ')
  try {
    return JSON.stringify(message, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v instanceof Uint8Array ? Array.from(v) : v)) ?? String(message)
  } catch {
    return String(message)
  }
}

/**
 * A reply and its terminator in one buffer from Node's pool: a small plain Uint8Array would live on
 * V8's heap and be copied again on its way to the socket.
 */
function terminated(reply: Uint8Array, terminator: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(reply.length + terminator.length)
  out.set(reply, 0)
  out.set(terminator, reply.length)
  return out
}

function joinReplies(replies: Uint8Array[]): Uint8Array | undefined {
  if (replies.length === 0) return undefined
  return concatBytes(replies)
}

function toOutcome(reply: Reply | Outcome): Outcome {
  if (reply === undefined) return NO_REPLY
  if (typeof reply === 'string') return utf8(reply)
  return reply
}

function randomJunk(length: number, avoid: Uint8Array, random: () => number): Uint8Array {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) {
    let byte: number
    do byte = 0x21 + Math.floor(random() * 0x5e)
    while (avoid.includes(byte))
    out[i] = byte
  }
  return out
}

/**
 * Resolve after `ms` milliseconds. Waits of 2³¹ ms or more are re-armed (core's `longTimeout`),
 * never fired at once as a bare `setTimeout` would.
 */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => {
    longTimeout(resolve, ms)
  })
}

/** A Python value for templates: pass through (used by the pyvisa-sim loader). */
export type { PyValue }
