import type { Logger } from '@labwire/core'
import { UsageError } from './exit-codes.js'
import type { Style } from './style.js'
import { visibleLine } from './visible.js'

/** The levels `--log-level` takes, most to least verbose; `silent` prints nothing. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const

/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number]

/** Parse a `--log-level` value. Throws `UsageError`. */
export function parseLogLevel(value: string): LogLevel {
  const level = value.toLowerCase()
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${value}"`)
  return level as LogLevel
}

/**
 * A labwire `Logger` writing one line per record to `write` (stderr): `labwire sim: error: command
 * failed (device=psu query="VOLT?"): bad format`, device text escaped. Records below `level` are dropped.
 */
export function lineLogger(prefix: string, level: LogLevel, write: (line: string) => void, style?: Style): Logger {
  const rank = LOG_LEVELS.indexOf(level)
  const method = (name: Exclude<LogLevel, 'silent'>) => {
    if (LOG_LEVELS.indexOf(name) < rank) return () => undefined
    const paint = style === undefined ? undefined : (text: string): string => (name === 'error' ? style.red(text) : name === 'warn' ? style.yellow(text) : style.dim(text))
    return (context: object, message?: string): void => {
      const { err, ...rest } = context as { err?: unknown } & Record<string, unknown>
      const fields = Object.entries(rest)
        .filter(([, value]) => value !== undefined && typeof value !== 'object')
        .map(([key, value]) => `${key}=${typeof value === 'string' ? JSON.stringify(value) : String(value)}`)
      const reason = err === undefined ? '' : `: ${err instanceof Error ? `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}` : typeof err === 'string' ? err : JSON.stringify(err)}`
      const text = visibleLine(`${message ?? ''}${fields.length > 0 ? ` (${fields.join(' ')})` : ''}${reason}`)
      write(`${paint === undefined ? `${prefix}: ${name}:` : paint(`${prefix}: ${name}:`)} ${text}\n`)
    }
  }
  return {
    debug: method('debug'),
    info: method('info'),
    warn: method('warn'),
    error: method('error'),
    isLevelEnabled: (name) => LOG_LEVELS.indexOf(name as LogLevel) >= rank && rank < LOG_LEVELS.length - 1,
  }
}
