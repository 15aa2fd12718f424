import { silentLogger, type AbortOptions, type Logger } from '@labwire/core'
import type { RegistryClient } from './client.js'

/** Options for {@link RegistryRegistration}. */
export interface RegistryRegistrationOptions {
  /** The client that reaches the registries. */
  client: RegistryClient
  /** The service name (or aliases). */
  name: string | readonly string[]
  /** The port the service listens on. */
  port: number
  /** Address to advertise instead of the packets' source (see {@link RegisterOptions.host}). */
  host?: string
  /** Re-register every this many ms. Default 60000 (RPyC's `REREGISTER_INTERVAL`); keep it well under the registry's prune timeout. */
  period?: number
  logger?: Logger
}

/**
 * Keeps one service registered: registers on {@link start}, again every `period`, and
 * unregisters on {@link stop}. What `labwire serve` does for a section with `auto_register = true`.
 * A registry that is down is not fatal: the failure is logged and the next period tries again.
 */
export class RegistryRegistration implements AsyncDisposable {
  private readonly options: RegistryRegistrationOptions
  private readonly period: number
  private readonly logger: Logger
  private timer: ReturnType<typeof setInterval> | undefined
  private stopping: Promise<void> | undefined
  private started = false

  constructor(options: RegistryRegistrationOptions) {
    this.options = { ...options }
    const period = options.period ?? 60_000
    if (typeof period !== 'number' || !(period > 0)) throw new RangeError(`RegistryRegistration: period must be a positive number of ms, got ${String(period)}`)
    this.period = period
    this.logger = options.logger ?? silentLogger
  }

  /** Register now and start the period. Resolves true when at least one registry acknowledged. */
  async start(options: AbortOptions = {}): Promise<boolean> {
    if (this.stopping !== undefined) throw new RangeError('RegistryRegistration: stopped')
    if (!this.started) {
      this.started = true
      this.timer = setInterval(() => void this.once(), this.period)
      this.timer.unref()
    }
    return this.once(options)
  }

  private async once(options: AbortOptions = {}): Promise<boolean> {
    const { client, name, port, host } = this.options
    try {
      await client.register(name, port, { ...(host === undefined ? {} : { host }), ...(options.signal === undefined ? {} : { signal: options.signal }) })
      return true
    } catch (error) {
      this.logger.warn({ error, name, port }, 'registry registration failed (will retry)')
      return false
    }
  }

  /** Stop re-registering and unregister. Idempotent; a registry that does not answer is logged, not thrown. */
  stop(options: AbortOptions = {}): Promise<void> {
    this.stopping ??= this.doStop(options)
    return this.stopping
  }

  private async doStop(options: AbortOptions): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer)
    if (!this.started) return
    const { client, name, port, host } = this.options
    const first = typeof name === 'string' ? name : (name[0] ?? '')
    try {
      await client.unregister(first, port, { ...(host === undefined ? {} : { host }), ...(options.signal === undefined ? {} : { signal: options.signal }) })
    } catch (error) {
      this.logger.warn({ error, name, port }, 'registry unregistration failed')
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop()
  }
}
