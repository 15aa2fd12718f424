import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { composeFilters, traceFilter, type ServerAddress } from '@labwire/core'
import { ControlServer, loadDevices, SimulatorServer, type Device, type LoadedDevices } from '@labwire/simulator'
import { TcpServer } from '@labwire/transport-tcp'
import { TelnetServer, telnetServerFilter } from '@labwire/transport-telnet'
import { DeviceFileError, ExitCode, UsageError, type ExitCodeValue } from './exit-codes.js'
import { parseListenPort } from './resource.js'
import { styleFor, type Io } from './style.js'

export const SIM_HELP = `Usage: labwire sim FILE [options]

Serve a simulated instrument. FILE is a device file (pyvisa-sim YAML with labwire extensions)
or a JavaScript module (.js, .mjs, .cjs) whose default export (or "device" export) is a Device
from @labwire/simulator, or a function returning one.

Without --device, each TCPIP::host::port::SOCKET resource in the file is served on its own
port (the resource's port; all ephemeral with --port 0); a file with no SOCKET resource serves
its only device on --port; several devices and no SOCKET resource is an error that lists them.

Options:
  --device NAME         serve this device (or the device of this resource) on --port
  --eom KEY             which eom entry gives the terminators (default "TCPIP SOCKET", then
                        "TCPIP INSTR", then the first entry)
  --host H              address to bind (default 127.0.0.1)
  --port P              TCP port (default 5025; 0 = any free port)
  --telnet-port P       also serve the device over Telnet on this port (0 = any free port)
  --control-port P      serve the simulator's control channel on this port (0 = any free port)
  --trace               write every byte each way to stderr
  --quiet               print only the listening lines (stdout) and errors (stderr)
  -h, --help            this help

It prints one line per listener on stdout, e.g. "listening tcp://127.0.0.1:5025", then serves
until SIGINT or SIGTERM, closes every connection and exits 0.

Exit codes: 0 stopped by a signal, 2 usage (unknown device, bad --eom, bad port),
3 could not listen (port in use), 7 not available in this build, 8 the device file cannot be
read or is invalid.

Examples:
  labwire sim packages/simulator/devices/psu.yaml --port 0
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
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      device: { type: 'string' },
      eom: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
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
  const file = positionals[0] as string
  const port = values.port === undefined ? undefined : parseListenPort(values.port, '--port')
  const telnetPort = values['telnet-port'] === undefined ? undefined : parseListenPort(values['telnet-port'], '--telnet-port')
  const controlPort = values['control-port'] === undefined ? undefined : parseListenPort(values['control-port'], '--control-port')
  const err = styleFor(io.stderr, io.env)
  const info = (line: string): void => {
    if (!values.quiet) io.stderr.write(`${err.dim(line)}\n`)
  }
  const trace = values.trace ? traceFilter({ sink: (line) => io.stderr.write(`${err.dim(line)}\n`) }) : undefined

  const plans = MODULE.test(file) ? [await moduleDevice(file, port, values)] : await filePlans(file, port, values)
  if (telnetPort !== undefined && telnetPort !== 0 && plans.length > 1) {
    throw new UsageError(`--telnet-port ${telnetPort} with ${plans.length} devices to serve: use --telnet-port 0 (one ephemeral port each) or --device NAME`)
  }

  const servers: { close(): Promise<void> }[] = []
  const simulators: SimulatorServer[] = []
  const closeAll = (): Promise<unknown> => Promise.allSettled(servers.map((server) => server.close()))
  const announce = (scheme: string, address: ServerAddress, what: string): void => {
    const url = `${scheme}://${formatHost(address.host)}:${address.port}`
    io.stdout.write(`listening ${url}\n`)
    info(`serving ${what} on ${url}`)
  }
  try {
    for (const plan of plans) {
      const simulator = new SimulatorServer({ device: plan.device, host: values.host, port: plan.port })
      simulators.push(simulator)
      if (trace === undefined) {
        servers.push(simulator)
        announce('tcp', await simulator.listen(), plan.what)
      } else {
        // SimulatorServer has no filter hook: with --trace the device's handler is served on a
        // TcpServer with the trace filter (socket-level faults degrade as on any transport server).
        const server = new TcpServer({ host: values.host, port: plan.port, callback: plan.device.handler(), filter: trace })
        servers.push(server, { close: () => Promise.resolve(plan.device.stop()) })
        plan.device.start()
        announce('tcp', await server.listen(), plan.what)
      }
      if (telnetPort !== undefined) {
        const options = { host: values.host, port: telnetPort, callback: plan.device.handler() }
        const server = trace === undefined ? new TelnetServer(options) : new TcpServer({ ...options, filter: composeFilters(trace, telnetServerFilter({})) })
        servers.push(server)
        announce('telnet', await server.listen(), plan.what)
      }
    }
    if (controlPort !== undefined) {
      const control = new ControlServer({ servers: simulators, host: values.host, port: controlPort })
      servers.push(control)
      announce('http', await control.listen(), 'the control channel')
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
  await closeAll()
  info('stopped')
  return ExitCode.ok
}

/** The devices of a device file, and their ports. */
async function filePlans(file: string, port: number | undefined, values: { device?: string | undefined; eom?: string | undefined }): Promise<Plan[]> {
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
      return definition.create({ ...(values.eom === undefined ? {} : { eom: values.eom }), ...(resource === undefined ? {} : { resource }) })
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
    return [{ device: create(deviceName, resource), what: `device "${deviceName}"${resource === undefined ? '' : ` (${resource.name})`}`, port: port ?? 5025 }]
  }
  const sockets = loaded.resources.filter((r) => SOCKET.test(r.name))
  if (sockets.length > 0) {
    if (port !== undefined && port !== 0 && sockets.length > 1) throw new UsageError(`${file} has ${sockets.length} SOCKET resources, each served on its own port: use --port 0 (all ephemeral) or --device NAME with --port ${port}`)
    return sockets.map((resource) => ({
      device: create(resource.device, resource),
      what: `${resource.name} (device "${resource.device}")`,
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

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}
