import { writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { ControlServer, FRAMER_NAMES, Proxy, TranscriptWriter, framerByName, recordDevice, type NamedFramer, type ProxyFaultSpec, type TranscriptEntry } from '@labwire/simulator'
import { ExitCode, UsageError, type ExitCodeValue } from './exit-codes.js'
import { transportFor } from './instrument.js'
import { parseListenPort, parseMilliseconds, parseResource, RESOURCE_FORMS } from './resource.js'
import { styleFor, type Io } from './style.js'

export const PROXY_HELP = `Usage: labwire proxy RESOURCE --port P [options]

Sit between a client and an instrument: listen on --port, forward each client connection to
RESOURCE, frame both directions, and (optionally) record what goes by and inject faults.
On SIGINT or SIGTERM it closes every connection, writes --record, and exits 0.

Options:
  --port P              port to listen on (0 = any free port; required)
  --host H              address to bind (default 127.0.0.1)
  --record FILE.yaml    on exit, write a pyvisa-sim device file that "labwire sim" serves:
                        queries become dialogues (the last reply), setter/getter pairs
                        (VOLT 5 / VOLT?) properties, a CLI login labwire.login
  --transcript FILE     write every frame as JSON lines: time, connection, direction, hex, text
  --framer NAME         framer of both directions (default: requests lf, replies scpi)
  --request-framer NAME framer of the client's requests
  --reply-framer NAME   framer of the instrument's replies
  --flush MS            forward instrument bytes that complete no frame after MS (default 20)
  --fault JSON          a fault on the replies (repeatable), e.g.
                        '{"kind":"latency","latency":500,"commands":["MEAS?"]}'; kinds: latency,
                        no-reply, disconnect, cable-cut, junk, truncate, fragment, quiet,
                        corrupt, duplicate
  --control-port P      serve the simulator's control channel (faults, cable, connections)
  --name NAME           the device name in --record and on the control channel (default proxy)
  --quiet               print only the listening lines (stdout) and errors (stderr)
  -h, --help            this help

Framers:
${FRAMER_NAMES.map((name) => `  ${name}`).join('\n')}

RESOURCE:
${RESOURCE_FORMS.map((form) => `  ${form}`).join('\n')}
A telnet:// resource is proxied as Telnet on both sides (negotiation ends at the proxy).

Examples:
  labwire proxy TCPIP::10.0.0.5::5025::SOCKET --port 5555 --record psu.yaml --transcript psu.jsonl
  labwire proxy telnet://10.0.0.7:23 --port 2323 --reply-framer crlf --record switch.yaml
`

/** `labwire proxy`. Resolves with the exit code once stopped (by a signal, or `stop` in tests). */
export async function proxy(args: string[], io: Io, stop?: Promise<unknown>): Promise<ExitCodeValue> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      port: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      record: { type: 'string' },
      transcript: { type: 'string' },
      framer: { type: 'string' },
      'request-framer': { type: 'string' },
      'reply-framer': { type: 'string' },
      flush: { type: 'string' },
      fault: { type: 'string', multiple: true },
      'control-port': { type: 'string' },
      name: { type: 'string', default: 'proxy' },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) {
    io.stdout.write(PROXY_HELP)
    return ExitCode.ok
  }
  if (positionals.length !== 1) throw new UsageError('proxy needs exactly one RESOURCE (labwire proxy --help)')
  if (values.port === undefined) throw new UsageError('proxy needs --port P (0 = any free port)')
  const resource = parseResource(positionals[0] as string)
  const port = parseListenPort(values.port, '--port')
  const controlPort = values['control-port'] === undefined ? undefined : parseListenPort(values['control-port'], '--control-port')
  const flush = values.flush === undefined ? undefined : parseMilliseconds(values.flush, '--flush')
  const requestFramer = framer(values['request-framer'] ?? values.framer ?? 'lf', '--request-framer')
  const responseFramer = framer(values['reply-framer'] ?? values.framer ?? 'scpi', '--reply-framer')
  const faults = (values.fault ?? []).map((text) => {
    try {
      return JSON.parse(text) as ProxyFaultSpec
    } catch {
      throw new UsageError(`--fault must be a JSON object, got ${text}`)
    }
  })
  const err = styleFor(io.stderr, io.env)
  const info = (line: string): void => {
    if (!values.quiet) io.stderr.write(`${err.dim(line)}\n`)
  }

  const entries: TranscriptEntry[] = []
  const transcript = values.transcript === undefined ? undefined : new TranscriptWriter(values.transcript)
  const onEntry = (entry: TranscriptEntry): void => {
    transcript?.write(entry)
    if (values.record !== undefined) entries.push(entry)
  }
  const upstream = transportFor(resource, { timeout: resource.timeout ?? 5_000 })
  const server = new Proxy({
    upstream,
    name: values.name,
    host: values.host,
    port,
    requestFramer,
    responseFramer,
    telnet: resource.scheme === 'telnet',
    onEntry,
    ...(flush === undefined ? {} : { partialFlush: flush }),
  })
  for (const spec of faults) {
    try {
      server.fault(spec)
    } catch (error) {
      throw new UsageError(`--fault ${JSON.stringify(spec)}: ${error instanceof Error ? error.message : String(error)}`)
    }
  }
  let control: ControlServer | undefined
  try {
    const address = await server.listen()
    const scheme = resource.scheme === 'telnet' ? 'telnet' : 'tcp'
    io.stdout.write(`listening ${scheme}://${address.host}:${address.port}\n`)
    info(`proxying ${resource.text} on ${scheme}://${address.host}:${address.port} (requests ${requestFramer.name}, replies ${responseFramer.name})`)
    if (controlPort !== undefined) {
      control = new ControlServer({ servers: [server.server], host: values.host, port: controlPort })
      const at = await control.listen()
      io.stdout.write(`listening http://${at.host}:${at.port}\n`)
    }
  } catch (error) {
    await Promise.allSettled([server.close(), control?.close(), transcript?.close()])
    throw error
  }
  info('press Ctrl-C to stop')

  const reason = await new Promise<string>((resolve) => {
    const onSignal = (name: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      resolve(name)
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    void stop?.then(() => onSignal('SIGTERM'))
  })
  info(`${reason}: closing`)
  await Promise.allSettled([server.close(), control?.close()])
  await transcript?.close()
  if (values.record !== undefined) {
    const recording = recordDevice(entries, {
      name: values.name === 'proxy' ? 'recorded' : values.name,
      requestTerminator: terminatorText(requestFramer, '\n'),
      responseTerminator: terminatorText(responseFramer, '\n'),
      source: resource.text,
    })
    await writeFile(values.record, recording.yaml)
    info(`wrote ${values.record}: ${recording.verified.total} exchanges, ${recording.properties.length} properties${recording.login ? ', a login' : ''}`)
    if (recording.varying.length > 0) info(`answered differently over time (the file keeps the last reply): ${recording.varying.join(', ')}`)
  }
  return ExitCode.ok
}

function framer(name: string, flag: string): NamedFramer {
  try {
    return framerByName(name)
  } catch (error) {
    throw new UsageError(`${flag}: ${error instanceof Error ? error.message : String(error)}`)
  }
}

function terminatorText(framer: NamedFramer, fallback: string): string {
  return framer.terminator === undefined ? fallback : new TextDecoder().decode(framer.terminator)
}
