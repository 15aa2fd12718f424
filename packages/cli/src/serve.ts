import { parseArgs } from 'node:util'
import { activatedSockets, ConfigError, formatIssue, loadConfig, ServiceHost, ServiceStartError, type HostConfig, type HostEvent } from '@labwire/host'
import { ExitCode, UsageError, type ExitCodeValue } from './exit-codes.js'
import { parseListenPort, parseMilliseconds } from './resource.js'
import { styleFor, type Io } from './style.js'

export const SERVE_HELP = `Usage: labwire serve CONFIG [options]

Run a lab's services from one config file: simulated devices (pyvisa-sim YAML), JavaScript
modules (a Device, a ByteHandler or ApplicationServer, a request function with a framer, an RPC
service) and instrument gateways (resource = TCPIP::host::port::SOCKET). CONFIG is speedysvc's
.ini shape ([defaults], one [section] per service) or the same model in YAML or JSON.

Options:
  --mode M              auto (default: workers for services with max_proc_num > 1),
                        inprocess (all in this process), cluster (node:cluster workers for
                        every service that can), stdio (one service on stdin/stdout, for inetd)
  --service NAME        serve only this section
  -p, --port P          the port of the one service (0 = any free port)
  -q, --quiet           logs at warn level and above only; stdout has the listening lines
  --check               validate the config and exit (0 valid, 8 not)
  --drain MS            on SIGTERM/SIGINT/reload, let in-flight requests finish for up to
                        MS milliseconds (default 5000)
  -h, --help            this help

It prints "listening NAME URL" per service on stdout once it listens, then "ready". JSON logs
go to each service's log_dir, else to stdout (stderr with --mode stdio). SIGHUP reloads CONFIG:
changed services restart, the rest keep their connections. SIGTERM or SIGINT drains and exits.

Exit codes: 0 stopped cleanly, 2 usage, 3 a wait_until_completed service could not start,
4 the drain deadline passed with requests in flight, 8 the config is invalid.

Examples:
  labwire serve examples/serve/lab.ini
  labwire serve lab.yaml --check
  labwire serve lab.ini --service psu --mode stdio
`

const MODES = ['auto', 'inprocess', 'cluster', 'stdio'] as const

