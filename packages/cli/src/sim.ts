import { parseArgs } from 'node:util'
import { ExitCode, UnavailableError, UsageError, type ExitCodeValue } from './exit-codes.js'
import type { Io } from './style.js'

export const SIM_HELP = `Usage: labwire sim FILE [options]

Serve a simulated instrument: FILE is a device file (pyvisa-sim YAML with labwire extensions)
or a JavaScript module exporting a programmatic device.

Without --device, each TCPIP::host::port::SOCKET resource in the file is served on its own
port; a file with no SOCKET resource serves its only device on --port; several devices and no
SOCKET resources is an error that lists them.

Options:
  --device NAME         serve only this device of the file, on --port
  --eom KEY             which eom entry gives the terminators (default "TCPIP SOCKET", then
                        "TCPIP INSTR", then the first entry)
  --host H              address to bind (default 127.0.0.1)
  --port P              TCP port (default 5025; 0 = any free port)
  --telnet-port P       also serve the device over Telnet on this port (0 = any free port)
  --control-port P      serve the simulator's control channel on this port (0 = any free port)
  --trace               write every byte each way to stderr
  --quiet               print nothing but the listening lines and errors
  -h, --help            this help

It prints one line per listener, e.g. "listening tcp://127.0.0.1:5025", then serves until
SIGINT or SIGTERM, closes every connection and exits 0.

Exit codes: 0 stopped by a signal, 2 usage, 3 could not listen (port in use), 7 not available,
8 the device file cannot be read or is invalid.
`

/** `labwire sim`. Resolves with the exit code once stopped. */
export async function sim(args: string[], io: Io): Promise<ExitCodeValue> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      device: { type: 'string' },
      eom: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '5025' },
      'telnet-port': { type: 'string' },
      'control-port': { type: 'string' },
      trace: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) {
    io.stdout.write(SIM_HELP)
    return ExitCode.ok
  }
  if (positionals.length !== 1) throw new UsageError('sim needs exactly one FILE (labwire sim --help)')
  await Promise.resolve()
  throw new UnavailableError('sim needs @labwire/simulator, which is not in this build yet')
}
