import { TcpServer, type TcpServerOptions } from '@labwire/transport-tcp'
import { NEED_MORE, checkCount, isConnectionHandler, toBytes, toHandlerFunction, type AbortOptions, type BufferedHandler, type ByteHandler, type ServeHandler, type ServerAddress, type ServerCloseOptions, type ServerKernel } from '@labwire/core'
import { telnetServerFilter, type TelnetServerFilterOptions } from './filter.js'

/** Options for {@link TelnetServer}: those of `TcpServer` plus banner, prompt and the subnegotiation limit. */
export interface TelnetServerOptions extends Omit<TcpServerOptions, 'filter'>, TelnetServerFilterOptions {}

/**
 * A Telnet server for simulators: `TcpServer` (same concurrency, `close()`, `idleTimeout`,
 * `maxConnections`, backpressure) with labwire's IAC codec on every connection. It offers WILL
 * SUPPRESS-GO-AHEAD, echoes only when the client asks (DO ECHO), accepts BINARY, NAWS and TTYPE,
 * refuses the rest; sends the optional banner on connect and the optional prompt after the banner
 * and after each request.
 *
 * @example
 * ```ts
 * const server = new TelnetServer({ port: 0, banner: 'simulated DMM\r\n', callback: app })
 * const { port } = await server.listen()
 * await server.close()
 * ```
 */
export class TelnetServer implements AsyncDisposable {
  private readonly tcp: TcpServer

  constructor(options: TelnetServerOptions) {
    const { banner, prompt, maxSubnegotiation, callback, ...tcp } = options
    if (maxSubnegotiation !== undefined) checkCount('TelnetServer', 'maxSubnegotiation', maxSubnegotiation, { min: 4 })
    for (const [name, value] of [['banner', banner], ['prompt', prompt]] as const) {
      if (value !== undefined && typeof value !== 'string' && !(value instanceof Uint8Array)) throw new TypeError(`TelnetServer: ${name} must be a string or a Uint8Array`)
    }
    const promptBytes = prompt === undefined ? undefined : toBytes(prompt)
    this.tcp = new TcpServer({
      ...tcp,
      // A ConnectionHandler writes what it likes: no prompt is appended for it.
      callback: promptBytes === undefined || promptBytes.length === 0 || isConnectionHandler(callback) ? callback : withPrompt(callback, promptBytes),
      transportName: 'telnet',
      filter: telnetServerFilter({ banner, prompt: promptBytes, ...(maxSubnegotiation === undefined ? {} : { maxSubnegotiation }) }),
    })
  }

  /** The serving kernel (the underlying TcpServer's): diagnostics events name it as `kernel`. */
  get kernel(): ServerKernel {
    return this.tcp.kernel
  }

  /** The bound address once listening, else `undefined`. */
  get address(): ServerAddress | undefined {
    return this.tcp.address
  }

  /** Open connections. */
  get connectionCount(): number {
    return this.tcp.connectionCount
  }

  /** Start listening. Resolves with the bound address (the real port when `port` was 0). */
  listen(options?: AbortOptions): Promise<ServerAddress> {
    return this.tcp.listen(options)
  }

  /** Stop listening and close every connection — or, with `drain`, let requests in flight finish for up to `drain` ms first. Idempotent. */
  close(options?: ServerCloseOptions): Promise<void> {
    return this.tcp.close(options)
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}

/** The handler with `prompt` appended to every reply (sent alone when there is no reply); its synchronous fast path, if any, kept. */
function withPrompt(callback: ByteHandler, prompt: Uint8Array): ServeHandler {
  const handler = toHandlerFunction(callback)
  const append = (reply: Uint8Array | undefined): Uint8Array => {
    if (reply === undefined || reply.length === 0) return prompt
    const out = new Uint8Array(reply.length + prompt.length)
    out.set(reply)
    out.set(prompt, reply.length)
    return out
  }
  const wrapped = (bytes: AsyncIterator<Uint8Array>): Uint8Array | Promise<Uint8Array> => {
    const result = handler(bytes)
    return result instanceof Promise ? result.then(append) : append(result)
  }
  const fast = handler.handleBuffered
  if (fast === undefined) return wrapped
  const handleBuffered: BufferedHandler = (stream) => {
    const result = fast(stream)
    if (result === NEED_MORE) return result
    return result instanceof Promise ? result.then(append) : append(result)
  }
  return Object.assign(wrapped, { handleBuffered })
}
