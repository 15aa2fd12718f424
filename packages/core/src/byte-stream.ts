import { Buffer } from 'node:buffer'
import { AccessRefusedError, AccessTimeoutError, ConnectionClosedError, ConnectionError, FrameTooLargeError, TimeoutError, isLabwireError, type LabwireError } from './errors.js'
import { parseAccessNotice } from './kernel.js'
import { NEED_MORE, delimiterDecoder, exactDecoder, type FrameDecoder, type ReadUntilOptions } from './frame-decoder.js'
import { clampDelay } from './validate.js'

/** Options for {@link ByteStream}. */
export interface ByteStreamOptions {
  /**
   * Inactivity limit for reads, in milliseconds: a read that waits this long for the next chunk
   * rejects with `TimeoutError` (its `partial` holds the buffered bytes, which stay buffered).
   * Default: no limit (`0` also means no limit).
   */
  timeout?: number | undefined
  /**
   * Push mode only: buffered bytes above which `onPause` is called (the producer should stop);
   * `onResume` follows once a reader has taken the buffer down to half, or waits for more. Default 64 KiB.
   */
  highWaterMark?: number | undefined
  /** Push mode: ask the producer to stop (e.g. `socket.pause()`). */
  onPause?: (() => void) | undefined
  /** Push mode: the producer may go on (e.g. `socket.resume()`). */
  onResume?: (() => void) | undefined
  /** Push mode: an object to `pause()` / `resume()` (a socket) instead of `onPause` / `onResume` — no closure per connection. */
  producer?: { pause(): unknown; resume(): unknown } | undefined
  /** Who is at the other end (`host:port`), used in error messages. */
  label?: string | undefined
  /**
   * Push mode, for clients: watch the first bytes for a server's access notice (see
   * `accessNotice` in the serving kernel: `NAK "labwire ERR_ACCESS_…" CR LF`, written when the
   * access policy turns the session away). While the opening bytes could still be one they are
   * held back from readers (at most {@link MAX_ACCESS_NOTICE} bytes); a whole notice fails the
   * stream with its `AccessRefusedError` / `AccessTimeoutError`, anything else is released as
   * data. Only the very first bytes of the stream are looked at. Default false.
   */
  accessNotices?: boolean | undefined
}

/** Longest access notice a client stream holds back before treating the bytes as data. */
export const MAX_ACCESS_NOTICE = 1024
/** What every access notice starts with. */
const NOTICE_START = new TextEncoder().encode('\u0015labwire ERR_ACCESS_')

const DONE: IteratorResult<Uint8Array> = Object.freeze({ done: true, value: undefined })
const EMPTY = new Uint8Array(0)

/** Chunks shorter than this are copied into a shared slab instead of being kept as objects. */
const SMALL_CHUNK = 512
/** Size of a coalescing slab. */
const SLAB_SIZE = 8 * 1024
/** Frames of at least this many bytes announced with `expect()` are assembled in place as chunks arrive. */
const LARGE_FRAME = 256 * 1024

interface Waiter {
  promise: Promise<boolean>
  resolve: (more: boolean) => void
  reject: (error: unknown) => void
}

/**
 * The buffered byte stream of one connection: the one place a connection's incoming bytes live.
 *
 * Two ways to feed it: **pull** (`new ByteStream(asyncIterator)`: it reads the iterator when a
 * reader needs more) or **push** (`new ByteStream()`, a transport calls `push(chunk)`, `end()`,
 * `fail(error)`; past `highWaterMark` unread bytes it calls `onPause`). Reads take what they need
 * and keep the rest: a delimiter split across chunks, two frames in one chunk and a read that
 * overshoots all work, and the leftover is there for the next read. Small chunks are coalesced so
 * that a frame arriving a byte at a time costs bytes, not objects.
 *
 * Framers are synchronous {@link FrameDecoder}s over this buffer: they look at the buffered bytes
 * (`bufferedLength`, `byteAt`, `indexOf`, `peek`) and either `take` one frame or return
 * `NEED_MORE`. A delimiter scan records where it stopped in `scanOffset`, so the next attempt
 * resumes there (O(n) overall).
 *
 * It is itself an `AsyncIterator<Uint8Array>` (`next()` yields buffered bytes first), so a
 * transport hands it to the application layer as the contract's byte stream.
 */
