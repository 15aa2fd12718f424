// P1 — lockstep ping-pong: 20,000 round trips of a 16-byte line + CRLF on one session.
// labwire: TcpServer + ApplicationServer(SentinelBytesMarshaller('\r\n')) echo, ApplicationClient maxInFlight 1.
// bare: node:net line echo server (bench/servers/bare-line-echo.mjs); the client writes 18 bytes, waits for the CRLF-terminated echo, repeats
// (from its data callback); bare_promise: the same with one promise per call, a second reference.
import { bareClose, bareConnect, compare, emit, forkChild, interleave, makeLines, measure, round } from './lib.mjs'
import { bareLockstep, bareLockstepPromise, labwireClient, labwireLockstep } from './line-clients.mjs'

export const ROUND_TRIPS = 20_000

export async function p1() {
  const labwireServer = await forkChild('servers/labwire-line-echo.mjs')
  const bareServer = await forkChild('servers/bare-line-echo.mjs')
  try {
    const { lines, payloads } = makeLines(ROUND_TRIPS)
    const client = labwireClient(labwireServer.info.port, { maxInFlight: 1 })
    const samples = await interleave({
      labwire: async () => {
        const session = await client.connect()
        const result = await measure(labwireServer, () => labwireLockstep(session, payloads))
        await session.close()
        return result
      },
      bare: async () => {
        const socket = await bareConnect(bareServer.info.port)
        const result = await measure(bareServer, () => bareLockstep(socket, lines, ROUND_TRIPS))
        await bareClose(socket)
        return result
      },
      bare_promise: async () => {
        const socket = await bareConnect(bareServer.info.port)
        const result = await measure(bareServer, () => bareLockstepPromise(socket, lines, ROUND_TRIPS))
        await bareClose(socket)
        return result
      },
    })
    const { paired, out } = compare(samples, 'labwire', 'bare', ROUND_TRIPS)
    const promiseRef = compare(samples, 'labwire', 'bare_promise', ROUND_TRIPS)
    emit({
      figure: 'P1',
      what: 'lockstep ping-pong, 16 B + CRLF, 20,000 round trips, 1 session',
      ratio: out.ratio,
      paired_ratio: out.paired_ratio,
      target: 'paired_ratio >= 0.95',
      pass: paired >= 0.95,
      labwire_rtt_us: round((out.labwire_ms * 1000) / ROUND_TRIPS, 2),
      bare_rtt_us: round((out.bare_ms * 1000) / ROUND_TRIPS, 2),
      labwire_ops_per_s: Math.round((ROUND_TRIPS * 1000) / out.labwire_ms),
      bare_ops_per_s: Math.round((ROUND_TRIPS * 1000) / out.bare_ms),
      // Second reference: a bare client that makes one promise per call (what any promise API pays).
      ratio_vs_bare_promise: promiseRef.out.ratio,
      paired_ratio_vs_bare_promise: promiseRef.out.paired_ratio,
      bare_promise_rtt_us: round((promiseRef.out.bare_promise_ms * 1000) / ROUND_TRIPS, 2),
      ...out,
    })
  } finally {
    await Promise.all([labwireServer.close(), bareServer.close()])
  }
}
