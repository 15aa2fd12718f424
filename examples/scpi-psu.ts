/**
 * A simulated single-channel SCPI DC power supply, served over TCP with labwire.
 *
 * The instrument logic ({@link ScpiPsu}) is a plain class: one program message (a line) in, one
 * response message (or nothing) out. {@link startScpiPsu} wraps it in an `ApplicationServer`
 * with a `'\n'` line framer and serves it on a `TcpServer`.
 *
 * Commands (case-insensitive; short or long mnemonics, e.g. `VOLT` or `VOLTage`):
 *
 * | command              | effect / reply                                                        |
 * |----------------------|-----------------------------------------------------------------------|
 * | `*IDN?`              | `labwire,SIM-PSU,<serial>,<version>`                                  |
 * | `*RST`               | voltage 0 V, current limit 1 A, output off (the error queue is kept)  |
 * | `*CLS`               | clear the error queue                                                 |
 * | `VOLT <v>` / `VOLT?` | set / read the voltage setpoint (0 to `maxVoltage`), e.g. `5.000`     |
 * | `CURR <a>` / `CURR?` | set / read the current limit (0 to `maxCurrent`)                      |
 * | `OUTP ON\|OFF\|1\|0` / `OUTP?` | switch the output / read it as `1` or `0`                   |
 * | `MEAS:VOLT?`         | output voltage across the simulated load resistor                    |
 * | `MEAS:CURR?`         | output current; at the limit the supply goes constant-current         |
 * | `SYST:ERR?`          | oldest error from the queue, or `0,"No error"`                        |
 *
 * SCPI conventions: commands without `?` produce no reply; errors are queued, never answered
 * (`-113,"Undefined header"`, `-222,"Data out of range"`, `-104,"Data type error"`,
 * `-109,"Missing parameter"`, `-108,"Parameter not allowed"`, `-350,"Queue overflow"`); several
 * commands may share a line separated by `;`, and the replies of the queries among them come back
 * in one line separated by `;`. Every command after a `;` starts from the root.
 *
 * @module
 */
import { ApplicationServer } from '@labwire/application'
import type { Logger } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpServer } from '@labwire/transport-tcp'

/** Options for {@link ScpiPsu}. */
export interface ScpiPsuOptions {
  /** Serial number reported by `*IDN?`. Default `'0001'`. */
  serial?: string
  /** The simulated load, in ohms. Default 10. */
  loadResistance?: number
  /** Highest voltage setpoint, in volts. Default 30. */
  maxVoltage?: number
  /** Highest current limit, in amperes. Default 5. */
  maxCurrent?: number
}

/** A SCPI error: code and message, as `SYST:ERR?` reports it. */
export interface ScpiError {
  code: number
  message: string
}

const ERRORS = {
  dataType: { code: -104, message: 'Data type error' },
  parameterNotAllowed: { code: -108, message: 'Parameter not allowed' },
  missingParameter: { code: -109, message: 'Missing parameter' },
  undefinedHeader: { code: -113, message: 'Undefined header' },
  outOfRange: { code: -222, message: 'Data out of range' },
  queueOverflow: { code: -350, message: 'Queue overflow' },
} as const satisfies Record<string, ScpiError>

const ERROR_QUEUE_SIZE = 10

/** One entry of the command table. Mnemonics use SCPI case: the upper-case part is the short form. */
interface CommandSpec {
  header: string
  query?: (psu: ScpiPsu, args: string) => string
  set?: (psu: ScpiPsu, args: string) => void
}

/** The simulated supply: state plus a line interpreter. */
export class ScpiPsu {
  /** Voltage setpoint, in volts. */
  voltage = 0
  /** Current limit, in amperes. */
  currentLimit = 1
  /** Output relay. */
  output = false
  readonly serial: string
  readonly loadResistance: number
  readonly maxVoltage: number
  readonly maxCurrent: number
  private readonly errors: ScpiError[] = []

