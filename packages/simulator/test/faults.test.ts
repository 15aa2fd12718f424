import { ApplicationClient, type ApplicationClientSession } from '@labwire/application'
import { ConnectionClosedError, ConnectionError, FramingError, FrameTooLargeError, TimeoutError } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { afterEach, describe, expect, it } from 'vitest'
import { Device, SimulatorServer } from '../src/index.js'
import { RawClient } from './raw-client.js'

// What a labwire ApplicationClient sees for each fault, over real TCP.

function makeDevice(): Device<{ count: number }> {
  return new Device({ name: 'dut', state: { count: 0 } })
    .command('*IDN?', (_, d) => {
      d.state.count++
      return 'ACME,DUT,1,1.0'
    })
    .command('WAV?', () => 'A'.repeat(40))
    .command('SET {n:d}', ({ n }, d) => {
      d.state.count = n
    })
}

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((f) => f()))
})

async function start(device = makeDevice()): Promise<{ device: Device<{ count: number }>; server: SimulatorServer; port: number }> {
  const server = new SimulatorServer({ device })
  const { port } = await server.listen()
  cleanups.push(() => server.close())
  return { device, server, port }
}

async function client(port: number, timeout = 500): Promise<ApplicationClientSession<string, string>> {
  const text = textMarshaller(new SentinelBytesMarshaller('\n', { maxLength: 64 }))
  const app = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), text.marshall, text.unmarshall, { timeout })
  const session = await app.connect({ signal: AbortSignal.timeout(5_000) })
  cleanups.push(() => session.close())
  return session
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected a rejection')
}

