import { AbortError, ConnectionClosedError, ConnectionError, FramingError, TimeoutError } from '@labwire/core'

/**
 * The exit codes of the `labwire` command. Scripts can rely on them: each failure mode has its own.
 *
 * | code | name | when |
 * |---|---|---|
 * | 0 | `ok` | success |
 * | 1 | `internal` | an unexpected failure (a bug: please report it) |
 * | 2 | `usage` | bad arguments: unknown flag, bad resource string, bad terminator or number |
 * | 3 | `connection` | could not connect (refused, unreachable, DNS), a write failed, or a server could not listen |
 * | 4 | `timeout` | no reply (or no connection) within `--timeout` |
 * | 5 | `framing` | a reply could not be framed: over the maximum length, a malformed IEEE block |
 * | 6 | `closed` | the instrument closed the connection before replying |
 * | 7 | `unavailable` | a feature not in this build, or one that needs a package that is missing |
 * | 8 | `device` | `sim`: the device file cannot be read or is invalid |
 * | 9 | `output` | the output could not be written whole (stdout closed or failed before it was flushed) |
 * | 130 | `interrupted` | stopped by SIGINT (Ctrl-C) while waiting (`query`) |
 */
export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  connection: 3,
  timeout: 4,
  framing: 5,
  closed: 6,
  unavailable: 7,
  device: 8,
  output: 9,
  interrupted: 130,
} as const

/** One of the values of {@link ExitCode}. */
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode]

/** Bad command-line input. Exit code 2. */
export class UsageError extends Error {
  override readonly name: string = 'UsageError'
  readonly code: string = 'ERR_USAGE'
}

/** A feature that is not available in this build. Exit code 7. */
export class UnavailableError extends Error {
  override readonly name = 'UnavailableError'
  readonly code = 'ERR_UNAVAILABLE'
}

/** A device file that cannot be loaded. Exit code 8. */
export class DeviceFileError extends Error {
  override readonly name = 'DeviceFileError'
  readonly code = 'ERR_DEVICE_FILE'
}

/**
 * The exit code for an error. A `ConnectionError` whose cause is a framing error or a closed
 * connection (a session that failed) gets the code of its cause.
 */
export function exitCodeOf(error: unknown): ExitCodeValue {
  if (error instanceof UsageError) return ExitCode.usage
  if (error instanceof UnavailableError) return ExitCode.unavailable
  if (error instanceof DeviceFileError) return ExitCode.device
  if (error instanceof TimeoutError) return ExitCode.timeout
  if (error instanceof FramingError) return ExitCode.framing
  if (error instanceof ConnectionClosedError) return ExitCode.closed
  if (error instanceof AbortError) return ExitCode.interrupted
  if (error instanceof ConnectionError) {
    const cause: unknown = error.cause
    if (cause instanceof FramingError || cause instanceof ConnectionClosedError || cause instanceof TimeoutError) return exitCodeOf(cause)
    return ExitCode.connection
  }
  return ExitCode.internal
}

/** A short name for the failure mode, used in messages and `--json` output. */
export function exitCodeName(code: ExitCodeValue): keyof typeof ExitCode {
  for (const [name, value] of Object.entries(ExitCode)) if (value === code) return name as keyof typeof ExitCode
  return 'internal'
}
