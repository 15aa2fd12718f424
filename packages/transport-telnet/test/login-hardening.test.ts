/**
 * Hardening round two (issue 16, #2): login mode against a device that never stops printing.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { TimeoutError } from '@labwire/core'
import { TelnetClient, TelnetCodec } from '@labwire/transport-telnet'

const servers: { server: Server; sockets: Set<Socket> }[] = []
afterEach(async () => {
  for (const { server, sockets } of servers.splice(0)) {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
})

/** A device that streams `total` bytes of banner (no prompt in it), honouring backpressure, then `after`. */
async function bannerDevice(total: number, after = ''): Promise<{ port: number; written: () => number }> {
  const sockets = new Set<Socket>()
  let written = 0
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => undefined)
    const codec = new TelnetCodec({ send: (bytes) => socket.write(bytes) })
    const chunk = Buffer.from('Welcome to the lab switch. Unauthorised access prohibited. '.repeat(1100).slice(0, 64 * 1024), 'latin1')
    let sent = 0
    const pump = (): void => {
      while (sent < total && !socket.destroyed) {
        const part = chunk.subarray(0, Math.min(chunk.length, total - sent))
        sent += part.length
        written = sent
        if (!socket.write(part)) {
          socket.once('drain', pump)
          return
        }
      }
      if (sent >= total && after !== '' && !socket.destroyed) socket.write(codec.encode(Buffer.from(after, 'latin1')))
    }
    socket.on('data', (data: Buffer) => {
      const text = Buffer.from(codec.decode(data)).toString('latin1')
      if (text.includes('admin')) socket.write(codec.encode(Buffer.from('\r\nPassword: ', 'latin1')))
      else if (text.includes('pw')) socket.write(codec.encode(Buffer.from('\r\nsw1# ', 'latin1')))
    })
    pump()
  })
  servers.push({ server, sockets })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  return { port: (server.address() as { port: number }).port, written: () => written }
}

/** Largest gap between 20 ms ticks while `promise` runs: how long the event loop stalled. */
async function maxStall<T>(promise: Promise<T>): Promise<{ value: unknown; stall: number }> {
  let last = performance.now()
  let stall = 0
  const timer = setInterval(() => {
    const now = performance.now()
    stall = Math.max(stall, now - last)
    last = now
  }, 20)
  try {
    return { value: await promise.catch((error: unknown) => error), stall }
  } finally {
    clearInterval(timer)
  }
}

describe('TelnetClient login mode: hardening round two', () => {
  it('login mode stays linear on an endless banner: 25 MB is rejected within loginTimeout, event loop not stalled (hardening #2)', async () => {
    const device = await bannerDevice(25 * 1024 * 1024)
    const loginTimeout = 1_500
    const started = performance.now()
    const { value: error, stall } = await maxStall(
      new TelnetClient({ host: '127.0.0.1', port: device.port, mode: 'login', username: 'admin', password: 'pw', loginTimeout, negotiationTimeout: 100 }).connect({ signal: AbortSignal.timeout(20_000) }),
    )
    const elapsed = performance.now() - started
    expect(error).toBeInstanceOf(TimeoutError)
    expect((error as Error).message).toMatch(/did not reach the shell prompt within 1500 ms; last seen: "(Welcome|[^"]*access)/)
    expect(elapsed).toBeLessThan(loginTimeout + 100 + 1_000)
    expect(stall).toBeLessThan(500)
    // It was reading all along (several MB went by), not stalled at the start.
    expect(device.written()).toBeGreaterThan(4 * 1024 * 1024)
  })

  it('a prompt after a 4 MB banner is found (only a tail is kept, matched as it arrives) (hardening #2)', async () => {
    const device = await bannerDevice(4 * 1024 * 1024, '\r\nlogin: ')
    await using session = await new TelnetClient({ host: '127.0.0.1', port: device.port, mode: 'login', username: 'admin', password: 'pw', loginTimeout: 10_000, negotiationTimeout: 100 }).connect({
      signal: AbortSignal.timeout(15_000),
    })
    expect(session.closed).toBe(false)
  })

  it('a window that starts with a data byte 0xFF is never taken for negotiation by telnet-client', async () => {
    const sockets = new Set<Socket>()
    const received: string[] = []
    const server = createServer((socket) => {
      sockets.add(socket)
      socket.on('error', () => undefined)
      const codec = new TelnetCodec({ send: (bytes) => socket.write(bytes) })
      let pending = ''
      socket.on('data', (data: Buffer) => {
        pending += Buffer.from(codec.decode(data)).toString('latin1')
        let index: number
        while ((index = pending.indexOf('\n')) >= 0) {
          received.push(pending.slice(0, index).replace(/\r$/, ''))
          pending = pending.slice(index + 1)
          socket.write(codec.encode(Buffer.from(received.length === 1 ? '\r\nPassword: ' : '\r\nsw1# ', 'latin1')))
        }
      })
      // Data bytes FF FD 18 (what IAC DO TTYPE looks like) right before the prompt, in one chunk.
      socket.write(codec.encode(Buffer.from('\xff\xfd\x18login: ', 'latin1')))
    })
    servers.push({ server, sockets })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
    const port = (server.address() as { port: number }).port
    await using session = await new TelnetClient({ host: '127.0.0.1', port, mode: 'login', username: 'admin', password: 'pw', negotiationTimeout: 100 }).connect({ signal: AbortSignal.timeout(5_000) })
    expect(session.closed).toBe(false)
    expect(received).toEqual(['admin', 'pw'])
  })

  it('promptWindow is checked at construction', () => {
    expect(() => new TelnetClient({ host: '127.0.0.1', port: 23, mode: 'login', promptWindow: 2 })).toThrow(RangeError)
    expect(() => new TelnetClient({ host: '127.0.0.1', port: 23, mode: 'login', promptWindow: 1024 })).not.toThrow()
  })
})
