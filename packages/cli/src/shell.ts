import { createInterface } from 'node:readline'
import { hexOf, toText } from '@labwire/core'
import { decodeValues, parseDataType, type DataType } from './binary.js'
import { ExitCode, UsageError, exitCodeOf, type ExitCodeValue } from './exit-codes.js'
import { Instrument, isQuery } from './instrument.js'
import { parseMilliseconds, parseResource, parseTerminator } from './resource.js'
import { clientFlags, describeFailure } from './query.js'
import { parseFlags } from './flags.js'
import { oneLine, styleFor, type Io } from './style.js'
import { version } from './version.js'
import { visible, visibleLine } from './visible.js'

export const SHELL_HELP = `Usage: labwire shell RESOURCE [options]

An interactive session with the instrument at RESOURCE (line editing and history through
node:readline). A line ending in "?" (or whose header contains "?") is a query: it is sent and the reply
printed. Any other line is a write. Lines starting with ":" are shell commands:

  :query CMD             send CMD and read a reply, whatever it looks like (:write CMD: never)
  :timeout [MS]          show or set the reply timeout in ms (0 = none)
  :term [READ [WRITE]]   show or set the terminators (one value sets both), e.g. :term \\r\\n
  :hex                   toggle showing replies as hex bytes
  :trace                 toggle the wire trace (every byte each way, on stderr)
  :binary [TYPE]         toggle reading query replies as IEEE 488.2 blocks; TYPE prints values
                         (int8 uint8 int16 uint16 int32 uint32 float32 float64, little-endian),
                         otherwise hex
  :help                  this list
  :quit                  leave (also :exit, Ctrl-D)

With stdin piped (not a terminal) it reads commands line by line, prints replies only, and exits
at the end of input: 0 if every command succeeded, otherwise the exit code of the last failure.
Ctrl-C stops a command that is waiting; at the prompt it leaves the shell.

Options:
  --timeout MS, --read-term TERM, --write-term TERM, --max-length BYTES, --trace, --hex, --raw
                         as for labwire query (replies show control characters escaped unless --raw)
  --version              print the version
  -h, --help             this help

Examples:
  labwire shell TCPIP::127.0.0.1::5025::SOCKET
  printf '*IDN?\\nVOLT 2\\nVOLT?\\n' | labwire shell tcp://127.0.0.1:5025
`

const COMMAND_HELP = SHELL_HELP.split('\n').filter((line) => line.startsWith('  :')).join('\n')

