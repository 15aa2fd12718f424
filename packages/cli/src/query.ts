import { Buffer } from 'node:buffer'
import { TimeoutError, escapeBytes, hexOf, toText } from '@labwire/core'
import { decodeValues, parseDataType, type DataType } from './binary.js'
import { ExitCode, UsageError, exitCodeName, exitCodeOf, type ExitCodeValue } from './exit-codes.js'
import { Instrument, MAX_REPLY, isQuery } from './instrument.js'
import { parseFlags } from './flags.js'
import { version } from './version.js'
import { formatTerminator, parseMilliseconds, parseResource, parseTerminator, type Resource } from './resource.js'
import { oneLine, styleFor, type Io } from './style.js'
import { safeJson, visible, visibleLine } from './visible.js'

export const QUERY_HELP = `Usage: labwire query RESOURCE COMMAND... [options]

Connect to RESOURCE, send each COMMAND in order, print each reply (one per line), exit 0.
A command whose header contains "?" or whose line ends in "?" is a query (its reply is read and
printed); any other command is a write (nothing is read), unless --read-all.

Options:
  --timeout MS        limit for connecting and for each reply, in ms (default 5000; 0 = none)
  --read-term TERM    reply terminator (default \\n); escapes \\n \\r \\t \\0 \\xNN, or LF, CR, CRLF
  --write-term TERM   appended to each command (default \\n)
  --binary            read each query's reply as an IEEE 488.2 block (#<n><length><data> or
                      #0<data>, then the read terminator); print the data as hex
  --datatype TYPE     with --binary: print the block as comma-separated values: int8 uint8
                      int16 uint16 int32 uint32 float32 float64 (little-endian unless --big-endian)
  --big-endian        with --datatype: values are big-endian
  --max-length BYTES  longest reply accepted (default 67108864); longer is a framing error
  --hex               print text replies as hex bytes
  --read-all          read (and print) a reply after every command, also writes (for devices
                      that answer writes, e.g. with OK)
  --json              print one JSON object: {"resource", "ok", "results": [...], "error"?}
  --raw               print replies as they are; by default control characters other than
                      newline and tab are shown escaped (\\r, \\x1b, …) so that a device cannot
                      clear the screen, set the clipboard or fake a line on your terminal
  --trace             write every byte each way to stderr (direction, timestamp, hex, text)
  --version           print the version
  -h, --help          this help

RESOURCE: TCPIP[board]::host::port::SOCKET, tcp://host:port, telnet://host:port, nats://host:port/NAME;
URIs take ?read_term=%0A&write_term=%0A&timeout=MS (flags win over the URI).

Exit codes: 0 ok, 2 usage, 3 connection failed, 4 timeout, 5 framing error,
6 closed by the instrument, 7 not available, 9 output not written whole (stdout closed), 130 interrupted.
It exits only once stdout is flushed, however slow its reader.

Examples:
  labwire query TCPIP::127.0.0.1::5025::SOCKET '*IDN?'
  labwire query tcp://127.0.0.1:5025 '*RST' 'VOLT 5' 'VOLT?' --json
  labwire query tcp://scope:5025 'CURV?' --binary --datatype int16
`

/** One command's outcome in `--json` output. */
export interface QueryResult {
  command: string
  kind: 'query' | 'write'
  /** The reply as text (queries; `null` for writes). With `--binary`: the hex of the block. */
  reply: string | null
  /** With `--binary --datatype`: the values. */
  values?: number[]
  /** Milliseconds from sending the command to its reply (or the write being accepted). */
  elapsedMs: number
}

/** Settings shared by `query` and `shell`, from flags, the resource's URI query and defaults. */
export interface ClientFlags {
  timeout: number
  readTerm: Uint8Array
  writeTerm: Uint8Array
  maxLength: number
}

export const DEFAULT_TIMEOUT = 5_000

