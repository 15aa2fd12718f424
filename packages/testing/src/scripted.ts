/**
 * A scripted device: a driver under test talks to it and it answers from a script, in order,
 * failing loudly (with a diff) on the first request the script does not expect.
 *
 * @module
 */
import { MemoryClient, MemoryServer, NEED_MORE, byteStreamOf, type ByteHandlerObject, type ByteStream, type FrameDecoder, type ServerAddress, type TransportClient } from '@labwire/core'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { conversations, parseTranscript, readTranscript, type TranscriptEntry } from '@labwire/simulator'
import { TcpServer } from '@labwire/transport-tcp'
import { ScriptIncompleteError, ScriptMismatchError } from './errors.js'

/** What one step expects: exact text (the request without its terminator), exact bytes, or a pattern. */
export type Expectation = string | Uint8Array | RegExp

/** One step of a conversation. */
export interface ScriptStep {
  /** The request the driver must send next (without its terminator). */
  expect: Expectation
  /** What the device answers (the terminator is added), several frames as a list; none when absent. */
  reply?: string | Uint8Array | readonly (string | Uint8Array)[] | undefined
  /** Bytes sent exactly as given (no terminator added), after `reply` — what a transcript holds. */
  raw?: Uint8Array | undefined
  /** Milliseconds to wait before answering. */
  delay?: number | undefined
}

/** A framer for the device: how requests are framed, how replies are written. */
export interface ScriptFramer {
  readonly decoder: FrameDecoder
  marshall(payload: Uint8Array): Uint8Array
}

/** Options for {@link scriptedDevice}. */
export interface ScriptedDeviceOptions {
  /** Ends each request; added to each reply unless `responseTerminator` says otherwise. Default `'\n'`. */
  requestTerminator?: string
  /** Added to each `reply`. Default: `requestTerminator`. */
  responseTerminator?: string
  /** Any other framing (binary protocols): requests are decoded with it, replies marshalled with it. Overrides the terminators. */
  framer?: ScriptFramer
  /** Ignore a trailing `'\r'` of each request (drivers that send CR LF). Default true. */
  ignoreTrailingCr?: boolean
  /** Name shown in messages. Default `'scripted device'`. */
  name?: string
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

function bytesOf(value: string | Uint8Array): Uint8Array {
  return typeof value === 'string' ? encoder.encode(value) : value
}

/** Text for messages: printable ASCII as is, the rest escaped (`\r`, `\n`, `\xNN`). */
export function show(bytes: Uint8Array): string {
  let out = ''
  for (const b of bytes) {
    if (b === 0x0a) out += '\\n'
    else if (b === 0x0d) out += '\\r'
    else if (b === 0x09) out += '\\t'
    else if (b === 0x22) out += '\\"'
    else if (b === 0x5c) out += '\\\\'
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b)
    else out += `\\x${b.toString(16).padStart(2, '0')}`
  }
  return `"${out}"`
}

function describe(expectation: Expectation): string {
  if (expectation instanceof RegExp) return String(expectation)
  return show(bytesOf(expectation))
}

function matches(expectation: Expectation, got: Uint8Array): boolean {
  if (expectation instanceof RegExp) {
    expectation.lastIndex = 0
    return expectation.test(decoder.decode(got))
  }
  const want = bytesOf(expectation)
  return want.length === got.length && want.every((b, i) => b === got[i])
}

/**
 * A device that plays a script. Serve it on the memory transport ({@link ScriptedDevice.client})
 * or a real socket ({@link ScriptedDevice.listen}), or pass it as any transport server's callback.
 * The first request that does not match closes that connection (the driver sees a
 * `ConnectionClosedError` at once, not a timeout) and is kept: {@link ScriptedDevice.verify}
 * throws it as a {@link ScriptMismatchError} whose message is a diff of expected and got.
 */
export class ScriptedDevice implements ByteHandlerObject, AsyncDisposable {
  readonly steps: readonly ScriptStep[]
  readonly name: string
  private next = 0
  private mismatch: ScriptMismatchError | undefined
  private readonly requestDecoder: FrameDecoder
  private readonly marshall: (payload: Uint8Array) => Uint8Array
  private readonly ignoreCr: boolean
  private memory: MemoryServer | undefined
  private tcp: TcpServer | undefined
  private readonly got: Uint8Array[] = []

