// `[web monitor]` over a clustered service (issues 19 and 21): each worker counts the requests it
// answers and reports them with its stats; /metrics on the primary adds every worker's up. Workers
// run the built worker entry (packages/host/dist/worker.js).
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ApplicationClient } from '@labwire/application'
import { parseConfig, ServiceHost } from '@labwire/host'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpClient } from '@labwire/transport-tcp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const WORKER = fileURLToPath(new URL('../packages/host/dist/worker.js', import.meta.url))
if (!existsSync(WORKER)) throw new Error(`${WORKER} is missing: run "pnpm build" first (the root "pnpm test" does)`)
const line = textMarshaller(new SentinelBytesMarshaller('\n'))

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'labwire-cluster-metrics-'))
  await writeFile(join(dir, 'pid.mjs'), "export default (what) => (what === 'fail' ? (() => { throw new Error('asked to fail') })() : String(process.pid))\n")
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function metricsText(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5_000) })
  return response.text()
}

const total = (text: string, outcome: string): number =>
  [...text.matchAll(new RegExp(`^labwire_requests_total\\{service="work",command="[^"]*",outcome="${outcome}"\\} (\\d+)$`, 'gm'))].reduce((sum, m) => sum + Number(m[1]), 0)

describe('cluster workers and the [web monitor]', () => {
  it('the primary /metrics counts the requests of both workers', { timeout: 40_000 }, async () => {
    const config = parseConfig('[web monitor]\nport = 0\n[work]\nimport_from = pid.mjs\nframer = line\nport = 0\nmin_proc_num = 2\nmax_proc_num = 2\n', join(dir, 'lab.ini'), { env: {} })
    await using host = new ServiceHost(config, { workerScript: WORKER, log: { level: 'silent' }, mode: 'cluster' })
    await host.start()
    expect(host.workers('work')).toHaveLength(2)
    const port = host.address('work')?.port as number
    const pids = new Set<string>()
    let answered = 0
    // New connections until both workers have answered (the primary hands connections out round-robin).
    for (let c = 0; c < 20 && (pids.size < 2 || answered < 40); c++) {
      const session = await new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), line.marshall, line.unmarshall, { timeout: 5_000 }).connect({ signal: AbortSignal.timeout(5_000) })
      for (let i = 0; i < 5; i++) {
        pids.add(await session.sendReceive('pid'))
        answered++
      }
      await session.close()
    }
    expect(pids.size).toBe(2)
    const monitorPort = host.monitorAddress?.port as number
    await expect.poll(async () => total(await metricsText(monitorPort), 'ok'), { timeout: 5_000, interval: 100 }).toBe(answered)
    const text = await metricsText(monitorPort)
    expect(text).toMatch(new RegExp(`^labwire_request_duration_seconds_count\\{service="work",command=""\\} ${answered}$`, 'm'))
  })
})
