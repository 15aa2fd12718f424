// Interop both ways with the real RPyC 5.3 (Debian python3-rpyc), loopback and explicit addresses
// only: RPyC's UDP/TCPRegistryClient against labwire's RegistryServer, and labwire's
// RegistryClient against RPyC's UDP/TCPRegistryServer (the classes `rpyc_registry` runs; 5.3's
// command line binds 0.0.0.0 with no host flag, so the test starts the same class on 127.0.0.1).
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { TimeoutError } from '@labwire/core'
import { RegistryClient, RegistryServer, type RegistryMode } from '@labwire/registry'
import { afterAll, describe, expect, it } from 'vitest'

const PYTHON = '/usr/bin/python3'
const PEER = fileURLToPath(new URL('./rpyc_peer.py', import.meta.url))
const run = promisify(execFile)
const hasRpyc = existsSync(PYTHON) && (await run(PYTHON, ['-c', 'import rpyc; assert int(rpyc.__version__.split(".")[0]) >= 5']).then(() => true, () => false))
if (!hasRpyc) console.warn('SKIPPED: registry interop with RPyC — /usr/bin/python3 cannot import rpyc 5.x (apt-get install python3-rpyc)')

type Action = [string, ...unknown[]]
async function rpycClient(mode: RegistryMode, port: number, actions: Action[]): Promise<unknown[]> {
  const { stdout } = await run(PYTHON, [PEER, 'client', mode, String(port), JSON.stringify(actions)], { timeout: 15_000 })
  return JSON.parse(stdout) as unknown[]
}

const children: ChildProcess[] = []
afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL')
})

/** RPyC's own registry server on 127.0.0.1, a free port; resolves with the port. */
async function rpycServer(mode: RegistryMode, pruneSeconds: number): Promise<number> {
  return (await rpycChild(['server', mode, String(pruneSeconds)])).port
}

/** Run rpyc_peer.py with `args`; resolves once it prints its port. */
async function rpycChild(args: string[]): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(PYTHON, [PEER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  child.stderr?.resume()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`rpyc_peer.py ${args[0] ?? ''} did not start within 10 s`)), 10_000)
    child.stdout.setEncoding('utf8').once('data', (line: string) => {
      clearTimeout(timer)
      resolve({ child, port: Number(line.trim()) })
    })
    child.once('exit', (code) => reject(new Error(`rpyc_peer.py ${args[0] ?? ''} exited with ${String(code)}`)))
  })
}

for (const mode of ['udp', 'tcp'] as const) {
  describe.skipIf(!hasRpyc)(`RPyC 5.3 interop over ${mode}`, () => {
    it(`RPyC's ${mode.toUpperCase()}RegistryClient against labwire's RegistryServer`, async () => {
      await using server = new RegistryServer({ port: 0, mode })
      const { port } = await server.listen()
      const first = await rpycClient(mode, port, [['register', ['Scope', 'DMM'], 18861], ['discover', 'scope'], ['list']])
      expect(first[0]).toBe(true)
      expect(first[1]).toEqual([['127.0.0.1', 18861]])
      expect((first[2] as string[]).sort()).toEqual(['DMM', 'SCOPE'])
      // labwire's client sees what RPyC registered, and RPyC sees what labwire registers.
      const client = new RegistryClient({ port, mode })
      expect(await client.discover('dmm')).toEqual([{ host: '127.0.0.1', port: 18861 }])
      await client.register('psu', 7000, { host: '192.0.2.7' })
      const second = await rpycClient(mode, port, [['discover', 'PSU'], ['unregister', 18861], ['discover', 'scope'], ['discover', 'nothing']])
      expect(second).toEqual([[['192.0.2.7', 7000]], null, [], []])
      expect(await client.discover('scope')).toEqual([])
    })

    it(`an RPyC server with auto_register registers with labwire's registry, and unregisters on stop`, async () => {
      await using server = new RegistryServer({ port: 0, mode })
      const { port } = await server.listen()
      const client = new RegistryClient({ port, mode })
      const { child, port: servicePort } = await rpycChild(['service', mode, String(port)])
      const until = Date.now() + 10_000
      while ((await client.discover('slave')).length === 0) {
        if (Date.now() > until) throw new Error('the RPyC server did not register within 10 s')
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      expect(await client.discover('SLAVE')).toEqual([{ host: '127.0.0.1', port: servicePort }])
      expect(await client.list()).toEqual(['SLAVE'])
      // SIGINT: RPyC's server closes and unregisters.
      const exited = new Promise((resolve) => child.once('exit', resolve))
      if (child.pid !== undefined) process.kill(child.pid, 'SIGINT')
      await exited
      expect(await client.discover('slave')).toEqual([])
    })

    it(`labwire's RegistryClient against RPyC's ${mode.toUpperCase()}RegistryServer, pruning with a short TTL`, async () => {
      const port = await rpycServer(mode, 1)
      const client = new RegistryClient({ port, mode, timeout: 2000 })
      expect(await client.register(['scope', 'Dmm'], 5025)).toBe(1)
      expect(await client.discover('SCOPE')).toEqual([{ host: '127.0.0.1', port: 5025 }])
      expect((await client.list()).sort()).toEqual(['DMM', 'SCOPE'])
      // RPyC sees it through its own client too.
      expect(await rpycClient(mode, port, [['discover', 'dmm']])).toEqual([[['127.0.0.1', 5025]]])
      await client.unregister('scope', 5025)
      expect(await client.discover('scope')).toEqual([])
      // RPyC's registry prunes on query only, after its TTL (1 s here).
      await client.register('brief', 5026)
      expect(await client.discover('brief')).toHaveLength(1)
      await new Promise((resolve) => setTimeout(resolve, 1300))
      expect(await client.discover('brief')).toEqual([])
      // An advertised host is a labwire extension: RPyC's registry does not acknowledge it, so the
      // call fails (rather than register the source address under the caller's nose).
      const short = new RegistryClient({ port, mode, timeout: 400 })
      await expect(short.register('adv', 5027, { host: '192.0.2.1' })).rejects.toBeInstanceOf(TimeoutError)
      expect(await client.discover('adv')).toEqual([])
    })
  })
}

if (!hasRpyc) it.skip('registry interop with RPyC 5.3: SKIPPED, python3-rpyc is missing (apt-get install python3-rpyc)', () => undefined)
