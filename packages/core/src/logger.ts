/**
 * The logger interface. Compatible with `console` and with pino: labwire calls
 * `logger.level(context, message)` with a plain object first.
 *
 * @module
 */

/** One logging method. `console.warn` and pino's `logger.warn` both satisfy it. */
export type LogMethod = (context: object, message?: string) => void

/** A logger: `console`, a pino logger, or anything with these four methods. */
export interface Logger {
  debug: LogMethod
  info: LogMethod
  warn: LogMethod
  error: LogMethod
  /** pino-style level check; when present and false for `'debug'`, debug context is never built. */
  isLevelEnabled?: (level: string) => boolean
}

const noop: LogMethod = () => undefined

/** The default logger: writes nothing anywhere. */
export const silentLogger: Logger = Object.freeze({ debug: noop, info: noop, warn: noop, error: noop })

/**
 * Log at debug level, building the context only if it will be used.
 * Hot paths call this so that a silent logger costs one comparison.
 */
export function logDebug(logger: Logger, build: () => [context: object, message: string]): void {
  if (logger === silentLogger) return
  if (logger.isLevelEnabled !== undefined && !logger.isLevelEnabled('debug')) return
  const [context, message] = build()
  logger.debug(context, message)
}
