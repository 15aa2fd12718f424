import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { composeFilters, traceFilter, type Logger, type ServerAddress } from '@labwire/core'
import { Monitor, MonitorConfigError } from '@labwire/monitor'
import { ControlServer, loadDevices, SimulatorServer, type ControlServerOptions, type Device, type LoadedDevices } from '@labwire/simulator'
import { telnetServerFilter } from '@labwire/transport-telnet'
import { bundledDevices, resolveDeviceFile } from './devices.js'
import { DeviceFileError, ExitCode, UsageError, type ExitCodeValue } from './exit-codes.js'
import { parseFlags } from './flags.js'
import { lineLogger, parseLogLevel } from './log.js'
import { parseListenPort } from './resource.js'
import { styleFor, type Io } from './style.js'

export const SIM_HELP = `Usage: labwire sim FILE|NAME [options]
       labwire sim --list [FILE]

Serve a simulated instrument. FILE is a device file (pyvisa-sim YAML with labwire extensions)
or a JavaScript module (.js, .mjs, .cjs) whose default export (or "device" export) is a Device
from @labwire/simulator, or a function returning one. NAME is a device file bundled with
@labwire/simulator (scpi-psu, dmm, cli-switch; --list shows them with their paths).

Without --device, each TCPIP::host::port::SOCKET resource in the file is served on its own
port (the resource's port; all ephemeral with --port 0); a file with no SOCKET resource serves
its only device on --port; several devices and no SOCKET resource is an error that lists them.

Options:
  --list                list the bundled devices (name, path, description); with FILE, the
                        devices and resources of FILE
  --device NAME         serve this device (or the device of this resource) on --port
  --eom KEY             which eom entry gives the terminators (default "TCPIP SOCKET", then
                        "TCPIP INSTR", then the first entry)
  --host H              address to bind (default 127.0.0.1)
  --port P              TCP port (default 5025; 0 = any free port)
  --telnet-port P       also serve the device over Telnet on this port (0 = any free port), through
                        the simulator: a CLI device's banner and login prompt, faults, broadcasts
  --control-port P      serve the simulator's control channel (HTTP) on this port (0 = any free port)
  --control-host H      address of the control channel (default 127.0.0.1, whatever --host says)
  --control-token T     token the control channel requires (needed when it is not on loopback)
  --monitor-port P      serve the live monitor (web page, /metrics, /healthz, /readyz) on this
                        port (0 = any free port)
  --monitor-host H      address of the monitor (default 127.0.0.1)
  --monitor-token T     token the monitor requires (needed when it is not on loopback)
  --trace               write every byte each way to stderr
  --log-level L         device and server messages on stderr: debug, info, warn, error, silent
                        (default warn; error with --quiet)
  --quiet               print only the listening lines (stdout) and errors (stderr)
  -h, --help            this help

It prints one line per listener on stdout, e.g. "listening tcp://127.0.0.1:5025", then serves
until SIGINT or SIGTERM, closes every connection and exits 0. Device errors (a reply format
that fails, a handler that throws) are printed on stderr.

Exit codes: 0 stopped by a signal, 2 usage (unknown device, bad --eom, bad port),
3 could not listen (port in use), 7 not available in this build, 8 the device file cannot be
read or is invalid.

Examples:
  labwire sim scpi-psu --port 0
  labwire sim cli-switch --port 0 --telnet-port 0
  labwire sim --list
  labwire sim devices.yaml --device siggen --eom "GPIB INSTR" --port 5025 --trace
`

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a device of any state
type AnyDevice = Device<any>

/** One device to serve, and where. */
interface Plan {
  device: AnyDevice
  /** What it is, for the info line: the resource or the device name. */
  what: string
  port: number
}

const MODULE = /\.(?:m|c)?js$/i
const SOCKET = /^TCPIP\d*::(?:\[[^\]]*\]|[^:]+)::(\d+)::SOCKET$/i