  constructor(options: ScpiPsuOptions = {}) {
    this.serial = options.serial ?? '0001'
    this.loadResistance = options.loadResistance ?? 10
    this.maxVoltage = options.maxVoltage ?? 30
    this.maxCurrent = options.maxCurrent ?? 5
  }

  /** `*RST`: voltage 0, current limit 1 A, output off. */
  reset(): void {
    this.voltage = 0
    this.currentLimit = 1
    this.output = false
  }

  /** Output voltage and current into the load resistor, honouring the current limit. */
  measure(): { voltage: number; current: number } {
    if (!this.output) return { voltage: 0, current: 0 }
    const current = this.voltage / this.loadResistance
    if (current <= this.currentLimit) return { voltage: this.voltage, current }
    // Constant-current mode: the supply lowers its voltage to hold the limit.
    return { voltage: this.currentLimit * this.loadResistance, current: this.currentLimit }
  }

  /** Queue an error (the oldest is kept; when full, the last entry becomes `-350`). */
  pushError(error: ScpiError): void {
    if (this.errors.length < ERROR_QUEUE_SIZE) {
      this.errors.push(error)
    } else {
      this.errors[ERROR_QUEUE_SIZE - 1] = ERRORS.queueOverflow
    }
  }

  /** `SYST:ERR?`: take the oldest error, or `0,"No error"`. */
  popError(): string {
    const error = this.errors.shift()
    return error === undefined ? '0,"No error"' : `${error.code},"${error.message}"`
  }

  /** `*CLS`: empty the error queue. */
  clearErrors(): void {
    this.errors.length = 0
  }

  /**
   * Execute one program message (a line without its terminator). Returns the response message,
   * or `undefined` when the line held no query.
   */
  execute(line: string): string | undefined {
    const replies: string[] = []
    for (const unit of line.split(';')) {
      const reply = this.executeUnit(unit.trim())
      if (reply !== undefined) replies.push(reply)
    }
    return replies.length === 0 ? undefined : replies.join(';')
  }

  private executeUnit(unit: string): string | undefined {
    if (unit.length === 0) return undefined
    const space = unit.search(/\s/)
    const rawHeader = space < 0 ? unit : unit.slice(0, space)
    const args = space < 0 ? '' : unit.slice(space).trim()
    const isQuery = rawHeader.endsWith('?')
    const header = (isQuery ? rawHeader.slice(0, -1) : rawHeader).replace(/^:/, '')
    const spec = COMMANDS.find((command) => matchesHeader(command.header, header))
    const query = isQuery ? spec?.query : undefined
    const set = isQuery ? undefined : spec?.set
    if (query === undefined && set === undefined) {
      this.pushError(ERRORS.undefinedHeader)
      return undefined
    }
    try {
      if (query !== undefined) return query(this, args)
      set?.(this, args)
      return undefined
    } catch (error) {
      if (error instanceof ScpiCommandError) {
        this.pushError(error.scpi)
        return undefined
      }
      throw error
    }
  }
}

/** Thrown by a command handler to queue a SCPI error. */
class ScpiCommandError extends Error {
  constructor(readonly scpi: ScpiError) {
    super(scpi.message)
  }
}

function noArgs(args: string): void {
  if (args.length > 0) throw new ScpiCommandError(ERRORS.parameterNotAllowed)
}

function parseNumber(args: string, min: number, max: number): number {
  if (args.length === 0) throw new ScpiCommandError(ERRORS.missingParameter)
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(args)) throw new ScpiCommandError(ERRORS.dataType)
  const value = Number(args)
  if (value < min || value > max) throw new ScpiCommandError(ERRORS.outOfRange)
  return value
}

function parseBoolean(args: string): boolean {
  if (args.length === 0) throw new ScpiCommandError(ERRORS.missingParameter)
  switch (args.toUpperCase()) {
    case 'ON':
    case '1':
      return true
    case 'OFF':
    case '0':
      return false
    default:
      throw new ScpiCommandError(ERRORS.dataType)
  }
}