/** `labwire shell`. Resolves with the exit code. */
export async function shell(args: string[], io: Io): Promise<ExitCodeValue> {
  const { values, positionals } = parseFlags('shell', args, {
    timeout: { type: 'string' },
    'read-term': { type: 'string' },
    'write-term': { type: 'string' },
    'max-length': { type: 'string' },
    hex: { type: 'boolean', default: false },
    raw: { type: 'boolean', default: false },
    trace: { type: 'boolean', default: false },
    version: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  })
  if (values.help) {
    io.stdout.write(SHELL_HELP)
    return ExitCode.ok
  }
  if (values.version) {
    io.stdout.write(`${version()}\n`)
    return ExitCode.ok
  }
  if (positionals.length !== 1) throw new UsageError('shell needs exactly one RESOURCE (labwire shell --help)')
  const resource = parseResource(positionals[0] as string)
  const flags = clientFlags(resource, values)
  const interactive = io.stdin.isTTY === true
  const out = styleFor(io.stdout, io.env)
  const err = styleFor(io.stderr, io.env)
  const instrument = new Instrument(resource, { ...flags, binary: false, trace: values.trace, traceSink: (line) => io.stderr.write(`${err.dim(line)}\n`) })
  const state = { hex: values.hex, datatype: 'hex' as DataType }
  let lastFailure: ExitCodeValue = ExitCode.ok

  const report = (error: unknown, command: string | undefined): ExitCodeValue => {
    const code = exitCodeOf(error)
    const message =
      code === ExitCode.usage || code === ExitCode.unavailable
        ? visibleLine(oneLine(error instanceof Error ? error.message : String(error)))
        : describeFailure(error, resource, command, instrument.settings.timeout, instrument.settings.readTerm)
    io.stderr.write(`${err.red('error:')} ${message}\n`)
    return code
  }

  try {
    await instrument.connect(AbortSignal.timeout(flags.timeout === 0 ? 2 ** 31 - 1 : flags.timeout + 100))
  } catch (error) {
    return report(error, undefined)
  }
  if (interactive) io.stdout.write(`${out.dim(`connected to ${resource.text} (${instrument.describeTerminators()}, timeout ${flags.timeout} ms); :help for commands, :quit to leave`)}\n`)

  const rl = createInterface({ input: io.stdin, output: io.stdout, terminal: interactive, prompt: interactive ? out.cyan('labwire> ') : '', historySize: 1000 })
  let running: AbortController | undefined
  let quitting = false
  rl.on('SIGINT', () => {
    if (running !== undefined) running.abort(new Error('interrupted'))
    else {
      quitting = true
      rl.close()
    }
  })

  const shellCommand = (line: string): void => {
    const [name = '', ...rest] = line.slice(1).trim().split(/\s+/)
    const settings = instrument.settings
    switch (name) {
      case 'q':
      case 'quit':
      case 'exit':
        quitting = true
        return
      case 'help':
      case '?':
        io.stdout.write(`${COMMAND_HELP}\n`)
        return
      case 'timeout':
        if (rest[0] !== undefined) settings.timeout = parseMilliseconds(rest[0], ':timeout')
        io.stdout.write(`timeout ${settings.timeout} ms\n`)
        return
      case 'term':
        if (rest[0] !== undefined) {
          const read = parseTerminator(rest[0])
          const write = rest[1] !== undefined ? parseTerminator(rest[1]) : read
          settings.readTerm = read
          settings.writeTerm = write
        }
        io.stdout.write(`terminators: ${instrument.describeTerminators()}\n`)
        return
      case 'hex':
        state.hex = !state.hex
        io.stdout.write(`hex display ${state.hex ? 'on' : 'off'}\n`)
        return
      case 'trace':
        settings.trace = !settings.trace
        io.stdout.write(`trace ${settings.trace ? 'on' : 'off'}\n`)
        return
      case 'binary':
        if (rest[0] !== undefined) {
          state.datatype = parseDataType(rest[0])
          settings.binary = true
        } else {
          settings.binary = !settings.binary
          state.datatype = 'hex'
        }
        io.stdout.write(`binary block replies ${settings.binary ? `on (${state.datatype})` : 'off'}\n`)
        return
      default:
        throw new UsageError(`unknown shell command ":${name}" (:help lists them)`)
    }
  }

  const run = async (line: string): Promise<void> => {
    const command = line.trim()
    if (command === '') return
    let forced: 'query' | 'write' | undefined
    let text = command
    const verb = /^:(query|write)\s+(\S.*)$/.exec(command)
    if (verb !== null) {
      forced = verb[1] as 'query' | 'write'
      text = verb[2] as string
    } else if (command.startsWith(':')) {
      shellCommand(command)
      return
    }
    running = new AbortController()
    try {
      if (forced === 'write' || (forced === undefined && !isQuery(text))) {
        await instrument.write(text, running.signal)
        return
      }
      const reply = await instrument.query(text, running.signal)
      let shown: string
      if (instrument.settings.binary) shown = state.datatype === 'hex' ? hexOf(reply) : decodeValues(reply, state.datatype).join(',')
      else shown = state.hex ? hexOf(reply) : toText(reply)
      io.stdout.write(`${values.raw ? shown : visible(shown)}\n`)
    } finally {
      running = undefined
    }
  }

  if (interactive) rl.prompt()
  for await (const line of rl) {
    try {
      await run(line)
    } catch (error) {
      const t = line.trim()
      lastFailure = report(error, /^:(query|write)\s/.test(t) ? t : t.startsWith(':') ? undefined : t)
    }
    if (quitting) break
    if (interactive) rl.prompt()
  }
  rl.close()
  await instrument.close().catch(() => undefined)
  if (interactive) {
    io.stdout.write('\n')
    return ExitCode.ok
  }
  return lastFailure
}