/** `labwire sim`. Resolves with the exit code once stopped by a signal. */
export async function sim(args: string[], io: Io): Promise<ExitCodeValue> {
  const { values, positionals } = parseFlags('sim', args, {
    list: { type: 'boolean', default: false },
    device: { type: 'string' },
    eom: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    'telnet-port': { type: 'string' },
    'control-port': { type: 'string' },
    'control-host': { type: 'string' },
    'control-token': { type: 'string' },
    'monitor-port': { type: 'string' },
    'monitor-host': { type: 'string' },
    'monitor-token': { type: 'string' },
    trace: { type: 'boolean', default: false },
    'log-level': { type: 'string' },
    quiet: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  })
  if (values.help) {
    io.stdout.write(SIM_HELP)
    return ExitCode.ok
  }
  if (values.list) return await list(positionals, io)
  if (positionals.length !== 1) throw new UsageError('sim needs exactly one FILE or bundled device NAME (labwire sim --help; labwire sim --list)')
  const given = positionals[0] as string
  const port = values.port === undefined ? undefined : parseListenPort(values.port, '--port')
  const telnetPort = values['telnet-port'] === undefined ? undefined : parseListenPort(values['telnet-port'], '--telnet-port')
  const controlPort = values['control-port'] === undefined ? undefined : parseListenPort(values['control-port'], '--control-port')
  const controlHost = values['control-host'] ?? '127.0.0.1'
  const controlToken = values['control-token']
  if (controlPort === undefined && (values['control-host'] !== undefined || controlToken !== undefined)) throw new UsageError('--control-host and --control-token need --control-port')
  if (controlPort !== undefined && !isLoopback(controlHost) && (controlToken === undefined || controlToken === '')) {
    throw new UsageError(`--control-host ${controlHost} is not a loopback address: the control channel then needs --control-token T (anyone who can reach it could change the device)`)
  }
  const err = styleFor(io.stderr, io.env)
  const logLevel = values['log-level'] !== undefined ? parseLogLevel(values['log-level']) : values.quiet ? 'error' : 'warn'
  const logger = lineLogger('labwire sim', logLevel, (line) => io.stderr.write(line), err)
  const monitorPort = values['monitor-port'] === undefined ? undefined : parseListenPort(values['monitor-port'], '--monitor-port')
  if (monitorPort === undefined && (values['monitor-host'] !== undefined || values['monitor-token'] !== undefined)) throw new UsageError('--monitor-host and --monitor-token need --monitor-port')
  let monitor: Monitor | undefined
  if (monitorPort !== undefined) {
    try {
      monitor = new Monitor({ port: monitorPort, logger, ...(values['monitor-host'] === undefined ? {} : { host: values['monitor-host'] }), ...(values['monitor-token'] === undefined ? {} : { token: values['monitor-token'] }) })
    } catch (error) {
      if (error instanceof MonitorConfigError) throw new UsageError(error.message)
      throw error
    }
  }
  const info = (line: string): void => {
    if (!values.quiet) io.stderr.write(`${err.dim(line)}\n`)
  }
  const trace = values.trace ? traceFilter({ sink: (line) => io.stderr.write(`${err.dim(line)}\n`) }) : undefined
  const host = values.host ?? '127.0.0.1'

  const file = MODULE.test(given) ? given : resolveDeviceFile(given)
  const plans = MODULE.test(file) ? [await moduleDevice(file, port, values)] : await filePlans(file, port, { ...values, logger })
  if (telnetPort !== undefined && telnetPort !== 0 && plans.length > 1) {
    throw new UsageError(`--telnet-port ${telnetPort} with ${plans.length} devices to serve: use --telnet-port 0 (one ephemeral port each) or --device NAME`)
  }

  const servers: { close(): Promise<void> }[] = []
  const simulators: SimulatorServer[] = []
  const closeAll = (): Promise<unknown> => Promise.allSettled(servers.map((server) => server.close()))
  const announce = (scheme: string, address: ServerAddress, what: string): void => {
    const url = `${scheme}://${formatHost(address.host)}:${address.port}`
    io.stdout.write(`listening ${url}\n`)
    // Only the resource of the port really served: never the file's (default) port next to it.
    const visa = scheme === 'tcp' ? `, VISA resource TCPIP::${formatHost(address.host)}::${address.port}::SOCKET` : ''
    info(`serving ${what} on ${url}${visa}`)
  }
  try {
    for (const plan of plans) {
      // The simulator serves both listeners (one shared device): greetings (a CLI device's banner
      // and login prompt), faults and broadcasts work over Telnet as over TCP.
      const name = plan.device.name
      const watched = monitor?.traceFilter(name)
      const filter = watched === undefined ? trace : trace === undefined ? watched : composeFilters(watched, trace)
      const serverLogger = monitor === undefined ? logger : monitor.serviceLogger(name, logger)
      const simulator = new SimulatorServer({ device: plan.device, host, port: plan.port, logger: serverLogger, ...(filter === undefined ? {} : { filter }) })
      simulators.push(simulator)
      servers.push(simulator)
      announce('tcp', await simulator.listen(), plan.what)
      const extra: SimulatorServer[] = []
      if (telnetPort !== undefined) {
        const telnet = new SimulatorServer({ device: plan.device, host, port: telnetPort, logger: serverLogger, ...(filter === undefined ? { telnet: true } : { filter: composeFilters(filter, telnetServerFilter({})) }) })
        servers.push(telnet)
        extra.push(telnet)
        announce('telnet', await telnet.listen(), plan.what)
      }
      // One service per device: its TCP and Telnet listeners count together.
      monitor?.addService({ name, kind: 'simulator', simulator, servers: extra })
    }
    if (controlPort !== undefined) {
      const options: ControlServerOptions = { servers: simulators, host: controlHost, port: controlPort, logger, ...(controlToken === undefined ? {} : { token: controlToken }) }
      const control = new ControlServer(options)
      servers.push(control)
      announce('http', await control.listen(), 'the control channel')
    }
    if (monitor !== undefined) {
      servers.push(monitor)
      announce('http', await monitor.listen(), 'the live monitor (/, /metrics, /healthz, /readyz)')
    }
  } catch (error) {
    await closeAll()
    throw error
  }
  info('press Ctrl-C to stop')

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    const stop = (name: NodeJS.Signals): void => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      resolve(name)
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  })
  info(`${signal}: closing`)
  monitor?.drain()
  await closeAll()
  info('stopped')
  return ExitCode.ok
}

