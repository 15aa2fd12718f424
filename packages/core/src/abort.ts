import { AbortError } from './errors.js'
import type { AbortOptions } from './types.js'

/** Throw labwire's `AbortError` (with the signal's reason as `cause`) if `options.signal` is aborted. */
export function throwIfAborted(options?: AbortOptions): void {
  const signal = options?.signal
  if (signal?.aborted === true) throw abortErrorFrom(signal)
}

/** The `AbortError` for an aborted signal. */
export function abortErrorFrom(signal: AbortSignal, what = 'operation'): AbortError {
  return new AbortError(`${what} aborted`, { cause: signal.reason })
}

/**
 * Race `promise` against `signal`: reject with `AbortError` when it aborts. The listener is
 * removed when either settles. `onAbort` runs once when the abort wins (to clean up).
 */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined, what = 'operation', onAbort?: () => void): Promise<T> {
  if (signal === undefined) return promise
  if (signal.aborted) {
    onAbort?.()
    return Promise.reject(abortErrorFrom(signal, what))
  }
  return new Promise<T>((resolve, reject) => {
    const listener = (): void => {
      onAbort?.()
      reject(abortErrorFrom(signal, what))
    }
    signal.addEventListener('abort', listener, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', listener)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', listener)
        reject(error instanceof Error ? error : new AbortError(String(error)))
      },
    )
  })
}