export class ByteStream implements AsyncIterator<Uint8Array>, AsyncIterable<Uint8Array> {
  // Fields are declared in the order V8 lays them out: what every push and every decoded frame
  // reads comes first, so a read touches few of the stream's cache lines (a server or a client with
  // a thousand connections rarely has them cached).
  private chunks: Uint8Array[] = []
  private head = 0
  private length = 0
  private sourceEnded = false
  private failure: LabwireError | undefined
  /** Client streams: the opening bytes held while they may be an access notice; `undefined` once decided (or never watched). */
  private opening: Uint8Array | undefined
  /** A large frame assembled in place (see `expect`). */
  private big: Uint8Array | undefined
  /** Coalescing slab: small chunks are appended here; `tailView` is the last chunk while it is the slab's. */
  private slab: Uint8Array | undefined
  private slabUsed = 0
  private tailView: Uint8Array | undefined
  private tailStart = 0
  private pausedProducer = false
  private readonly highWaterMark: number
  private waiter: Waiter | undefined
  /**
   * Push mode: called synchronously after bytes arrive, or the stream ends or fails (after any
   * waiting reader has been woken). Servers and client sessions use it to decode and answer from the data event.
   */
  onData: (() => void) | undefined = undefined
  /**
   * @internal The serving loop that reads this stream (set by `serveConnection`): a data event
   * calls its `run()` through one shared `onData` function, not a closure per connection.
   */
  servedBy: { run(): void } | undefined = undefined
  /**
   * Bytes already scanned for a frame's end without finding it; reset to 0 whenever bytes are
   * consumed. Decoders resume their scan here instead of rescanning from the start.
   */
  scanOffset = 0
  /** Per-stream state a decoder may keep between attempts (e.g. "skipping an oversized frame"); reset by nobody but the decoder. */
  decoderState: unknown = undefined
  private consumedTotal = 0
  /** Cached scan position: the chunk index and logical offset of its start. */
  private cursorChunk = 0
  private cursorBase = 0
  /** Called once when the source ends or fails (push mode: `end()` / `fail()`; pull mode: when a read finds the end). The serving kernel uses it to abort a connection's signal. */
  onEnd: (() => void) | undefined = undefined
  /** The label, or an object asked for it (its `peer`) only when a message needs it. */
  private labelValue: string | { readonly peer: string } | undefined
  private pending: Promise<boolean> | undefined
  private readonly source: AsyncIterator<Uint8Array> | undefined
  private readonly timeout: number | undefined
  private readonly onPause: (() => void) | undefined
  private readonly onResume: (() => void) | undefined
  private readonly producer: { pause(): unknown; resume(): unknown } | undefined
  private bigFilled = 0

  constructor(source?: AsyncIterator<Uint8Array> | AsyncIterable<Uint8Array>, options: ByteStreamOptions = {}) {
    if (source !== undefined) {
      this.source = isAsyncIterable(source) && !('next' in source) ? source[Symbol.asyncIterator]() : (source as AsyncIterator<Uint8Array>)
    }
    this.timeout = options.timeout === undefined || options.timeout === 0 || !Number.isFinite(options.timeout) ? undefined : options.timeout
    this.highWaterMark = options.highWaterMark ?? 64 * 1024
    this.onPause = options.onPause
    this.onResume = options.onResume
    this.producer = options.producer
    this.labelValue = options.label
    if (options.accessNotices === true && source === undefined) this.opening = EMPTY
  }

  /** Who is at the other end (`host:port`), for error messages. */
  get label(): string | undefined {
    const value = this.labelValue
    return typeof value === 'object' ? value.peer : value
  }

  /**
   * @internal Take the label from `source.peer`, read only when a message needs it (a server
   * reads a socket's peer address lazily: no `getpeername` per accepted connection).
   */
  labelFrom(source: { readonly peer: string }): void {
    this.labelValue = source
  }

  /** Bytes buffered and not yet read. */
  get bufferedLength(): number {
    return this.length
  }

  /** Diagnostic: how many separate chunks hold the buffered bytes (small chunks are coalesced, so this stays far below the number received). */
  get chunkCount(): number {
    return this.chunks.length - this.head
  }

  /** Total bytes consumed from this stream so far (a handler that consumes nothing makes no progress). */
  get consumed(): number {
    return this.consumedTotal
  }

  /** True once the source has ended (or failed): no more bytes will arrive. Buffered bytes may remain. */
  get ended(): boolean {
    return this.sourceEnded || this.failure !== undefined
  }

