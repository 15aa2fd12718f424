// P-MON — what the live monitor's metrics collection costs: P1 lockstep (20,000 round trips of a
// 16-byte line + CRLF) against the labwire line echo, with no subscriber vs with a @labwire/monitor
// subscribed to the kernel's diagnostics events (counting every request into prom-client and the
// page's history). Ratio = monitored throughput / unmonitored, same run, interleaved.
import { compare, emit, forkChild, interleave, makeLines, measure, round } from './lib.mjs'
import { labwireClient, labwireLockstep } from './line-clients.mjs'

const ROUND_TRIPS = 20_000

export async function pMonitor() {
  const plain = await forkChild('servers/labwire-line-echo.mjs')
  const monitored = await forkChild('servers/labwire-line-echo-monitored.mjs')
  try {
    const { payloads } = makeLines(ROUND_TRIPS)
    const run = (server) => async () => {
      const session = await labwireClient(server.info.port, { maxInFlight: 1 }).connect()
      const result = await measure(server, () => labwireLockstep(session, payloads))
      await session.close()
      return result
    }
    const samples = await interleave({ monitored: run(monitored), plain: run(plain) })
    const { paired, out } = compare(samples, 'monitored', 'plain', ROUND_TRIPS)
    const { text } = await monitored.call('requests')
    const counted = [...text.matchAll(/^labwire_requests_total\{service="echo"[^}]*outcome="ok"\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0)
    emit({
      figure: 'P-MON',
      what: 'P1 lockstep with a monitor subscribed vs none (labwire line echo, 20,000 round trips)',
      ratio: out.ratio,
      paired_ratio: out.paired_ratio,
      cost_percent: round((1 - paired) * 100, 1),
      target: 'cost <= 3 % (paired_ratio >= 0.97)',
      pass: paired >= 0.97,
      requests_counted: counted,
      ...out,
    })
  } finally {
    await Promise.all([plain.close(), monitored.close()])
  }
}