/** `labwire serve`. Resolves with the exit code once stopped. */
export async function serve(args: string[], io: Io): Promise<ExitCodeValue> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      mode: { type: 'string', default: 'auto' },
      service: { type: 'string' },
      port: { type: 'string', short: 'p' },
      quiet: { type: 'boolean', short: 'q', default: false },
      check: { type: 'boolean', default: false },
      drain: { type: 'string', default: '5000' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) {
    io.stdout.write(SERVE_HELP)
    return ExitCode.ok
  }
  if (positionals.length !== 1) throw new UsageError('serve needs exactly one CONFIG file (labwire serve --help)')
  const file = positionals[0] as string
  const mode = values.mode as (typeof MODES)[number]
  if (!MODES.includes(mode)) throw new UsageError(`--mode must be one of ${MODES.join(', ')}, got "${values.mode}"`)
  const port = values.port === undefined ? undefined : parseListenPort(values.port, '--port')
  const drain = parseMilliseconds(values.drain, '--drain')
  const err = styleFor(io.stderr, io.env)

  const load = async (): Promise<HostConfig | undefined> => {
    try {
      return select(await loadConfig(file, { env: io.env }), values.service, mode, port)
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error
      for (const issue of error.issues) io.stderr.write(`${err.red('labwire serve:')} ${formatIssue(issue)}\n`)
      return undefined
    }
  }
  const config = await load()
  if (config === undefined) return ExitCode.device
  if (values.check) {
    io.stdout.write(`${file}: ok, ${config.services.length} service${config.services.length === 1 ? '' : 's'}: ${config.services.map((s) => s.name).join(', ')}\n`)
    return ExitCode.ok
  }

  const stdio = mode === 'stdio'
  const announce = (event: HostEvent): void => {
    if (event.type === 'listening' && !stdio) io.stdout.write(`listening ${event.service} ${event.address.url}\n`)
    else if (event.type === 'failed') io.stderr.write(`${err.red('labwire serve:')} ${event.error.message}\n`)
    else if (event.type === 'worker' && !values.quiet) {
      io.stderr.write(`${err.dim(`${event.service}: worker ${event.pid} ${event.event}${event.reason === undefined ? '' : ` (${event.reason})`}, ${event.workers} now`)}\n`)
    }
  }
  const host = new ServiceHost(config, {
    mode: stdio ? 'inprocess' : (mode),
    log: { level: values.quiet ? 'warn' : 'info', fd: stdio ? 2 : 1 },
    onEvent: announce,
    // One process per connection under inetd: no [web monitor] there (its port would clash).
    monitor: !stdio,
    // systemd socket activation (LISTEN_FDS from fd 3 on); the variables are cleared for children.
    sockets: stdio ? [] : activatedSockets(),
    ...(port === undefined ? {} : { port }),
  })
  try {
    await host.start()
  } catch (error) {
    if (error instanceof ServiceStartError) return ExitCode.connection
    throw error
  }

  let reloading = Promise.resolve()
  const onHup = (): void => {
    reloading = reloading.then(async () => {
      const next = await load()
      if (next === undefined) {
        io.stderr.write(`${err.red('labwire serve:')} reload refused: ${file} is invalid; the running services are unchanged\n`)
        return
      }
      const result = await host.reload(next, { drain })
      for (const failure of result.failed) io.stderr.write(`${err.red('labwire serve:')} ${failure.error.message}\n`)
      io.stdout.write(`reloaded started=${result.started.join(',')} restarted=${result.restarted.join(',')} stopped=${result.stopped.join(',')} unchanged=${result.unchanged.join(',')}\n`)
    })
  }
  process.on('SIGHUP', onHup)
  const stopped = new Promise<string>((resolve) => {
    const onSignal = (name: NodeJS.Signals): void => resolve(name)
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    const done = stdio ? host.done(config.services[0]?.name ?? '') : undefined
    void done?.then(() => resolve('end of input'))
  })
  const monitorAt = host.monitorAddress
  if (monitorAt !== undefined) io.stdout.write(`monitor http://${monitorAt.host.includes(':') ? `[${monitorAt.host}]` : monitorAt.host}:${monitorAt.port}/\n`)
  // "ready" only once the signal handlers are in place: a supervisor may signal right after it.
  if (!stdio) io.stdout.write('ready\n')
  const stop = await stopped
  process.off('SIGHUP', onHup)
  await reloading
  if (!values.quiet) io.stderr.write(`${err.dim(`${stop}: draining (up to ${drain} ms); signal again to stop now`)}\n`)
  // A second signal while draining: stop now (PM2's and systemd's convention), exit 4 (not clean).
  const force = (): void => {
    io.stderr.write(`${err.red('labwire serve:')} second signal: closing without waiting for the drain\n`)
    void host.close({ drain: 0 })
    process.exit(ExitCode.timeout)
  }
  process.once('SIGINT', force)
  process.once('SIGTERM', force)
  const clean = await host.close({ drain })
  process.off('SIGINT', force)
  process.off('SIGTERM', force)
  if (!stdio) io.stdout.write(`stopped ${clean ? 'clean' : 'with requests cut at the drain deadline'}\n`)
  return clean ? ExitCode.ok : ExitCode.timeout
}

/** The services to run: `--service` picks one; stdio mode needs exactly one and serves it on stdio. */
function select(config: HostConfig, service: string | undefined, mode: string, port: number | undefined): HostConfig {
  let services = config.services
  if (service !== undefined) {
    services = services.filter((s) => s.name === service)
    if (services.length === 0) throw new UsageError(`${config.file} has no service "${service}" (services: ${config.services.map((s) => s.name).join(', ')})`)
  }
  if ((mode === 'stdio' || port !== undefined) && services.length !== 1) {
    throw new UsageError(`${mode === 'stdio' ? '--mode stdio' : '--port'} serves one service, and ${config.file} has ${services.length}: pick one with --service NAME`)
  }
  if (mode === 'stdio') services = services.map((s) => ({ ...s, transport: 'stdio' as const }))
  return { ...config, services }
}
