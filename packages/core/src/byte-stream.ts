import { Buffer } from 'node:buffer'
import { asUint8Array } from './bytes.js'
import { ConnectionClosedError, ConnectionError, FrameTooLargeError, TimeoutError, isLabwireError, type LabwireError } from './errors.js'

/** Options for {@link ByteStream}. */
export interface ByteStreamOptions {
  /**
   * Inactivity limit for reads, in milliseconds: a read that waits this long for the next chunk
   * rejects with `TimeoutError` (its `partial` holds the buffered bytes, which stay buffered).
   * Default: no limit.
   */
  timeout?: number | undefined
}

/** Options for {@link ByteStream.readUntil}. */
export interface ReadUntilOptions {
  /** Maximum payload length (delimiter excluded). Exceeding it rejects with `FrameTooLargeError` before reading further. Default 1 MiB. */
  maxLength?: number | undefined
  /**
   * What to do with a frame over `maxLength`. `'fail'` (default): reject at once, leaving the
   * stream where it is (fail fast). `'skip'`: discard the frame up to and including its delimiter,
   * holding at most delimiter-length − 1 bytes meanwhile, then reject with a `FrameTooLargeError`
   * whose `resynchronised` is true: the next read starts at the next frame.
   */
  tooLarge?: 'fail' | 'skip' | undefined
}

const DONE: IteratorResult<Uint8Array> = Object.freeze({ done: true, value: undefined })
const EMPTY = new Uint8Array(0)

/** Default maximum frame length of delimiter-based reads: 1 MiB. */
export const DEFAULT_MAX_LENGTH = 1024 * 1024

/**
 * A buffered byte stream over an `AsyncIterator<Uint8Array>`: the one stream of a connection.
 *
 * Reads take what they need and keep the rest: a delimiter split across chunks, two frames in
 * one chunk and a read that overshoots all work, and the leftover is there for the next read.
 * Chunks are kept in a list and copied once per frame; a delimiter scan resumes where it stopped.
 *
 * It is itself an `AsyncIterator<Uint8Array>` (`next()` yields buffered bytes first), so a
 * transport hands it to the application layer as the contract's byte stream.
 */
export class ByteStream implements AsyncIterator<Uint8Array>, AsyncIterable<Uint8Array> {
  private chunks: Uint8Array[] = []
  private length = 0
  private ended = false
  private failure: LabwireError | undefined
  private pending: Promise<boolean> | undefined
  private readonly source: AsyncIterator<Uint8Array>
  private readonly timeout: number | undefined

  constructor(source: AsyncIterator<Uint8Array> | AsyncIterable<Uint8Array>, options: ByteStreamOptions = {}) {
    this.source = isAsyncIterable(source) && !('next' in source) ? source[Symbol.asyncIterator]() : (source as AsyncIterator<Uint8Array>)
    this.timeout = options.timeout
  }

  /** Bytes buffered and not yet read. */
  get bufferedLength(): number {
    return this.length
  }

  /** True once the source has ended and every buffered byte has been read. */
  get done(): boolean {
    return this.ended && this.length === 0
  }

  /** A copy of the buffered bytes, without consuming them. */
  peek(): Uint8Array {
    if (this.length === 0) return EMPTY
    const out = new Uint8Array(this.length)
    let offset = 0
    for (const chunk of this.chunks) {
      out.set(chunk, offset)
      offset += chunk.length
    }
    return out
  }

  /** Put bytes back at the front of the stream; the next read sees them first. */
  unshift(bytes: Uint8Array): void {
    if (bytes.length === 0) return
    this.chunks.unshift(bytes)
    this.length += bytes.length
  }

  /** Drop every buffered byte; returns how many were dropped. */
  discardBuffered(): number {
    const dropped = this.length
    this.chunks = []
    this.length = 0
    return dropped
  }

  [Symbol.asyncIterator](): this {
    return this
  }

  /** The buffered bytes as one chunk if any, else the next chunk from the source. */
  async next(): Promise<IteratorResult<Uint8Array>> {
    if (this.length === 0 && !(await this.pull())) return DONE
    const value = this.take(this.length)
    return { done: false, value }
  }

  /**
   * Resolve `true` once at least one byte is buffered, `false` if the source ended with nothing
   * buffered. Consumes nothing.
   */
  async waitForData(): Promise<boolean> {
    while (this.length === 0) {
      if (!(await this.pull())) return false
    }
    return true
  }

