// P2 — pipelined: 100,000 requests (16 B + CRLF) on one session, ApplicationClient maxInFlight 64 / 256 / 1024,
// responses matched in order and checked. Compared in the same run with
//   - labwire lockstep (maxInFlight 1) on the same server: target pipelined >= 10x its throughput;
//   - bare pipelined line echo (the client writes all 100,000 lines at once, the server echoes them line by line,
//     the client splits the echo into lines and matches each to its request, as labwire does): target >= 0.7x;
//     the older baseline that only counts CRLFs is reported too (bare_count_only).
// Diagnostics (no target): the same client against a bare byte echo (no per-line work at all), and labwire with
// every call made at once (Promise.all over 100,000 sendReceive calls).
import { bareClose, bareConnect, compare, emit, forkChild, interleave, makeLines, measure, median, round } from './lib.mjs'
import { barePipelined, barePipelinedMatched, labwireBurst, labwireClient, labwireLockstep, labwirePipelined } from './line-clients.mjs'

export const REQUESTS = 100_000
const LOCKSTEP_REQUESTS = 20_000
const MAX_IN_FLIGHT = [64, 256, 1024]

export async function p2() {
  const labwireServer = await forkChild('servers/labwire-line-echo.mjs')
  const bareServer = await forkChild('servers/bare-line-echo.mjs')
  const rawServer = await forkChild('servers/bare-echo.mjs')
  try {
    const { lines, payloads } = makeLines(REQUESTS)
    const port = labwireServer.info.port
    const labwireSide = (maxInFlight, run) => async () => {
      // timeout 0: a call's limit counts its time in the queue, which is not what is measured here.
      const session = await labwireClient(port, { maxInFlight, timeout: 0 }).connect()
      const result = await measure(labwireServer, () => run(session))
      await session.close()
      return result
    }
    const sides = {
      bare: async () => {
        const socket = await bareConnect(bareServer.info.port)
        const result = await measure(bareServer, () => barePipelinedMatched(socket, lines, REQUESTS))
        await bareClose(socket)
        return result
      },
      bare_count: async () => {
        const socket = await bareConnect(bareServer.info.port)
        const result = await measure(bareServer, () => barePipelined(socket, lines, REQUESTS))
        await bareClose(socket)
        return result
      },
      bare_raw: async () => {
        const socket = await bareConnect(rawServer.info.port)
        const result = await measure(rawServer, () => barePipelined(socket, lines, REQUESTS))
        await bareClose(socket)
        return result
      },
      lockstep: labwireSide(1, (session) => labwireLockstep(session, payloads.slice(0, LOCKSTEP_REQUESTS))),
    }
    // The caller keeps 2 x maxInFlight calls outstanding, so the session always has the next request queued.
    for (const n of MAX_IN_FLIGHT) sides[`labwire_${n}`] = labwireSide(n, (session) => labwirePipelined(session, payloads, 2 * n))
    const samples = await interleave(sides)

    const perSecond = (side, count) => (count * 1000) / median(samples[side].map((s) => s.ms))
    const lockstepOps = perSecond('lockstep', LOCKSTEP_REQUESTS)
    const bareOps = perSecond('bare', REQUESTS)
    const byMaxInFlight = Object.fromEntries(MAX_IN_FLIGHT.map((n) => [n, Math.round(perSecond(`labwire_${n}`, REQUESTS))]))
    const best = MAX_IN_FLIGHT.reduce((a, b) => (byMaxInFlight[b] > byMaxInFlight[a] ? b : a))
    const { ratio, paired, out } = compare(samples, `labwire_${best}`, 'bare', REQUESTS)
    const bestOps = perSecond(`labwire_${best}`, REQUESTS)
    // Per repetition (the pipelined run against the lockstep run of the same round), then the median: steadier under load.
    const vsLockstep = median(
      samples[`labwire_${best}`].map((s, i) => REQUESTS / s.ms / (LOCKSTEP_REQUESTS / samples.lockstep[i].ms)),
    )

    // Diagnostic, not a target: every call made at once (Promise.all over 100,000 sendReceive) at the best maxInFlight.
    const burst = await labwireSide(best, (session) => labwireBurst(session, payloads))()

    emit({
      figure: 'P2',
      what: 'pipelined, 100,000 x (16 B + CRLF) on 1 session, responses matched in order',
      best_max_in_flight: best,
      ratio_vs_bare: round(ratio),
      paired_ratio_vs_bare: round(paired),
      paired_ratio_vs_labwire_lockstep: round(vsLockstep, 2),
      target: 'paired_ratio_vs_bare >= 0.7 and paired_ratio_vs_labwire_lockstep >= 10',
      pass: paired >= 0.7 && vsLockstep >= 10,
      labwire_ops_per_s: Math.round(bestOps),
      bare_ops_per_s: Math.round(bareOps),
      labwire_lockstep_ops_per_s: Math.round(lockstepOps),
      ratio_vs_labwire_lockstep_of_medians: round(bestOps / lockstepOps, 2),
      labwire_ops_per_s_by_max_in_flight: byMaxInFlight,
      bare_count_only_ops_per_s: Math.round(perSecond('bare_count', REQUESTS)),
      ratio_vs_bare_count_only: round(bestOps / perSecond('bare_count', REQUESTS)),
      bare_raw_byte_echo_ops_per_s: Math.round(perSecond('bare_raw', REQUESTS)),
      labwire_burst_promise_all_ops_per_s: Math.round((REQUESTS * 1000) / burst.ms),
      ...out,
    })
  } finally {
    await Promise.all([labwireServer.close(), bareServer.close(), rawServer.close()])
  }
}
