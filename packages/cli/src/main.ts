import { readFileSync } from 'node:fs'
import { ExitCode, UsageError, exitCodeOf, type ExitCodeValue } from './exit-codes.js'
import { proxy } from './proxy.js'
import { query } from './query.js'
import { registry } from './registry.js'
import { serve } from './serve.js'
import { RESOURCE_FORMS } from './resource.js'
import { shell } from './shell.js'
import { sim } from './sim.js'
import { oneLine, processIo, styleFor, type Io } from './style.js'

/** The version of this package. */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

export const MAIN_HELP = `Usage: labwire <command> [options]

Talk to lab instruments over TCP and Telnet line protocols, and simulate them.

Commands:
  sim FILE              serve a simulated instrument from a device file (pyvisa-sim YAML)
                        or a module exporting a programmatic device
  query RESOURCE CMD... send commands, print the replies, exit
  shell RESOURCE        interactive session with an instrument (history, line editing)
  proxy RESOURCE        sit between a client and an instrument: record it, inject faults
  serve CONFIG          run a lab's services, simulators and gateways from one config file
  registry              serve an RPyC-compatible service registry (list, discover NAME)

Resources:
${RESOURCE_FORMS.map((form) => `  ${form}`).join('\n')}

Options:
  -h, --help            help (also: labwire <command> --help)
  -v, --version         print the version

Exit codes:
  0 ok                  2 usage error          3 connection failed      4 timeout
  5 framing error       6 closed by the peer   7 not available          8 bad device file
  1 unexpected failure  130 interrupted (Ctrl-C)

Examples:
  labwire sim devices.yaml --port 0
  labwire query TCPIP::127.0.0.1::5025::SOCKET '*IDN?'
  labwire shell tcp://127.0.0.1:5025
`

/**
 * Run the `labwire` command with `argv` (without `node` and the script). Resolves with the exit
 * code; never rejects. Writes to `io` (the process's streams by default).
 */
export async function main(argv: readonly string[], io: Io = processIo()): Promise<ExitCodeValue> {
  const [command, ...rest] = argv
  const style = styleFor(io.stderr, io.env)
  try {
    switch (command) {
      case undefined:
        io.stderr.write(MAIN_HELP)
        return ExitCode.usage
      case '-h':
      case '--help':
      case 'help':
        if (command === 'help' && rest[0] !== undefined) return await main([rest[0], '--help'], io)
        io.stdout.write(MAIN_HELP)
        return ExitCode.ok
      case '-v':
      case '--version':
      case 'version':
        io.stdout.write(`${version()}\n`)
        return ExitCode.ok
      case 'sim':
        return await sim(rest, io)
      case 'query':
        return await query(rest, io)
      case 'shell':
        return await shell(rest, io)
      case 'proxy':
        return await proxy(rest, io)
      case 'registry':
        return await registry(rest, io)
      case 'serve':
        return await serve(rest, io)
      default:
        throw new UsageError(`unknown command "${command}" (commands: sim, query, shell, serve, registry; labwire --help)`)
    }
  } catch (error) {
    const code = exitCodeOf(error)
    const message = error instanceof Error ? error.message : String(error)
    const where = command === undefined || command.startsWith('-') ? 'labwire' : `labwire ${command}`
    if (code === ExitCode.usage) {
      // parseArgs' own errors (unknown option, missing value) are usage errors too.
      io.stderr.write(`${style.red(`${where}:`)} ${message}\n`)
    } else if (code === ExitCode.internal && isParseArgsError(error)) {
      io.stderr.write(`${style.red(`${where}:`)} ${oneLine(message)} (${where} --help)\n`)
      return ExitCode.usage
    } else {
      io.stderr.write(`${style.red(`${where}:`)} ${oneLine(message)}\n`)
      if (code === ExitCode.internal && error instanceof Error && error.stack !== undefined && io.env.LABWIRE_DEBUG !== undefined) io.stderr.write(`${error.stack}\n`)
    }
    return code
  }
}

function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')
}
