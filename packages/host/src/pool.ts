import cluster, { type Worker } from 'node:cluster'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Logger } from '@labwire/core'
import type { RequestDeltaData } from '@labwire/monitor'
import type { ServiceConfig } from './config.js'
import { ServiceStartError } from './errors.js'
import type { LogOptions } from './logger.js'
import type { ServiceAddress } from './service.js'

/**
 * The scale rule. Every worker reports its event-loop utilisation (ELU: the share of time its
 * loop was busy) every `sampleMs`. When the pool's mean ELU stays above `upElu` for `upSamples`
 * samples in a row, one worker is added (up to `max_proc_num`); when it stays below `downElu` for
 * `downSamples` samples, one is retired (down to `min_proc_num`). ELU, not CPU: a worker whose
 * loop is busy cannot take more work, whatever the machine's CPU says.
 */
export interface ScaleOptions {
  sampleMs: number
  upElu: number
  upSamples: number
  downElu: number
  downSamples: number
  /** First respawn delay after a worker dies; doubles per death in a row, up to `maxBackoffMs`. */
  backoffMs: number
  maxBackoffMs: number
  /** A worker that lived this long resets the backoff. */
  stableMs: number
}

const DEFAULT_SCALE: ScaleOptions = { sampleMs: 1_000, upElu: 0.7, upSamples: 3, downElu: 0.2, downSamples: 30, backoffMs: 100, maxBackoffMs: 10_000, stableMs: 10_000 }

/** Messages between the pool and its workers. */
export type WorkerMessage =
  | { type: 'listening'; address: ServiceAddress }
  | { type: 'failed'; message: string }
  | { type: 'stats'; elu: number; rss: number; requests?: RequestDeltaData }
  | { type: 'closed'; clean: boolean }

/** What the primary tells a worker. */
export type PrimaryMessage = { type: 'close'; drain: number }

/** The environment variable carrying a worker's job. */
export const WORKER_ENV = 'LABWIRE_HOST_WORKER'

/** A worker's job: its service, port and log settings. */
export interface WorkerJob {
  service: ServiceConfig
  port?: number
  log?: LogOptions
  /** Count requests and report them with the stats (the host serves a `[web monitor]`). */
  metrics?: boolean
}

interface Member {
  worker: Worker
  born: number
  elu: number
  rss: number
  retiring: boolean
  listening: boolean
}

/** Options for {@link WorkerPool}. */
export interface WorkerPoolOptions {
  logger: Logger
  port?: number
  workerScript?: string
  scale?: Partial<ScaleOptions>
  log?: LogOptions
  onEvent?: (event: { event: 'spawn' | 'ready' | 'exit' | 'retire' | 'grow' | 'shrink'; pid: number; reason?: string; workers: number }) => void
  /** Workers count their requests and report them here (every 250 ms): for a `[web monitor]` on the primary. */
  onMetrics?: (requests: RequestDeltaData) => void
}

/** The built worker entry next to this module (dist/worker.js). */
export function defaultWorkerScript(): string {
  return fileURLToPath(new URL('./worker.js', import.meta.url))
}

/** One service served by `node:cluster` workers sharing its listening socket. */
export class WorkerPool {
  private readonly config: ServiceConfig
  private readonly options: WorkerPoolOptions
  private readonly scale: ScaleOptions
  private readonly members = new Map<number, Member>()
  /**
   * The port workers are forked with. node:cluster shares one listening handle per (host, port)
   * as asked: with port 0 every worker must ask for 0 to share the first one's socket. When every
   * worker has died the handle is gone; new ones then ask for the port it had.
   */
  private port: number | undefined
  private address: ServiceAddress | undefined
  private deaths = 0
  private above = 0
  private below = 0
  private sampler: ReturnType<typeof setInterval> | undefined
  private closing = false
  private readonly timers = new Set<ReturnType<typeof setTimeout>>()

  constructor(config: ServiceConfig, options: WorkerPoolOptions) {
    this.config = config
    this.options = options
    this.scale = { ...DEFAULT_SCALE, ...options.scale }
    this.port = options.port ?? config.port
  }