  constructor(steps: readonly ScriptStep[], options: ScriptedDeviceOptions = {}) {
    if (!Array.isArray(steps)) throw new TypeError('scriptedDevice: steps must be a list of { expect, reply? }')
    steps.forEach((step: unknown, i) => {
      const expectation = step !== null && typeof step === 'object' ? (step as { expect?: unknown }).expect : undefined
      if (!(typeof expectation === 'string' || expectation instanceof Uint8Array || expectation instanceof RegExp)) {
        throw new TypeError(`scriptedDevice: step ${i + 1} needs expect: a string, bytes or a RegExp`)
      }
    })
    this.steps = steps
    this.name = options.name ?? 'scripted device'
    this.ignoreCr = options.ignoreTrailingCr ?? true
    if (options.framer !== undefined) {
      this.requestDecoder = options.framer.decoder
      this.marshall = (payload) => options.framer?.marshall(payload) ?? payload
    } else {
      const q = options.requestTerminator ?? '\n'
      const r = encoder.encode(options.responseTerminator ?? q)
      this.requestDecoder = new SentinelBytesMarshaller(q).decoder
      this.marshall = (payload) => {
        const out = new Uint8Array(payload.length + r.length)
        out.set(payload)
        out.set(r, payload.length)
        return out
      }
    }
  }

  /** Steps answered so far. */
  get position(): number {
    return this.next
  }

  /** True once every step was played and nothing went wrong. */
  get done(): boolean {
    return this.mismatch === undefined && this.next === this.steps.length
  }

  /** The first mismatch, if any. */
  get failure(): ScriptMismatchError | undefined {
    return this.mismatch
  }

  /** Throw the first mismatch, or a {@link ScriptIncompleteError} if steps were never reached. Call it at the end of a test. */
  verify(): void {
    if (this.mismatch !== undefined) throw this.mismatch
    if (this.next < this.steps.length) {
      const remaining = this.steps.map((_, i) => i).slice(this.next)
      throw new ScriptIncompleteError(`${this.name}: the script stopped at step ${this.next + 1} of ${this.steps.length}; never received:\n${remaining.map((i) => `    ${i + 1}  ${describe((this.steps[i] as ScriptStep).expect)}`).join('\n')}`, remaining)
    }
  }

  /**
   * Run `driver` (the code under test talking to this device), then {@link ScriptedDevice.verify}.
   * When the script was broken, the {@link ScriptMismatchError} (with its diff) is what fails the
   * test, with the driver's own error (typically the closed connection) as its `cause`.
   */
  async run<T>(driver: () => Promise<T>): Promise<T> {
    let result: T
    try {
      result = await driver()
    } catch (error) {
      const mismatch = this.mismatch
      if (mismatch === undefined) throw error
      throw new ScriptMismatchError(mismatch.message, mismatch.step, mismatch.expected, mismatch.got, { cause: error })
    }
    this.verify()
    return result
  }

  /** A client on the memory transport (no socket): `new ApplicationClient(device.client(), …)`. */
  client(): TransportClient {
    this.memory ??= new MemoryServer({ callback: this })
    return new MemoryClient(this.memory)
  }

  /** Serve on a real TCP socket (loopback, port 0 by default). */
  async listen(options: { host?: string; port?: number } = {}): Promise<ServerAddress> {
    this.tcp ??= new TcpServer({ host: options.host ?? '127.0.0.1', port: options.port ?? 0, callback: this })
    return this.tcp.listen()
  }

