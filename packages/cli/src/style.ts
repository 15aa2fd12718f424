/** Where the command writes, and what it reads: the process's streams by default (tests pass their own). */
export interface Io {
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean }
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean }
  readonly env: Readonly<Record<string, string | undefined>>
}

/** The process's own streams and environment. */
export function processIo(): Io {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env }
}

/** ANSI styles, or identity functions when colours are off. */
export interface Style {
  readonly enabled: boolean
  bold(text: string): string
  dim(text: string): string
  red(text: string): string
  green(text: string): string
  yellow(text: string): string
  cyan(text: string): string
}

/**
 * Colours only on a TTY: on when `stream.isTTY`, unless `NO_COLOR` is set (non-empty) or
 * `TERM=dumb`; `FORCE_COLOR` (non-empty, not `0`) turns them on anyway.
 */
export function styleFor(stream: { isTTY?: boolean }, env: Io['env']): Style {
  const force = env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '' && env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false'
  const noColor = env.NO_COLOR !== undefined && env.NO_COLOR !== ''
  const enabled = force || (stream.isTTY === true && !noColor && env.TERM !== 'dumb')
  const wrap = (open: number, close: number) => (text: string) => (enabled ? `\x1b[${open}m${text}\x1b[${close}m` : text)
  return { enabled, bold: wrap(1, 22), dim: wrap(2, 22), red: wrap(31, 39), green: wrap(32, 39), yellow: wrap(33, 39), cyan: wrap(36, 39) }
}

/** One line for an error: newlines folded, so a message never spans lines. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, '; ')
}
