// The built `labwire` binary on nats://host:port/NAME: query and a piped shell, as a user runs them,
// against a simulated power supply published with NatsServer on a real nats-server (loopback).
import { NatsServer } from '@labwire/nats'
import { bundledDevice, loadDevice } from '@labwire/simulator'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NATS_SERVER, freePorts, startCluster, type NatsNode } from '../../nats/test/cluster.js'
import { run } from './helpers.js'

if (NATS_SERVER === undefined) {
  console.warn('SKIPPED: labwire binary on nats:// — nats-server is not installed (apt-get install nats-server)')
  it.skip('labwire binary on nats://: SKIPPED, nats-server is missing (apt-get install nats-server)', () => undefined)
}

describe.skipIf(NATS_SERVER === undefined)('labwire (built binary) on nats://host:port/NAME', () => {
  let node: NatsNode
  let service: NatsServer
  let resource: string

  beforeAll(async () => {
    node = (await startCluster(1))[0] as NatsNode
    service = new NatsServer({ servers: node.url, name: 'psu', callback: (await loadDevice(bundledDevice('scpi-psu'))).handler(), maxConcurrent: 1 })
    await service.listen()
    resource = `nats://127.0.0.1:${node.port}/psu`
  }, 20_000)
  afterAll(async () => {
    await service?.close()
    node?.kill()
  })

  it("labwire query nats://…/psu '*IDN?' 'VOLT 4' 'VOLT?'", async () => {
    const result = await run(['query', resource, '*IDN?', 'VOLT 4', 'VOLT?'])
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toBe('labwire,SIM-PSU,0001,0.1.0\n4.000\n')
  })

  it('printf … | labwire shell nats://…/psu', async () => {
    const result = await run(['shell', resource], { input: '*IDN?\nCURR 0.5\nCURR?\n' })
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toBe('labwire,SIM-PSU,0001,0.1.0\n0.500\n')
  })

  it('no nats-server there: exit 3 with a one-line message, quickly', async () => {
    const [dead] = await freePorts(1)
    const started = Date.now()
    const result = await run(['query', `nats://127.0.0.1:${dead}/psu`, '*IDN?', '--timeout', '2000'])
    expect(result.code).toBe(3)
    expect(result.stderr).toMatch(/^labwire query: nats:\/\/127\.0\.0\.1:\d+\/psu: connection failed: NATS nats:\/\/127\.0\.0\.1:\d+: /)
    expect(result.stderr.trim().split('\n')).toHaveLength(1)
    expect(Date.now() - started).toBeLessThan(5000)
  })
})