  /** Worker PIDs. */
  pids(): number[] {
    return [...this.members.values()].filter((m) => !m.retiring).map((m) => m.worker.process.pid ?? 0)
  }

  /** Fork `min_proc_num` workers; resolves when all listen, rejects with the first failure. */
  async start(): Promise<ServiceAddress> {
    const script = this.options.workerScript ?? defaultWorkerScript()
    if (!existsSync(script)) throw new ServiceStartError(this.config.name, `cluster mode needs the worker entry ${script} (build @labwire/host, or run with --mode inprocess)`)
    cluster.setupPrimary({ exec: script, args: [], silent: false })
    // The first worker binds (port 0 picks the port); the others share its socket.
    const first = this.spawn()
    this.address = await this.listening(first)
    const rest: Promise<ServiceAddress>[] = []
    for (let i = 1; i < this.config.minProcNum; i++) rest.push(this.listening(this.spawn()))
    try {
      await Promise.all(rest)
    } catch (error) {
      await this.close({ drain: 0 })
      throw error
    }
    this.sampler = setInterval(() => this.sample(), this.scale.sampleMs)
    this.sampler.unref()
    return this.address
  }

  /** Ask every worker to drain and close; kill those still alive `drain + 2000` ms later. Resolves `true` when all closed clean. */
  async close(options: { drain?: number } = {}): Promise<boolean> {
    this.closing = true
    if (this.sampler !== undefined) clearInterval(this.sampler)
    for (const timer of this.timers) clearTimeout(timer)
    const drain = options.drain ?? 0
    const results = await Promise.all([...this.members.values()].map((m) => this.stopWorker(m, drain)))
    return results.every(Boolean)
  }

