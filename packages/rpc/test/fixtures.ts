/** Transport setups for the RPC compliance suite: memory, TCP, Unix socket, WebSocket. */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryClient, MemoryServer, type AccessPolicy, type ByteHandler, type TransportClient } from '@labwire/core'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { WebSocketClient, WebSocketServer } from '@labwire/transport-websocket'

export interface Served extends AsyncDisposable {
  client(): TransportClient
  close(): Promise<void>
}

function served(client: () => TransportClient, close: () => Promise<void>): Served {
  return { client, close, [Symbol.asyncDispose]: close }
}

export interface RpcTransportSetup {
  name: string
  network: boolean
  start(callback: ByteHandler, options?: { access?: AccessPolicy }): Promise<Served>
}

export const memory: RpcTransportSetup = {
  name: 'memory',
  network: false,
  start(callback, options) {
    const server = new MemoryServer({ callback, ...(options?.access ? { access: options.access } : {}) })
    return Promise.resolve(served(() => new MemoryClient(server), () => server.close()))
  },
}

export const tcp: RpcTransportSetup = {
  name: 'tcp',
  network: true,
  async start(callback, options) {
    const server = new TcpServer({ port: 0, callback, ...(options?.access ? { access: options.access } : {}) })
    const { port } = await server.listen()
    return served(() => new TcpClient({ host: '127.0.0.1', port }), () => server.close())
  },
}

let dir: string | undefined
let n = 0
export const unix: RpcTransportSetup = {
  name: 'unix',
  network: true,
  async start(callback) {
    dir ??= mkdtempSync(join(tmpdir(), 'labwire-rpc-'))
    const path = join(dir, `s${n++}.sock`)
    const server = new TcpServer({ path, callback })
    await server.listen()
    return served(() => new TcpClient({ path }), () => server.close())
  },
}

export const websocket: RpcTransportSetup = {
  name: 'websocket',
  network: true,
  async start(callback) {
    const server = new WebSocketServer({ port: 0, callback })
    const { port } = await server.listen()
    return served(() => new WebSocketClient({ url: `ws://127.0.0.1:${port}/` }), () => server.close())
  },
}

/** Reject after `ms` with a message naming what was awaited. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms).unref())])
}
