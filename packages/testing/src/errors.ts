/**
 * What a scripted device reports: a request that is not the one the script expects, or a script
 * that was not played to its end.
 *
 * @module
 */

/** A request did not match the script (or came after its end). The message is a readable diff. */
export class ScriptMismatchError extends Error {
  override readonly name = 'ScriptMismatchError'
  readonly code = 'ERR_SCRIPT_MISMATCH'

  constructor(
    message: string,
    /** 0-based index of the step that was expected (the script's length: after its end). */
    readonly step: number,
    /** What the step expected (text, or a description), `undefined` after the end of the script. */
    readonly expected: string | undefined,
    /** The request that arrived, as text. */
    readonly got: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

/** The script was not played to its end: `verify()` lists the steps still waiting. */
export class ScriptIncompleteError extends Error {
  override readonly name = 'ScriptIncompleteError'
  readonly code = 'ERR_SCRIPT_INCOMPLETE'

  constructor(
    message: string,
    /** Steps (0-based) never reached. */
    readonly remaining: readonly number[],
  ) {
    super(message)
  }
}
