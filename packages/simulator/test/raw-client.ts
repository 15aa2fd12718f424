import { connect, type Socket } from 'node:net'

/** A bare TCP client for byte-exact checks: collects everything the server sends. */
export class RawClient {
  private chunks: Buffer[] = []
  private length = 0
  private ended = false
  private waiters: (() => void)[] = []

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk)
      this.length += chunk.length
      this.wake()
    })
    socket.on('end', () => {
      this.ended = true
      this.wake()
    })
    socket.on('close', () => {
      this.ended = true
      this.wake()
    })
    socket.on('error', () => {
      this.ended = true
      this.wake()
    })
  }

  static open(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host })
      socket.once('connect', () => resolve(new RawClient(socket)))
      socket.once('error', reject)
    })
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter()
  }

  get received(): Buffer {
    return Buffer.concat(this.chunks)
  }

  get isEnded(): boolean {
    return this.ended
  }

  write(data: string | Uint8Array): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data)
  }

  /** Wait until at least `n` bytes arrived in total (or the stream ended); bounded by `ms`. */
  async waitForLength(n: number, ms = 5_000): Promise<Buffer> {
    const deadline = AbortSignal.timeout(ms)
    while (this.length < n && !this.ended) {
      if (deadline.aborted) throw new Error(`timed out waiting for ${n} bytes; got ${this.length}: ${JSON.stringify(this.received.toString('latin1'))}`)
      await new Promise<void>((resolve) => {
        const onAbort = (): void => resolve()
        deadline.addEventListener('abort', onAbort, { once: true })
        this.waiters.push(() => {
          deadline.removeEventListener('abort', onAbort)
          resolve()
        })
      })
    }
    return this.received
  }

  /** Wait until `text` appears in what was received. */
  async waitFor(text: string, ms = 5_000): Promise<string> {
    const deadline = AbortSignal.timeout(ms)
    while (!this.received.toString('latin1').includes(text)) {
      if (this.ended) throw new Error(`stream ended before ${JSON.stringify(text)}; got ${JSON.stringify(this.received.toString('latin1'))}`)
      if (deadline.aborted) throw new Error(`timed out waiting for ${JSON.stringify(text)}; got ${JSON.stringify(this.received.toString('latin1'))}`)
      await new Promise<void>((resolve) => {
        const onAbort = (): void => resolve()
        deadline.addEventListener('abort', onAbort, { once: true })
        this.waiters.push(() => {
          deadline.removeEventListener('abort', onAbort)
          resolve()
        })
      })
    }
    return this.received.toString('latin1')
  }

  /** Half-close and wait for the server to finish and close its side. */
  async endAndDrain(ms = 5_000): Promise<Buffer> {
    this.socket.end()
    await this.waitForLength(Number.MAX_SAFE_INTEGER, ms)
    return this.received
  }

  destroy(): void {
    this.socket.destroy()
  }
}
