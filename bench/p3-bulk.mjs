// P3 — bulk: one 8 MiB FixedLengthBytesMarshaller payload echoed (labwire server: FixedLength unmarshall + echo)
// vs a bare node:net byte echo of 8 MiB. Each repetition echoes the payload ECHOES times on one connection.
// Diagnostic (no target): a bare store-and-forward echo (collect 8 MiB, concatenate once, write back), the same
// shape of work as labwire's server, which cannot answer before it has the whole frame.
import { MiB, bareClose, bareConnect, compare, emit, forkChild, interleave, measure, median, round } from './lib.mjs'
import { bareEcho, labwireBulkClient, labwireEcho, makePayload } from './bulk-clients.mjs'

const LENGTH = 8 * MiB
const ECHOES = 4

export async function p3() {
  const labwireServer = await forkChild('servers/labwire-fixed-echo.mjs', [LENGTH])
  const bareServer = await forkChild('servers/bare-echo.mjs')
  const storeServer = await forkChild('servers/bare-echo.mjs', [LENGTH])
  try {
    const payload = makePayload(LENGTH)
    const client = labwireBulkClient(labwireServer.info.port, LENGTH)
    const bareSide = (server) => async () => {
      const socket = await bareConnect(server.info.port)
      const result = await measure(server, async () => {
        for (let i = 0; i < ECHOES; i++) await bareEcho(socket, payload)
      })
      await bareClose(socket)
      return result
    }
    const samples = await interleave({
      labwire: async () => {
        const session = await client.connect()
        const result = await measure(labwireServer, async () => {
          for (let i = 0; i < ECHOES; i++) await labwireEcho(session, payload)
        })
        await session.close()
        return result
      },
      bare: bareSide(bareServer),
      bare_store_and_forward: bareSide(storeServer),
    })
    const { ratio, paired, out } = compare(samples, 'labwire', 'bare', ECHOES * LENGTH / MiB)
    const mibPerS = (side) => (ECHOES * LENGTH) / MiB / (median(samples[side].map((s) => s.ms)) / 1000)
    const store = median(samples.bare_store_and_forward.map((s) => s.ms))
    emit({
      figure: 'P3',
      what: 'bulk echo of one 8 MiB fixed-length payload (x4 per repetition, 1 session)',
      ratio: round(ratio),
      paired_ratio: round(paired),
      target: 'paired_ratio >= 0.7',
      pass: paired >= 0.7,
      labwire_mib_per_s: round(mibPerS('labwire'), 1),
      bare_mib_per_s: round(mibPerS('bare'), 1),
      bare_store_and_forward_mib_per_s: round(mibPerS('bare_store_and_forward'), 1),
      ratio_vs_bare_store_and_forward: round(store / median(samples.labwire.map((s) => s.ms))),
      cpu_note: 'cpu_us_per_op figures are per MiB echoed',
      ...out,
    })
  } finally {
    await Promise.all([labwireServer.close(), bareServer.close(), storeServer.close()])
  }
}
