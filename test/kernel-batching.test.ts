// The serving kernel's lean paths over real sockets: replies of a pipelined burst gathered into
// batch buffers (order kept across small and large replies, with and without a filter, a peer that
// stops reading still backs the server up), and the peer name read on demand when no logger or
// event subscriber asked for it at accept.
import { connect as netConnect, type Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import { ApplicationServer } from '@labwire/application'
import { type ConnectionHandler, type ServerConnection } from '@labwire/core'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { TcpServer } from '@labwire/transport-tcp'
import { TelnetServer } from '@labwire/transport-telnet'
import { within } from './helpers/fixtures.js'

const WAIT = 10_000
const line = new SentinelBytesMarshaller('\n')

/** Request i asks for a reply of `sizeOf(i)` bytes: small ones (batched) and, every 7th, one over the batching limit. */
const sizeOf = (i: number): number => (i % 7 === 3 ? 1500 + (i % 5) * 700 : 1 + (i % 40))

/** The callback's answer to request i (the line marshaller adds the '\n'): every byte names its request, so a reply out of order or cut shows. */
function replyFor(request: Uint8Array): Uint8Array {
  const i = Number(new TextDecoder().decode(request))
  return new Uint8Array(sizeOf(i)).fill(0x41 + (i % 26))
}

function expectedReplies(count: number): Buffer {
  return Buffer.concat(Array.from({ length: count }, (_, i) => [replyFor(new TextEncoder().encode(String(i))), Buffer.from('\n')]).flat())
}

function connectTo(port: number): Promise<Socket> {
  return within(
    new Promise<Socket>((resolve, reject) => {
      const socket = netConnect({ host: '127.0.0.1', port }, () => resolve(socket))
      socket.once('error', reject)
    }),
    WAIT,
    'connect',
  )
}

/** Write every request at once; collect `length` bytes of replies. */
function burst(socket: Socket, count: number, length: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let received = 0
  const done = new Promise<Buffer>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      received += chunk.length
      if (received >= length) resolve(Buffer.concat(chunks))
    })
    socket.once('error', reject)
    socket.once('close', () => reject(new Error(`closed after ${received} of ${length} bytes`)))
  })
  socket.write(Array.from({ length: count }, (_, i) => `${i}\n`).join(''))
  return within(done, WAIT, `${length} bytes of replies`)
}

describe('pipelined bursts: replies gathered per burst, in order', () => {
  it('TcpServer answers 5,000 pipelined requests with mixed reply sizes, byte for byte in order', async () => {
    const app = new ApplicationServer(line.unmarshall, line.marshall, replyFor)
    await using server = new TcpServer({ callback: app })
    const { port } = await server.listen()
    const socket = await connectTo(port)
    const expected = expectedReplies(5_000)
    const got = await burst(socket, 5_000, expected.length)
    expect(got.length).toBe(expected.length)
    expect(got.equals(expected)).toBe(true)
    socket.destroy()
  })

  it('TelnetServer (a filter on every write) keeps the order too', async () => {
    const app = new ApplicationServer(line.unmarshall, line.marshall, replyFor)
    await using server = new TelnetServer({ callback: app })
    const { port } = await server.listen()
    const socket = await connectTo(port)
    const expected = expectedReplies(2_000)
    // The server opens with its option negotiation (IAC …): skip it, then compare the replies.
    const got = await burst(socket, 2_000, expected.length)
    const start = got.indexOf(expected.subarray(0, 64))
    expect(start).toBeGreaterThanOrEqual(0)
    const rest = got.subarray(start)
    const more = rest.length >= expected.length ? rest : Buffer.concat([rest, await burst(socket, 0, expected.length - rest.length)])
    expect(more.subarray(0, expected.length).equals(expected)).toBe(true)
    socket.destroy()
  })

  it('a peer that writes a burst and does not read backs the server up (bounded), then gets every reply', async () => {
    let answered = 0
    const app = new ApplicationServer(line.unmarshall, line.marshall, (request: Uint8Array) => {
      answered++
      return replyFor(request)
    })
    await using server = new TcpServer({ callback: app, bufferSize: 16 * 1024 })
    const { port } = await server.listen()
    const socket = await connectTo(port)
    const count = 50_000
    socket.pause()
    socket.write(Array.from({ length: count }, (_, i) => `${i}\n`).join(''))
    await new Promise((resolve) => setTimeout(resolve, 500))
    // Not reading: the server stopped answering well before the end (its socket buffer is full, its reading paused).
    expect(answered).toBeLessThan(count)
    const expected = expectedReplies(count)
    socket.resume()
    const got = await burst(socket, 0, expected.length)
    expect(got.equals(expected)).toBe(true)
    expect(answered).toBe(count)
    socket.destroy()
  }, 30_000)
})

describe('the peer name on demand', () => {
  it('with no logger and no subscriber, a ConnectionHandler still sees the peer as host:port', async () => {
    const seen: ServerConnection[] = []
    const handler: ConnectionHandler = {
      async serveConnection(connection) {
        seen.push(connection)
        await connection.write(new TextEncoder().encode(`${connection.peer}\n`))
        connection.close()
      },
    }
    await using server = new TcpServer({ callback: handler })
    const { port } = await server.listen()
    const socket = await connectTo(port)
    const local = `${socket.localAddress}:${socket.localPort}`
    const reply = await within(
      new Promise<string>((resolve) => {
        let text = ''
        socket.on('data', (chunk: Buffer) => {
          text += chunk.toString()
          if (text.endsWith('\n')) resolve(text.trim())
        })
      }),
      WAIT,
      'peer line',
    )
    expect(reply).toBe(local)
    expect(seen[0]?.peer).toBe(local)
    socket.destroy()
  })
})