  /** The error the source failed with, if it did. */
  get error(): LabwireError | undefined {
    return this.failure
  }

  /**
   * The access error (`AccessRefusedError` / `AccessTimeoutError`) the stream failed with: a
   * client stream with `accessNotices` that received a server's access notice. A client session
   * throws it (instead of a generic "closed") when asked to send after such an end.
   */
  get accessError(): AccessRefusedError | AccessTimeoutError | undefined {
    const failure = this.failure
    return failure instanceof AccessRefusedError || failure instanceof AccessTimeoutError ? failure : undefined
  }

  /** True once the source has ended and every buffered byte has been read. */
  get done(): boolean {
    return this.ended && this.length === 0
  }

  /** True when bytes are pushed in (`push`/`end`/`fail`), false when pulled from a source iterator. */
  get pushMode(): boolean {
    return this.source === undefined
  }

  /** True while push mode has asked its producer to pause. */
  get paused(): boolean {
    return this.pausedProducer
  }

  // ── push mode ──────────────────────────────────────────────────────────────────────────────

  /** Push mode: append a chunk (copied when small, kept as is otherwise). Ignored after `end()` / `fail()`. */
  push(chunk: Uint8Array): void {
    this.pushBytes(chunk, true)
  }

  /**
   * Push mode: append a copy of `bytes`, for a producer that reuses its buffer (a socket read into
   * one reused buffer). Bytes go straight into a frame being assembled (`expect`) or a slab where
   * they can, so a large frame arrives with no garbage chunk per read. A small frame taken from
   * such bytes is a view of an 8 KiB slab (as a small `Buffer` is of Node's pool): one kept for
   * long keeps its slab; `slice()` it to keep only its own bytes.
   */
  pushCopy(bytes: Uint8Array): void {
    this.pushBytes(bytes, false)
  }

  private pushBytes(chunk: Uint8Array, owned: boolean): void {
    if (this.sourceEnded || this.failure !== undefined || chunk.length === 0) return
    if (this.opening !== undefined) {
      const released = this.screenOpening(chunk)
      if (released === undefined) return
      this.append(released, true)
    } else {
      this.append(chunk, owned)
    }
    if (!this.pausedProducer && this.length > this.highWaterMark && this.big === undefined) {
      this.pausedProducer = true
      this.onPause?.()
      this.producer?.pause()
    }
    this.wake()
  }

  /** Push mode: no more data. Buffered bytes can still be read. */
  end(): void {
    if (this.sourceEnded || this.failure !== undefined) return
    if (this.opening !== undefined) {
      // The peer closed while the opening might be a notice: a notice without its line end still counts.
      const held = this.opening
      this.opening = undefined
      const notice = held.length === 0 ? undefined : parseAccessNotice(held)
      if (notice !== undefined) {
        this.fail(notice)
        return
      }
      if (held.length > 0) this.append(held, true)
    }
    this.sourceEnded = true
    this.wake()
    this.notifyEnd()
  }

  private notifyEnd(): void {
    const onEnd = this.onEnd
    if (onEnd === undefined) return
    this.onEnd = undefined
    onEnd()
  }

  /** Push mode: the producer failed; reads reject with `error` (wrapped in `ConnectionError` unless it is a labwire error) once nothing decodes from the buffer. */
  fail(error: unknown): void {
    if (this.sourceEnded || this.failure !== undefined) return
    if (this.opening !== undefined) {
      // A reset right after the notice (the server closed with our request unread): the notice is the better error.
      const held = this.opening
      this.opening = undefined
      const notice = held.length === 0 ? undefined : parseAccessNotice(held)
      if (notice !== undefined) error = notice
      else if (held.length > 0) this.append(held, true)
    }
    this.failure = isLabwireError(error) ? error : new ConnectionError(error instanceof Error ? error.message : String(error), { cause: error })
    this.wake()
    this.notifyEnd()
  }