  /**
   * Read up to and including the next `delimiter`; resolve with the bytes before it.
   * Rejects with `FrameTooLargeError` once more than `maxLength` bytes precede any delimiter
   * (reading stops there, so memory stays bounded), and with `ConnectionClosedError`
   * (`partial` = the unterminated bytes) if the source ends first.
   */
  async readUntil(delimiter: Uint8Array, options: ReadUntilOptions = {}): Promise<Uint8Array> {
    const dl = delimiter.length
    if (dl === 0) throw new RangeError('delimiter must not be empty')
    const maxLength = options.maxLength ?? DEFAULT_MAX_LENGTH
    let from = 0
    const cursor: ScanCursor = { chunk: 0, base: 0 }
    for (;;) {
      const index = this.indexOf(delimiter, from, cursor)
      if (index >= 0) {
        if (index > maxLength) {
          if (options.tooLarge === 'skip') return this.skipFrame(delimiter, maxLength)
          throw this.tooLarge(maxLength)
        }
        const payload = this.take(index)
        this.skip(dl)
        return payload
      }
      if (this.length - dl + 1 > maxLength) {
        if (options.tooLarge === 'skip') return this.skipFrame(delimiter, maxLength)
        throw this.tooLarge(maxLength)
      }
      // No match starts before this point: the next scan starts dl - 1 bytes back.
      from = Math.max(0, this.length - dl + 1)
      if (!(await this.pull())) {
        throw new ConnectionClosedError(`connection closed before the delimiter (${this.length} bytes of an unterminated frame)`, {
          partial: this.peek(),
        })
      }
    }
  }

  /** Read exactly `length` bytes. Rejects with `ConnectionClosedError` (`partial` = what arrived) if the source ends first. */
  async readExactly(length: number): Promise<Uint8Array> {
    if (this.length < length && length >= LARGE_FRAME) return this.readLarge(length)
    while (this.length < length) {
      if (!(await this.pull())) {
        throw new ConnectionClosedError(`connection closed after ${this.length} of ${length} bytes`, { partial: this.peek() })
      }
    }
    return this.take(length)
  }

