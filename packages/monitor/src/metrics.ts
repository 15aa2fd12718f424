import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'
import { Counter, Gauge, Histogram, Registry, type MetricObjectWithValues, type MetricValueWithName } from 'prom-client'

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

  /** Counts and a few durations summed up elsewhere (a cluster worker's {@link RequestDelta}). */
  absorb(requests: number, errors: number, durations: readonly number[]): void {
    this.requests += requests
    this.errors += errors
    for (const durationMs of durations) {
      this.seen++
      if (this.reservoir.length < RESERVOIR) this.reservoir.push(durationMs)
      else {
        const slot = Math.floor(Math.random() * this.seen)
        if (slot < RESERVOIR) this.reservoir[slot] = durationMs
      }
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

/** Distinct `command` label values kept per service; further commands count as `other`. */
export const MAX_COMMANDS = 64

/** One (service, command) label set, accumulated in plain JS and materialised into prom-client on scrape. */
class CommandStats {
  ok = 0
  error = 0
  /** Seconds, summed. */
  sum = 0
  /** Per bucket of {@link DURATION_BUCKETS}, not cumulative (a request above the last bound is only in the count). */
  readonly buckets = new Float64Array(DURATION_BUCKETS.length)

  constructor(readonly command: string) {}
}

/**
 * One service's request figures. {@link MonitorMetrics.serviceStats} hands it out once; the hot
 * path ({@link ServiceStats.request}) is then a few additions and at most one Map lookup.
 */
export class ServiceStats {
  /** Requests that named no command. */
  private readonly none = new CommandStats('')
  private readonly byCommand = new Map<string, CommandStats>()
  private other: CommandStats | undefined
  bytesIn = 0
  bytesOut = 0
  /** Failed requests and connections by error code (bounded like the commands). */
  readonly errors = new Map<string, number>()
  /** Simulator commands counted through {@link ServiceStats.deviceCommand}, bounded like the commands. */
  readonly deviceCommands = new Map<string, number>()
  /**
   * A simulator's service: its named requests are its device's commands too
   * (`labwire_simulator_commands_total` is read from the request records at scrape, at no cost per request).
   */
  commandsFromRequests = false
  /** @internal */
  readonly series = new ServiceSeries()

  constructor(readonly name: string) {}

  /** One finished request: `durationMs` from the handler call to the reply, `errorCode` when it failed. */
  request(command: string | undefined, durationMs: number, bytesIn: number, bytesOut: number, errorCode: string | undefined): void {
    const stats = command === undefined || command === '' ? this.none : (this.byCommand.get(command) ?? this.add(command))
    const failed = errorCode !== undefined
    if (failed) {
      stats.error++
      this.error(errorCode)
    } else stats.ok++
    const seconds = durationMs / 1000
    stats.sum += seconds
    const bounds = DURATION_BUCKETS
    for (let i = 0; i < bounds.length; i++) {
      if (seconds <= (bounds[i] as number)) {
        stats.buckets[i] = (stats.buckets[i] as number) + 1
        break
      }
    }
    if (bytesIn > 0) this.bytesIn += bytesIn
    if (bytesOut > 0) this.bytesOut += bytesOut
    this.series.add(durationMs, failed)
  }

  /** Count one error code (at most {@link MAX_COMMANDS} distinct codes; the rest as `other`). */
  error(code: string): void {
    const key = this.errors.has(code) || this.errors.size < MAX_COMMANDS ? code : 'other'
    this.errors.set(key, (this.errors.get(key) ?? 0) + 1)
  }

  /** Count one command a simulated device received. */
  deviceCommand(word: string): void {
    const key = this.deviceCommands.has(word) || this.deviceCommands.size < MAX_COMMANDS ? word : 'other'
    this.deviceCommands.set(key, (this.deviceCommands.get(key) ?? 0) + 1)
  }

  /** Device commands by word: those counted with {@link ServiceStats.deviceCommand}, and a simulator's named requests. */
  deviceCommandCounts(): [string, number][] {
    const counts = [...this.deviceCommands]
    if (this.commandsFromRequests) {
      for (const stats of this.commands()) {
        const count = stats.ok + stats.error
        if (stats.command !== '' && count > 0) counts.push([stats.command, count])
      }
    }
    return counts
  }

  /** Every label set used so far: the command-less one first. */
  /** Add what a cluster worker counted since its last report ({@link RequestDelta.take}). */
  absorb(delta: RequestDeltaData): void {
    let requests = 0
    let errors = 0
    for (const [command, ok, error, sum, buckets] of delta.commands) {
      const stats = command === '' ? this.none : (this.byCommand.get(command) ?? this.add(command))
      stats.ok += ok
      stats.error += error
      stats.sum += sum
      for (let i = 0; i < stats.buckets.length && i < buckets.length; i++) stats.buckets[i] = (stats.buckets[i] as number) + (buckets[i] as number)
      requests += ok + error
      errors += error
    }
    for (const [code, count] of delta.errors) {
      const key = this.errors.has(code) || this.errors.size < MAX_COMMANDS ? code : 'other'
      this.errors.set(key, (this.errors.get(key) ?? 0) + count)
    }
    this.bytesIn += delta.bytesIn
    this.bytesOut += delta.bytesOut
    this.series.absorb(requests, errors, delta.durations)
  }

  commands(): CommandStats[] {
    const all = [this.none, ...this.byCommand.values()]
    if (this.other !== undefined) all.push(this.other)
    return all
  }

  private add(command: string): CommandStats {
    if (this.byCommand.size >= MAX_COMMANDS) return (this.other ??= new CommandStats('other'))
    const stats = new CommandStats(command)
    this.byCommand.set(command, stats)
    return stats
  }
}

/** What {@link RequestDelta.take} hands over: plain JSON, for a cluster worker's IPC message. */
export interface RequestDeltaData {
  /** `[command, ok, error, seconds summed, per-bucket counts]`. */
  commands: [string, number, number, number, number[]][]
  /** `[error code, count]`. */
  errors: [string, number][]
  bytesIn: number
  bytesOut: number
  /** Up to 512 request durations (ms), a uniform sample, for the page's percentiles. */
  durations: number[]
}

/**
 * Request figures counted in one process and handed to another to add up ({@link ServiceStats.absorb}):
 * `labwire serve` cluster workers count their own requests and send the primary what changed every
 * 250 ms, so `/metrics` on the primary covers every worker. Bounded: at most {@link MAX_COMMANDS}
 * commands and error codes per report (the rest as `other`), 512 durations.
 */
export class RequestDelta {
  private commands = new Map<string, [string, number, number, number, number[]]>()
  private errors = new Map<string, number>()
  private bytesIn = 0
  private bytesOut = 0
  private durations: number[] = []
  private seen = 0

  request(command: string | undefined, durationMs: number, bytesIn: number, bytesOut: number, errorCode: string | undefined): void {
    const name = command ?? ''
    let entry = this.commands.get(name)
    if (entry === undefined) {
      const key = this.commands.size < MAX_COMMANDS ? name : 'other'
      entry = this.commands.get(key) ?? [key, 0, 0, 0, new Array<number>(DURATION_BUCKETS.length).fill(0)]
      this.commands.set(key, entry)
    }
    if (errorCode === undefined) entry[1]++
    else {
      entry[2]++
      const code = this.errors.has(errorCode) || this.errors.size < MAX_COMMANDS ? errorCode : 'other'
      this.errors.set(code, (this.errors.get(code) ?? 0) + 1)
    }
    const seconds = durationMs / 1000
    entry[3] += seconds
    const at = DURATION_BUCKETS.findIndex((bound) => seconds <= bound)
    if (at >= 0) entry[4][at] = (entry[4][at] as number) + 1
    if (bytesIn > 0) this.bytesIn += bytesIn
    if (bytesOut > 0) this.bytesOut += bytesOut
    this.seen++
    if (this.durations.length < RESERVOIR) this.durations.push(durationMs)
    else {
      const slot = Math.floor(Math.random() * this.seen)
      if (slot < RESERVOIR) this.durations[slot] = durationMs
    }
  }

  /** What was counted since the last call (and start again), or undefined when nothing was. */
  take(): RequestDeltaData | undefined {
    if (this.commands.size === 0 && this.bytesIn === 0 && this.bytesOut === 0) return undefined
    const data: RequestDeltaData = { commands: [...this.commands.values()], errors: [...this.errors], bytesIn: this.bytesIn, bytesOut: this.bytesOut, durations: this.durations }
    this.commands = new Map()
    this.errors = new Map()
    this.bytesIn = 0
    this.bytesOut = 0
    this.durations = []
    this.seen = 0
    return data
  }
}

type DurationValue = { labels: Record<string, string | number>; sharedLabels?: Record<string, string>; value: number; metricName: string }

/**
 * `labwire_request_duration_seconds`: a prom-client {@link Histogram} whose values come from the
 * plain-JS {@link ServiceStats} at scrape time (so a request never goes through prom-client's
 * label hashing). The exposition is prom-client's own: same name, labels, buckets and order.
 */
class AccumulatedHistogram extends Histogram<'service' | 'command'> {
  constructor(
    registry: Registry,
    private readonly services: () => Iterable<ServiceStats>,
  ) {
    super({ name: 'labwire_request_duration_seconds', help: 'Time from a whole request to its reply being queued, by service and command/method.', labelNames: ['service', 'command'], buckets: DURATION_BUCKETS, registers: [registry] })
  }

  /** What prom-client's text exposition reads (buckets carry `le` first, then the shared labels). */
  getForPromString(): Promise<{ name: string; help: string; type: string; values: DurationValue[]; aggregator: string }> {
    const values: DurationValue[] = []
    const name = 'labwire_request_duration_seconds'
    for (const service of this.services()) {
      for (const stats of service.commands()) {
        const count = stats.ok + stats.error
        if (count === 0) continue
        const sharedLabels = { service: service.name, command: stats.command }
        let cumulative = 0
        for (let i = 0; i < DURATION_BUCKETS.length; i++) {
          cumulative += stats.buckets[i] as number
          values.push({ labels: { le: DURATION_BUCKETS[i] as number }, sharedLabels, value: cumulative, metricName: `${name}_bucket` })
        }
        values.push({ labels: { le: '+Inf' }, sharedLabels, value: count, metricName: `${name}_bucket` })
        values.push({ labels: {}, sharedLabels, value: stats.sum, metricName: `${name}_sum` })
        values.push({ labels: {}, sharedLabels, value: count, metricName: `${name}_count` })
      }
    }
    return Promise.resolve({ name, help: 'Time from a whole request to its reply being queued, by service and command/method.', type: 'histogram', values, aggregator: 'sum' })
  }

  /** The same values with the labels merged, as prom-client's `get()` (JSON, cluster aggregation) gives them. */
  override async get(): Promise<MetricObjectWithValues<MetricValueWithName<'service' | 'command'>>> {
    const data = await this.getForPromString()
    // prom-client's typings list `collect` on this object; its own histograms do not return one either.
    return {
      name: data.name,
      help: data.help,
      type: data.type,
      aggregator: 'sum',
      values: data.values.map(({ labels, sharedLabels, value, metricName }) => ({ labels: { ...labels, ...sharedLabels }, value, metricName })),
    } as unknown as MetricObjectWithValues<MetricValueWithName<'service' | 'command'>>
  }
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
 *
 * Requests are counted in plain JS ({@link ServiceStats}, one per service) and materialised into
 * prom-client only when scraped (`collect()` hooks, and a histogram whose values are read from
 * the counts), so collecting costs a few additions per request.
 */
export class MonitorMetrics {
  readonly registry = new Registry()
  private readonly connectionsOpen: Gauge<'service'>
  private readonly connectionsTotal: Counter<'service'>
  private readonly connectionsRefused: Counter<'service' | 'reason'>
  private readonly connectionsQueued: Gauge<'service'>
  private readonly services = new Map<string, ServiceStats>()
  readonly processHistory: ProcessPoint[] = []
  private readonly loopDelay: IntervalHistogram
  private lastSample = Date.now()

  /** @param historyLength points kept per series (one per sample period). */
  constructor(private readonly historyLength = 300) {
    const registers = [this.registry]
    const services = (): IterableIterator<ServiceStats> => this.services.values()
    new Counter({
      name: 'labwire_requests_total',
      help: 'Requests handled, by service, command (simulators) or method (RPC), and outcome (ok or error).',
      labelNames: ['service', 'command', 'outcome'],
      registers,
      collect() {
        this.reset()
        for (const service of services()) {
          for (const stats of service.commands()) {
            this.inc({ service: service.name, command: stats.command, outcome: 'ok' }, stats.ok)
            if (stats.ok + stats.error > 0) this.inc({ service: service.name, command: stats.command, outcome: 'error' }, stats.error)
          }
        }
      },
    })
    new AccumulatedHistogram(this.registry, services)
    new Counter({
      name: 'labwire_received_bytes_total',
      help: 'Request bytes received, by service.',
      labelNames: ['service'],
      registers,
      collect() {
        this.reset()
        for (const service of services()) if (service.bytesIn > 0) this.inc({ service: service.name }, service.bytesIn)
      },
    })
    new Counter({
      name: 'labwire_sent_bytes_total',
      help: 'Reply bytes sent, by service.',
      labelNames: ['service'],
      registers,
      collect() {
        this.reset()
        for (const service of services()) if (service.bytesOut > 0) this.inc({ service: service.name }, service.bytesOut)
      },
    })
    new Counter({
      name: 'labwire_errors_total',
      help: 'Failed requests and connections, by service and error code.',
      labelNames: ['service', 'code'],
      registers,
      collect() {
        this.reset()
        for (const service of services()) for (const [code, count] of service.errors) this.inc({ service: service.name, code }, count)
      },
    })
    this.connectionsOpen = new Gauge({ name: 'labwire_connections_open', help: 'Connections open now, by service.', labelNames: ['service'], registers })
    this.connectionsTotal = new Counter({ name: 'labwire_connections_total', help: 'Connections accepted, by service.', labelNames: ['service'], registers })
    this.connectionsRefused = new Counter({ name: 'labwire_connections_refused_total', help: 'Connections refused (maxConnections, exclusive access), by service and reason.', labelNames: ['service', 'reason'], registers })
    this.connectionsQueued = new Gauge({ name: 'labwire_connections_queued', help: 'Sessions waiting for exclusive access, by service.', labelNames: ['service'], registers })
    new Counter({
      name: 'labwire_simulator_commands_total',
      help: `Commands a simulated device received, by service and command word (at most ${MAX_COMMANDS} distinct words per service; the rest count as "other").`,
      labelNames: ['service', 'command'],
      registers,
      collect() {
        this.reset()
        for (const service of services()) for (const [command, count] of service.deviceCommandCounts()) this.inc({ service: service.name, command }, count)
      },
    })
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
    this.serviceStats(service)
    this.connectionsOpen.inc({ service }, 0)
  }

  /** The figures of one service, created on first use: keep it and call its `request()` on the hot path. */
  serviceStats(service: string): ServiceStats {
    let stats = this.services.get(service)
    if (stats === undefined) {
      stats = new ServiceStats(service)
      this.services.set(service, stats)
    }
    return stats
  }

  /** One finished request (convenience over {@link MonitorMetrics.serviceStats}). */
  request(sample: RequestSample): void {
    this.serviceStats(sample.service).request(sample.command, sample.durationMs, sample.bytesIn ?? 0, sample.bytesOut ?? 0, sample.errorCode)
  }

  /** A simulated device received a command (its first word, e.g. `VOLT?`). */
  command(service: string, word: string): void {
    this.serviceStats(service).deviceCommand(word)
  }

  connected(service: string): void {
    this.connectionsTotal.inc({ service })
    this.connectionsOpen.inc({ service })
  }

  disconnected(service: string, errorCode?: string): void {
    this.connectionsOpen.dec({ service })
    if (errorCode !== undefined) this.serviceStats(service).error(errorCode)
  }

  /** A connection failed with `errorCode` (counted in `labwire_errors_total`). */
  connectionError(service: string, errorCode: string): void {
    this.serviceStats(service).error(errorCode)
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
    for (const stats of this.services.values()) stats.series.sample(now, elapsed, this.historyLength)
    const memory = process.memoryUsage()
    const p99 = this.loopDelay.percentile(99) / 1e6
    this.loopDelay.reset()
    this.processHistory.push({ t: now, rss: memory.rss, heapUsed: memory.heapUsed, loopDelayP99: round3(Number.isFinite(p99) ? p99 : 0) })
    if (this.processHistory.length > this.historyLength) this.processHistory.splice(0, this.processHistory.length - this.historyLength)
  }

  /** Simulator commands counted for a service since it started. */
  commandCount(service: string): number {
    return this.services.get(service)?.deviceCommandCounts().reduce((sum, [, count]) => sum + count, 0) ?? 0
  }

  /** The bounded history of one service (empty when unknown). */
  history(service: string): readonly ServicePoint[] {
    return this.services.get(service)?.series.history ?? []
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
}
