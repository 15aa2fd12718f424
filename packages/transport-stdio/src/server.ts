import type { Readable, Writable } from 'node:stream'
import {
  ByteStream,
  ConnectionError,
  ServerKernel,
  checkCount,
  logDebug,
  silentLogger,
  throwIfAborted,
  type AbortOptions,
  type ByteHandler,
  type ConnectionIo,
  type KernelConnection,
  type Logger,
  type ServerCloseOptions,
} from '@labwire/core'

/** Options for {@link StdioServer}. */
export interface StdioServerOptions {
  /** Called per request with the connection's byte stream; an `ApplicationServer` fits. */
  callback: ByteHandler
  /** Where requests come from. Default `process.stdin`. */
  input?: Readable
  /** Where replies go. Default `process.stdout`: nothing else may write there (a logger must write to stderr). */
  output?: Writable
  /** Unread bytes buffered before `input` is paused (backpressure). Default 64 KiB. */
  bufferSize?: number
  /** A request must arrive whole within this many milliseconds of its first byte, else its connection is closed (a slow-trickle peer cannot hold it). Default: no limit (0 = none). */
  requestTimeout?: number
  /** End the connection after this many ms with no bytes either way and no request being handled. Default: never. */
  idleTimeout?: number
  logger?: Logger
  /** Name of the peer in logs and errors. Default `'stdio'`. */
  peer?: string
}

/**
 * Serves one connection on a pair of streams, by default the process's own stdin and stdout
 * (inetd style: the process *is* the connection). Requests are handled in order; the connection
 * ends when the input ends, when the callback throws (logged), or on `close()`.
 *
 * `labwire sim --stdio` serves a simulated device this way, and {@link ChildProcessClient} talks
 * to such a process over its pipes.
 *
 * @example
 * ```ts
 * const server = new StdioServer({ callback: device })
 * await server.serve() // until stdin ends
 * ```
 */
export class StdioServer implements AsyncDisposable {
  /** The serving kernel: its connections, access policy and drain; diagnostics events name it as `kernel`. */
  readonly kernel: ServerKernel
  private readonly input: Readable
  private readonly output: Writable
  private readonly bufferSize: number
  private readonly logger: Logger
  private readonly peer: string
  private serving: Promise<void> | undefined
  private stop: ((options?: ServerCloseOptions) => Promise<void>) | undefined
  private closed = false

  constructor(options: StdioServerOptions) {
    this.input = options.input ?? process.stdin
    this.output = options.output ?? process.stdout
    this.bufferSize = checkCount('StdioServer', 'bufferSize', options.bufferSize ?? 64 * 1024)
    this.logger = options.logger ?? silentLogger
    this.peer = options.peer ?? 'stdio'
    this.kernel = new ServerKernel({
      server: 'StdioServer',
      transport: 'stdio',
      callback: options.callback,
      logger: this.logger,
      maxConnections: 1,
      idleTimeout: options.idleTimeout,
      requestTimeout: options.requestTimeout,
    })
  }

  /**
   * Serve the connection. Resolves when it is over (input ended, callback failed, or `close()`);
   * never rejects once started. Calling it again returns the same promise. Rejects with
   * `ConnectionError` after `close()`, `AbortError` if the signal is already aborted.
   */
  serve(options?: AbortOptions): Promise<void> {
    try {
      throwIfAborted(options)
    } catch (error) {
      return Promise.reject(error)
    }
    if (this.serving !== undefined) return this.serving
    if (this.closed) return Promise.reject(new ConnectionError(`StdioServer (${this.peer}) is closed`))
    const { input, output, peer } = this
    const stream = new ByteStream(undefined, { highWaterMark: this.bufferSize, onPause: () => input.pause(), onResume: () => input.resume(), label: peer })
    const onData = (chunk: Buffer | string): void => stream.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
    const onEnd = (): void => stream.end()
    const onInputError = (error: Error): void => stream.fail(new ConnectionError(`${peer}: input failed: ${error.message}`, { cause: error }))
    let outputBroken = false
    const onOutputError = (error: Error): void => {
      outputBroken = true
      logDebug(this.logger, () => [{ peer, err: error }, 'output failed'])
      stream.fail(new ConnectionError(`${peer}: output failed: ${error.message}`, { cause: error }))
    }
    input.on('data', onData)
    input.on('end', onEnd)
    input.on('close', onEnd)
    input.on('error', onInputError)
    output.on('error', onOutputError)
    let ended = false
    let conn: KernelConnection | undefined
    let finished!: () => void
    const done = new Promise<void>((resolve) => {
      finished = resolve
    })
    const io: ConnectionIo = {
      write(bytes) {
        if (ended || outputBroken || output.destroyed || !output.writable) return undefined
        if (output.write(bytes)) return undefined
        return new Promise<void>((resolve) => {
          const done = (): void => {
            output.off('drain', done)
            output.off('close', done)
            output.off('error', done)
            resolve()
          }
          output.on('drain', done)
          output.on('close', done)
          output.on('error', done)
        })
      },
      flush: () => undefined,
      attach: (kernelConnection) => {
        conn = kernelConnection
      },
      destroy: () => io.end(),
      end: () => {
        if (ended) return
        ended = true
        stream.end()
        input.off('data', onData)
        input.off('end', onEnd)
        input.off('close', onEnd)
        input.off('error', onInputError)
        input.pause()
        // Our own stdin would keep the process alive: let go of it. Other inputs belong to the caller.
        if (input === process.stdin) input.destroy()
        // process.stdout cannot be ended; the peer sees the end when this process exits.
        if (output !== process.stdout && output !== process.stderr && !outputBroken) output.end()
        output.off('error', onOutputError)
        output.on('error', () => undefined)
        conn?.closed()
        finished()
      },
    }
    logDebug(this.logger, () => [{ peer }, 'serving on stdio'])
    conn = this.kernel.admit(peer, stream, io)
    if (conn === undefined) return Promise.reject(new ConnectionError(`StdioServer (${peer}) is closed`))
    this.stop = (options) => this.kernel.close(options)
    this.serving = done
    input.resume()
    return this.serving
  }

  /**
   * End the connection: stop reading, end the output (unless it is `process.stdout`, which ends
   * when the process exits). Resolves at once; a callback still running is abandoned and its reply
   * is not written — unless `drain` lets requests in flight finish for up to that many ms (then it
   * resolves once the connection is over). `serve()` resolves when the connection is over. Idempotent.
   */
  close(options?: ServerCloseOptions): Promise<void> {
    this.closed = true
    const closing = this.stop?.(options) ?? Promise.resolve()
    return options?.drain === undefined ? Promise.resolve() : closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}
