import type { Socket } from 'node:net'
import type { ByteStream, ConnectionFilter, ConnectionIo, KernelConnection, Logger } from '@labwire/core'
import { logDebug } from '@labwire/core'
import { formatTarget } from './client.js'

/** The write side of a served connection: what `ServedConnection.write` and `flush` need. */
export interface ReplyWriter {
  /** Write a reply; returns a promise only when the socket's write buffer is full (wait for drain or close). */
  readonly write: (bytes: Uint8Array) => Promise<void> | undefined
  /** Release corked replies. */
  readonly flush: () => void
}

const CLOSE_LINGER_MS = 1000
/** V8 keeps typed arrays up to this many bytes on its heap (`--typed-array-max-size-in-heap`, default 64). */
const ON_HEAP_MAX = 64

/** Replies up to this size are gathered into one buffer during a pipelined burst. */
const BATCH_ITEM_MAX = 1024
/** The first batch buffer of a burst (from Node's pool), and the size of every later one. */
const BATCH_FIRST = 2048
const BATCH_NEXT = 16 * 1024

function pooledCopy(bytes: Uint8Array): Buffer {
  const copy = Buffer.allocUnsafe(bytes.length)
  copy.set(bytes)
  return copy
}
const kIo = Symbol('labwire.socketIo')

type TaggedSocket = Socket & { [kIo]?: SocketIo }

/**
 * One server-side socket as the serving kernel drives it (shared by `TcpServer`, hence Telnet,
 * and the simulator's server): feeds the connection's byte stream (through the optional filter),
 * writes replies and ends the socket. One object per connection; the socket's listeners are
 * shared functions that find it on the socket, not closures.
 *
 * A reply to a lone request goes out at once; while more requests are already buffered (a
 * pipelined burst) replies are corked and leave together, released when the serving loop waits
 * for input or at the end of the tick, whichever is first. Small replies of a burst are copied
 * into one batch buffer (2 KiB, then 16 KiB ones) rather than written one by one: one socket
 * write per batch instead of one per reply. Protocol bytes a filter sends itself
 * (Telnet negotiation replies) count against the same socket write buffer: when it is full,
 * reading pauses until it drains, so a peer that never reads cannot grow it.
 */
export class SocketIo implements ConnectionIo {
  /** Set once the kernel admitted the connection. */
  conn: KernelConnection | undefined = undefined
  filter: ConnectionFilter | undefined = undefined
  private corked = false
  /** Reading paused because filter output filled the write buffer. */
  private sendPaused = false
  /** Small replies of a pipelined burst, not yet handed to the socket (only during a burst). */
  private batch: Buffer | undefined = undefined
  private batchUsed = 0

  constructor(
    readonly socket: Socket,
    readonly stream: ByteStream,
    /** The peer's name; `undefined`: read from the socket on first use (no `getpeername` per accept). */
    private peerName: string | undefined,
    readonly logger: Logger,
  ) {}

  /** `host:port` of the peer, read from the socket the first time it is asked for (`?:0` once the socket has no address). */
  get peer(): string {
    return (this.peerName ??= formatTarget(this.socket.remoteAddress ?? '?', this.socket.remotePort ?? 0))
  }

  attach(conn: KernelConnection): void {
    this.conn = conn
  }

  /** Attach the socket's listeners (data → stream, end, close, error). */
  listen(): void {
    const socket = this.socket as TaggedSocket
    socket[kIo] = this
    socket.on('data', this.filter === undefined ? onPlainData : onFilteredData)
    socket.on('end', onEnd)
    socket.on('close', onClose)
  }

  write(reply: Uint8Array): Promise<void> | undefined {
    const socket = this.socket
    // A destroyed socket is not writable either (one state object read, not two).
    if (!socket.writable) return undefined
    const filtered = this.filter === undefined ? reply : this.filter.output(reply)
    const burst = this.stream.bufferedLength > 0
    if (!this.corked && burst) {
      this.corked = true
      socket.cork()
      process.nextTick(uncork, this)
    }
    if (filtered.length <= BATCH_ITEM_MAX && (burst || this.batch !== undefined)) {
      // A pipelined burst: gather the reply; the batch goes to the socket when full, when the loop
      // waits for input or at the end of the tick (flush), or before anything else is written.
      let batch = this.batch
      if (batch === undefined || this.batchUsed + filtered.length > batch.length) {
        if (batch !== undefined) this.writeBatch()
        batch = this.batch = Buffer.allocUnsafe(batch === undefined ? BATCH_FIRST : BATCH_NEXT)
        this.batchUsed = 0
      }
      batch.set(filtered, this.batchUsed)
      this.batchUsed += filtered.length
      if (!socket.writableNeedDrain) return undefined
      return this.drained()
    }
    if (this.batch !== undefined) this.writeBatch()
    // A small plain Uint8Array may live on V8's heap: node:stream would turn it into a Buffer through
    // `.buffer`, which moves it off the heap into a backing store of its own (about 0.25 µs, and
    // each one a separate chunk for writev). A copy into Node's pooled slab costs a fifth of that.
    // One at a non-zero offset is a view of an ArrayBuffer that already exists (a marshaller's
    // frame carved from a slab): written as it is.
    const bytes = filtered.length <= ON_HEAP_MAX && filtered.byteOffset === 0 && !(filtered instanceof Buffer) ? pooledCopy(filtered) : filtered
    if (socket.write(bytes)) return undefined
    return this.drained()
  }

