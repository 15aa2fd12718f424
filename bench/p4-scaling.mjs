// P4 — scaling: 8, 32, 128 and 256 MiB fixed-length payloads echoed by labwire (FixedLengthBytesMarshaller on both
// sides). Per size and repetition a fresh server child and a fresh client child, so peak RSS is per size:
// each reports process.resourceUsage().maxRSS over IPC. Targets: time grows linearly (t256 / t8 <= 40) and the peak
// RSS of client and server stays <= 3x the payload (counted above each process's RSS before the transfer; the
// client's own copy of the payload is included).
import { MiB, REPS, emit, forkChild, median, round } from './lib.mjs'

const SIZES_MIB = [8, 32, 128, 256]
const RUNS = Math.max(1, REPS)

async function once(length) {
  const server = await forkChild('servers/labwire-fixed-echo.mjs', [length])
  let client
  try {
    const before = await server.call('stats')
    client = await forkChild('clients/fixed-echo-client.mjs', [server.info.port, length])
    const echo = await client.call('echo', {}, 120_000)
    const clientStats = await client.call('stats')
    const serverStats = await server.call('stats')
    return {
      ms: echo.ms,
      client: (clientStats.maxRSS - echo.baselineRss) / length,
      server: (serverStats.maxRSS - before.rss) / length,
      clientPeakMiB: clientStats.maxRSS / MiB,
      serverPeakMiB: serverStats.maxRSS / MiB,
    }
  } finally {
    await Promise.all([client?.close(), server.close()])
  }
}

export async function p4() {
  const bySize = {}
  // Sizes interleaved across runs (8, 32, 128, 256, 8, 32, …) so that drifting load hits every size alike.
  for (let run = 0; run < RUNS; run++) {
    for (const mib of SIZES_MIB) (bySize[mib] ??= []).push(await once(mib * MiB))
  }
  const rows = Object.fromEntries(
    SIZES_MIB.map((mib) => {
      const runs = bySize[mib]
      const ms = median(runs.map((r) => r.ms))
      return [
        `${mib}MiB`,
        {
          ms: round(ms, 1),
          mib_per_s: round(mib / (ms / 1000), 1),
          client_peak_rss_over_payload: round(Math.max(...runs.map((r) => r.client)), 2),
          server_peak_rss_over_payload: round(Math.max(...runs.map((r) => r.server)), 2),
          client_peak_rss_mib: round(Math.max(...runs.map((r) => r.clientPeakMiB)), 1),
          server_peak_rss_mib: round(Math.max(...runs.map((r) => r.serverPeakMiB)), 1),
          samples_ms: runs.map((r) => round(r.ms, 1)),
        },
      ]
    }),
  )
  const timeRatio = rows['256MiB'].ms / rows['8MiB'].ms
  // Supplementary: fastest run over fastest run, which load spikes on a shared machine disturb less than medians.
  const fastest = (mib) => Math.min(...bySize[mib].map((r) => r.ms))
  const bestRatio = fastest(256) / fastest(8)
  const worstRss = Math.max(...Object.values(rows).flatMap((r) => [r.client_peak_rss_over_payload, r.server_peak_rss_over_payload]))
  emit({
    figure: 'P4',
    what: 'scaling: 8/32/128/256 MiB fixed-length echo, fresh client and server child per size and run',
    t256_over_t8: round(timeRatio, 1),
    t256_over_t8_fastest_runs: round(bestRatio, 1),
    worst_peak_rss_over_payload: round(worstRss, 2),
    target: 't256_over_t8 <= 40 and peak RSS (above baseline) <= 3x payload',
    pass: timeRatio <= 40 && worstRss <= 3,
    runs_per_size: RUNS,
    sizes: rows,
  })
}