  private spawn(): Worker {
    const job: WorkerJob = { service: this.config, ...(this.port === undefined ? {} : { port: this.port }), ...(this.options.log === undefined ? {} : { log: this.options.log }), ...(this.options.onMetrics === undefined ? {} : { metrics: true }) }
    const worker = cluster.fork({ [WORKER_ENV]: JSON.stringify(job) })
    const member: Member = { worker, born: Date.now(), elu: 0, rss: 0, retiring: false, listening: false }
    const pid = worker.process.pid ?? 0
    this.members.set(worker.id, member)
    worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'stats') {
        member.elu = message.elu
        member.rss = message.rss
        if (message.requests !== undefined) this.options.onMetrics?.(message.requests)
        if (this.config.maxProcMemBytes !== undefined && message.rss > this.config.maxProcMemBytes && !member.retiring && !this.closing) {
          this.options.logger.warn({ pid, rss: message.rss, max: this.config.maxProcMemBytes }, 'worker over max_proc_mem_bytes: replacing it')
          this.replace(member, `rss ${message.rss} > max_proc_mem_bytes ${this.config.maxProcMemBytes}`)
        }
      } else if (message.type === 'listening') {
        member.listening = true
        this.options.onEvent?.({ event: 'ready', pid, workers: this.pids().length })
      }
    })
    worker.on('exit', (code, signal) => {
      this.members.delete(worker.id)
      if (this.members.size === 0 && this.address !== undefined) this.port = this.address.port
      const reason = signal === null ? `exit code ${String(code)}` : `signal ${signal}`
      this.options.onEvent?.({ event: 'exit', pid, reason, workers: this.pids().length })
      if (this.closing || member.retiring) return
      // Died unasked: respawn with backoff (reset after a worker that lived long enough).
      if (Date.now() - member.born >= this.scale.stableMs) this.deaths = 0
      const wait = Math.min(this.scale.maxBackoffMs, this.scale.backoffMs * 2 ** this.deaths)
      this.deaths++
      this.options.logger.warn({ pid, reason, respawnInMs: wait }, 'worker died: respawning')
      this.later(wait, () => {
        if (!this.closing && this.pids().length < this.config.maxProcNum) {
          this.listening(this.spawn()).catch((error: unknown) => this.options.logger.error({ err: error }, 'respawned worker failed'))
        }
      })
    })
    this.options.onEvent?.({ event: 'spawn', pid, workers: this.pids().length })
    this.options.logger.info({ pid }, 'worker forked')
    return worker
  }

  private later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      fn()
    }, ms)
    this.timers.add(timer)
  }

  private listening(worker: Worker): Promise<ServiceAddress> {
    return new Promise<ServiceAddress>((resolve, reject) => {
      const onMessage = (message: WorkerMessage): void => {
        if (message.type === 'listening') {
          cleanup()
          resolve(message.address)
        } else if (message.type === 'failed') {
          cleanup()
          reject(new ServiceStartError(this.config.name, message.message.replace(/^service "[^"]*": /, '')))
        }
      }
      const onExit = (code: number | null, signal: string | null): void => {
        cleanup()
        reject(new ServiceStartError(this.config.name, `worker exited before listening (${signal ?? `exit code ${String(code)}`})`))
      }
      const cleanup = (): void => {
        worker.off('message', onMessage)
        worker.off('exit', onExit)
      }
      worker.on('message', onMessage)
      worker.on('exit', onExit)
    })
  }

  private replace(member: Member, reason: string): void {
    member.retiring = true
    this.options.onEvent?.({ event: 'retire', pid: member.worker.process.pid ?? 0, reason, workers: this.pids().length })
    // The replacement first, so the service never has fewer workers than it should.
    this.listening(this.spawn())
      .catch((error: unknown) => this.options.logger.error({ err: error }, 'replacement worker failed'))
      .finally(() => void this.stopWorker(member, 5_000))
  }

  private sample(): void {
    const live = [...this.members.values()].filter((m) => !m.retiring && m.listening)
    if (live.length === 0 || this.closing) return
    const mean = live.reduce((sum, m) => sum + m.elu, 0) / live.length
    this.above = mean > this.scale.upElu ? this.above + 1 : 0
    this.below = mean < this.scale.downElu ? this.below + 1 : 0
    if (this.above >= this.scale.upSamples && this.pids().length < this.config.maxProcNum) {
      this.above = 0
      const worker = this.spawn()
      this.options.logger.info({ elu: mean, workers: this.pids().length }, 'scale up')
      this.options.onEvent?.({ event: 'grow', pid: worker.process.pid ?? 0, reason: `mean ELU ${mean.toFixed(2)}`, workers: this.pids().length })
      this.listening(worker).catch((error: unknown) => this.options.logger.error({ err: error }, 'scale-up worker failed'))
    } else if (this.below >= this.scale.downSamples && live.length > this.config.minProcNum) {
      this.below = 0
      const youngest = live.sort((a, b) => b.born - a.born)[0] as Member
      youngest.retiring = true
      this.options.logger.info({ elu: mean, pid: youngest.worker.process.pid }, 'scale down')
      this.options.onEvent?.({ event: 'shrink', pid: youngest.worker.process.pid ?? 0, reason: `mean ELU ${mean.toFixed(2)}`, workers: this.pids().length })
      void this.stopWorker(youngest, 5_000)
    }
  }

  /** Drain one worker: ask it to close, wait for its answer and its exit, kill it after the deadline. */
  private stopWorker(member: Member, drain: number): Promise<boolean> {
    member.retiring = true
    const { worker } = member
    if (worker.isDead()) return Promise.resolve(true)
    return new Promise<boolean>((resolve) => {
      let clean = false
      const onMessage = (message: WorkerMessage): void => {
        if (message.type === 'closed') clean = message.clean
      }
      const timer = setTimeout(() => {
        worker.process.kill('SIGKILL')
      }, drain + 2_000)
      worker.on('message', onMessage)
      worker.once('exit', () => {
        clearTimeout(timer)
        worker.off('message', onMessage)
        resolve(clean)
      })
      try {
        worker.send({ type: 'close', drain } satisfies PrimaryMessage)
      } catch {
        worker.process.kill('SIGKILL')
      }
    })
  }
}
