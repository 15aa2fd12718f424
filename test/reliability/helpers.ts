/**
 * Shared helpers of the reliability suite: a logger that records calls, raw `node:net` peers, and
 * bounded waits. Nothing here sleeps: every wait is for an event or a condition, under a deadline.
 */
import { readdirSync } from 'node:fs'
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net'
import type { Logger } from '@labwire/core'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

export interface LogRecord {
  level: LogLevel
  context: Record<string, unknown>
  message: string | undefined
}

interface LogWaiter {
  predicate: (record: LogRecord) => boolean
  resolve: (record: LogRecord) => void
}

/** A real {@link Logger} that records every call, and lets a test wait for a given call. */
export class RecordingLogger implements Logger {
  readonly records: LogRecord[] = []
  private waiters: LogWaiter[] = []

  readonly debug = (context: object, message?: string): void => {
    this.record('debug', context, message)
  }
  readonly info = (context: object, message?: string): void => {
    this.record('info', context, message)
  }
  readonly warn = (context: object, message?: string): void => {
    this.record('warn', context, message)
  }
  readonly error = (context: object, message?: string): void => {
    this.record('error', context, message)
  }

  /** Records at `level` (or at any level when omitted). */
  at(level?: LogLevel): LogRecord[] {
    return level === undefined ? [...this.records] : this.records.filter((r) => r.level === level)
  }

  /** Every `err` value logged, at any level. */
  loggedErrors(): unknown[] {
    return this.records.filter((r) => 'err' in r.context).map((r) => r.context.err)
  }

  /** Resolve with the first record (from index `since` on, past or future) matching `predicate`; reject after `timeoutMs`. */
  waitFor(predicate: (record: LogRecord) => boolean, timeoutMs = 5_000, since = 0): Promise<LogRecord> {
    const seen = this.records.slice(since).find(predicate)
    if (seen !== undefined) return Promise.resolve(seen)
    return new Promise<LogRecord>((resolve, reject) => {
      const waiter: LogWaiter = {
        predicate,
        resolve: (record) => {
          clearTimeout(timer)
          resolve(record)
        },
      }
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter)
        reject(new Error(`no matching log record within ${timeoutMs} ms; got: ${this.describe()}`))
      }, timeoutMs)
      this.waiters.push(waiter)
    })
  }

  describe(): string {
    return JSON.stringify(this.records.map((r) => [r.level, r.message, errorName(r.context.err)]))
  }

  private record(level: LogLevel, context: object, message: string | undefined): void {
    const record: LogRecord = { level, context: context as Record<string, unknown>, message }
    this.records.push(record)
    for (const waiter of this.waiters.filter((w) => w.predicate(record))) {
      this.waiters = this.waiters.filter((w) => w !== waiter)
      waiter.resolve(record)
    }
  }
}

function errorName(err: unknown): string | undefined {
  return err instanceof Error ? err.name : err === undefined ? undefined : typeof err
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()
export const bytes = (text: string): Uint8Array => encoder.encode(text)
export const text = (data: Uint8Array): string => decoder.decode(data)

/** Resolve with `promise`, or reject with a descriptive error after `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${what}: not settled within ${ms} ms`))
    }, ms)
    promise.then(
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

/** The rejection reason of `promise` (bounded); fails if it resolves. */
export async function rejectionOf(promise: Promise<unknown>, ms = 5_000): Promise<unknown> {
  let settled: { ok: true; value: unknown } | { ok: false; error: unknown }
  try {
    settled = { ok: true, value: await within(promise, ms, 'expected rejection') }
  } catch (error) {
    settled = { ok: false, error }
  }
  if (settled.ok) throw new Error(`expected a rejection, got ${String(settled.value)}`)
  return settled.error
}

/** Wait, turn by turn of the event loop, until `condition()` holds; reject after `ms`. */
export async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`${what}: condition not met within ${ms} ms`)
    await new Promise<void>((resolve) => setTimeout(resolve, 5))
  }
}

/** A raw `node:net` client socket, connected (bounded). */
export function rawConnect(port: number, ms = 5_000): Promise<Socket> {
  return within(
    new Promise<Socket>((resolve, reject) => {
      const socket = netConnect({ host: '127.0.0.1', port })
      socket.once('connect', () => {
        socket.off('error', reject)
        resolve(socket)
      })
      socket.once('error', reject)
    }),
    ms,
    `connect to 127.0.0.1:${port}`,
  )
}

export interface Drained {
  /** Every byte received until the socket closed. */
  data: Buffer
  /** The socket error, if the connection ended with one (e.g. ECONNRESET). */
  error: Error | undefined
}

/** Collect everything a raw socket receives until it closes (bounded). Call before the data can arrive. */
export function readUntilClose(socket: Socket, ms = 5_000): Promise<Drained> {
  return within(
    new Promise<Drained>((resolve) => {
      const chunks: Buffer[] = []
      let error: Error | undefined
      socket.on('data', (chunk: Buffer) => chunks.push(chunk))
      socket.on('error', (err) => {
        error = err
      })
      socket.once('close', () => {
        resolve({ data: Buffer.concat(chunks), error })
      })
    }),
    ms,
    'raw socket close',
  )
}

/** Resolves when the socket has closed (bounded). */
export function closed(socket: Socket, ms = 5_000): Promise<void> {
  if (socket.closed) return Promise.resolve()
  return within(new Promise<void>((resolve) => socket.once('close', () => resolve())), ms, 'socket close')
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function freePort(): Promise<number> {
  const server: Server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no address')
  return address.port
}

/** Open file descriptors of this process. */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length
}

/** A small deterministic PRNG (mulberry32), so load and timing tests are reproducible from their seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The next `setImmediate` turn. */
export const nextTurn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve))

/** Heavier variants run only with LABWIRE_SOAK=1 (`pnpm soak`). */
export const SOAK = process.env.LABWIRE_SOAK === '1'
