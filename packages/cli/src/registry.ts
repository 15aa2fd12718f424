import { parseArgs } from 'node:util'
import { RegistryClient, RegistryServer } from '@labwire/registry'
import { ExitCode, UsageError, type ExitCodeValue } from './exit-codes.js'
import { parseListenPort } from './resource.js'
import { styleFor, type Io } from './style.js'

export const REGISTRY_HELP = `Usage: labwire registry [options]               serve a registry
       labwire registry list [options]          list the registered service names
       labwire registry discover NAME [options] list the servers of NAME

A service registry speaking RPyC's registry protocol, so RPyC 5.x servers (auto_register),
rpyc.discover() and rpyc_registry interoperate with labwire's. Names are case-insensitive.

Options:
  --host H              serve: address to bind (default 127.0.0.1; RPyC binds every interface)
                        list/discover: the registry's host (default 127.0.0.1)
  --port P              UDP/TCP port (default 18811; serve: 0 = any free port)
  --mode udp|tcp        transport (default udp, as RPyC)
  --prune-timeout MS    serve: forget a server not refreshed for MS ms, checked on a timer
                        (default 240000, RPyC's 4 minutes)
  --no-listing          serve: refuse LIST, as rpyc_registry does by default
  --timeout MS          list/discover: wait this long for the answer (default 2000)
  --quiet               serve: print only the listening line
  -h, --help            this help

Serving prints "listening udp://HOST:PORT" (or tcp://) on stdout and runs until SIGINT or SIGTERM.

Exit codes: 0 ok (or stopped by a signal), 2 usage, 3 could not listen or reach the registry,
4 the registry did not answer, 5 the registry answered something unexpected (listing disabled).

Examples:
  labwire registry --port 18811 --prune-timeout 30000
  labwire registry discover scope --host 10.0.0.5
`

/** `labwire registry`. `stop` (tests) ends serving like SIGTERM does. */
export async function registry(args: string[], io: Io, stop?: AbortSignal): Promise<ExitCodeValue> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '18811' },
      mode: { type: 'string', default: 'udp' },
      'prune-timeout': { type: 'string' },
      'no-listing': { type: 'boolean', default: false },
      timeout: { type: 'string', default: '2000' },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) {
    io.stdout.write(REGISTRY_HELP)
    return ExitCode.ok
  }
  const mode = values.mode.toLowerCase()
  if (mode !== 'udp' && mode !== 'tcp') throw new UsageError(`--mode must be udp or tcp, got "${values.mode}"`)
  const port = parseListenPort(values.port, '--port')
  const [action, ...rest] = positionals
  if (action === 'list' || action === 'discover') {
    if (port === 0) throw new UsageError('--port 0 names no registry')
    const timeout = parseMs(values.timeout, '--timeout')
    const client = new RegistryClient({ host: values.host, port, mode, timeout })
    if (action === 'list') {
      if (rest.length > 0) throw new UsageError('registry list takes no argument')
      for (const name of (await client.list()).sort()) io.stdout.write(`${name}\n`)
    } else {
      if (rest.length !== 1) throw new UsageError('registry discover needs exactly one NAME')
      for (const server of await client.discover(rest[0] as string)) io.stdout.write(`${server.host.includes(':') ? `[${server.host}]` : server.host}:${server.port}\n`)
    }
    return ExitCode.ok
  }
  if (action !== undefined) throw new UsageError(`unknown registry action "${action}" (list, discover; or none to serve)`)

  const pruneTimeout = values['prune-timeout'] === undefined ? undefined : parseMs(values['prune-timeout'], '--prune-timeout')
  const err = styleFor(io.stderr, io.env)
  const info = (line: string): void => {
    if (!values.quiet) io.stderr.write(`${err.dim(line)}\n`)
  }
  const server = new RegistryServer({
    host: values.host,
    port,
    mode: mode,
    allowListing: !values['no-listing'],
    ...(pruneTimeout === undefined ? {} : { pruneTimeout }),
  })
  const address = await server.listen()
  const host = address.host.includes(':') ? `[${address.host}]` : address.host
  io.stdout.write(`listening ${mode}://${host}:${address.port}\n`)
  info(`RPyC-compatible registry, pruning after ${server.pruneTimeout} ms; press Ctrl-C to stop`)
  const signal = await new Promise<string>((resolve) => {
    const done = (name: string): void => {
      process.off('SIGINT', done)
      process.off('SIGTERM', done)
      stop?.removeEventListener('abort', onStop)
      resolve(name)
    }
    const onStop = (): void => done('stop')
    process.on('SIGINT', done)
    process.on('SIGTERM', done)
    if (stop?.aborted === true) onStop()
    else stop?.addEventListener('abort', onStop, { once: true })
  })
  info(`${signal}: closing`)
  await server.close()
  return ExitCode.ok
}

function parseMs(value: string, what: string): number {
  if (!/^\d+(\.\d+)?$/.test(value.trim()) || !(Number(value) > 0)) throw new UsageError(`${what} must be a positive number of milliseconds, got "${value}"`)
  return Number(value)
}
