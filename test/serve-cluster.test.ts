// Worker pools (node:cluster) under ServiceHost: the scale rule (event-loop utilisation) grows and
// shrinks the pool; a worker over max_proc_mem_bytes is replaced. Workers run the built worker
// entry (packages/host/dist/worker.js).
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ApplicationClient } from '@labwire/application'
import { parseConfig, ServiceHost, type HostEvent } from '@labwire/host'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpClient } from '@labwire/transport-tcp'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'

const WORKER = fileURLToPath(new URL('../packages/host/dist/worker.js', import.meta.url))
if (!existsSync(WORKER)) throw new Error(`${WORKER} is missing: run "pnpm build" first (the root "pnpm test" does)`)

const line = textMarshaller(new SentinelBytesMarshaller('\n'))
let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'labwire-serve-cluster-'))
  // burn N: keep the event loop busy N ms, then answer with the worker's pid.
  await writeFile(join(dir, 'burn.mjs'), "export default (ms) => { const end = Date.now() + Number(ms); while (Date.now() < end); return String(process.pid) }\n")
  // hog: hold 200 MB, so the worker's RSS passes max_proc_mem_bytes.
  await writeFile(join(dir, 'hog.mjs'), "const kept = []\nexport default (what) => { if (what === 'hog') kept.push(Buffer.alloc(200 * 1024 * 1024, 1)); return String(process.pid) }\n")
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

function until(events: HostEvent[], test: (e: HostEvent) => boolean, limitMs: number): Promise<HostEvent> {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const timer = setInterval(() => {
      const found = events.find(test)
      if (found !== undefined) {
        clearInterval(timer)
        resolve(found)
      } else if (Date.now() - started > limitMs) {
        clearInterval(timer)
        reject(new Error(`event not seen within ${limitMs} ms; events: ${events.map((e) => (e.type === 'worker' ? `${e.event}(${e.workers})` : e.type)).join(' ')}`))
      }
    }, 25)
  })
}

describe('worker pool', () => {
  it('grows under load (mean ELU above upElu) and shrinks when idle (below downElu)', async () => {
    const events: HostEvent[] = []
    const config = parseConfig('[burn]\nimport_from = burn.mjs\nframer = line\nmin_proc_num = 1\nmax_proc_num = 2\n', join(dir, 'lab.ini'), { env: {} })
    await using host = new ServiceHost(config, {
      workerScript: WORKER,
      log: { level: 'silent' },
      onEvent: (e) => events.push(e),
      scale: { sampleMs: 200, upElu: 0.5, upSamples: 2, downElu: 0.2, downSamples: 4 },
    })
    await host.start()
    expect(host.workers('burn')).toHaveLength(1)
    const port = host.address('burn')?.port as number
    let stop = false
    const load = [...Array(4).keys()].map(async () => {
      const session = await new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), line.marshall, line.unmarshall, { timeout: 10_000 }).connect()
      try {
        while (!stop) await session.sendReceive('20')
      } finally {
        await session.close()
      }
    })
    // A failed expectation below must not leave the loops running against a closed host.
    onTestFinished(() => {
      stop = true
    })
    const grow = await until(events, (e) => e.type === 'worker' && e.event === 'grow', 10_000)
    expect(grow).toMatchObject({ type: 'worker', service: 'burn', reason: expect.stringMatching(/^mean ELU [01]\.\d\d$/) as unknown })
    await until(events, (e) => e.type === 'worker' && e.event === 'ready' && e.workers === 2, 10_000)
    stop = true
    await Promise.all(load)
    await until(events, (e) => e.type === 'worker' && e.event === 'shrink', 10_000)
    await until(events, (e) => e.type === 'worker' && e.event === 'exit' && e.workers === 1, 10_000)
    expect(host.workers('burn')).toHaveLength(1)
  }, 40_000)

  it('replaces a worker over max_proc_mem_bytes (the replacement first, then the old one drains)', async () => {
    const events: HostEvent[] = []
    const config = parseConfig('[hog]\nimport_from = hog.mjs\nframer = line\nmax_proc_mem_bytes = 180000000\n', join(dir, 'lab.ini'), { env: {} })
    await using host = new ServiceHost(config, { mode: 'cluster', workerScript: WORKER, log: { level: 'silent' }, onEvent: (e) => events.push(e) })
    await host.start()
    const port = host.address('hog')?.port as number
    const ask = async (what: string): Promise<string> => {
      const session = await new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), line.marshall, line.unmarshall, { timeout: 10_000 }).connect()
      try {
        return await session.sendReceive(what)
      } finally {
        await session.close()
      }
    }
    const first = await ask('hog')
    const retire = await until(events, (e) => e.type === 'worker' && e.event === 'retire', 10_000)
    expect(retire).toMatchObject({ pid: Number(first), reason: expect.stringMatching(/^rss \d+ > max_proc_mem_bytes 180000000$/) as unknown })
    await until(events, (e) => e.type === 'worker' && e.event === 'exit' && e.pid === Number(first), 15_000)
    const next = await ask('small')
    expect(next).not.toBe(first)
    expect(host.workers('hog')).toEqual([Number(next)])
  }, 40_000)
})
