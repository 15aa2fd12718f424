// systemd socket activation for `labwire serve` (issue 19): the built CLI is started the way systemd
// starts it — an already-listening socket at fd 3, LISTEN_FDS=1, LISTEN_FDNAMES naming the service,
// LISTEN_PID set to the process's own pid (a shell sets it, then execs node) — and serves that
// socket without binding one. Also the fd bookkeeping (activatedSockets / assignSockets).
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ApplicationClient } from '@labwire/application'
import { activatedSockets, assignSockets } from '@labwire/host'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { bundledDevice } from '@labwire/simulator'
import { TcpClient } from '@labwire/transport-tcp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const CLI = fileURLToPath(new URL('../packages/cli/dist/cli.js', import.meta.url))
const line = textMarshaller(new SentinelBytesMarshaller('\n'))

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'labwire-activation-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('systemd socket activation', () => {
  it('reads LISTEN_FDS / LISTEN_FDNAMES for this pid only, and clears them', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_FDS: '2', LISTEN_PID: '1234', LISTEN_FDNAMES: 'psu:unknown' }
    expect(activatedSockets(env, 1234)).toEqual([
      { fd: 3, name: 'psu' },
      { fd: 4, name: 'unknown' },
    ])
    expect(env).toEqual({})
    expect(activatedSockets({ LISTEN_FDS: '1', LISTEN_PID: '99' }, 1234)).toEqual([])
    expect(activatedSockets({}, 1234)).toEqual([])
    const services = [
      { name: 'udp', eligible: false },
      { name: 'dmm', eligible: true },
      { name: 'psu', eligible: true },
    ]
    expect([...assignSockets([{ fd: 3, name: 'unknown' }, { fd: 4, name: 'psu' }], services)]).toEqual([
      ['psu', 4],
      ['dmm', 3],
    ])
  })

  it('labwire serve answers on the inherited socket it was given at fd 3', { timeout: 30_000 }, async () => {
    const config = join(dir, 'lab.ini')
    // Port 1 would need root to bind: the service can only answer if it uses the inherited socket.
    await writeFile(config, `[psu]\nimport_from = ${bundledDevice('scpi-psu')}\nport = 1\n`)
    const listening: Server = createServer()
    await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve))
    const port = (listening.address() as { port: number }).port
    const fd = (listening as unknown as { _handle: { fd: number } })._handle.fd
    expect(fd).toBeGreaterThan(2)
    let child: ChildProcess | undefined
    try {
      child = spawn('/bin/sh', ['-c', 'LISTEN_PID=$$ exec "$0" "$@"', process.execPath, CLI, 'serve', config], {
        stdio: ['ignore', 'pipe', 'pipe', fd],
        env: { ...process.env, LISTEN_FDS: '1', LISTEN_FDNAMES: 'psu', NO_COLOR: '1' },
      })
      let out = ''
      let err = ''
      child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()))
      child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()))
      await expect.poll(() => out.includes('ready') || child?.exitCode !== null, { timeout: 15_000 }).toBe(true)
      expect(err).toBe('')
      expect(out).toMatch(new RegExp(`^listening psu tcp://127\\.0\\.0\\.1:${port}$`, 'm'))
      // The test's own copy of the socket stops accepting; the child's goes on.
      await new Promise<void>((resolve) => listening.close(() => resolve()))
      const session = await new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), line.marshall, line.unmarshall, { timeout: 3_000 }).connect({ signal: AbortSignal.timeout(3_000) })
      try {
        for (let i = 0; i < 3; i++) expect(await session.sendReceive('*IDN?')).toMatch(/PSU/i)
      } finally {
        await session.close()
      }
      child.kill('SIGTERM')
      const code = await new Promise<number | null>((resolve) => child?.once('exit', (c) => resolve(c)))
      expect(code).toBe(0)
    } finally {
      if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      listening.close()
    }
  })
})
