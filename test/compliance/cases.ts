/**
 * Cases a transport cannot honour by its nature (UDP has no connection to close, for one). A
 * compliance suite called with `{ skip: { 'case title': 'why' } }` reports each such case as
 * skipped, its reason in the title; a title that matches no case is an error, so a renamed case
 * cannot be skipped silently.
 */
import { it as vitestIt, type TestFunction } from 'vitest'

export interface ComplianceOptions {
  /** Case title → why it cannot apply to this transport. */
  skip?: Readonly<Record<string, string>>
}

/** An `it` that skips the cases listed in `options.skip` (loudly) and runs the rest; call `done()` after the last case. */
export function caseRunner(suite: string, options: ComplianceOptions): ((name: string, fn: TestFunction, timeout?: number) => void) & { done(): void } {
  const skip = options.skip ?? {}
  const used = new Set<string>()
  const run = (name: string, fn: TestFunction, timeout?: number): void => {
    const reason = skip[name]
    if (reason === undefined) {
      vitestIt(name, fn, timeout)
      return
    }
    used.add(name)
    vitestIt.skip(`${name} [not applicable: ${reason}]`, fn)
  }
  return Object.assign(run, {
    done(): void {
      const unknown = Object.keys(skip).filter((name) => !used.has(name))
      if (unknown.length > 0) throw new Error(`${suite}: skip lists case(s) that do not exist: ${unknown.join('; ')}`)
    },
  })
}