/** The devices of a device file, and their ports. */
async function filePlans(file: string, port: number | undefined, values: { device?: string | undefined; eom?: string | undefined; logger: Logger }): Promise<Plan[]> {
  let loaded: LoadedDevices
  try {
    loaded = await loadDevices(file)
  } catch (error) {
    throw deviceFileError(file, error)
  }
  const create = (name: string, resource?: LoadedDevices['resources'][number]): AnyDevice => {
    const definition = loaded.devices.get(name)
    if (definition === undefined) throw new DeviceFileError(`${file}: resource ${resource?.name ?? '?'} names device "${name}", which the file does not define`)
    try {
      return definition.create({ logger: values.logger, ...(values.eom === undefined ? {} : { eom: values.eom }), ...(resource === undefined ? {} : { resource }) })
    } catch (error) {
      if (error instanceof RangeError) throw new UsageError(`${file}: device "${name}": ${error.message}`)
      throw error
    }
  }
  const devices = [...loaded.devices.keys()]
  if (values.device !== undefined) {
    const name = values.device
    const resource = loaded.resources.find((r) => r.name === name)
    const deviceName = loaded.devices.has(name) ? name : resource?.device
    if (deviceName === undefined) throw new UsageError(`${file}: no device or resource named "${name}"; devices: ${devices.join(', ') || 'none'}; resources: ${loaded.resources.map((r) => r.name).join(', ') || 'none'}`)
    return [{ device: create(deviceName, resource), what: `device "${deviceName}"`, port: port ?? 5025 }]
  }
  const sockets = loaded.resources.filter((r) => SOCKET.test(r.name))
  if (sockets.length > 0) {
    if (port !== undefined && port !== 0 && sockets.length > 1) throw new UsageError(`${file} has ${sockets.length} SOCKET resources, each served on its own port: use --port 0 (all ephemeral) or --device NAME with --port ${port}`)
    return sockets.map((resource) => ({
      device: create(resource.device, resource),
      what: `device "${resource.device}"`,
      port: port ?? Number(SOCKET.exec(resource.name)?.[1]),
    }))
  }
  if (devices.length === 1) {
    const name = devices[0] as string
    return [{ device: create(name, loaded.resources.find((r) => r.device === name)), what: `device "${name}"`, port: port ?? 5025 }]
  }
  if (devices.length === 0) throw new DeviceFileError(`${file} defines no devices`)
  throw new UsageError(`${file} has ${devices.length} devices and no TCPIP::host::port::SOCKET resource; pick one with --device NAME: ${devices.join(', ')}`)
}

