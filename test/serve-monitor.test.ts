// `[web monitor]` in a service host (issues 19 and 21): the monitor listens before the services,
// /readyz is 503 until every service listens and again from the start of a drain, and /metrics
// counts the requests each service answers, per simulator command.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ApplicationClient } from '@labwire/application'
import type { Logger } from '@labwire/core'
import { parseConfig, ServiceHost } from '@labwire/host'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { bundledDevice } from '@labwire/simulator'
import { TcpClient } from '@labwire/transport-tcp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined }
const line = textMarshaller(new SentinelBytesMarshaller('\n'))

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'labwire-serve-monitor-'))
  await writeFile(join(dir, 'slow.mjs'), "await new Promise((r) => setTimeout(r, 600))\nexport default (text) => 'slow ' + text\n")
  await writeFile(join(dir, 'wait.mjs'), "export default async (ms) => { await new Promise((r) => setTimeout(r, Number(ms))); return 'waited ' + ms }\n")
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function get(port: number, path: string): Promise<{ status: number; text: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5_000) })
  return { status: response.status, text: await response.text() }
}

describe('labwire serve with a [web monitor]', () => {
  it('readyz flips at start and drain; metrics count each service and simulator command', { timeout: 30_000 }, async () => {
    const ini = [
      '[web monitor]',
      'port = 0',
      '[defaults]',
      'port = 0',
      '[slow]',
      'import_from = slow.mjs',
      'framer = line',
      'wait_until_completed = true',
      '[psu]',
      `import_from = ${bundledDevice('scpi-psu')}`,
      '[wait]',
      'import_from = wait.mjs',
      'framer = line',
    ].join('\n')
    const host = new ServiceHost(parseConfig(ini, join(dir, 'lab.ini'), { env: {} }), { mode: 'inprocess', loggerFor: () => quiet })
    try {
      const starting = host.start()
      await expect.poll(() => host.monitorAddress, { timeout: 5_000 }).toBeDefined()
      const port = host.monitorAddress?.port as number
      const early = await get(port, '/readyz')
      expect(early.status).toBe(503) // slow.mjs is still loading
      expect(JSON.parse(early.text)).toMatchObject({ ready: false })
      await starting
      const ready = await get(port, '/readyz')
      expect(ready.status).toBe(200)
      expect(JSON.parse(ready.text)).toMatchObject({ ready: true, services: { slow: 'ready', psu: 'ready', wait: 'ready' } })

      const psu = await new ApplicationClient(new TcpClient({ host: '127.0.0.1', port: host.address('psu')?.port as number }), line.marshall, line.unmarshall, { timeout: 2_000 }).connect({ signal: AbortSignal.timeout(2_000) })
      for (let i = 0; i < 3; i++) expect(await psu.sendReceive('*IDN?')).toMatch(/PSU/i)
      expect(await psu.sendReceive('*OPC?')).toBe('1')
      await psu.close()
      const metrics = (await get(port, '/metrics')).text
      expect(metrics).toMatch(/^labwire_requests_total\{service="psu",command="\*IDN\?",outcome="ok"\} 3$/m)
      expect(metrics).toMatch(/^labwire_requests_total\{service="psu",command="\*OPC\?",outcome="ok"\} 1$/m)

      // Drain: a slow request in flight is answered; readyz says 503 while it runs.
      const waiter = await new ApplicationClient(new TcpClient({ host: '127.0.0.1', port: host.address('wait')?.port as number }), line.marshall, line.unmarshall, { timeout: 5_000 }).connect({ signal: AbortSignal.timeout(2_000) })
      const answer = waiter.sendReceive('500')
      await new Promise((resolve) => setTimeout(resolve, 100))
      const closing = host.close({ drain: 3_000 })
      const during = await get(port, '/readyz')
      expect(during.status).toBe(503)
      expect(JSON.parse(during.text)).toMatchObject({ ready: false })
      expect(await answer).toBe('waited 500')
      await waiter.close()
      expect(await closing).toBe(true)
      await expect(get(port, '/healthz')).rejects.toThrow()
    } finally {
      await host.close()
    }
  })
})