  /**
   * Client streams (`accessNotices`): hold the opening bytes while they may be an access notice.
   * Returns the bytes to append (a copy) once they cannot be one, or `undefined` while held or
   * when a whole notice failed the stream.
   */
  private screenOpening(chunk: Uint8Array): Uint8Array | undefined {
    const before = this.opening as Uint8Array
    const held = new Uint8Array(before.length + chunk.length)
    held.set(before)
    held.set(chunk, before.length)
    const n = Math.min(held.length, NOTICE_START.length)
    let notice = true
    for (let i = 0; i < n; i++) {
      if (held[i] !== NOTICE_START[i]) {
        notice = false
        break
      }
    }
    if (notice) {
      const lf = held.indexOf(0x0a, n)
      if (lf < 0 && held.length <= MAX_ACCESS_NOTICE) {
        this.opening = held
        return undefined
      }
      const error = lf < 0 ? undefined : parseAccessNotice(held.subarray(0, lf + 1))
      if (error !== undefined) {
        this.opening = undefined
        this.fail(error)
        return undefined
      }
    }
    this.opening = undefined
    return held
  }

  private wake(): void {
    const waiter = this.waiter
    if (waiter !== undefined) {
      this.waiter = undefined
      if (this.failure !== undefined) waiter.reject(this.failure)
      else waiter.resolve(!this.sourceEnded)
    }
    // Also when a reader was waiting: a loop driven by data events ignores it while it is busy.
    this.onData?.()
  }

  /**
   * Push mode: make a pending `fill()` resolve now with `true` (a spurious wake-up: callers check
   * the buffer and wait again), so a reader that stopped waiting for its own reason (an idle-gap
   * timer fired) leaves no waiter behind. Pull mode: nothing to do (the next `fill()` shares the pending pull).
   */
  interruptWait(): void {
    const waiter = this.waiter
    if (waiter === undefined) return
    this.waiter = undefined
    waiter.resolve(true)
  }

  /**
   * A reader needs more bytes than are buffered (a decoder said "need more"): if the producer was
   * paused at the high-water mark, let it go on. `fill()` does this itself.
   */
  wantMore(): void {
    if (this.pausedProducer) {
      this.pausedProducer = false
      this.onResume?.()
      this.producer?.resume()
    }
  }

  // ── synchronous reads (what decoders use) ─────────────────────────────────────────────────

  /** The byte at logical offset `index` (0 = the first buffered byte); `undefined` past the end. */
  byteAt(index: number): number | undefined {
    if (index < 0 || index >= this.length) return undefined
    const chunks = this.chunks
    let base = 0
    for (let i = this.head; i < chunks.length; i++) {
      const chunk = chunks[i] as Uint8Array
      if (index < base + chunk.length) return chunk[index - base]
      base += chunk.length
    }
    return undefined
  }

  /**
   * Logical offset of the first occurrence of `pattern` (bytes, or one byte value) starting at or
   * after `from`, or -1. Matches may straddle chunks.
   */
  indexOf(pattern: Uint8Array | number, from = 0): number {
    if (typeof pattern === 'number') return this.indexOfByte(pattern, from)
    if (pattern.length === 0) throw new RangeError('pattern must not be empty')
    if (pattern.length === 1) return this.indexOfByte(pattern[0] as number, from)
    const dl = pattern.length
    const first = pattern[0] as number
    const chunks = this.chunks
    let i = this.head
    let base = 0
    if (from >= this.cursorBase && this.cursorChunk >= this.head) {
      i = this.cursorChunk
      base = this.cursorBase
    }
    for (; i < chunks.length; i++) {
      const chunk = chunks[i] as Uint8Array
      const end = base + chunk.length
      if (end <= from) {
        // The last chunk may still grow (coalescing): the cursor never moves past it.
        if (i + 1 < chunks.length) {
          this.cursorChunk = i + 1
          this.cursorBase = end
        }
      } else {
        const local = from > base ? from - base : 0
        const within = dl <= SHORT_PATTERN ? indexOfShort(chunk, pattern, local) : bufferView(chunk).indexOf(pattern, local)
        if (within >= 0 && within <= chunk.length - dl) return base + within
        for (let p = Math.max(local, chunk.length - dl + 1); p < chunk.length; p++) {
          if (chunk[p] === first && this.matchesAcross(i, p, pattern)) return base + p
        }
      }
      base = end
    }
    return -1
  }

  private indexOfByte(value: number, from: number): number {
    const chunks = this.chunks
    let i = this.head
    let base = 0
    if (from >= this.cursorBase && this.cursorChunk >= this.head) {
      i = this.cursorChunk
      base = this.cursorBase
    }
    for (; i < chunks.length; i++) {
      const chunk = chunks[i] as Uint8Array
      const end = base + chunk.length
      if (end <= from) {
        // The last chunk may still grow (coalescing): the cursor never moves past it.
        if (i + 1 < chunks.length) {
          this.cursorChunk = i + 1
          this.cursorBase = end
        }
      } else {
        const within = chunk.indexOf(value, from > base ? from - base : 0)
        if (within >= 0) return base + within
      }
      base = end
    }
    return -1
  }

