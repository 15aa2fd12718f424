import { byteStreamOf, toBytes, toText } from '@labwire/core'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'

// The transport moves bytes and knows nothing of framing: this handler reads one line per call
// from the connection's byte stream (leftovers kept) and echoes it in upper case.
const newline = toBytes('\n')
const server = new TcpServer({
  port: 0, // host defaults to 127.0.0.1; port 0 picks a free port
  callback: async (bytes) => {
    const line = await byteStreamOf(bytes).readUntil(newline)
    return toBytes(`${toText(line).toUpperCase()}\n`)
  },
  maxConnections: 8,
  idleTimeout: 30_000,
})
const { host, port } = await server.listen()
await using session = await new TcpClient({ host, port, timeout: 2_000 }).connect({ signal: AbortSignal.timeout(2_000) })
session.request(toBytes('hello\nworld\n')) // two requests in one write
console.log(toText(await session.stream.readUntil(newline))) // HELLO
console.log(toText(await session.stream.readUntil(newline))) // WORLD
await server.close() // closes idle and busy connections at once
