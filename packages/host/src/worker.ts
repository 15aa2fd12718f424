// The entry of a cluster worker: serve one service (its job in LABWIRE_HOST_WORKER) on the socket
// the primary shares, report stats, close with a drain when told.
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { performance } from 'node:perf_hooks'
import type { ServerRequestMessage } from '@labwire/core'
import { RequestDelta } from '@labwire/monitor'
import { serviceLogger } from './logger.js'
import { WORKER_ENV, type PrimaryMessage, type WorkerJob, type WorkerMessage } from './pool.js'
import { startService } from './service.js'

/** Count the requests a kernel's server answers (`labwire:server:request`) into a {@link RequestDelta}. */
function countRequests(kernel: object | undefined): { delta: RequestDelta; stop(): void } {
  const delta = new RequestDelta()
  const listener = (raw: unknown): void => {
    const m = raw as ServerRequestMessage
    if (kernel !== undefined && m.kernel !== kernel) return
    delta.request(m.command ?? m.method, m.duration, m.bytesIn, m.bytesOut, m.error)
  }
  subscribe('labwire:server:request', listener)
  return { delta, stop: () => unsubscribe('labwire:server:request', listener) }
}

const send = (message: WorkerMessage): void => {
  if (process.connected) process.send?.(message)
}

const job = JSON.parse(process.env[WORKER_ENV] ?? 'null') as WorkerJob | null
if (job === null || process.send === undefined) {
  process.stderr.write(`labwire host worker: started without ${WORKER_ENV} or an IPC channel\n`)
  process.exit(1)
}
const logger = serviceLogger(job.service.name, job.service.logDir, job.log)
// Signals from a terminal reach the whole process group: the primary decides, the worker waits for its word.
process.on('SIGINT', () => undefined)
process.on('SIGTERM', () => undefined)
process.on('SIGHUP', () => undefined)

try {
  const service = await startService(job.service, { logger, ...(job.port === undefined ? {} : { port: job.port }) })
  send({ type: 'listening', address: service.address })
  // With a [web monitor] on the primary: count this worker's requests (the serving kernel's events)
  // and send what changed with each stats report; the primary adds every worker's up.
  const counted = job.metrics === true ? countRequests((service.server as { kernel?: object } | undefined)?.kernel) : undefined
  let last = performance.eventLoopUtilization()
  const stats = setInterval(() => {
    const now = performance.eventLoopUtilization()
    const requests = counted?.delta.take()
    send({ type: 'stats', elu: performance.eventLoopUtilization(now, last).utilization, rss: process.memoryUsage.rss(), ...(requests === undefined ? {} : { requests }) })
    last = now
  }, 250)
  stats.unref()
  let closing = false
  const close = async (drain: number): Promise<void> => {
    if (closing) return
    closing = true
    clearInterval(stats)
    counted?.stop()
    const clean = await service.close({ drain })
    send({ type: 'closed', clean })
    logger.flush()
    process.disconnect()
    process.exit(0)
  }
  process.on('message', (message: PrimaryMessage) => {
    if (message.type === 'close') void close(message.drain)
  })
  // The primary is gone: nobody will tell us to close, so close now.
  process.on('disconnect', () => void close(0))
} catch (error) {
  logger.error({ err: error }, 'worker failed to start')
  send({ type: 'failed', message: error instanceof Error ? error.message : String(error) })
  logger.flush()
  process.exit(1)
}
