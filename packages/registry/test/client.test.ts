// RegistryClient's one exchange path, driven through each carrier by hand-made registry peers:
// a TCP reply in pieces, a TCP peer that closes without a reply or answers garbage, a refused
// connection, and the same garbage over UDP.
import { createSocket } from 'node:dgram'
import { createServer, type Socket } from 'node:net'
import { ConnectionClosedError, ConnectionError } from '@labwire/core'
import { BrineDecodeError, RegistryClient, encodeBrine } from '@labwire/registry'
import { expect, it } from 'vitest'

/** A TCP "registry" that answers every connection with `answer` (or closes it at once). */
async function tcpPeer(answer: (socket: Socket) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.once('data', () => answer(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  return {
    port,
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

it('tcp: a reply that arrives a byte at a time is decoded once whole', async () => {
  const reply = encodeBrine([['10.0.0.7', 18862]])
  const peer = await tcpPeer((socket) => {
    let i = 0
    const next = (): void => {
      if (i < reply.length) socket.write(reply.subarray(i, ++i), () => setTimeout(next, 1))
    }
    next()
  })
  try {
    expect(await new RegistryClient({ port: peer.port, mode: 'tcp', timeout: 3000 }).discover('psu')).toEqual([{ host: '10.0.0.7', port: 18862 }])
  } finally {
    await peer.close()
  }
})

it('tcp: closed without a reply is ConnectionClosedError; garbage is BrineDecodeError; refused is ConnectionError', async () => {
  const silent = await tcpPeer((socket) => socket.end())
  const garbage = await tcpPeer((socket) => socket.end(Buffer.from([0xee, 0xee, 0xee])))
  try {
    await expect(new RegistryClient({ port: silent.port, mode: 'tcp', timeout: 2000 }).list()).rejects.toBeInstanceOf(ConnectionClosedError)
    await expect(new RegistryClient({ port: garbage.port, mode: 'tcp', timeout: 2000 }).list()).rejects.toBeInstanceOf(BrineDecodeError)
  } finally {
    await Promise.all([silent.close(), garbage.close()])
  }
  const refused = silent.port
  const error = await new RegistryClient({ port: refused, mode: 'tcp', timeout: 2000 }).list().catch((e: unknown) => e)
  expect(error).toBeInstanceOf(ConnectionError)
  expect((error as Error).message).toContain(`127.0.0.1:${refused}`)
})

it('udp: a truncated datagram is BrineDecodeError (one datagram is the whole reply: no waiting for more)', async () => {
  const peer = createSocket('udp4')
  const truncated = encodeBrine(['PSU', 'DMM']).subarray(0, 4)
  peer.on('message', (_message, from) => peer.send(truncated, from.port, from.address))
  await new Promise<void>((resolve) => peer.bind(0, '127.0.0.1', () => resolve()))
  try {
    await expect(new RegistryClient({ port: peer.address().port, timeout: 2000 }).list()).rejects.toBeInstanceOf(BrineDecodeError)
  } finally {
    peer.close()
  }
})
