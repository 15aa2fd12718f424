/**
 * stdio under the transport and application compliance suites: every case applies.
 *
 * The chain is ChildProcessClient → a child process (test/fixtures/relay.mjs) over its
 * stdin/stdout → a loopback socket → a StdioServer in this process whose input and output are that
 * socket → the suite's handler. So each session is a real child process, and the server side is
 * the real StdioServer loop, with the suites' in-process handlers (gates, delays).
 */
import { createServer, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { ChildProcessClient, StdioServer } from '@labwire/transport-stdio'
import type { TransportSetup } from '../../../test/helpers/fixtures.js'
import { transportCompliance } from '../../../test/compliance/transport.js'
import { applicationCompliance } from '../../../test/compliance/application.js'

const relay = fileURLToPath(new URL('./fixtures/relay.mjs', import.meta.url))

export const stdioSetup: TransportSetup = {
  name: 'stdio (child process)',
  async start(handler) {
    const servers = new Set<StdioServer>()
    const sockets = new Set<Socket>()
    const listener = createServer((socket) => {
      socket.setNoDelay(true)
      sockets.add(socket)
      socket.once('close', () => sockets.delete(socket))
      const server = new StdioServer({ input: socket, output: socket, callback: handler, peer: `relay ${socket.remotePort ?? '?'}` })
      servers.add(server)
      void server.serve().finally(() => servers.delete(server))
    })
    await new Promise<void>((resolve) => listener.listen({ host: '127.0.0.1', port: 0 }, resolve))
    const address = listener.address()
    if (address === null || typeof address === 'string') throw new Error('no TCP address')
    let closing: Promise<void> | undefined
    return {
      client: new ChildProcessClient({ command: process.execPath, args: [relay, String(address.port)] }),
      close: () =>
        (closing ??= (async () => {
          await Promise.all([...servers].map((server) => server.close()))
          for (const socket of sockets) socket.destroy()
          await new Promise<void>((resolve) => listener.close(() => resolve()))
        })()),
    }
  },
}

transportCompliance(stdioSetup)
applicationCompliance(stdioSetup)
