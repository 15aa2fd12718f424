/**
 * Transcripts: every frame a proxy sees, one JSON object per line (JSONL), and the exchanges
 * (request → replies) read back from them.
 *
 * @module
 */
import { createWriteStream, type WriteStream } from 'node:fs'
import { readFile } from 'node:fs/promises'

/** Who sent a frame: the client (`request`) or the instrument (`response`). */
export type TranscriptDirection = 'request' | 'response'

/** One line of a transcript. */
export type TranscriptEntry =
  | {
      /** ISO 8601 time. */
      time: string
      /** The client connection, numbered from 1 in order of arrival. */
      connection: number
      direction: TranscriptDirection
      /** The frame's bytes on the wire (terminator included), as hex. */
      hex: string
      /** The frame decoded as UTF-8 (invalid bytes as U+FFFD), for reading. */
      text: string
      /** True for bytes forwarded without a whole frame (a prompt, a login banner, an unfinished frame at close). */
      partial?: true
    }
  | { time: string; connection: number; event: 'connect' | 'close' }

/** One request and every byte the instrument sent after it, until the next request. */
export interface Exchange {
  /** The request frame's bytes (terminator included). */
  request: Uint8Array
  /** The instrument's frames after it, in order. */
  replies: Uint8Array[]
}

/** One client connection's conversation. */
export interface Conversation {
  connection: number
  /** What the instrument sent before the first request (a banner, a login prompt), if anything. */
  greeting: Uint8Array[]
  exchanges: Exchange[]
}

const decoder = new TextDecoder()

/** Bytes → lowercase hex without separators. */
export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

/** Hex (whitespace ignored) → bytes. Throws `TypeError` for anything else. */
export function fromHex(hex: string): Uint8Array {
  const clean = hex.replace(/\s+/g, '')
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(clean)) throw new TypeError(`not hex: "${hex.slice(0, 40)}"`)
  return Uint8Array.from(Buffer.from(clean, 'hex'))
}

/** A transcript entry for a frame. */
export function frameEntry(connection: number, direction: TranscriptDirection, bytes: Uint8Array, partial = false): TranscriptEntry {
  return { time: new Date().toISOString(), connection, direction, hex: toHex(bytes), text: decoder.decode(bytes), ...(partial ? { partial: true as const } : {}) }
}

/** Appends entries to a JSONL file. */
export class TranscriptWriter {
  private readonly out: WriteStream

  constructor(readonly path: string) {
    this.out = createWriteStream(path, { flags: 'w' })
    this.out.on('error', () => undefined)
  }

  write(entry: TranscriptEntry): void {
    this.out.write(`${JSON.stringify(entry)}\n`)
  }

  /** Flush and close the file. Idempotent. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.out.closed || this.out.writableFinished) {
        resolve()
        return
      }
      this.out.end(() => resolve())
    })
  }
}

/** Thrown for a transcript line that is not a transcript entry. */
export class TranscriptError extends Error {
  override readonly name = 'TranscriptError'
  readonly code = 'ERR_TRANSCRIPT'
}

/** Parse JSONL text into entries; `source` names the file in errors (`file:line: reason`). */
export function parseTranscript(text: string, source = 'transcript'): TranscriptEntry[] {
  const out: TranscriptEntry[] = []
  text.split('\n').forEach((line, index) => {
    if (line.trim() === '') return
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch {
      throw new TranscriptError(`${source}:${index + 1}: not JSON`)
    }
    const entry = value as Record<string, unknown>
    if (entry === null || typeof entry !== 'object' || typeof entry.connection !== 'number') throw new TranscriptError(`${source}:${index + 1}: expected an object with "connection"`)
    if (entry.event !== undefined) {
      if (entry.event !== 'connect' && entry.event !== 'close') throw new TranscriptError(`${source}:${index + 1}: unknown event ${JSON.stringify(entry.event)}`)
      out.push(entry as TranscriptEntry)
      return
    }
    if (entry.direction !== 'request' && entry.direction !== 'response') throw new TranscriptError(`${source}:${index + 1}: direction must be "request" or "response"`)
    if (typeof entry.hex !== 'string') throw new TranscriptError(`${source}:${index + 1}: missing "hex"`)
    try {
      fromHex(entry.hex)
    } catch {
      throw new TranscriptError(`${source}:${index + 1}: "hex" is not hex`)
    }
    out.push(entry as TranscriptEntry)
  })
  return out
}

/** Read a JSONL transcript file. */
export async function readTranscript(path: string): Promise<TranscriptEntry[]> {
  return parseTranscript(await readFile(path, 'utf8'), path)
}

/** Group entries into conversations, one per connection: each request with the frames that followed it. */
export function conversations(entries: readonly TranscriptEntry[]): Conversation[] {
  const byConnection = new Map<number, Conversation>()
  for (const entry of entries) {
    let conversation = byConnection.get(entry.connection)
    if (conversation === undefined) {
      conversation = { connection: entry.connection, greeting: [], exchanges: [] }
      byConnection.set(entry.connection, conversation)
    }
    if ('event' in entry) continue
    const bytes = fromHex(entry.hex)
    if (entry.direction === 'request') conversation.exchanges.push({ request: bytes, replies: [] })
    else {
      const last = conversation.exchanges[conversation.exchanges.length - 1]
      if (last === undefined) conversation.greeting.push(bytes)
      else last.replies.push(bytes)
    }
  }
  return [...byConnection.values()]
}