  /** Hand the gathered replies of a burst to the socket now (before writing to it directly). */
  protected flushBatch(): void {
    if (this.batch !== undefined) this.writeBatch()
  }

  /** Hand the batch to the socket (still corked during the burst). */
  private writeBatch(): void {
    const batch = this.batch as Buffer
    const used = this.batchUsed
    this.batch = undefined
    this.batchUsed = 0
    if (used > 0 && !this.socket.destroyed && this.socket.writable) this.socket.write(batch.subarray(0, used))
  }

  /** Release what is queued and wait until the socket's write buffer drains (or the socket closes). */
  private drained(): Promise<void> {
    const socket = this.socket
    this.flush()
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

  flush(): void {
    if (this.batch !== undefined) this.writeBatch()
    if (this.corked) {
      this.corked = false
      this.socket.uncork()
    }
  }

  /** Raw protocol bytes from the filter (negotiation replies, a banner): same write buffer; a full one pauses reading. */
  send(bytes: Uint8Array): void {
    const socket = this.socket
    if (socket.destroyed || !socket.writable) return
    if (this.conn !== undefined) this.conn.bytesOut += bytes.length
    if (this.batch !== undefined) this.writeBatch()
    if (socket.write(bytes) || this.sendPaused) return
    this.sendPaused = true
    socket.pause()
    socket.once('drain', () => {
      this.sendPaused = false
      if (!this.stream.paused) socket.resume()
    })
  }

  end(): void {
    this.stream.end()
    if (this.batch !== undefined) this.writeBatch()
    lingeringClose(this.socket)
  }

  destroy(): void {
    this.stream.end()
    this.batch = undefined
    this.socket.destroy()
  }

  /** @internal */
  receive(chunk: Buffer): void {
    const filter = this.filter as ConnectionFilter
    let data: Uint8Array
    try {
      data = filter.input(chunk)
    } catch (error) {
      this.stream.fail(error)
      this.logger.warn({ peer: this.peer, err: error }, 'protocol error; closing the connection')
      if (this.conn === undefined) this.end()
      else this.conn.close()
      return
    }
    if (data.length > 0) this.stream.push(data)
  }

  /** @internal */
  gone(): void {
    this.stream.end()
    this.filter?.close?.()
    this.conn?.closed()
  }
}

function onPlainData(this: TaggedSocket, chunk: Buffer): void {
  this[kIo]?.stream.push(chunk)
}

function onFilteredData(this: TaggedSocket, chunk: Buffer): void {
  this[kIo]?.receive(chunk)
}

function onEnd(this: TaggedSocket): void {
  this[kIo]?.stream.end()
}

function onClose(this: TaggedSocket): void {
  this[kIo]?.gone()
}

function uncork(io: SocketIo): void {
  io.flush()
}

/** A socket `'error'` listener shared by every connection: logged at debug (the close that follows is what matters). */
export function socketErrorListener(this: Socket, error: Error): void {
  const io = (this as TaggedSocket)[kIo]
  if (io !== undefined) logDebug(io.logger, () => [{ peer: io.peer, err: error }, 'socket error'])
}

/**
 * How a socket server writes replies, as functions (kept for servers that do not use
 * {@link SocketIo}). See {@link SocketIo} for the corking rule.
 */
export function replyWriter(socket: Socket, stream: ByteStream, encode?: (bytes: Uint8Array) => Uint8Array): ReplyWriter {
  const io = new SocketIo(socket, stream, '', { debug: noop, info: noop, warn: noop, error: noop })
  if (encode !== undefined) io.filter = { input: (chunk) => chunk, output: encode }
  return { write: (bytes) => io.write(bytes), flush: () => io.flush() }
}

const noop = (): void => undefined

/**
 * Lingering close: send what is queued and a FIN, then read and drop whatever the peer still
 * sends until it closes too, for at most 1 s. Destroying at once with unread input would reset
 * the connection, and the peer could lose replies it has not read yet.
 */
export function lingeringClose(socket: Socket): void {
  if (socket.destroyed) return
  socket.removeListener('data', onPlainData)
  socket.removeListener('data', onFilteredData)
  socket.on('data', noop)
  socket.resume()
  socket.end()
  const timer = setTimeout(() => socket.destroy(), CLOSE_LINGER_MS)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
  // With allowHalfOpen the socket waits for the peer's FIN; once both sides ended, let it go.
  socket.once('end', () => socket.destroy())
}
