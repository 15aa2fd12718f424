import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'

/** Latency buckets in seconds: from 50 µs (a lockstep query on loopback) to 10 s (a slow instrument). */
export const DURATION_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** One point of a service's history, as the page charts it. */
export interface ServicePoint {
  /** Milliseconds since the epoch (end of the sample). */
  t: number
  /** Requests per second over the sample. */
  rps: number
  /** Latency percentiles over the sample, in milliseconds (null: no request in the sample). */
  p50: number | null
  p95: number | null
  p99: number | null
  /** Errors in the sample. */
  errors: number
}

/** One point of the process's history. */
export interface ProcessPoint {
  t: number
  /** Resident set size, bytes. */
  rss: number
  /** JS heap used, bytes. */
  heapUsed: number
  /** Event-loop delay p99 over the sample, milliseconds. */
  loopDelayP99: number
}

/** How many latency samples a service keeps per sampling period (a reservoir: later samples replace random earlier ones). */
const RESERVOIR = 512

/** The in-memory side of one service's metrics: counts since the last sample and its bounded history. */
class ServiceSeries {
  requests = 0
  /** Simulator commands since the service started (device events). */
  commands = 0
  errors = 0
  private seen = 0
  private readonly reservoir: number[] = []
  readonly history: ServicePoint[] = []

  add(durationMs: number, failed: boolean): void {
    this.requests++
    if (failed) this.errors++
    this.seen++
    if (this.reservoir.length < RESERVOIR) this.reservoir.push(durationMs)
    else {
      const slot = Math.floor(Math.random() * this.seen)
      if (slot < RESERVOIR) this.reservoir[slot] = durationMs
    }
  }

  sample(now: number, elapsedMs: number, limit: number): ServicePoint {
    const sorted = this.reservoir.sort((a, b) => a - b)
    const pick = (q: number): number | null => (sorted.length === 0 ? null : round3(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0))
    const point: ServicePoint = { t: now, rps: round3((this.requests * 1000) / Math.max(1, elapsedMs)), p50: pick(0.5), p95: pick(0.95), p99: pick(0.99), errors: this.errors }
    this.requests = 0
    this.errors = 0
    this.seen = 0
    this.reservoir.length = 0
    this.history.push(point)
    if (this.history.length > limit) this.history.splice(0, this.history.length - limit)
    return point
  }
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000
}

/** Label sets kept resolved per (service, command); beyond this many, requests resolve theirs each time. */
const MAX_CHILDREN = 1024

interface RequestChildren {
  ok: Counter.Internal
  error: Counter.Internal
  duration: Histogram.Internal<'service' | 'command'>
  received: Counter.Internal
  sent: Counter.Internal
  series: ServiceSeries
}

/** What one finished request reports to {@link MonitorMetrics.request}. */
export interface RequestSample {
  service: string
  /** The simulator command or RPC method, when known. */
  command?: string | undefined
  durationMs: number
  bytesIn?: number | undefined
  bytesOut?: number | undefined
  /** The error's stable code when the request failed. */
  errorCode?: string | undefined
}

/**
 * labwire's metrics: a private prom-client {@link Registry} (never the global one) with the
 * `labwire_*` families, plus a bounded in-memory history per service for the live page.
 */
export class MonitorMetrics {
  readonly registry = new Registry()
  private readonly requests: Counter<'service' | 'command' | 'outcome'>
  private readonly duration: Histogram<'service' | 'command'>
  private readonly received: Counter<'service'>
  private readonly sent: Counter<'service'>
  private readonly errors: Counter<'service' | 'code'>
  private readonly connectionsOpen: Gauge<'service'>
  private readonly connectionsTotal: Counter<'service'>
  private readonly connectionsRefused: Counter<'service' | 'reason'>
  private readonly connectionsQueued: Gauge<'service'>
  private readonly commands: Counter<'service' | 'command'>
  private readonly commandLabels = new Map<string, Set<string>>()
  private readonly series = new Map<string, ServiceSeries>()
  private readonly children = new Map<string, RequestChildren>()
  readonly processHistory: ProcessPoint[] = []
  private readonly loopDelay: IntervalHistogram
  private lastSample = Date.now()

