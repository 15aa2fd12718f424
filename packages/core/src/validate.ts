/**
 * Option checks shared by every constructor: a bad number is a `RangeError` naming the option and
 * the value received, at construction time, never a surprise later.
 *
 * @module
 */

/** The longest delay Node's timers honour (2³¹ − 1 ms, about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_DELAY = 2 ** 31 - 1

/** `ms` clamped to what `setTimeout` can wait (≤ 2³¹ − 1 ms); longer waits are re-armed by {@link longTimeout}. */
export function clampDelay(ms: number): number {
  return ms > MAX_TIMER_DELAY ? MAX_TIMER_DELAY : ms < 0 ? 0 : ms
}

/**
 * `setTimeout` for any delay: waits longer than 2³¹ − 1 ms are chained instead of firing at once.
 * Returns a function that cancels it.
 */
export function longTimeout(callback: () => void, ms: number): () => void {
  let timer: ReturnType<typeof setTimeout>
  const due = Date.now() + ms
  const arm = (left: number): void => {
    timer = setTimeout(() => {
      const remaining = due - Date.now()
      if (remaining > 0) arm(remaining)
      else callback()
    }, clampDelay(left))
  }
  arm(ms)
  return () => clearTimeout(timer)
}

function describe(value: unknown): string {
  return typeof value === 'string' ? `the string '${value}'` : String(value)
}

/** A TCP/UDP port: an integer 0–65535 (0 = pick a free one). */
export function checkPort(owner: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 65535) {
    throw new RangeError(`${owner}: port must be an integer from 0 to 65535, got ${describe(value)}`)
  }
  return value
}

/**
 * A duration in milliseconds: a non-negative number; `0` and `Infinity` mean "no limit" everywhere
 * in labwire, and come back as `undefined`.
 */
export function checkDuration(owner: string, name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    throw new RangeError(`${owner}: ${name} must be a non-negative number of milliseconds (0 = no limit), got ${describe(value)}`)
  }
  return value === 0 || value === Infinity ? undefined : value
}

/** A positive integer count (or `Infinity` where `allowInfinity`). */
export function checkCount(owner: string, name: string, value: unknown, options: { min?: number; allowInfinity?: boolean } = {}): number {
  const min = options.min ?? 1
  if (typeof value === 'number' && value === Infinity && options.allowInfinity === true) return value
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new RangeError(`${owner}: ${name} must be an integer ≥ ${min}${options.allowInfinity === true ? ' (or Infinity)' : ''}, got ${describe(value)}`)
  }
  return value
}
