/**
 * Shared fixtures for the compliance suites: one {@link TransportSetup} per transport, plus small
 * byte and promise helpers. A new transport plugs into every suite by adding one setup here (or in
 * its own test file) and calling `transportCompliance(setup)` / `applicationCompliance(setup)`.
 */
import { MemoryClient, MemoryServer, toBytes, toText, type ByteHandler, type TransportClient } from '@labwire/core'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'

/** A running server for one test, and a client for it. */
export interface TransportFixture {
  client: TransportClient
  /** Stop the server (and with it every connection). Idempotent. */
  close(): Promise<void>
}

/** How a compliance suite gets a server running `handler` (STYLE #7). */
export interface TransportSetup {
  name: string
  /** Sessions the "many sessions at once" cases open together (default 50); lower for transports whose session is a process. */
  concurrentSessions?: number
  start(handler: ByteHandler): Promise<TransportFixture>
}

export const memorySetup: TransportSetup = {
  name: 'memory',
  start(handler) {
    const server = new MemoryServer({ callback: handler })
    return Promise.resolve({ client: new MemoryClient(server), close: () => server.close() })
  },
}

export const tcpSetup: TransportSetup = {
  name: 'tcp',
  async start(handler) {
    const server = new TcpServer({ port: 0, callback: handler })
    const { port } = await server.listen()
    return { client: new TcpClient({ host: '127.0.0.1', port }), close: () => server.close() }
  },
}

/** UTF-8 bytes of a string. */
export const bytes = (text: string): Uint8Array => toBytes(text)
/** UTF-8 text of bytes. */
export const text = (data: Uint8Array): string => toText(data)

/** A promise with its resolve function exposed (a gate a test opens). */
export interface Deferred<T = void> {
  promise: Promise<T>
  resolve(value: T): void
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => {
    resolve = r
  })
  return { promise, resolve }
}

/** Resolve after `ms` milliseconds: a behaviour (a slow device), never a synchronisation. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Reject with a plain Error if `promise` has not settled within `ms` (bounds a wait with a clear message). */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms)
  })
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer))
}

/** The settled rejection of `promise` (fails if it resolves). */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected the promise to reject, but it resolved')
}
