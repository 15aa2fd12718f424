// A real scraper: Debian's prometheus scrapes the monitor's /metrics on loopback, and its query
// API returns what a client did. Skipped loudly when prometheus is not installed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { bundledDevice, loadDevice, SimulatorServer } from '@labwire/simulator'
import { TcpClient } from '@labwire/transport-tcp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Monitor } from '../src/index.js'

const PROMETHEUS = ['/usr/bin/prometheus', '/usr/local/bin/prometheus'].find((path) => existsSync(path))
if (PROMETHEUS === undefined) console.warn('\n*** SKIPPING the Prometheus scrape test: Debian prometheus is not installed (apt-get install -y prometheus) ***\n')

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0))
    })
  })
}

describe.skipIf(PROMETHEUS === undefined)('Prometheus scrapes /metrics', () => {
  let dir: string
  let child: ChildProcess | undefined
  let simulator: SimulatorServer
  let monitor: Monitor
  let promPort: number
  let output = ''

  beforeAll(async () => {
    monitor = new Monitor({ port: 0 })
    simulator = new SimulatorServer({ device: await loadDevice(bundledDevice('scpi-psu')), port: 0 })
    await simulator.listen()
    monitor.addService({ name: 'psu', simulator })
    const { port } = await monitor.listen()
    dir = mkdtempSync(join(tmpdir(), 'labwire-prometheus-'))
    writeFileSync(join(dir, 'prometheus.yml'), `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: labwire\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['127.0.0.1:${port}']\n`)
    promPort = await freePort()
    child = spawn(PROMETHEUS ?? 'prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`], { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout?.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)))
    child.stderr?.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)))
  }, 30_000)

  afterAll(async () => {
    if (child?.pid !== undefined && child.exitCode === null) {
      const exited = new Promise((resolve) => child?.once('exit', resolve))
      child.kill('SIGTERM')
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))])
      if (child.exitCode === null) child.kill('SIGKILL')
    }
    await monitor?.close()
    await simulator?.close()
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  async function query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
    const response = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(expr)}`, { signal: AbortSignal.timeout(2000) })
    const body = (await response.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } }
    return body.data.result
  }

  it('/metrics passes promtool check metrics (strict exposition parser and lint)', async () => {
    const promtool = PROMETHEUS?.replace(/prometheus$/, 'promtool') ?? 'promtool'
    if (!existsSync(promtool)) {
      console.warn('*** promtool not found next to prometheus: strict parse check not run ***')
      return
    }
    const address = monitor.address
    const sim = simulator.address
    if (address === undefined || sim === undefined) throw new Error('not listening')
    // Some traffic first, so the per-command histogram, byte counters and device commands are in the text.
    {
      await using session = await new TcpClient({ host: sim.host, port: sim.port, timeout: 2000 }).connect()
      for (let i = 0; i < 2; i++) await session.request(new TextEncoder().encode('VOLT?\n')).next()
    }
    const text = await (await fetch(`http://127.0.0.1:${address.port}/metrics`, { signal: AbortSignal.timeout(2000) })).text()
    const result = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 10_000 })
    expect(text).toMatch(/^labwire_request_duration_seconds_bucket\{le="\+Inf",service="psu",command="VOLT\?"\} 2$/m)
    expect(result.stdout + result.stderr).toBe('')
    expect(result.status).toBe(0)
  })

  it('returns the commands a client sent, and the target is up', async () => {
    const address = simulator.address
    if (address === undefined) throw new Error('not listening')
    await using session = await new TcpClient({ host: address.host, port: address.port, timeout: 2000 }).connect()
    const idn = new TextEncoder().encode('*IDN?\n')
    for (let i = 0; i < 7; i++) await session.request(idn).next()
    const deadline = Date.now() + 30_000
    let count = 0
    let requests = 0
    let up = ''
    while (Date.now() < deadline) {
      try {
        const result = await query('labwire_simulator_commands_total{service="psu",command="*IDN?"}')
        count = Number(result[0]?.value[1] ?? 0)
        requests = Number((await query('labwire_request_duration_seconds_count{service="psu",command="*IDN?"}'))[0]?.value[1] ?? 0)
        up = (await query('up{job="labwire"}'))[0]?.value[1] ?? ''
        if (count >= 7 && requests >= 7 && up === '1') break
      } catch {
        // prometheus still starting
      }
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    if (count < 7) console.error(output)
    expect(up).toBe('1')
    expect(count).toBe(7)
    expect(requests).toBe(7)
  }, 40_000)
})
