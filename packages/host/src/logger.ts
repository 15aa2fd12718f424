import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from '@labwire/core'
import { pino, type Logger as PinoLogger } from 'pino'

/** Where a host's JSON logs go. */
export interface LogOptions {
  /** Minimum level: `debug`, `info` (default), `warn`, `error`, or `silent`. */
  level?: 'debug' | 'info' | 'warn' | 'error' | 'silent'
  /** File descriptor for services without a `log_dir` (default 1, stdout; `--mode stdio` uses 2). */
  fd?: number
}

/** A pino logger for one service: JSON lines into `<log_dir>/<service>.log`, or to `fd`. `flush()` before exit. */
export function serviceLogger(service: string, logDir: string | undefined, options: LogOptions = {}): Logger & { flush(): void; pino: PinoLogger } {
  let destination
  if (logDir === undefined) destination = pino.destination({ dest: options.fd ?? 1, sync: true })
  else {
    mkdirSync(logDir, { recursive: true })
    destination = pino.destination({ dest: join(logDir, `${service.replace(/[^A-Za-z0-9_.-]/g, '_')}.log`), sync: true })
  }
  const logger = pino({ level: options.level ?? 'info', base: { pid: process.pid, service } }, destination)
  return {
    pino: logger,
    debug: (context, message) => logger.debug(context, message),
    info: (context, message) => logger.info(context, message),
    warn: (context, message) => logger.warn(context, message),
    error: (context, message) => logger.error(context, message),
    isLevelEnabled: (level) => logger.isLevelEnabled(level),
    flush: () => destination.flushSync(),
  }
}
