/** Where in a config a problem is, and what it is. */
export interface ConfigIssue {
  /** The config file (or `'environment'` for a `LABWIRE_*` variable). */
  readonly file: string
  /** The section (service name, `defaults` or `web monitor`), when the problem is inside one. */
  readonly section?: string
  /** The key, when the problem is one key's. */
  readonly key?: string
  /** 1-based line in `file`, when known. */
  readonly line?: number
  /** What is wrong, as a sentence fragment. */
  readonly reason: string
}

/** Render one issue as `file:line: [section] key: reason`. */
export function formatIssue(issue: ConfigIssue): string {
  const where = issue.line === undefined ? issue.file : `${issue.file}:${issue.line}`
  const section = issue.section === undefined ? '' : ` [${issue.section}]`
  const key = issue.key === undefined ? '' : ` ${issue.key}`
  return section === '' && key === '' ? `${where}: ${issue.reason}` : `${where}:${section}${key}: ${issue.reason}`
}

/**
 * A config file that cannot be used: unreadable, malformed, an unknown key (with the nearest known
 * one suggested), a bad value. `issues` lists every problem found, each naming file, section, key
 * and line; the message joins them.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
  readonly code = 'ERR_CONFIG' as const
  readonly issues: readonly ConfigIssue[]

  constructor(issues: readonly ConfigIssue[], options?: { cause?: unknown }) {
    super(issues.map(formatIssue).join('\n'), options)
    this.issues = issues
  }
}

/** A service that failed to start (its module would not load, its port was taken, …). `service` names it; `cause` is the error. */
export class ServiceStartError extends Error {
  override readonly name = 'ServiceStartError'
  readonly code = 'ERR_SERVICE_START' as const
  readonly service: string

  constructor(service: string, message: string, options?: { cause?: unknown }) {
    super(`service "${service}": ${message}`, options)
    this.service = service
  }
}

/** A `close({ drain })` whose deadline passed with requests still in flight (they were cut). */
export class DrainTimeoutError extends Error {
  override readonly name = 'DrainTimeoutError'
  readonly code = 'ERR_DRAIN_TIMEOUT' as const
}