  /** @param historyLength points kept per series (one per sample period). */
  constructor(private readonly historyLength = 300) {
    const registers = [this.registry]
    this.requests = new Counter({ name: 'labwire_requests_total', help: 'Requests handled, by service, command (simulators) or method (RPC), and outcome (ok or error).', labelNames: ['service', 'command', 'outcome'], registers })
    this.duration = new Histogram({ name: 'labwire_request_duration_seconds', help: 'Time from a whole request to its reply being queued, by service and command/method.', labelNames: ['service', 'command'], buckets: DURATION_BUCKETS, registers })
    this.received = new Counter({ name: 'labwire_received_bytes_total', help: 'Request bytes received, by service.', labelNames: ['service'], registers })
    this.sent = new Counter({ name: 'labwire_sent_bytes_total', help: 'Reply bytes sent, by service.', labelNames: ['service'], registers })
    this.errors = new Counter({ name: 'labwire_errors_total', help: 'Failed requests and connections, by service and error code.', labelNames: ['service', 'code'], registers })
    this.connectionsOpen = new Gauge({ name: 'labwire_connections_open', help: 'Connections open now, by service.', labelNames: ['service'], registers })
    this.connectionsTotal = new Counter({ name: 'labwire_connections_total', help: 'Connections accepted, by service.', labelNames: ['service'], registers })
    this.connectionsRefused = new Counter({ name: 'labwire_connections_refused_total', help: 'Connections refused (maxConnections, exclusive access), by service and reason.', labelNames: ['service', 'reason'], registers })
    this.connectionsQueued = new Gauge({ name: 'labwire_connections_queued', help: 'Sessions waiting for exclusive access, by service.', labelNames: ['service'], registers })
    this.commands = new Counter({ name: 'labwire_simulator_commands_total', help: 'Commands a simulated device received, by service and command word (at most 64 distinct words per service; the rest count as "other").', labelNames: ['service', 'command'], registers })
    this.loopDelay = monitorEventLoopDelay({ resolution: 20 })
    this.loopDelay.enable()
    // Process metrics of our own (prom-client's defaults break Prometheus's naming lint).
    const loop = this.loopDelay
    new Gauge({ name: 'labwire_process_resident_memory_bytes', help: 'Resident set size of this process.', registers, collect() { this.set(process.memoryUsage.rss()) } })
    new Gauge({ name: 'labwire_process_heap_used_bytes', help: 'V8 heap in use.', registers, collect() { this.set(process.memoryUsage().heapUsed) } })
    new Gauge({ name: 'labwire_process_cpu_seconds', help: 'CPU time (user + system) this process has used.', registers, collect() { const cpu = process.cpuUsage(); this.set((cpu.user + cpu.system) / 1e6) } })
    new Gauge({ name: 'labwire_process_start_time_seconds', help: 'When this process started, seconds since the epoch.', registers }).set(Math.round((Date.now() - performance.now()) / 1000))
    new Gauge({ name: 'labwire_eventloop_delay_seconds', help: 'Event-loop delay percentiles since the last sample (Node monitorEventLoopDelay).', labelNames: ['percentile'], registers, collect() {
      for (const q of [50, 90, 99]) this.set({ percentile: String(q) }, Number.isFinite(loop.percentile(q)) ? loop.percentile(q) / 1e9 : 0)
    } })
  }

  /** Make a service known (its series start at zero, so it shows before its first request). */
  addService(service: string): void {
    if (!this.series.has(service)) this.series.set(service, new ServiceSeries())
    this.connectionsOpen.inc({ service }, 0)
    this.requests.inc({ service, command: '', outcome: 'ok' }, 0)
  }

  request(sample: RequestSample): void {
    const { service } = sample
    const command = sample.command ?? ''
    // The hot path: label sets are resolved once per (service, command), so a request costs a
    // few additions, not prom-client's label hashing for every family.
    const key = `${service}\u0000${command}`
    let children = this.children.get(key)
    if (children === undefined) {
      children = {
        ok: this.requests.labels({ service, command, outcome: 'ok' }),
        error: this.requests.labels({ service, command, outcome: 'error' }),
        duration: this.duration.labels({ service, command }),
        received: this.received.labels({ service }),
        sent: this.sent.labels({ service }),
        series: this.seriesOf(service),
      }
      if (this.children.size < MAX_CHILDREN) this.children.set(key, children)
    }
    const failed = sample.errorCode !== undefined
    if (failed) {
      children.error.inc()
      this.errors.inc({ service, code: sample.errorCode ?? 'ERR' })
    } else children.ok.inc()
    children.duration.observe(sample.durationMs / 1000)
    if (sample.bytesIn !== undefined && sample.bytesIn > 0) children.received.inc(sample.bytesIn)
    if (sample.bytesOut !== undefined && sample.bytesOut > 0) children.sent.inc(sample.bytesOut)
    children.series.add(sample.durationMs, failed)
  }

  /** A simulated device received a command (its first word, e.g. `VOLT?`). */
  command(service: string, word: string): void {
    let labels = this.commandLabels.get(service)
    if (labels === undefined) {
      labels = new Set()
      this.commandLabels.set(service, labels)
    }
    let command = word
    if (!labels.has(command)) {
      if (labels.size >= 64) command = 'other'
      else labels.add(command)
    }
    this.commands.inc({ service, command })
    this.seriesOf(service).commands++
  }

  connected(service: string): void {
    this.connectionsTotal.inc({ service })
    this.connectionsOpen.inc({ service })
  }

  disconnected(service: string, errorCode?: string): void {
    this.connectionsOpen.dec({ service })
    if (errorCode !== undefined) this.errors.inc({ service, code: errorCode })
  }

  refused(service: string, reason: string): void {
    this.connectionsRefused.inc({ service, reason })
  }

  queued(service: string, waiting: number): void {
    this.connectionsQueued.set({ service }, waiting)
  }

  /** Close one sampling period: a history point per service and one for the process. */
  sample(now = Date.now()): void {
    const elapsed = now - this.lastSample
    this.lastSample = now
    for (const series of this.series.values()) series.sample(now, elapsed, this.historyLength)
    const memory = process.memoryUsage()
    const p99 = this.loopDelay.percentile(99) / 1e6
    this.loopDelay.reset()
    this.processHistory.push({ t: now, rss: memory.rss, heapUsed: memory.heapUsed, loopDelayP99: round3(Number.isFinite(p99) ? p99 : 0) })
    if (this.processHistory.length > this.historyLength) this.processHistory.splice(0, this.processHistory.length - this.historyLength)
  }

  /** Simulator commands counted for a service since it started. */
  commandCount(service: string): number {
    return this.series.get(service)?.commands ?? 0
  }

  /** The bounded history of one service (empty when unknown). */
  history(service: string): readonly ServicePoint[] {
    return this.series.get(service)?.history ?? []
  }

  /** Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics()
  }

  /** The same metrics as JSON (prom-client's shape). */
  json(): Promise<unknown> {
    return this.registry.getMetricsAsJSON()
  }

  close(): void {
    this.loopDelay.disable()
    this.registry.clear()
  }

  private seriesOf(service: string): ServiceSeries {
    let series = this.series.get(service)
    if (series === undefined) {
      series = new ServiceSeries()
      this.series.set(service, series)
    }
    return series
  }
}
