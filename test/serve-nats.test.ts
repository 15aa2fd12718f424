// `transport = nats` in a service host (issues 19 and 20): a bundled simulated device, an RPC
// service and an instrument gateway published on a real nats-server, reached by name with
// NatsClient / connectNatsRpc, and unpublished on close. examples/serve/greet.mjs imports
// @labwire/rpc from its built dist, so this file runs in the "built" vitest group.
import { fileURLToPath } from 'node:url'
import { ApplicationClient } from '@labwire/application'
import type { Logger } from '@labwire/core'
import { parseConfig, ServiceHost } from '@labwire/host'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { connectNatsRpc, NatsClient } from '@labwire/nats'
import { codecs, defineService } from '@labwire/rpc'
import { bundledDevice, loadDevice, SimulatorServer } from '@labwire/simulator'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NATS_SERVER, startCluster, type NatsNode } from '../packages/nats/test/cluster.js'

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined }
const line = textMarshaller(new SentinelBytesMarshaller('\n'))
const greet = defineService({
  name: 'greet',
  methods: {
    hello: { id: 0, request: codecs.string, response: codecs.string },
    add: { id: 2, request: codecs.tuple(codecs.int32le, codecs.int32le), response: codecs.int32le },
  },
})

if (NATS_SERVER === undefined) console.warn('SKIPPED test/serve-nats.test.ts: nats-server is not installed (apt-get install -y nats-server)')
const describeNats = NATS_SERVER === undefined ? describe.skip : describe

describeNats('labwire serve: transport = nats', () => {
  let node: NatsNode
  let instrument: SimulatorServer
  beforeAll(async () => {
    ;[node] = (await startCluster(1)) as [NatsNode]
    instrument = new SimulatorServer({ device: await loadDevice(bundledDevice('dmm')), port: 0 })
    await instrument.listen()
  }, 20_000)
  afterAll(async () => {
    await instrument?.close()
    node?.kill()
  })

  it('serves a simulator, an RPC service and a gateway by name through nats-server', { timeout: 30_000 }, async () => {
    const ini = [
      '[defaults]',
      'transport = nats',
      `nats_servers = ${node.url}`,
      '[psu]',
      `import_from = ${bundledDevice('scpi-psu')}`,
      '[Greet]',
      `import_from = ${fileURLToPath(new URL('../examples/serve/greet.mjs', import.meta.url))}`,
      '[bench-dmm]',
      `resource = tcp://127.0.0.1:${instrument.address?.port as number}`,
    ].join('\n')
    const host = new ServiceHost(parseConfig(ini, 'lab.ini', { env: {} }), { loggerFor: () => quiet })
    try {
      await host.start()
      expect(host.address('psu')?.url).toBe(`${node.url}/psu`)
      const ask = async (name: string, query: string, timeout = 5_000): Promise<string> => {
        const session = await new ApplicationClient(new NatsClient({ servers: node.url, name }), line.marshall, line.unmarshall, { timeout }).connect({ signal: AbortSignal.timeout(5_000) })
        try {
          return await session.sendReceive(query)
        } finally {
          await session.close()
        }
      }
      expect(await ask('psu', '*IDN?')).toMatch(/PSU/i)
      expect(await ask('bench-dmm', '*IDN?')).toMatch(/DMM|multimeter|34461/i)
      const rpc = await connectNatsRpc(greet, { servers: node.url, timeout: 5_000 })
      try {
        expect(await rpc.hello('nats')).toBe('hello nats')
        expect(await rpc.add([40, 2])).toBe(42)
      } finally {
        await rpc.close()
      }
      expect(await host.close({ drain: 1_000 })).toBe(true)
      // Unpublished: no instance answers any more.
      await expect(ask('psu', '*IDN?', 1_000)).rejects.toThrow(/no responders|no response|503/i)
    } finally {
      await host.close()
    }
  })

  it('a nats service without nats_servers is a config error naming the key', () => {
    expect(() => parseConfig('[psu]\ntransport = nats\nimport_from = x.yaml\n', 'lab.ini', { env: {} })).toThrow(/nats_servers/)
  })
})
