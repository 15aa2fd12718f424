/**
 * Prompt stripping for login mode: the device's shell prompt, the last line it sends before it
 * waits for the next command, is removed from the response stream.
 *
 * @module
 */
import { DEFAULT_SHELL_PROMPT, toRegExp } from './login.js'

/** Longest unfinished line held back while waiting to see whether it is the prompt. */
const MAX_HOLD = 256
const LF = 10

/**
 * Holds back the text after the last LF (at most {@link MAX_HOLD} bytes) until it is either
 * completed by a LF (then it is data) or matches the shell prompt at its end (then that whole
 * line is dropped). Complete lines are never changed.
 */
export class PromptStripper {
  private readonly pattern: RegExp
  private held: Uint8Array = new Uint8Array(0)

  constructor(shellPrompt: string | RegExp | undefined) {
    const base = toRegExp(shellPrompt ?? DEFAULT_SHELL_PROMPT)
    this.pattern = new RegExp(base.source, base.flags.includes('g') ? base.flags : `${base.flags}g`)
  }

  strip(data: Uint8Array): Uint8Array {
    if (data.length === 0) return data
    let all = data
    if (this.held.length > 0) {
      all = new Uint8Array(this.held.length + data.length)
      all.set(this.held)
      all.set(data, this.held.length)
    }
    const lineStart = all.lastIndexOf(LF) + 1
    const tail = all.subarray(lineStart)
    if (tail.length === 0) {
      this.held = new Uint8Array(0)
      return all
    }
    if (this.isPrompt(tail)) {
      this.held = new Uint8Array(0)
      return all.subarray(0, lineStart)
    }
    if (tail.length > MAX_HOLD) {
      this.held = new Uint8Array(0)
      return all
    }
    this.held = tail.slice()
    return all.subarray(0, lineStart)
  }

  private isPrompt(line: Uint8Array): boolean {
    const text = Buffer.from(line.buffer, line.byteOffset, line.byteLength).toString('latin1')
    for (const match of text.matchAll(this.pattern)) {
      if (match.index + match[0].length === text.length) return true
    }
    return false
  }
}
