import { NEED_MORE, byteStreamOf, decodeFrom, type ByteStream, type FrameDecoder, type TransportClient, type TransportClientSession } from '@labwire/core'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { framerByName } from '@labwire/simulator'
import { TcpClient } from '@labwire/transport-tcp'

/** One step of a session: a command, and whether the instrument answers it. */
export type Step = readonly [command: string, answers: boolean]

/** A lockstep client over any transport: send a command (plus terminator), read one reply (raw bytes, terminator included). */
export class RawClient implements AsyncDisposable {
  private constructor(
    private readonly session: TransportClientSession,
    private readonly stream: ByteStream,
    private readonly decoder: FrameDecoder,
    private readonly terminator: string,
  ) {}

  static async connect(transport: TransportClient, options: { reply?: FrameDecoder; terminator?: string } = {}): Promise<RawClient> {
    const session = await transport.connect({ signal: AbortSignal.timeout(5_000) })
    const stream = byteStreamOf(session.request(new Uint8Array(0)))
    return new RawClient(session, stream, options.reply ?? framerByName('scpi').decoder, options.terminator ?? '\n')
  }

  /** Read one raw frame (the bytes consumed for it). */
  async read(decoder: FrameDecoder = this.decoder): Promise<Uint8Array> {
    const before = this.stream.consumed
    for (;;) {
      const view = this.stream.view()
      if (decoder.decode(this.stream) !== NEED_MORE) return view.slice(0, this.stream.consumed - before)
      if (!(await Promise.race([this.stream.fill(), timeout(3_000)]))) throw this.stream.closedError()
    }
  }

  async send(command: string): Promise<void> {
    const bytes = new TextEncoder().encode(command + this.terminator)
    if (this.session.write !== undefined) await this.session.write(bytes)
    else this.session.request(bytes)
  }

  /** Run the steps; the replies as text (raw, terminators included), `null` for commands without one. */
  async run(steps: readonly Step[]): Promise<(string | null)[]> {
    const out: (string | null)[] = []
    for (const [command, answers] of steps) {
      await this.send(command)
      out.push(answers ? Buffer.from(await this.read()).toString('latin1') : null)
    }
    return out
  }

  close(): Promise<void> {
    return this.session.close()
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}

function timeout(ms: number): Promise<never> {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(`no reply within ${ms} ms`)), ms).unref())
}

export function tcp(port: number): TcpClient {
  return new TcpClient({ host: '127.0.0.1', port })
}

export function promptDecoder(prompt: string): FrameDecoder {
  return new SentinelBytesMarshaller(prompt).decoder
}

export { decodeFrom }