  /**
   * readExactly for large frames: allocate the frame once and copy each chunk in as it arrives,
   * so the frame is held once, not as a chunk list plus a copy (peak memory ≈ 1× the frame).
   */
  private async readLarge(length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length)
    let filled = 0
    const absorb = (): void => {
      while (filled < length && this.chunks.length > 0) {
        const chunk = this.chunks[0] as Uint8Array
        const want = length - filled
        if (chunk.length <= want) {
          out.set(chunk, filled)
          filled += chunk.length
          this.chunks.shift()
          this.length -= chunk.length
        } else {
          out.set(chunk.subarray(0, want), filled)
          this.chunks[0] = chunk.subarray(want)
          this.length -= want
          filled = length
        }
      }
    }
    try {
      absorb()
      while (filled < length) {
        if (!(await this.pull())) {
          throw new ConnectionClosedError(`connection closed after ${filled} of ${length} bytes`, { partial: out.slice(0, filled) })
        }
        absorb()
      }
      return out
    } catch (error) {
      if (error instanceof ConnectionClosedError) throw error
      // Not finished (time out, read failure): the bytes taken so far go back into the stream.
      this.unshift(out.slice(0, filled))
      if (error instanceof TimeoutError) throw new TimeoutError(error.message, { partial: this.peek() })
      throw error
    }
  }

  /** Discard through the next delimiter, then reject with a resynchronised `FrameTooLargeError`. */
  private async skipFrame(delimiter: Uint8Array, maxLength: number): Promise<never> {
    const dl = delimiter.length
    let discarded = 0
    for (;;) {
      const index = this.indexOf(delimiter, 0, { chunk: 0, base: 0 })
      if (index >= 0) {
        this.skip(index + dl)
        discarded += index + dl
        throw new FrameTooLargeError(maxLength, `frame exceeded the maximum length of ${maxLength} bytes; skipped ${discarded} bytes through its delimiter`, {
          resynchronised: true,
        })
      }
      // Keep only what could be the start of a delimiter that straddles the next chunk.
      const drop = this.length - Math.min(this.length, dl - 1)
      this.skip(drop)
      discarded += drop
      if (!(await this.pull())) {
        throw new ConnectionClosedError(`connection closed while skipping an oversized frame (${discarded} bytes skipped)`, { partial: this.peek() })
      }
    }
  }

  private tooLarge(maxLength: number): FrameTooLargeError {
    return new FrameTooLargeError(maxLength, `frame exceeds the maximum length of ${maxLength} bytes (${this.length} bytes buffered, no delimiter)`)
  }

  /**
   * Position of the first `delimiter` starting at or after logical offset `from`, or -1.
   * `cursor` remembers the first chunk that ends after `from`, so a resumed scan does not walk
   * the chunk list from the start again (that walk made many small chunks quadratic).
   */
  private indexOf(delimiter: Uint8Array, from: number, cursor: ScanCursor): number {
    const dl = delimiter.length
    const first = delimiter[0] as number
    const chunks = this.chunks
    let base = cursor.base
    for (let i = cursor.chunk; i < chunks.length; i++) {
      const chunk = chunks[i] as Uint8Array
      const end = base + chunk.length
      if (end <= from) {
        cursor.chunk = i + 1
        cursor.base = end
      } else {
        const local = from > base ? from - base : 0
        const within = dl === 1 ? chunk.indexOf(first, local) : dl <= SHORT_DELIMITER ? indexOfShort(chunk, delimiter, local) : bufferView(chunk).indexOf(delimiter, local)
        if (within >= 0 && within <= chunk.length - dl) return base + within
        // Matches that start in this chunk and run into the next ones.
        for (let p = Math.max(local, chunk.length - dl + 1); p < chunk.length; p++) {
          if (chunk[p] === first && this.matchesAcross(i, p, delimiter)) return base + p
        }
      }
      base = end
    }
    return -1
  }

  private matchesAcross(chunkIndex: number, position: number, delimiter: Uint8Array): boolean {
    let ci = chunkIndex
    let chunk = this.chunks[ci] as Uint8Array
    let p = position
    for (let k = 0; k < delimiter.length; k++) {
      while (p >= chunk.length) {
        ci++
        if (ci >= this.chunks.length) return false
        chunk = this.chunks[ci] as Uint8Array
        p = 0
      }
      if (chunk[p] !== delimiter[k]) return false
      p++
    }
    return true
  }

  /** Remove and return the first `n` buffered bytes (n ≤ length), copying only when they span chunks. */
  private take(n: number): Uint8Array {
    if (n === 0) return EMPTY
    const head = this.chunks[0] as Uint8Array
    this.length -= n
    if (head.length === n) {
      this.chunks.shift()
      return head
    }
    if (head.length > n) {
      this.chunks[0] = head.subarray(n)
      return head.subarray(0, n)
    }
    const out = new Uint8Array(n)
    let offset = 0
    let used = 0
    while (offset < n) {
      const chunk = this.chunks[used] as Uint8Array
      const want = n - offset
      if (chunk.length <= want) {
        out.set(chunk, offset)
        offset += chunk.length
        used++
      } else {
        out.set(chunk.subarray(0, want), offset)
        this.chunks[used] = chunk.subarray(want)
        offset = n
      }
    }
    this.chunks.splice(0, used)
    return out
  }

  private skip(n: number): void {
    let left = n
    this.length -= n
    while (left > 0) {
      const head = this.chunks[0] as Uint8Array
      if (head.length <= left) {
        left -= head.length
        this.chunks.shift()
      } else {
        this.chunks[0] = head.subarray(left)
        left = 0
      }
    }
  }

  /** Pull one chunk from the source into the buffer. Resolves false at the end of the source. */
  private pull(): Promise<boolean> {
    if (this.failure !== undefined) return Promise.reject(this.failure)
    if (this.ended) return Promise.resolve(false)
    const pending = (this.pending ??= this.source.next().then(
      (result) => {
        this.pending = undefined
        if (result.done === true) {
          this.ended = true
          return false
        }
        const value: unknown = result.value
        if (!(value instanceof Uint8Array)) {
          this.failure = new ConnectionError(`read failed: the byte source yielded ${typeof value}, not a Uint8Array`)
          throw this.failure
        }
        const chunk = asUint8Array(value)
        if (chunk.length > 0) {
          this.chunks.push(chunk)
          this.length += chunk.length
        }
        return true
      },
      (error: unknown) => {
        this.pending = undefined
        this.failure = isLabwireError(error)
          ? error
          : new ConnectionError(`read failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
        throw this.failure
      },
    ))
    const timeout = this.timeout
    if (timeout === undefined) return pending
    return new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new TimeoutError(`no data for ${timeout} ms`, { partial: this.peek() }))
      }, timeout)
      pending.then(
        (value) => {
          clearTimeout(timer)
          resolve(value)
        },
        (error: unknown) => {
          clearTimeout(timer)
          reject(error)
        },
      )
    })
  }
}

/** Where a resumed delimiter scan starts walking the chunk list: chunk index and its logical offset. */
interface ScanCursor {
  chunk: number
  base: number
}

/** Delimiters up to this length are searched for by their first byte (no Buffer view allocated). */
const SHORT_DELIMITER = 8
/** readExactly of at least this many bytes copies chunks into the frame as they arrive. */
const LARGE_FRAME = 256 * 1024

/** First index ≥ from where `delimiter` starts and ends within `chunk`, or -1. */
function indexOfShort(chunk: Uint8Array, delimiter: Uint8Array, from: number): number {
  const first = delimiter[0] as number
  const dl = delimiter.length
  const last = chunk.length - dl
  let i = chunk.indexOf(first, from)
  while (i >= 0 && i <= last) {
    let k = 1
    while (k < dl && chunk[i + k] === delimiter[k]) k++
    if (k === dl) return i
    i = chunk.indexOf(first, i + 1)
  }
  return -1
}

function bufferView(chunk: Uint8Array): Buffer {
  return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
}

function isAsyncIterable(value: unknown): value is AsyncIterable<Uint8Array> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value
}

const streams = new WeakMap<object, ByteStream>()

/**
 * The {@link ByteStream} for an iterator: the iterator itself if it is one, else one created on
 * first use and remembered, so that framers called again on the same iterator continue where
 * the last call stopped (leftover bytes are kept per iterator).
 */
export function byteStreamOf(bytes: AsyncIterator<Uint8Array>): ByteStream {
  if (bytes instanceof ByteStream) return bytes
  let stream = streams.get(bytes)
  if (stream === undefined) {
    stream = new ByteStream(bytes)
    streams.set(bytes, stream)
  }
  return stream
}