  /** Close the servers it runs. Does not throw for a mismatch: call {@link ScriptedDevice.verify}. */
  async close(): Promise<void> {
    await Promise.all([this.memory?.close(), this.tcp?.close()])
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  /** The transport-server callback (synchronous path). */
  handleBuffered(stream: ByteStream): Uint8Array | undefined | typeof NEED_MORE | Promise<Uint8Array | undefined> {
    const frame = this.requestDecoder.decode(stream)
    if (frame === NEED_MORE) return NEED_MORE
    return this.answer(frame)
  }

  /** The transport-server callback. */
  async handle(bytes: AsyncIterator<Uint8Array>): Promise<Uint8Array | undefined> {
    const stream = byteStreamOf(bytes)
    for (;;) {
      const result = this.handleBuffered(stream)
      if (result !== NEED_MORE) return result
      if (!(await stream.fill())) throw stream.closedError()
    }
  }

  private answer(frame: Uint8Array): Uint8Array | undefined | Promise<Uint8Array | undefined> {
    const request = this.ignoreCr && frame[frame.length - 1] === 0x0d ? frame.subarray(0, -1) : frame
    this.got.push(request.slice())
    if (this.mismatch !== undefined) throw this.mismatch
    const index = this.next
    const step = this.steps[index]
    if (step === undefined || !matches(step.expect, request)) {
      this.mismatch = this.mismatchError(index, request)
      // Throwing closes this connection: the driver fails now instead of waiting for a timeout.
      throw this.mismatch
    }
    this.next++
    const replies = step.reply === undefined ? [] : typeof step.reply === 'string' || step.reply instanceof Uint8Array ? [step.reply] : step.reply
    const parts = replies.map((r) => this.marshall(bytesOf(r)))
    if (step.raw !== undefined) parts.push(step.raw)
    const out = parts.length === 0 ? undefined : parts.length === 1 ? parts[0] : concat(parts)
    if (step.delay === undefined || step.delay <= 0) return out
    return new Promise((resolve) => setTimeout(() => resolve(out), step.delay))
  }

  private mismatchError(index: number, got: Uint8Array): ScriptMismatchError {
    const total = this.steps.length
    const lines: string[] = []
    const step = this.steps[index]
    if (step === undefined) {
      lines.push(`${this.name}: request after the end of the script (all ${total} steps done)`, `  got:      ${show(got)}`)
    } else {
      const expected = describe(step.expect)
      const gotText = show(got)
      lines.push(`${this.name}: unexpected request at step ${index + 1} of ${total}`, `  expected: ${expected}`, `  got:      ${gotText}`)
      if (!(step.expect instanceof RegExp)) {
        let at = 0
        while (at < expected.length && at < gotText.length && expected[at] === gotText[at]) at++
        lines.push(`            ${' '.repeat(at)}^ differs here`)
      }
    }
    lines.push('  script:')
    const from = Math.max(0, index - 3)
    const to = Math.min(total, index + 3)
    for (let i = from; i < to; i++) {
      const mark = i < index ? '✓' : i === index ? '✗' : ' '
      lines.push(`  ${i === index ? '→' : ' '} ${String(i + 1).padStart(3)} ${mark} ${describe((this.steps[i] as ScriptStep).expect)}`)
    }
    if (to < total) lines.push(`        … ${total - to} more`)
    return new ScriptMismatchError(lines.join('\n'), index, step === undefined ? undefined : describe(step.expect), show(got))
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/**
 * A device that plays `steps` in order.
 *
 * @example
 * ```ts
 * const device = scriptedDevice([{ expect: '*IDN?', reply: 'ACME,PSU,1,1.0' }, { expect: 'VOLT 5' }])
 * const client = new ApplicationClient(device.client(), lines.marshall, lines.unmarshall)
 * // … drive the code under test …
 * device.verify() // throws a readable diff on a wrong request, or lists the steps never reached
 * ```
 */
export function scriptedDevice(steps: readonly ScriptStep[], options?: ScriptedDeviceOptions): ScriptedDevice {
  return new ScriptedDevice(steps, options)
}

/** Options for {@link scriptFromTranscript}. */
export interface TranscriptScriptOptions {
  /** Which client connection of the transcript (default: the first with a request). */
  connection?: number
  /** The request terminator to strip from each request. Default `'\n'` (and a trailing `'\r'`). */
  requestTerminator?: string
}

/**
 * A script from a proxy transcript (`labwire proxy --transcript`): each request of one connection
 * becomes a step expecting it, answered with exactly the bytes the instrument sent after it.
 * Use with `scriptedDevice(steps, { ... })` whose request terminator matches.
 */
export function scriptFromTranscript(transcript: string | readonly TranscriptEntry[], options: TranscriptScriptOptions = {}): ScriptStep[] {
  const entries = typeof transcript === 'string' ? parseTranscript(transcript) : transcript
  const all = conversations(entries)
  const conversation = options.connection === undefined ? all.find((c) => c.exchanges.length > 0) : all.find((c) => c.connection === options.connection)
  if (conversation === undefined) throw new RangeError(options.connection === undefined ? 'the transcript holds no request' : `the transcript has no connection ${options.connection}`)
  const term = encoder.encode(options.requestTerminator ?? '\n')
  return conversation.exchanges.map(({ request, replies }) => {
    let q = request
    if (q.length >= term.length && term.every((b, i) => q[q.length - term.length + i] === b)) q = q.subarray(0, q.length - term.length)
    if (q[q.length - 1] === 0x0d) q = q.subarray(0, -1)
    const text = decodeExact(q)
    const step: ScriptStep = { expect: text ?? q.slice() }
    if (replies.length > 0) step.raw = concat(replies)
    return step
  })
}

/** Read a transcript file (JSONL) into a script. */
export async function loadScript(file: string, options?: TranscriptScriptOptions): Promise<ScriptStep[]> {
  return scriptFromTranscript(await readTranscript(file), options)
}

function decodeExact(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    return undefined
  }
}