/** SCPI NR2 with three decimals, e.g. `5.000`. */
function formatNumber(value: number): string {
  return value.toFixed(3)
}

/** `spec` like `MEASure:VOLTage`: each node matches its short form (upper-case letters) or its long form. */
function matchesHeader(spec: string, header: string): boolean {
  const specNodes = spec.split(':')
  const nodes = header.split(':')
  if (specNodes.length !== nodes.length) return false
  return specNodes.every((node, i) => {
    const given = (nodes[i] ?? '').toUpperCase()
    const short = node.replace(/[^A-Z*]/g, '')
    return given === short || given === node.toUpperCase()
  })
}

const VERSION = '0.1.0'

/** A query that takes no parameters. */
function reading(read: (psu: ScpiPsu) => string): (psu: ScpiPsu, args: string) => string {
  return (psu, args) => {
    noArgs(args)
    return read(psu)
  }
}

/** A command that takes no parameters. */
function action(run: (psu: ScpiPsu) => void): (psu: ScpiPsu, args: string) => void {
  return (psu, args) => {
    noArgs(args)
    run(psu)
  }
}

const COMMANDS: readonly CommandSpec[] = [
  { header: '*IDN', query: reading((psu) => `labwire,SIM-PSU,${psu.serial},${VERSION}`) },
  { header: '*RST', set: action((psu) => psu.reset()) },
  { header: '*CLS', set: action((psu) => psu.clearErrors()) },
  {
    header: 'VOLTage',
    set: (psu, args) => {
      psu.voltage = parseNumber(args, 0, psu.maxVoltage)
    },
    query: reading((psu) => formatNumber(psu.voltage)),
  },
  {
    header: 'CURRent',
    set: (psu, args) => {
      psu.currentLimit = parseNumber(args, 0, psu.maxCurrent)
    },
    query: reading((psu) => formatNumber(psu.currentLimit)),
  },
  {
    header: 'OUTPut',
    set: (psu, args) => {
      psu.output = parseBoolean(args)
    },
    query: reading((psu) => (psu.output ? '1' : '0')),
  },
  { header: 'MEASure:VOLTage', query: reading((psu) => formatNumber(psu.measure().voltage)) },
  { header: 'MEASure:CURRent', query: reading((psu) => formatNumber(psu.measure().current)) },
  { header: 'SYSTem:ERRor', query: reading((psu) => psu.popError()) },
  { header: 'SYSTem:ERRor:NEXT', query: reading((psu) => psu.popError()) },
]

/** Options for {@link startScpiPsu}. */
export interface StartScpiPsuOptions extends ScpiPsuOptions {
  /** Address to bind. Default `127.0.0.1`. */
  host?: string
  /** Port to bind. Default 0 (a free port); real instruments use 5025. */
  port?: number
  logger?: Logger
}

/** A running simulated supply. */
export interface RunningScpiPsu extends AsyncDisposable {
  /** The instrument state, for inspection in tests. */
  readonly psu: ScpiPsu
  readonly server: TcpServer
  readonly host: string
  readonly port: number
  close(): Promise<void>
}

/**
 * Start a simulated supply on TCP. Lines end with `'\n'`; a trailing `'\r'` is ignored, so CRLF
 * clients work too. One {@link ScpiPsu} is shared by every connection, like a real instrument.
 */
export async function startScpiPsu(options: StartScpiPsuOptions = {}): Promise<RunningScpiPsu> {
  const psu = new ScpiPsu(options)
  const lines = textMarshaller(new SentinelBytesMarshaller('\n'))
  const app = new ApplicationServer(lines.unmarshall, lines.marshall, (line: string) => psu.execute(line.replace(/\r$/, '')))
  const server = new TcpServer({
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    callback: app,
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  })
  const { host, port } = await server.listen()
  return {
    psu,
    server,
    host,
    port,
    close: () => server.close(),
    [Symbol.asyncDispose]: () => server.close(),
  }
}
