/** The README's DMM device service, run: measure, configure (with a remote error), a streamed waveform, a one-way beep. */
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { expect, it } from 'vitest'
import { RemoteError, RpcClient, RpcServer, codecs, defineService } from '../src/index.js'

const dmm = defineService({
  name: 'dmm',
  methods: {
    measure: { id: 1, request: codecs.string, response: codecs.float64le },
    configure: { id: 2, request: codecs.json<{ range: number; nplc: number }>(), response: codecs.none },
    waveform: { id: 3, request: codecs.tuple(codecs.uint32le, codecs.float64le), response: codecs.raw, stream: true },
    beep: { id: 4, request: codecs.none, oneWay: true },
  },
})

it('the README DMM service over TCP with exclusive access', async () => {
  let settings = { range: 10, nplc: 1 }
  let beeps = 0
  const rpc = new RpcServer(dmm, {
    measure: (fn) => (fn === 'VOLT:DC' ? 1.234 * settings.range : 0),
    configure: (next) => {
      if (next.range <= 0) throw new RangeError('range must be positive')
      settings = next
    },
    async *waveform([points, rate], ctx) {
      for (let i = 0; i < points && !ctx.signal.aborted; i += 1024) {
        yield new Uint8Array(Math.min(1024, points - i) * 8)
        await new Promise((r) => setTimeout(r, 1024_000 / rate))
      }
    },
    beep: () => {
      beeps++
    },
  })
  await using server = new TcpServer({ port: 0, callback: rpc, access: { exclusive: 'queue', queueTimeout: 5_000 } })
  const { port } = await server.listen()
  await using s = await new RpcClient(dmm, new TcpClient({ host: '127.0.0.1', port }), { timeout: 2_000 }).connect()
  await s.configure({ range: 2, nplc: 10 })
  expect(await s.measure('VOLT:DC')).toBeCloseTo(2.468)
  await expect(s.configure({ range: 0, nplc: 1 })).rejects.toMatchObject({ constructor: RemoteError, remoteName: 'RangeError', message: 'range must be positive' })
  let bytes = 0
  for await (const chunk of s.waveform([5000, 1_000_000], { timeout: 5_000 })) bytes += chunk.length
  expect(bytes).toBe(5000 * 8)
  await s.beep()
  await expect.poll(() => beeps, { timeout: 2_000 }).toBe(1)
})