/** Combine flags, the resource's URI parameters and defaults (flags win). */
export function clientFlags(
  resource: Resource,
  values: { timeout?: string | undefined; 'read-term'?: string | undefined; 'write-term'?: string | undefined; 'max-length'?: string | undefined },
): ClientFlags {
  const nl = new Uint8Array([0x0a])
  return {
    timeout: values.timeout !== undefined ? parseMilliseconds(values.timeout, '--timeout') : (resource.timeout ?? DEFAULT_TIMEOUT),
    readTerm: values['read-term'] !== undefined ? parseTerminator(values['read-term']) : (resource.readTerm ?? nl),
    writeTerm: values['write-term'] !== undefined ? parseTerminator(values['write-term']) : (resource.writeTerm ?? nl),
    maxLength: values['max-length'] !== undefined ? parseCount(values['max-length'], '--max-length') : MAX_REPLY,
  }
}

/** `labwire query`. Resolves with the exit code. */
export async function query(args: string[], io: Io): Promise<ExitCodeValue> {
  const { values, positionals } = parseFlags('query', args, {
    timeout: { type: 'string' },
    'read-term': { type: 'string' },
    'write-term': { type: 'string' },
    binary: { type: 'boolean', default: false },
    datatype: { type: 'string' },
    'big-endian': { type: 'boolean', default: false },
    'max-length': { type: 'string' },
    hex: { type: 'boolean', default: false },
    'read-all': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    raw: { type: 'boolean', default: false },
    trace: { type: 'boolean', default: false },
    version: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  })
  if (values.help) {
    io.stdout.write(QUERY_HELP)
    return ExitCode.ok
  }
  if (values.version) {
    io.stdout.write(`${version()}\n`)
    return ExitCode.ok
  }
  const [resourceText, ...commands] = positionals
  if (resourceText === undefined) throw new UsageError('query needs a RESOURCE and at least one COMMAND (labwire query --help)')
  if (commands.length === 0) throw new UsageError('query needs at least one COMMAND after the resource (labwire query --help)')
  const resource = parseResource(resourceText)
  const flags = clientFlags(resource, values)
  let datatype: DataType = 'hex'
  if (values.datatype !== undefined) {
    if (!values.binary) throw new UsageError('--datatype needs --binary')
    datatype = parseDataType(values.datatype)
  }
  const style = styleFor(io.stderr, io.env)
  const instrument = new Instrument(resource, {
    ...flags,
    binary: values.binary,
    trace: values.trace,
    traceSink: (line) => io.stderr.write(`${style.dim(line)}\n`),
  })
  const results: QueryResult[] = []
  const controller = new AbortController()
  const onSignal = (): void => controller.abort(new Error('interrupted'))
  process.once('SIGINT', onSignal)
  let current: string | undefined
  try {
    await instrument.connect(controller.signal)
    for (const command of commands) {
      current = command
      const started = performance.now()
      if (!values['read-all'] && !isQuery(command)) {
        await instrument.write(command, controller.signal)
        results.push({ command, kind: 'write', reply: null, elapsedMs: round(performance.now() - started) })
        continue
      }
      const reply = await instrument.query(command, controller.signal)
      const result: QueryResult = { command, kind: 'query', reply: '', elapsedMs: round(performance.now() - started) }
      if (values.binary) {
        result.reply = hexOf(reply)
        if (datatype !== 'hex') result.values = decodeValues(reply, datatype, values['big-endian'])
      } else {
        result.reply = values.hex ? hexOf(reply) : toText(reply)
      }
      results.push(result)
      if (!values.json) {
        const shown = result.values !== undefined ? result.values.join(',') : (result.reply ?? '')
        io.stdout.write(`${values.raw ? shown : visible(shown)}\n`)
      }
    }
    current = undefined
    await instrument.close()
    if (values.json) io.stdout.write(`${safeJson({ resource: resource.text, ok: true, results })}\n`)
    return ExitCode.ok
  } catch (error) {
    await instrument.close().catch(() => undefined)
    const code = exitCodeOf(error)
    const message = describeFailure(error, resource, current, flags.timeout, flags.readTerm)
    if (values.json) {
      const errorCode = typeof (error as { code?: unknown }).code === 'string' ? (error as { code: string }).code : undefined
      io.stdout.write(`${safeJson({ resource: resource.text, ok: false, results, error: { exitCode: code, kind: exitCodeName(code), code: errorCode, command: current ?? null, message } })}\n`)
    }
    io.stderr.write(`${style.red('labwire query:')} ${message}\n`)
    return code
  } finally {
    process.off('SIGINT', onSignal)
  }
}