/** A programmatic device from a module: its default or `device` export, a Device or a function returning one. */
async function moduleDevice(file: string, port: number | undefined, values: { device?: string | undefined; eom?: string | undefined }): Promise<Plan> {
  if (values.eom !== undefined) throw new UsageError('--eom applies to device files; a programmatic device sets its own terminators')
  let module: Record<string, unknown>
  try {
    module = (await import(pathToFileURL(resolve(file)).href)) as Record<string, unknown>
  } catch (error) {
    throw deviceFileError(file, error)
  }
  const key = values.device ?? (module.default !== undefined ? 'default' : 'device')
  let exported = module[key]
  if (exported === undefined) throw new DeviceFileError(`${file} has no ${values.device === undefined ? 'default or "device"' : `"${values.device}"`} export (exports: ${Object.keys(module).join(', ') || 'none'})`)
  if (typeof exported === 'function' && !isDevice(exported)) exported = await (exported as () => unknown)()
  if (!isDevice(exported)) throw new DeviceFileError(`${file}: export "${key}" is not a Device from @labwire/simulator (nor a function returning one)`)
  return { device: exported, what: `device "${exported.name}" from ${file}`, port: port ?? 5025 }
}

function isDevice(value: unknown): value is AnyDevice {
  return typeof value === 'object' && value !== null && typeof (value as { handler?: unknown }).handler === 'function' && typeof (value as { name?: unknown }).name === 'string'
}

function deviceFileError(file: string, error: unknown): Error {
  if (error instanceof Error && error.name === 'DeviceFileError') return new DeviceFileError(error.message, { cause: error })
  const code = (error as { code?: unknown } | null)?.code
  if (code === 'ENOENT') return new DeviceFileError(`${file}: no such file`, { cause: error })
  if (code === 'EISDIR') return new DeviceFileError(`${file}: is a directory`, { cause: error })
  if (code === 'EACCES') return new DeviceFileError(`${file}: permission denied`, { cause: error })
  return new DeviceFileError(`${file}: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
}

/** `labwire sim --list [FILE]`: the bundled devices, or the devices and resources of FILE. */
async function list(positionals: string[], io: Io): Promise<ExitCodeValue> {
  if (positionals.length > 1) throw new UsageError('sim --list takes at most one FILE (labwire sim --help)')
  const given = positionals[0]
  if (given === undefined) {
    const devices = bundledDevices()
    const width = Math.max(...devices.map((device) => device.name.length))
    io.stdout.write('Bundled devices (labwire sim NAME):\n')
    for (const device of devices) io.stdout.write(`  ${device.name.padEnd(width)}  ${device.path}${device.description === undefined ? '' : `\n  ${' '.repeat(width)}  ${device.description}`}\n`)
    return ExitCode.ok
  }
  const file = resolveDeviceFile(given)
  let loaded: LoadedDevices
  try {
    loaded = await loadDevices(file)
  } catch (error) {
    throw deviceFileError(file, error)
  }
  io.stdout.write(`${file}\n  devices: ${[...loaded.devices.keys()].join(', ') || 'none'}\n`)
  for (const [name, definition] of loaded.devices) io.stdout.write(`    ${name}  eom: ${Object.keys(definition.eom).join(', ') || 'none'}\n`)
  io.stdout.write(`  resources: ${loaded.resources.length === 0 ? 'none' : ''}\n`)
  for (const resource of loaded.resources) io.stdout.write(`    ${resource.name}  → device "${resource.device}"\n`)
  return ExitCode.ok
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}
