import type { Socket } from 'node:net'
import type { ByteStream } from '@labwire/core'

/** The write side of a served connection: what `ServedConnection.write` and `flush` need. */
export interface ReplyWriter {
  /** Write a reply; returns a promise only when the socket's write buffer is full (wait for drain or close). */
  readonly write: (bytes: Uint8Array) => Promise<void> | undefined
  /** Release corked replies. */
  readonly flush: () => void
}

/**
 * How a socket server writes replies (shared by `TcpServer` and servers built on its sockets, such
 * as the simulator's). A reply to a lone request goes out at once; while more requests are already
 * buffered (a pipelined burst) replies are corked and leave together, released when the serving
 * loop waits for input or at the end of the tick, whichever is first. `encode` runs on every reply
 * (a filter's `output`).
 */
export function replyWriter(socket: Socket, stream: ByteStream, encode?: (bytes: Uint8Array) => Uint8Array): ReplyWriter {
  let corked = false
  const flush = (): void => {
    if (corked) {
      corked = false
      socket.uncork()
    }
  }
  const write = (reply: Uint8Array): Promise<void> | undefined => {
    if (socket.destroyed || !socket.writable) return undefined
    const bytes = encode === undefined ? reply : encode(reply)
    if (!corked && stream.bufferedLength > 0) {
      corked = true
      socket.cork()
      process.nextTick(flush)
    }
    if (socket.write(bytes)) return undefined
    flush()
    return new Promise<void>((resolve) => {
      const done = (): void => {
        socket.off('drain', done)
        socket.off('close', done)
        resolve()
      }
      socket.on('drain', done)
      socket.on('close', done)
    })
  }
  return { write, flush }
}