/**
 * One line naming the resource (and the command, when one was running), device text escaped. A
 * timeout says what arrived of the reply and, when it holds a line ending other than the read
 * terminator, suggests `--read-term`.
 */
export function describeFailure(error: unknown, resource: Resource, command: string | undefined, timeout: number, readTerm?: Uint8Array): string {
  return visibleLine(oneLine(failureText(error, resource, command, timeout, readTerm)))
}

function failureText(error: unknown, resource: Resource, command: string | undefined, timeout: number, readTerm: Uint8Array | undefined): string {
  const code = exitCodeOf(error)
  const what = command === undefined ? '' : ` (command "${command}")`
  const detail = error instanceof Error ? error.message : String(error)
  switch (code) {
    case ExitCode.timeout: {
      if (command === undefined) return `${resource.text}: timeout: no connection within ${timeout} ms`
      const partial = error instanceof TimeoutError ? error.partial : new Uint8Array(0)
      if (partial.length === 0) return `${resource.text}: timeout${what}: no reply within ${timeout} ms`
      return `${resource.text}: timeout${what}: no complete reply within ${timeout} ms: ${arrived(partial, readTerm)}`
    }
    case ExitCode.connection:
      return oneLine(`${resource.text}: connection failed${what}: ${detail}`)
    case ExitCode.framing:
      return oneLine(`${resource.text}: framing error${what}: ${detail}`)
    case ExitCode.closed:
      return oneLine(`${resource.text}: connection closed by the instrument${what}: ${detail}`)
    case ExitCode.interrupted:
      return oneLine(`${resource.text}: interrupted${what}`)
    default:
      return oneLine(`${resource.text}: ${detail}`)
  }
}

const QUOTED = 64

/** `27 bytes arrived without the read terminator "\n": "…"; they end with "\r": try --read-term "\r"`. */
function arrived(partial: Uint8Array, readTerm: Uint8Array | undefined): string {
  const shown = escapeBytes(partial.subarray(0, QUOTED))
  const more = partial.length > QUOTED ? `… (+${partial.length - QUOTED} B)` : ''
  const term = readTerm === undefined ? 'the read terminator' : `the read terminator "${formatTerminator(readTerm)}"`
  const hint = suggestTerminator(partial, readTerm)
  return `${partial.length} byte${partial.length === 1 ? '' : 's'} arrived without ${term}: "${shown}"${more}${hint === undefined ? '' : `; they end with "${hint}": try --read-term "${hint}" (or ?read_term= in the resource)`}`
}

/** The line ending the bytes end with (or hold), as an escape, when it is not the read terminator. */
export function suggestTerminator(partial: Uint8Array, readTerm: Uint8Array | undefined): string | undefined {
  const current = readTerm === undefined ? undefined : formatTerminator(readTerm)
  const text = Buffer.from(partial.buffer, partial.byteOffset, partial.byteLength).toString('latin1')
  for (const ending of ['\r\n', '\n\r', '\r', '\n', '\0']) {
    const escaped = formatTerminator(new TextEncoder().encode(ending))
    if (text.endsWith(ending) && escaped !== current) return escaped
  }
  return undefined
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000
}

function parseCount(value: string, what: string): number {
  if (!/^\d+$/.test(value.trim())) throw new UsageError(`${what} must be a whole number of bytes, got "${value}"`)
  return Number(value.trim())
}
