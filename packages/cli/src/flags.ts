import { parseArgs, type ParseArgsConfig } from 'node:util'
import { UsageError } from './exit-codes.js'

type Options = NonNullable<ParseArgsConfig['options']>

/**
 * `parseArgs` (strict, positionals allowed) with messages for people: an unknown flag names the
 * nearest known one ("did you mean --timeout?"), a flag missing its value says so; never Node's
 * raw text. `command` is the subcommand, for the pointer to its `--help`.
 */
export function parseFlags<T extends Options>(command: string, args: readonly string[], options: T): Parsed<T> {
  try {
    return parseArgs({ args: [...args], allowPositionals: true, strict: true, options })
  } catch (error) {
    throw usageFrom(error, command, options)
  }
}

/** What `parseArgs` returns for `options`. */
export type Parsed<T extends Options> = ReturnType<typeof parseArgs<{ args: string[]; allowPositionals: true; strict: true; options: T }>>

function usageFrom(error: unknown, command: string, options: Options): unknown {
  const code = (error as { code?: unknown } | null)?.code
  const message = error instanceof Error ? error.message : String(error)
  const help = `(labwire ${command} --help)`
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const flag = /'(-{1,2}[^'\s]*)'/.exec(message)?.[1] ?? 'that option'
    const guess = nearest(flag.replace(/^-+/, '').replace(/=.*$/, ''), Object.keys(options))
    return new UsageError(`unknown option ${flag}${guess === undefined ? '' : `; did you mean --${guess}?`} ${help}`)
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const flag = /'(-{1,2}[^'\s]+)/.exec(message)?.[1]
    const name = flag?.replace(/^-+/, '')
    const option = name === undefined ? undefined : (options[name] ?? Object.values(options).find((o) => o.short === name))
    if (option?.type === 'boolean') return new UsageError(`option ${flag ?? ''} takes no value ${help}`)
    return new UsageError(`option ${flag ?? ''} needs a value ${help}`)
  }
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return new UsageError(`unexpected argument ${help}`)
  if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')) return new UsageError(`${message.split('. ')[0] ?? message} ${help}`)
  return error
}

/** The known option closest to `typed` (edit distance ≤ 2, or a prefix), if any. */
export function nearest(typed: string, known: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Infinity
  for (const name of known) {
    const distance = name.startsWith(typed) && typed.length >= 2 ? 0.5 : editDistance(typed, name)
    if (distance < bestDistance) {
      best = name
      bestDistance = distance
    }
  }
  return bestDistance <= Math.max(2, Math.floor(typed.length / 3)) ? best : undefined
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + cost)
    }
    previous = current
  }
  return previous[b.length] as number
}
