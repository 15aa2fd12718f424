/**
 * The stdio setup of the compliance and reliability suites: ChildProcessClient → a child process
 * (fixtures/relay.mjs) over its stdin/stdout → a loopback socket → a StdioServer in this process
 * whose input and output are that socket → the suite's handler. Each session is a real child
 * process, the server side is the real StdioServer loop, and the handlers stay in-process (the
 * suites' gates and delays work).
 */
import { createServer, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { silentLogger, type ByteHandler, type Logger } from '@labwire/core'
import { ChildProcessClient, StdioServer } from '@labwire/transport-stdio'

const relay = fileURLToPath(new URL('./fixtures/relay.mjs', import.meta.url))

export async function startRelayed(handler: ByteHandler, logger: Logger = silentLogger): Promise<{ client: ChildProcessClient; connectionCount(): number; close(): Promise<void> }> {
  const servers = new Set<StdioServer>()
  const sockets = new Set<Socket>()
  const listener = createServer((socket) => {
    socket.setNoDelay(true)
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    const server = new StdioServer({ input: socket, output: socket, callback: handler, logger, peer: `relay ${socket.remotePort ?? '?'}` })
    servers.add(server)
    void server.serve().finally(() => servers.delete(server))
  })
  await new Promise<void>((resolve) => listener.listen({ host: '127.0.0.1', port: 0 }, resolve))
  const address = listener.address()
  if (address === null || typeof address === 'string') throw new Error('no TCP address')
  let closing: Promise<void> | undefined
  return {
    client: new ChildProcessClient({ command: process.execPath, args: [relay, String(address.port)] }),
    connectionCount: () => servers.size,
    close: () =>
      (closing ??= (async () => {
        await Promise.all([...servers].map((server) => server.close()))
        for (const socket of sockets) socket.destroy()
        await new Promise<void>((resolve) => listener.close(() => resolve()))
      })()),
  }
}