  /** A copy of the first `length` buffered bytes (default: all), without consuming them. */
  peek(length = this.length): Uint8Array {
    const bytes = this.view(length)
    // view() returns either a fresh copy or a view into the head chunk; only the view needs copying.
    return bytes.length === 0 ? EMPTY : bytes.buffer === (this.chunks[this.head] as Uint8Array).buffer ? bytes.slice() : bytes
  }

  /**
   * The first `length` buffered bytes (default: all), without consuming them: a view when they lie
   * in one chunk, else a copy. Read it at once; it may change after the next call that consumes.
   */
  view(length = this.length): Uint8Array {
    const n = Math.min(length, this.length)
    if (n === 0) return EMPTY
    const headChunk = this.chunks[this.head] as Uint8Array
    if (headChunk.length >= n) return new Uint8Array(headChunk.buffer, headChunk.byteOffset, n)
    const out = new Uint8Array(n)
    let offset = 0
    for (let i = this.head; offset < n; i++) {
      const chunk = this.chunks[i] as Uint8Array
      const want = Math.min(chunk.length, n - offset)
      out.set(want === chunk.length ? chunk : chunk.subarray(0, want), offset)
      offset += want
    }
    return out
  }

  /** A copy of the buffered bytes from `start` to `end` (logical offsets), without consuming them. */
  copy(start: number, end: number = this.length): Uint8Array {
    const s = Math.max(0, start)
    const e = Math.min(end, this.length)
    if (e <= s) return EMPTY
    return this.view(e).slice(s, e)
  }

  /** Remove and return the first `n` buffered bytes (n ≤ bufferedLength), copying only when they span chunks. */
  take(n: number): Uint8Array {
    if (n > this.length) throw new RangeError(`take(${n}) with ${this.length} bytes buffered`)
    if (n === 0) return EMPTY
    const out = this.takeUnchecked(n)
    this.consumedNow(n)
    return out
  }

  /**
   * Remove the first `n + drop` buffered bytes and return the first `n` (a frame and its
   * terminator, say): `take(n)` then `skip(drop)` in one step.
   */
  takeFrame(n: number, drop: number): Uint8Array {
    const total = n + drop
    if (total > this.length) throw new RangeError(`takeFrame(${n}, ${drop}) with ${this.length} bytes buffered`)
    if (total === 0) return EMPTY
    const headChunk = this.chunks[this.head] as Uint8Array
    if (headChunk.length >= total) {
      // The common case, a whole frame in the first chunk: one view, no copy.
      const out = n === 0 ? EMPTY : new Uint8Array(headChunk.buffer, headChunk.byteOffset, n)
      this.length -= total
      if (headChunk.length === total) this.shiftChunk()
      else this.replaceHead(headChunk.subarray(total))
      this.consumedNow(total)
      return out
    }
    const out = this.take(n)
    this.skip(drop)
    return out
  }

  /** Drop the first `n` buffered bytes (n ≤ bufferedLength). */
  skip(n: number): void {
    if (n > this.length) throw new RangeError(`skip(${n}) with ${this.length} bytes buffered`)
    if (n === 0) return
    let left = n
    this.length -= n
    while (left > 0) {
      const chunk = this.chunks[this.head] as Uint8Array
      if (chunk.length <= left) {
        left -= chunk.length
        this.shiftChunk()
      } else {
        this.replaceHead(chunk.subarray(left))
        left = 0
      }
    }
    this.consumedNow(n)
  }

  /**
   * Announce that the next frame is `length` bytes long. Large frames are then assembled in one
   * buffer as chunks arrive (held once, not as a chunk list plus a copy), and `take(length)` returns
   * that buffer without copying. A hint: decoders of length-prefixed frames call it; nothing breaks without it.
   */
  expect(length: number): void {
    if (length < LARGE_FRAME || this.length >= length || this.big !== undefined) return
    const big = new Uint8Array(length)
    let filled = 0
    for (let i = this.head; i < this.chunks.length; i++) {
      const chunk = this.chunks[i] as Uint8Array
      big.set(chunk, filled)
      filled += chunk.length
    }
    this.chunks = [big.subarray(0, filled)]
    this.head = 0
    this.slab = undefined
    this.tailView = undefined
    this.big = big
    this.bigFilled = filled
    this.resetCursor()
  }

