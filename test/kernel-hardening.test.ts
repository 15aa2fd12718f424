/**
 * Issue 16, server items: regression tests named after each failure (#1 Telnet negotiation
 * replies ignore backpressure, #7 broadcast ignores backpressure, #9 the UDP peer table can be
 * exhausted). WebSocket items (#10, #11) are in packages/transport-websocket/test/websocket-hardening.test.ts.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram'
import { connect as netConnect, createServer, type Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { Device, SimulatorServer } from '@labwire/simulator'
import { MAX_NEGOTIATION_REPLIES, TelnetClient, TelnetServer } from '@labwire/transport-telnet'
import { UdpClient, UdpServer } from '@labwire/transport-udp'
import { bytes, text, within } from './helpers/fixtures.js'

const line = new SentinelBytesMarshaller('\n')
const WAIT = 5_000
const IAC = 255
const DO = 253
const WILL = 251

/** `IAC verb option` repeated for `count` options cycling through 0..255 (options 0–255, mostly unknown). */
function negotiationFlood(verb: number, count: number): Buffer {
  const out = Buffer.alloc(count * 3)
  for (let i = 0; i < count; i++) {
    out[i * 3] = IAC
    out[i * 3 + 1] = verb
    out[i * 3 + 2] = (i * 7 + 100) & 0xff
  }
  return out
}

/** Write `data` in 64 KiB pieces, waiting for drain (the peer must really take it). */
async function writeAll(socket: Socket, data: Buffer): Promise<void> {
  for (let offset = 0; offset < data.length; offset += 64 * 1024) {
    if (!socket.write(data.subarray(offset, offset + 64 * 1024))) await new Promise<void>((resolve) => socket.once('drain', () => resolve()))
  }
}

describe('issue 16 #1: Telnet negotiation replies ignore backpressure', () => {
  it('TelnetServer: a peer flooding DO <option> and never reading gets a bounded number of replies', async () => {
    await using server = new TelnetServer({ port: 0, callback: async (stream) => line.marshall(await line.unmarshall(stream)) })
    const { port } = await server.listen()
    const socket = netConnect({ host: '127.0.0.1', port })
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
    socket.pause() // never read while flooding
    // 3 MB of negotiation: before the fix every DO was answered (1:1 output, unbounded server memory).
    await within(writeAll(socket, negotiationFlood(DO, 1_000_000)), 20_000, 'flood written')
    let received = 0
    let seenText = ''
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length
      seenText += chunk.toString('latin1')
    })
    socket.resume()
    // The connection still works after the flood.
    socket.write('ping\n')
    await within(
      (async () => {
        while (!seenText.includes('ping')) await new Promise((resolve) => setTimeout(resolve, 20))
      })(),
      WAIT,
      'reply after the flood',
    )
    socket.destroy()
    // 256 options × MAX_NEGOTIATION_REPLIES × 3 bytes, plus the opening negotiation and the reply.
    expect(received).toBeLessThanOrEqual(256 * MAX_NEGOTIATION_REPLIES * 3 + 1024)
  })

  it('TelnetClient: a device flooding WILL <option> gets a bounded number of replies from the client', async () => {
    let fromClient = 0
    const sockets: Socket[] = []
    const device = createServer((socket) => {
      sockets.push(socket)
      socket.on('data', (chunk: Buffer) => (fromClient += chunk.length))
      void writeAll(socket, negotiationFlood(WILL, 300_000)).then(() => socket.write('ready\r\n'))
    })
    await new Promise<void>((resolve) => device.listen({ host: '127.0.0.1', port: 0 }, () => resolve()))
    const address = device.address()
    if (address === null || typeof address === 'string') throw new Error('no TCP address')
    try {
      await using session = await new TelnetClient({ host: '127.0.0.1', port: address.port, timeout: WAIT }).connect()
      const stream = session.request(bytes(''))
      expect(text(await within(new SentinelBytesMarshaller('\r\n').unmarshall(stream), 20_000, 'line after the flood'))).toBe('ready')
      expect(fromClient).toBeLessThanOrEqual(256 * MAX_NEGOTIATION_REPLIES * 3 + 1024)
    } finally {
      await new Promise<void>((resolve) => {
        device.close(() => resolve())
        for (const socket of sockets) socket.destroy()
      })
    }
  })
})

describe('issue 16 #7: broadcast ignores backpressure', () => {
  it('a connection that never reads does not grow the server: broadcasts to it are dropped once its write buffer is full', async () => {
    const device = new Device({ name: 'chatty', state: {} }).command('*IDN?', () => 'chatty')
    await using server = new SimulatorServer({ device })
    const { port } = await server.listen()
    const socket = netConnect({ host: '127.0.0.1', port })
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
    socket.pause()
    await new Promise((resolve) => setTimeout(resolve, 50))
    const message = 'X'.repeat(64 * 1024)
    // 64 MiB of broadcast to a peer that never reads (before the fix: all of it queued in the server).
    for (let i = 0; i < 1024; i++) device.broadcast(message)
    let received = 0
    socket.on('data', (chunk: Buffer) => (received += chunk.length))
    socket.resume()
    await new Promise((resolve) => setTimeout(resolve, 300))
    socket.destroy()
    expect(received).toBeGreaterThan(0)
    // Kernel socket buffers hold a few MiB at most; the rest was dropped, not queued.
    expect(received).toBeLessThan(16 * 1024 * 1024)
  })
})

describe('issue 16 #9: the UDP peer table can be exhausted', () => {
  it('datagrams from more source ports than maxConnections evict the least recently active peers; a real client is still served', async () => {
    await using server = new UdpServer({ port: 0, maxConnections: 16, callback: async (stream) => line.marshall(await line.unmarshall(stream)) })
    const { port } = await server.listen()
    const spoofers: UdpSocket[] = []
    try {
      // 40 one-byte "peers" (distinct source ports): before the fix, 16 of them locked everyone out for idleTimeout (60 s).
      for (let i = 0; i < 40; i++) {
        const socket = createSocket('udp4')
        spoofers.push(socket)
        await new Promise<void>((resolve) => socket.send(Uint8Array.of(0x41), port, '127.0.0.1', () => resolve()))
      }
      await within(
        (async () => {
          while (server.connectionCount < 16) await new Promise((resolve) => setTimeout(resolve, 10))
        })(),
        WAIT,
        'table filled',
      )
      await using session = await new UdpClient({ host: '127.0.0.1', port, timeout: WAIT }).connect()
      const stream = session.request(bytes('hello\n'))
      expect(text(await within(line.unmarshall(stream), WAIT, 'served despite the full table'))).toBe('hello')
      expect(server.connectionCount).toBeLessThanOrEqual(16)
    } finally {
      for (const socket of spoofers) socket.close()
    }
  })
})
