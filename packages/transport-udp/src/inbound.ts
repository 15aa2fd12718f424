import { ByteQueue, ByteStream, type LabwireError } from '@labwire/core'

/** The incoming side of one connection: the producer's end (push, end, fail) and the reader's {@link ByteStream}. */
export interface Inbound {
  readonly stream: ByteStream
  /** True while more than `highWaterMark` bytes wait unread and no reader has asked for more. */
  readonly paused: boolean
  push(chunk: Uint8Array): void
  end(): void
  fail(error: LabwireError): void
}

/**
 * A connection's byte stream fed by events, built the way TcpServer builds its own (a bounded
 * `ByteQueue` read by a `ByteStream`): concurrent waiters on the stream share one pending read,
 * which a handler that reads ahead while it works (the application compliance probe) relies on.
 * @internal
 */
export function inbound(options: { label: string; highWaterMark: number; timeout?: number | undefined; onPause?: () => void; onResume?: () => void }): Inbound {
  const queue = new ByteQueue({
    highWaterMark: options.highWaterMark,
    ...(options.onPause === undefined ? {} : { onPause: options.onPause }),
    ...(options.onResume === undefined ? {} : { onResume: options.onResume }),
  })
  const stream = new ByteStream(queue, { timeout: options.timeout, label: options.label })
  return {
    stream,
    get paused() {
      return queue.paused
    },
    push: (chunk) => queue.push(chunk),
    end: () => queue.end(),
    fail: (error) => queue.fail(error),
  }
}
