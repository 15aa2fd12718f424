/**
 * Device text made safe for a terminal: control characters cannot clear the screen, set the
 * clipboard (OSC 52), move the cursor or fake a line.
 *
 * @module
 */

/** C0 controls except `\n` and `\t`, DEL, C1 controls, and the bidirectional overrides (Trojan-source style reordering). */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

/**
 * `text` with every control character except `\n` and `\t` written visibly: `\r`, `\0`, `\x1b`,
 * `\x9b`, `\u202e`. What `labwire query` and `shell` print unless `--raw`.
 */
export function visible(text: string): string {
  return text.replace(UNSAFE, escapeChar)
}

/** Like {@link visible}, and `\n`, `\t` too: for one-line messages that quote device text. */
export function visibleLine(text: string): string {
  return visible(text).replace(/[\n\t]/g, escapeChar)
}

/** JSON text with DEL, C1 controls and bidi overrides escaped too (`JSON.stringify` leaves them raw). */
export function safeJson(value: unknown): string {
  return JSON.stringify(value).replace(UNSAFE, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

function escapeChar(char: string): string {
  const code = char.charCodeAt(0)
  if (char === '\r') return '\\r'
  if (char === '\n') return '\\n'
  if (char === '\t') return '\\t'
  if (code === 0) return '\\0'
  if (code < 0x100) return `\\x${code.toString(16).padStart(2, '0')}`
  return `\\u${code.toString(16).padStart(4, '0')}`
}
