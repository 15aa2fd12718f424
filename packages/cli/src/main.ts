import { ExitCode, UsageError, exitCodeOf, type ExitCodeValue } from './exit-codes.js'
import { nearest } from './flags.js'
import { proxy } from './proxy.js'
import { query } from './query.js'
import { registry } from './registry.js'
import { serve } from './serve.js'
import { RESOURCE_FORMS } from './resource.js'
import { shell } from './shell.js'
import { sim } from './sim.js'
import { oneLine, processIo, styleFor, type Io } from './style.js'
import { version } from './version.js'
import { visible, visibleLine } from './visible.js'

export { version }

export const MAIN_HELP = `Usage: labwire <command> [options]

Talk to lab instruments over TCP and Telnet line protocols, and simulate them.

Commands:
  sim FILE|NAME         serve a simulated instrument from a device file (pyvisa-sim YAML), a
                        module exporting a programmatic device, or a bundled device by name
                        (labwire sim --list shows them)
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
  9 output not written (stdout closed)   1 unexpected failure   130 interrupted (Ctrl-C)

Examples:
  labwire sim scpi-psu --port 0
  labwire sim devices.yaml --port 0
  labwire query TCPIP::127.0.0.1::5025::SOCKET '*IDN?'
  labwire shell tcp://127.0.0.1:5025
`

/** A subcommand: `run(args, io)` resolves with the exit code (throws `UsageError` and the like for bad input). */
export interface Subcommand {
  run(args: string[], io: Io): Promise<ExitCodeValue>
}

/**
 * The subcommands, by name. To add one: one line here (`name: { run: (args, io) => command(args, io) }`);
 * the dispatch, `help NAME`, `NAME --version` and the error handling are shared.
 */
export const SUBCOMMANDS: Record<string, Subcommand> = {
  sim: { run: sim },
  query: { run: query },
  shell: { run: shell },
  serve: { run: serve },
  proxy: { run: proxy },
  registry: { run: registry },
}

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
      default: {
        const subcommand = Object.hasOwn(SUBCOMMANDS, command) ? SUBCOMMANDS[command] : undefined
        if (subcommand === undefined) {
          const names = Object.keys(SUBCOMMANDS)
          const guess = command.startsWith('-') ? nearest(command.replace(/^-+/, ''), ['help', 'version']) : nearest(command, names)
          const hint = guess === undefined ? '' : `; did you mean ${command.startsWith('-') ? `--${guess}` : guess}?`
          throw new UsageError(`unknown ${command.startsWith('-') ? 'option' : 'command'} "${command}"${hint} (commands: ${names.join(', ')}; labwire --help)`)
        }
        // `labwire query --version` and the like: the version, whatever else is on the line.
        if (rest.includes('--version') && !rest.includes('--')) {
          io.stdout.write(`${version()}\n`)
          return ExitCode.ok
        }
        return await subcommand.run(rest, io)
      }
    }
  } catch (error) {
    const code = exitCodeOf(error)
    const message = visibleLine(oneLine(error instanceof Error ? error.message : String(error)))
    const where = command === undefined || command.startsWith('-') ? 'labwire' : `labwire ${command}`
    io.stderr.write(`${style.red(`${where}:`)} ${message}\n`)
    if (code === ExitCode.internal && error instanceof Error && error.stack !== undefined && io.env.LABWIRE_DEBUG !== undefined) io.stderr.write(`${visible(error.stack)}\n`)
    return code
  }
}
