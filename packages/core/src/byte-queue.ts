import { ConnectionError, isLabwireError, type LabwireError } from './errors.js'
import { Fifo } from './fifo.js'

/** Options for {@link ByteQueue}. */
export interface ByteQueueOptions {
  /** Queued bytes above which the queue asks its producer to pause. Default 64 KiB. */
  highWaterMark?: number
  /** Called when queued bytes exceed the high-water mark (e.g. `socket.pause()`). */
  onPause?: () => void
  /** Called when the queue has been drained after a pause (e.g. `socket.resume()`). */
  onResume?: () => void
}

interface Waiter {
  resolve: (result: IteratorResult<Uint8Array>) => void
  reject: (error: unknown) => void
}

const DONE: IteratorResult<Uint8Array> = Object.freeze({ done: true, value: undefined })

/**
 * A bounded push-to-pull adapter: a producer (a socket's `data` events) pushes chunks, one consumer
 * pulls them with `next()`. When more than `highWaterMark` bytes wait unread, `onPause` is called
 * so the producer stops; once the consumer has taken them, `onResume`. Data pushed before an
 * error or end is delivered first: nothing is lost.
 */
export class ByteQueue implements AsyncIterator<Uint8Array> {
  readonly highWaterMark: number
  private readonly chunks = new Fifo<Uint8Array>()
  private queued = 0
  private ended = false
  private failure: LabwireError | undefined
  private waiter: Waiter | undefined
  private pausedProducer = false
  private readonly onPause: (() => void) | undefined
  private readonly onResume: (() => void) | undefined

  constructor(options: ByteQueueOptions = {}) {
    this.highWaterMark = options.highWaterMark ?? 64 * 1024
    this.onPause = options.onPause
    this.onResume = options.onResume
  }

  /** Bytes pushed and not yet pulled. */
  get queuedBytes(): number {
    return this.queued
  }

  /** True while the producer has been asked to pause. */
  get paused(): boolean {
    return this.pausedProducer
  }

  /** True once `end()` or `fail()` has been called. */
  get closed(): boolean {
    return this.ended || this.failure !== undefined
  }

  /** Add a chunk. Ignored after `end()` / `fail()`. */
  push(chunk: Uint8Array): void {
    if (this.ended || this.failure !== undefined || chunk.length === 0) return
    const waiter = this.waiter
    if (waiter !== undefined) {
      this.waiter = undefined
      waiter.resolve({ done: false, value: chunk })
      return
    }
    this.chunks.push(chunk)
    this.queued += chunk.length
    if (!this.pausedProducer && this.queued > this.highWaterMark) {
      this.pausedProducer = true
      this.onPause?.()
    }
  }

  /** No more data: a pending and any later `next()` resolves done once queued chunks are taken. */
  end(): void {
    if (this.ended || this.failure !== undefined) return
    this.ended = true
    const waiter = this.waiter
    if (waiter !== undefined) {
      this.waiter = undefined
      waiter.resolve(DONE)
    }
  }

  /** The producer failed: after queued chunks, `next()` rejects with `error` (wrapped in `ConnectionError` unless it is a labwire error). */
  fail(error: unknown): void {
    if (this.ended || this.failure !== undefined) return
    this.failure = isLabwireError(error) ? error : new ConnectionError(error instanceof Error ? error.message : String(error), { cause: error })
    const waiter = this.waiter
    if (waiter !== undefined) {
      this.waiter = undefined
      waiter.reject(this.failure)
    }
  }

  next(): Promise<IteratorResult<Uint8Array>> {
    const chunk = this.chunks.shift()
    if (chunk !== undefined) {
      this.queued -= chunk.length
      if (this.pausedProducer && this.queued <= this.highWaterMark >>> 1) {
        this.pausedProducer = false
        this.onResume?.()
      }
      return Promise.resolve({ done: false, value: chunk })
    }
    if (this.pausedProducer) {
      this.pausedProducer = false
      this.onResume?.()
    }
    if (this.failure !== undefined) return Promise.reject(this.failure)
    if (this.ended) return Promise.resolve(DONE)
    if (this.waiter !== undefined) return Promise.reject(new ConnectionError('concurrent reads on one byte queue'))
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject }
    })
  }
}
