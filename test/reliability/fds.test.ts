/**
 * Resource leaks: many connect / sendReceive / close cycles must give back every file descriptor
 * and every listener. Open fds are counted in /proc/self/fd (client and server both live in this
 * process); listener leaks on a reused AbortSignal surface as MaxListenersExceededWarning.
 */
import { expect, it } from 'vitest'
import { SOAK, openFds, until } from './helpers.js'
import { lineClient, servesFreshClient, startLineServer } from './peers.js'

// 10,000 cycles take well under 30 s here; LABWIRE_SOAK=1 runs 50,000.
const CYCLES = SOAK ? 50_000 : 10_000
const CONCURRENCY = 100

it(`${CYCLES} connect / sendReceive / close cycles (${CONCURRENCY} at a time) leave open fds at the baseline and warn about no listeners`, { timeout: SOAK ? 300_000 : 60_000 }, async () => {
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => {
    warnings.push(warning)
  }
  process.on('warning', onWarning)
  const { server, port, logger } = await startLineServer((s) => s.toUpperCase())
  try {
    const client = lineClient(port, { timeout: 10_000 })

    // One connection first, so lazily created handles (epoll, timers list) are in the baseline.
    expect(await servesFreshClient(port, 'warm-up')).toBe(true)
    await until(() => server.connectionCount === 0, 5_000, 'warm-up connection closed on the server')
    const baseline = openFds()

    // Each worker reuses one AbortSignal for all its calls: a listener left on it by connect()
    // or sendReceive() would pile up past 10 and trigger MaxListenersExceededWarning.
    let answered = 0
    const worker = async (w: number): Promise<void> => {
      const signal = new AbortController().signal
      for (let i = w; i < CYCLES; i += CONCURRENCY) {
        const session = await client.connect({ signal })
        try {
          const reply = await session.sendReceive(`c${i}`, { signal })
          expect(reply).toBe(`C${i}`)
          answered++
        } finally {
          await session.close()
        }
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)))
    expect(answered).toBe(CYCLES)

    // Server-side sockets close a moment after the clients' closes resolve.
    await until(() => server.connectionCount === 0, 10_000, 'all connections closed on the server')
    await until(() => openFds() - baseline <= 5, 5_000, `open fds back near the baseline of ${baseline} (now ${openFds()})`)
    expect(openFds() - baseline).toBeLessThanOrEqual(5)
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([])
    expect(logger.at('warn')).toEqual([])
    expect(logger.at('error')).toEqual([])
    expect(await servesFreshClient(port)).toBe(true)
  } finally {
    process.off('warning', onWarning)
    await server.close()
  }
})
