/**
 * The stdio setup of the compliance and reliability suites: ChildProcessClient → a child process
 * (socat STDIO TCP:…, or fixtures/relay.mjs) over its stdin/stdout → a loopback socket → a StdioServer in this process
 * whose input and output are that socket → the suite's handler. Each session is a real child
 * process, the server side is the real StdioServer loop, and the handlers stay in-process (the
 * suites' gates and delays work).
 */
import { spawnSync } from 'node:child_process'
import { createServer, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { silentLogger, type ByteHandler, type Logger } from '@labwire/core'
import { ChildProcessClient, StdioServer } from '@labwire/transport-stdio'

const relay = fileURLToPath(new URL('./fixtures/relay.mjs', import.meta.url))

// The relay child is socat when it is installed (starts in milliseconds, so 50 sessions at once
// stay cheap on a loaded machine), else the node script fixtures/relay.mjs.
const hasSocat = spawnSync('socat', ['-V'], { timeout: 5_000 }).status === 0
if (!hasSocat) console.warn('transport-stdio tests: socat is not installed; the relay child is node fixtures/relay.mjs (slower to start)')

function relayCommand(port: number): { command: string; args: string[]; ready: string } {
  if (hasSocat) {
    // -d -d logs 'starting data transfer loop' once the socket is connected; -t 0.05: exit 50 ms after one side ends.
    return { command: 'socat', args: ['-d', '-d', '-t', '0.05', 'STDIO', `TCP:127.0.0.1:${port},nodelay`], ready: 'starting data transfer loop' }
  }
  return { command: process.execPath, args: [relay, String(port)], ready: 'relay connected' }
}

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
    // `ready`: connect() resolves once the relay's socket is connected, so no call waits behind a child's start-up.
    client: new ChildProcessClient({ ...relayCommand(address.port), stderrLevel: 'debug' }),
    connectionCount: () => servers.size,
    close: () =>
      (closing ??= (async () => {
        await Promise.all([...servers].map((server) => server.close()))
        for (const socket of sockets) socket.destroy()
        await new Promise<void>((resolve) => listener.close(() => resolve()))
      })()),
  }
}