describe('faults, as an ApplicationClient sees them', () => {
  it('no fault: the answer', async () => {
    const { port } = await start()
    const session = await client(port)
    expect(await session.sendReceive('*IDN?')).toBe('ACME,DUT,1,1.0')
  })

  it('latency: the answer comes late; with a shorter client timeout, TimeoutError', async () => {
    const { device, port } = await start()
    device.fault({ kind: 'latency', latency: 150 })
    const session = await client(port, 2_000)
    const t0 = performance.now()
    expect(await session.sendReceive('*IDN?')).toBe('ACME,DUT,1,1.0')
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140)
    const error = await failure(session.sendReceive('*IDN?', { timeout: 50 }))
    expect(error).toBeInstanceOf(TimeoutError)
  })

  it('latency with jitter stays within latency ± jitter', async () => {
    const { device, port } = await start()
    device.fault({ kind: 'latency', latency: 60, jitter: 40 })
    const session = await client(port, 2_000)
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now()
      await session.sendReceive('*IDN?')
      const took = performance.now() - t0
      expect(took).toBeGreaterThanOrEqual(18)
      expect(took).toBeLessThan(400)
    }
  })

  it('no-reply: the command runs, no answer: TimeoutError; the session then waits for the lost reply, a new one works', async () => {
    const { device, port } = await start()
    const fault = device.fault({ kind: 'no-reply' })
    const session = await client(port, 150)
    expect(await failure(session.sendReceive('*IDN?'))).toBeInstanceOf(TimeoutError)
    expect(device.state.count).toBe(1)
    device.faults.enable(fault.id, false)
    // labwire never takes a late reply for the next answer: this session keeps waiting for the lost one
    const stuck = await failure(session.sendReceive('*IDN?'))
    expect(stuck).toBeInstanceOf(TimeoutError)
    expect((stuck as Error).message).toMatch(/reconnect/)
    const fresh = await client(port)
    expect(await fresh.sendReceive('*IDN?')).toBe('ACME,DUT,1,1.0')
  })

  it('disconnect: ConnectionClosedError; a new connection works', async () => {
    const { device, port } = await start()
    const fault = device.fault({ kind: 'disconnect', commands: ['WAV?'] })
    const session = await client(port)
    expect(await session.sendReceive('*IDN?')).toBe('ACME,DUT,1,1.0')
    expect(await failure(session.sendReceive('WAV?'))).toBeInstanceOf(ConnectionClosedError)
    device.faults.remove(fault.id)
    const again = await client(port)
    expect(await again.sendReceive('WAV?')).toBe('A'.repeat(40))
  })

  it('cable-cut: every connection closes, new ones are refused until the cable is restored', async () => {
    const { device, server, port } = await start()
    const a = await client(port)
    const b = await client(port)
    device.fault({ kind: 'cable-cut', commands: ['WAV?'] })
    expect(await failure(a.sendReceive('WAV?'))).toBeInstanceOf(ConnectionClosedError)
    expect(await failure(b.sendReceive('*IDN?'))).toBeInstanceOf(ConnectionClosedError)
    expect(server.cableConnected).toBe(false)
    device.faults.clear()
    // A new connection is accepted by the kernel and closed at once: the first call fails.
    const refused = await failure(
      (async () => {
        const c = await client(port)
        return c.sendReceive('*IDN?')
      })(),
    )
    expect(refused instanceof ConnectionClosedError || refused instanceof ConnectionError).toBe(true)
    server.restoreCable()
    const c = await client(port)
    expect(await c.sendReceive('*IDN?')).toBe('ACME,DUT,1,1.0')
  })

  it('junk: garbage before the answer reaches the client; junk with no line end past maxLength is a FramingError', async () => {
    const { device, port } = await start()
    const fault = device.fault({ kind: 'junk', junk: '@@@' })
    const session = await client(port)
    expect(await session.sendReceive('*IDN?')).toBe('@@@ACME,DUT,1,1.0')
    device.faults.remove(fault.id)
    device.fault({ kind: 'junk', junk: 'x'.repeat(100), replace: true })
    const error = await failure(session.sendReceive('*IDN?'))
    expect(error).toBeInstanceOf(FramingError)
    expect(error).toBeInstanceOf(FrameTooLargeError)
  })

  it('truncate: the answer loses its end (and terminator): TimeoutError with the partial bytes', async () => {
    const { device, port } = await start()
    device.fault({ kind: 'truncate', keep: 4 })
    const session = await client(port, 200)
    const error = await failure(session.sendReceive('*IDN?'))
    expect(error).toBeInstanceOf(TimeoutError)
    expect(Buffer.from((error as TimeoutError).partial).toString()).toBe('ACME')
  })

  it('fragment: the answer arrives in pieces, delays apart, and the client reassembles it', async () => {
    const { device, port } = await start()
    device.fault({ kind: 'fragment', fragments: 4, fragmentDelay: 25 })
    const session = await client(port, 2_000)
    expect(await session.sendReceive('WAV?')).toBe('A'.repeat(40))
    // the same over a bare socket: several separate chunks
    const raw = await RawClient.open(port)
    cleanups.push(() => Promise.resolve(raw.destroy()))
    const chunks: number[] = []
    raw.socket.on('data', (c: Buffer) => chunks.push(c.length))
    raw.write('WAV?\n')
    await raw.waitForLength(41)
    expect(chunks.length).toBeGreaterThanOrEqual(3)
    // pieces slower than the client's timeout: TimeoutError with what came so far
    device.faults.clear()
    device.fault({ kind: 'fragment', fragments: 2, fragmentDelay: 300 })
    const error = await failure(session.sendReceive('WAV?', { timeout: 150 }))
    expect(error).toBeInstanceOf(TimeoutError)
    expect((error as TimeoutError).partial.length).toBe(21)
  })

  it('quiet: the device stops answering until it is reset, even after the fault is removed', async () => {
    const { device, port } = await start()
    device.fault({ kind: 'quiet', commands: ['WAV?'] })
    const session = await client(port, 120)
    expect(await session.sendReceive('*IDN?')).toBe('ACME,DUT,1,1.0')
    expect(await failure(session.sendReceive('WAV?'))).toBeInstanceOf(TimeoutError)
    device.faults.clear()
    const quiet = await client(port, 120)
    expect(await failure(quiet.sendReceive('*IDN?'))).toBeInstanceOf(TimeoutError)
    expect(device.quiet).toBe(true)
    device.reset()
    const after = await client(port)
    expect(await after.sendReceive('*IDN?')).toBe('ACME,DUT,1,1.0')
  })

  it('probability: a fault fires on about that share of requests (seeded)', async () => {
    const { device, port } = await start()
    let seed = 7
    device.faults.random = () => {
      seed = (seed * 16807) % 2147483647
      return seed / 2147483647
    }
    const fault = device.fault({ kind: 'junk', junk: '!', probability: 0.3 })
    const session = await client(port)
    let garbled = 0
    for (let i = 0; i < 60; i++) if ((await session.sendReceive('*IDN?')).startsWith('!')) garbled++
    expect(garbled).toBe(fault.triggered)
    expect(garbled).toBeGreaterThan(5)
    expect(garbled).toBeLessThan(35)
  })

  it('a device handler on a plain TcpServer: a disconnect fault closes that connection', async () => {
    const device = makeDevice()
    device.fault({ kind: 'disconnect', commands: ['WAV?'] })
    const server = new TcpServer({ callback: device.handler() })
    const { port } = await server.listen()
    cleanups.push(() => server.close())
    const session = await client(port)
    expect(await session.sendReceive('*IDN?')).toBe('ACME,DUT,1,1.0')
    expect(await failure(session.sendReceive('WAV?'))).toBeInstanceOf(ConnectionClosedError)
  })
})