  /** Put bytes back at the front of the stream; the next read sees them first. */
  unshift(bytes: Uint8Array): void {
    if (bytes.length === 0) return
    this.compact()
    this.chunks.unshift(bytes)
    this.length += bytes.length
    this.big = undefined
    this.scanOffset = 0
    this.resetCursor()
  }

  /** Drop every buffered byte; returns how many were dropped. */
  discardBuffered(): number {
    const dropped = this.length
    if (dropped > 0) this.skip(dropped)
    return dropped
  }

  // ── asynchronous reads ─────────────────────────────────────────────────────────────────────

  [Symbol.asyncIterator](): this {
    return this
  }

  /** The buffered bytes as one chunk if any, else the next chunk from the source. */
  async next(): Promise<IteratorResult<Uint8Array>> {
    if (this.length === 0 && !(await this.fill())) return DONE
    return { done: false, value: this.take(this.length) }
  }

  /**
   * Resolve `true` once at least one byte is buffered, `false` if the source ended with nothing
   * buffered. Consumes nothing.
   */
  async waitForData(): Promise<boolean> {
    while (this.length === 0) {
      if (!(await this.fill())) return false
    }
    return true
  }

  /**
   * Read up to and including the next `delimiter`; resolve with the bytes before it.
   * Rejects with `FrameTooLargeError` once more than `maxLength` bytes precede any delimiter
   * (reading stops there, so memory stays bounded), and with `ConnectionClosedError`
   * (`partial` = the unterminated bytes) if the source ends first.
   */
  readUntil(delimiter: Uint8Array, options: ReadUntilOptions = {}): Promise<Uint8Array> {
    try {
      return this.read(delimiterDecoder(delimiter, options))
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new RangeError(String(error)))
    }
  }

  /** Read exactly `length` bytes. Rejects with `ConnectionClosedError` (`partial` = what arrived) if the source ends first. */
  readExactly(length: number): Promise<Uint8Array> {
    if (length === 0) return Promise.resolve(EMPTY)
    try {
      return this.read(exactDecoder(length))
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new RangeError(String(error)))
    }
  }

  /**
   * Read one frame with `decoder`: decode synchronously from what is buffered, await only when
   * more bytes are really needed. Rejects with the decoder's error, the stream's `TimeoutError` /
   * `ConnectionError`, or `ConnectionClosedError` (with `partial`) when the stream ends mid-frame.
   * (`decodeFrom` is this for any async iterator.)
   */
  read<T>(decoder: FrameDecoder<T>): Promise<T> {
    try {
      const frame = decoder.decode(this)
      if (frame !== NEED_MORE) return Promise.resolve(frame)
      if (this.ended) return Promise.reject(this.closedError(decoder.describePartial?.(this)))
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new RangeError(String(error)))
    }
    return this.readSlowly(decoder)
  }

  private async readSlowly<T>(decoder: FrameDecoder<T>): Promise<T> {
    for (;;) {
      const more = await this.fill()
      const frame = decoder.decode(this)
      if (frame !== NEED_MORE) return frame
      if (!more || this.ended) throw this.closedError(decoder.describePartial?.(this))
    }
  }

  /**
   * Wait for at least one more byte (or the end): resolve `true` when bytes were added, `false` at
   * the end of the source. Rejects with the source's error, or `TimeoutError` after the stream's
   * inactivity `timeout`.
   */
  fill(): Promise<boolean> {
    this.wantMore()
    const wait = this.source === undefined ? this.waitForPush() : this.pull()
    const timeout = this.timeout
    if (timeout === undefined || wait === RESOLVED_TRUE || wait === RESOLVED_FALSE) return wait
    return new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.waiter !== undefined) this.waiter = undefined
        reject(new TimeoutError(`no data from ${this.label ?? 'the peer'} for ${timeout} ms`, { partial: this.peek().slice() }))
      }, clampDelay(timeout))
      wait.then(
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

  /** The error a decoder-based read rejects with when the stream ends in the middle of a frame. */
  closedError(detail?: string): ConnectionClosedError | LabwireError {
    if (this.failure !== undefined) return this.failure
    const who = this.label ?? 'the peer'
    const message =
      this.length === 0
        ? `${who} closed the connection`
        : `${who} closed the connection in the middle of a frame (${detail ?? `${this.length} bytes received, end not reached`})`
    return new ConnectionClosedError(message, { partial: this.peek().slice() })
  }

  /** FrameTooLargeError for a frame over `maxLength`. */
  tooLargeError(maxLength: number, what = 'no delimiter'): FrameTooLargeError {
    return new FrameTooLargeError(maxLength, `frame exceeds the maximum length of ${maxLength} bytes (${this.length} bytes buffered, ${what})`)
  }

  private waitForPush(): Promise<boolean> {
    if (this.failure !== undefined) return Promise.reject(this.failure)
    if (this.sourceEnded) return RESOLVED_FALSE
    // Concurrent waiters share one promise (like concurrent pulls share one source read).
    if (this.waiter !== undefined) return this.waiter.promise
    let resolve!: (more: boolean) => void
    let reject!: (error: unknown) => void
    const promise = new Promise<boolean>((res, rej) => {
      resolve = res
      reject = rej
    })
    this.waiter = { promise, resolve, reject }
    return promise
  }

  /** Pull one chunk from the source into the buffer. Resolves false at the end of the source. */
  private pull(): Promise<boolean> {
    if (this.failure !== undefined) return Promise.reject(this.failure)
    if (this.sourceEnded) return RESOLVED_FALSE
    if (this.pending !== undefined) return this.pending
    const source = this.source as AsyncIterator<Uint8Array>
    let next: Promise<IteratorResult<Uint8Array>>
    try {
      next = source.next()
    } catch (error) {
      next = Promise.reject(error instanceof Error ? error : new ConnectionError(String(error)))
    }
    return (this.pending = next.then(
        (result) => {
          this.pending = undefined
          if (result.done === true) {
            this.sourceEnded = true
            this.notifyEnd()
            return false
          }
          const value: unknown = result.value
          if (!(value instanceof Uint8Array)) {
            this.failure = new ConnectionError(`read failed: the byte source yielded ${typeof value}, not a Uint8Array`)
            throw this.failure
          }
          if (value.length > 0) this.append(value)
          return true
        },
        (error: unknown) => {
          this.pending = undefined
          this.failure = isLabwireError(error)
            ? error
            : new ConnectionError(`read failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
          this.notifyEnd()
          throw this.failure
        },
    ))
  }

  // ── buffer bookkeeping ─────────────────────────────────────────────────────────────────────

  private append(input: Uint8Array, owned = true): void {
    let chunk = input
    this.length += chunk.length
    const big = this.big
    if (big !== undefined) {
      const room = big.length - this.bigFilled
      const n = Math.min(room, chunk.length)
      big.set(n === chunk.length ? chunk : chunk.subarray(0, n), this.bigFilled)
      this.bigFilled += n
      // The big frame is the head chunk while it is being filled.
      this.chunks[this.head] = big.subarray(0, this.bigFilled)
      if (this.bigFilled === big.length) this.big = undefined
      if (n === chunk.length) return
      chunk = chunk.subarray(n)
    }
    // Into an empty buffer an owned chunk goes as it is (the usual case: it holds whole frames);
    // small chunks that follow unread bytes are copied into a slab, so a frame arriving a byte at a
    // time costs bytes, not objects. A small borrowed chunk (`pushCopy`) is copied into the slab
    // too, empty buffer or not: `slice()` would make an array on V8's heap, and the frame views
    // taken of it later would first have to move it off the heap (an allocation per reply).
    if (chunk.length < SMALL_CHUNK && (!owned || this.length > chunk.length)) {
      const last = this.chunks.length - 1
      let slab = this.slab
      if (slab !== undefined && this.tailView !== undefined && last >= this.head && this.chunks[last] === this.tailView && this.slabUsed + chunk.length <= slab.length) {
        slab.set(chunk, this.slabUsed)
        this.slabUsed += chunk.length
        this.tailView = slab.subarray(this.tailStart, this.slabUsed)
        this.chunks[last] = this.tailView
        return
      }
      if (slab === undefined || this.slabUsed + chunk.length > slab.length) {
        slab = this.slab = new Uint8Array(SLAB_SIZE)
        this.slabUsed = 0
      }
      slab.set(chunk, this.slabUsed)
      this.tailStart = this.slabUsed
      this.slabUsed += chunk.length
      this.tailView = slab.subarray(this.tailStart, this.slabUsed)
      this.chunks.push(this.tailView)
      return
    }
    this.chunks.push(owned ? chunk : chunk.slice())
  }

  private takeUnchecked(n: number): Uint8Array {
    const headChunk = this.chunks[this.head] as Uint8Array
    this.length -= n
    if (headChunk.length === n) {
      this.shiftChunk()
      return headChunk.constructor === Uint8Array ? headChunk : new Uint8Array(headChunk.buffer, headChunk.byteOffset, n)
    }
    if (headChunk.length > n) {
      this.replaceHead(headChunk.subarray(n))
      return new Uint8Array(headChunk.buffer, headChunk.byteOffset, n)
    }
    const out = new Uint8Array(n)
    let offset = 0
    while (offset < n) {
      const chunk = this.chunks[this.head] as Uint8Array
      const want = n - offset
      if (chunk.length <= want) {
        out.set(chunk, offset)
        offset += chunk.length
        this.shiftChunk()
      } else {
        out.set(chunk.subarray(0, want), offset)
        this.replaceHead(chunk.subarray(want))
        offset = n
      }
    }
    return out
  }

  private shiftChunk(): void {
    const removed = this.chunks[this.head]
    this.chunks[this.head] = EMPTY
    this.head++
    if (removed === this.tailView) this.tailView = undefined
    if (this.head === this.chunks.length) {
      // Emptied: the slots stay until 16 are used (no `length = 0` per frame, which is a runtime
      // call, and no regrowth on the next push; the first push's backing store has 17 slots).
      if (this.head >= 16) {
        this.chunks = []
        this.head = 0
      }
    } else if (this.head >= 64 && this.head * 2 >= this.chunks.length) {
      this.compact()
    }
  }

  private replaceHead(view: Uint8Array): void {
    const old = this.chunks[this.head]
    this.chunks[this.head] = view
    if (old === this.tailView) this.tailView = undefined
  }

  private compact(): void {
    if (this.head === 0) return
    this.chunks = this.chunks.slice(this.head)
    this.head = 0
  }

  private consumedNow(n: number): void {
    this.consumedTotal += n
    this.scanOffset = 0
    this.big = undefined
    this.resetCursor()
    if (this.pausedProducer && this.length <= this.highWaterMark >>> 1) {
      this.pausedProducer = false
      this.onResume?.()
      this.producer?.resume()
    }
  }

  private resetCursor(): void {
    this.cursorChunk = this.head
    this.cursorBase = 0
  }

  private matchesAcross(chunkIndex: number, position: number, pattern: Uint8Array): boolean {
    let ci = chunkIndex
    let chunk = this.chunks[ci] as Uint8Array
    let p = position
    for (let k = 0; k < pattern.length; k++) {
      while (p >= chunk.length) {
        ci++
        if (ci >= this.chunks.length) return false
        chunk = this.chunks[ci] as Uint8Array
        p = 0
      }
      if (chunk[p] !== pattern[k]) return false
      p++
    }
    return true
  }
}

const RESOLVED_TRUE = Promise.resolve(true)
const RESOLVED_FALSE = Promise.resolve(false)

/** Patterns up to this length are searched for by their first byte (no Buffer view allocated). */
const SHORT_PATTERN = 8

/** First index ≥ from where `pattern` starts and ends within `chunk`, or -1. */
function indexOfShort(chunk: Uint8Array, pattern: Uint8Array, from: number): number {
  const first = pattern[0] as number
  const dl = pattern.length
  const last = chunk.length - dl
  let i = chunk.indexOf(first, from)
  while (i >= 0 && i <= last) {
    let k = 1
    while (k < dl && chunk[i + k] === pattern[k]) k++
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
  if (typeof bytes !== 'object' || bytes === null || typeof (bytes as { next?: unknown }).next !== 'function') {
    throw new TypeError(`expected an AsyncIterator<Uint8Array> (a connection's byte stream), got ${describe(bytes)}`)
  }
  let stream = streams.get(bytes)
  if (stream === undefined) {
    stream = new ByteStream(bytes)
    streams.set(bytes, stream)
  }
  return stream
}

function describe(value: unknown): string {
  if (value === null) return 'null'
  if (value instanceof Uint8Array) return `a ${value.constructor.name} of ${value.length} bytes`
  return typeof value
}
