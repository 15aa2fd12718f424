/**
 * Backpressure: a server whose callback never returns, while a raw client keeps writing. The
 * server must stop reading (bufferSize, then the kernel buffers fill), so the client's write()
 * stays false and the server process's memory stays bounded. The server runs in a child process
 * (test/reliability/stalled-server.mjs, on the built packages: `pnpm build` first, as `pnpm test` does)
 * that reports its memory over IPC.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import type { Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'
import { rawConnect, readUntilClose, within } from './helpers.js'
import { lineClient } from './peers.js'

const KiB = 1024
const MiB = 1024 * KiB
const ATTEMPTED = 256 * MiB
/** How long the client keeps trying to write before it concludes it is stalled. */
const WRITE_WINDOW_MS = 2_000
const MAX_RSS_GROWTH = 64 * MiB

const root = new URL('../../', import.meta.url)
const dists = ['core', 'marshallers', 'application', 'transport-tcp'].map((name) => fileURLToPath(new URL(`packages/${name}/dist/index.js`, root)))

interface Memory {
  rss: number
  heapUsed: number
  arrayBuffers: number
  stalled: number
}

type ChildMessage = ({ type: 'listening'; port: number } & Memory) | ({ type: 'memory' } & Memory)

function nextMessage<T extends ChildMessage['type']>(child: ChildProcess, type: T): Promise<Extract<ChildMessage, { type: T }>> {
  return within(
    new Promise((resolve, reject) => {
      const onMessage = (message: ChildMessage): void => {
        if (message.type !== type) return
        child.off('message', onMessage)
        child.off('exit', onExit)
        resolve(message as Extract<ChildMessage, { type: T }>)
      }
      const onExit = (code: number | null): void => {
        reject(new Error(`stalled-server exited (code ${code}) before sending '${type}'`))
      }
      child.on('message', onMessage)
      child.once('exit', onExit)
    }),
    10_000,
    `stalled-server '${type}' message`,
  )
}

/** Write `chunk` until `total` bytes are attempted or, once write() returns false, no 'drain' comes before the deadline. */
async function writeUntilStalled(socket: Socket, chunk: Buffer, total: number, deadline: number): Promise<{ attempted: number; stalled: boolean }> {
  let attempted = 0
  while (attempted < total) {
    const ok = socket.write(chunk)
    attempted += chunk.length
    if (ok) continue
    const drained = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        done(false)
      }, Math.max(0, deadline - performance.now()))
      const onDrain = (): void => {
        done(true)
      }
      const done = (value: boolean): void => {
        clearTimeout(timer)
        socket.off('drain', onDrain)
        socket.off('close', onClose)
        resolve(value)
      }
      const onClose = (): void => {
        done(false)
      }
      socket.on('drain', onDrain)
      socket.on('close', onClose)
    })
    if (!drained) return { attempted, stalled: !socket.destroyed }
  }
  return { attempted, stalled: false }
}

it('a stalled server stops reading: the client cannot write 256 MiB, the server process grows ≤ 64 MiB, and serves another client', { timeout: 30_000 }, async () => {
  const missing = dists.filter((path) => !existsSync(path))
  if (missing.length > 0) throw new Error(`run \`pnpm build\` first (as \`pnpm test\` does): missing ${missing.join(', ')}`)

  const child = fork(fileURLToPath(new URL('stalled-server.mjs', import.meta.url)), [], {
    execArgv: ['--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  try {
    const { port } = await nextMessage(child, 'listening')

    // Warm up the server's code paths so that the baseline is not mostly JIT and first-use allocations.
    {
      const session = await lineClient(port).connect()
      for (let i = 0; i < 50; i++) expect(await session.sendReceive(`warm ${i}`)).toBe(`WARM ${i}`)
      await session.close()
    }
    child.send({ type: 'memory' })
    const before = await nextMessage(child, 'memory')

    const raw = await rawConnect(port)
    const closed = readUntilClose(raw, 20_000)
    const replies: Buffer[] = []
    raw.on('data', (chunk: Buffer) => replies.push(chunk))
    raw.write('ping\n') // accepted before the stall: answered
    raw.write('stall\n')
    const deadline = performance.now() + WRITE_WINDOW_MS
    const { attempted, stalled } = await writeUntilStalled(raw, Buffer.alloc(MiB, 0x61), ATTEMPTED, deadline)

    child.send({ type: 'memory' })
    const during = await nextMessage(child, 'memory')
    const growth = during.rss - before.rss

    expect(stalled).toBe(true)
    expect(attempted).toBeLessThan(ATTEMPTED)
    expect(raw.writableLength).toBeGreaterThan(0) // bytes still waiting in the client: the server is not taking them
    expect(during.stalled).toBe(1)
    expect(Buffer.concat(replies).toString()).toBe('PING\n')
    expect(growth, `server RSS grew by ${(growth / MiB).toFixed(1)} MiB while the client attempted ${attempted / MiB} MiB`).toBeLessThanOrEqual(MAX_RSS_GROWTH)

    // Another client is served meanwhile.
    const other = await lineClient(port).connect()
    expect(await other.sendReceive('hello')).toBe('HELLO')
    await other.close()

    raw.destroy()
    await closed
  } finally {
    if (child.exitCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      child.send({ type: 'close' })
      await within(exited, 5_000, 'stalled-server exit').catch(() => child.kill('SIGKILL'))
    }
  }
})
