/**
 * What every control-channel test file sets up: a simulated `psu` device behind a ControlServer
 * on 127.0.0.1, cleanups run after each test, and a raw HTTP request (node:http lets a test set
 * Host, unlike fetch).
 */
import { request } from 'node:http'
import { afterEach } from 'vitest'
import { ControlServer, Device, SimulatorServer, type ControlServerOptions } from '../src/index.js'

export interface ControlFixture {
  port: number
  sim: SimulatorServer
  device: Device<{ volts: number }>
  control: ControlServer
}

/** Register the after-each cleanup (call once at the top of a test file); returns the setup and the cleanup list. */
export function controlFixture(): {
  cleanups: (() => Promise<void> | void)[]
  setup: (options?: Omit<ControlServerOptions, 'servers'>) => Promise<ControlFixture>
} {
  const cleanups: (() => Promise<void> | void)[] = []
  afterEach(async () => {
    for (const f of cleanups.splice(0).reverse()) await f()
  })
  return {
    cleanups,
    setup: async (options = {}) => {
      const device = new Device({ name: 'psu', state: { volts: 1 } }).command('VOLT?', (_, d) => String(d.state.volts))
      const sim = new SimulatorServer({ device })
      await sim.listen()
      const control = new ControlServer({ servers: [sim], ...options })
      const { port } = await control.listen()
      cleanups.push(() => sim.close(), () => control.close())
      return { port, sim, device, control }
    },
  }
}

/** One HTTP request with exactly these headers; the body parsed as JSON when there is one. */
export function raw(port: number, method: string, path: string, headers: Record<string, string>, body?: string | Buffer): Promise<{ status: number; json: unknown; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, setHost: false, signal: AbortSignal.timeout(5_000) }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        resolve({ status: res.statusCode ?? 0, json: text === '' ? undefined : (JSON.parse(text) as unknown), headers: res.headers })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}
