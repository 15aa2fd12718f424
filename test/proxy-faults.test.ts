import { request as httpRequest } from 'node:http'
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import { ConnectionClosedError, FramingError, LabwireError, TimeoutError } from '@labwire/core'
import { checksumCodec, compose, crc16Modbus, LengthFieldBytesMarshaller, SentinelBytesMarshaller } from '@labwire/marshallers'
import { bundledDevice, ControlServer, loadDevice, Proxy, serveDevice, type SimulatorServer } from '@labwire/simulator'
import { TcpServer } from '@labwire/transport-tcp'
import { connect, createServer, type AddressInfo } from 'node:net'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { tcp } from './proxy-helpers.js'

const text = new TextEncoder()
const lines = new SentinelBytesMarshaller('\n')

let instrument: SimulatorServer
let proxy: Proxy
let port: number

beforeEach(async () => {
  instrument = await serveDevice(await loadDevice(bundledDevice('scpi-psu')), { port: 0 })
  proxy = new Proxy({ upstream: tcp(instrument.address?.port ?? 0), port: 0 })
  port = (await proxy.listen()).port
})
afterEach(async () => {
  await proxy.close()
  await instrument.close()
})

/** A labwire ApplicationClient session through the proxy (lines, `timeout` ms per reply). */
async function session(timeout = 2_000) {
  const client = new ApplicationClient(tcp(port), lines.marshall, lines.unmarshall, { timeout })
  return client.connect({ signal: AbortSignal.timeout(5_000) })
}

async function ask(command: string, timeout = 2_000): Promise<string> {
  await using s = await session(timeout)
  return new TextDecoder().decode(await s.sendReceive(text.encode(command)))
}

async function failure(command: string, timeout = 2_000): Promise<unknown> {
  await using s = await session(timeout)
  return await s.sendReceive(text.encode(command)).then(
    () => new Error('expected a failure'),
    (error: unknown) => error,
  )
}

/** Every chunk a raw socket receives for `command` until `count` bytes arrived. */
function rawChunks(command: string, count: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port })
    const chunks: Buffer[] = []
    let total = 0
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`only ${total} of ${count} bytes`))
    }, 3_000)
    socket.on('data', (chunk) => {
      chunks.push(chunk)
      total += chunk.length
      if (total >= count) {
        clearTimeout(timer)
        socket.destroy()
        resolve(chunks)
      }
    })
    socket.on('error', reject)
    socket.write(`${command}\n`)
  })
}

describe('proxy faults, framing-aware, over real sockets', () => {
  it('latency on one command: its reply comes late (TimeoutError under a shorter timeout); other commands are unaffected', async () => {
    proxy.fault({ kind: 'latency', latency: 500, commands: ['*IDN?'] })
    expect(await failure('*IDN?', 100)).toBeInstanceOf(TimeoutError)
    const started = performance.now()
    expect(await ask('*OPC?', 400)).toBe('1')
    expect(performance.now() - started).toBeLessThan(400)
    const late = performance.now()
    expect(await ask('*IDN?')).toBe('labwire,SIM-PSU,0001,0.1.0')
    expect(performance.now() - late).toBeGreaterThanOrEqual(490)
  })

  it('no-reply drops the reply to the matching command: TimeoutError', async () => {
    proxy.fault({ kind: 'no-reply', commands: ['VOLT?'] })
    expect(await failure('VOLT?', 150)).toBeInstanceOf(TimeoutError)
    expect(await ask('*OPC?')).toBe('1')
  })

  it('corrupt breaks the CRC of one binary frame: the client sees a FramingError (bad checksum)', async () => {
    const m = compose(new LengthFieldBytesMarshaller({ lengthFieldLength: 2, initialBytesToStrip: 2 }), checksumCodec(crc16Modbus))
    await using echo = new TcpServer({ port: 0, callback: new ApplicationServer(m.unmarshall, m.marshall, (payload: Uint8Array) => payload) })
    const echoPort = (await echo.listen()).port
    await using binary = new Proxy({ upstream: tcp(echoPort), port: 0, requestFramer: 'u16be', responseFramer: 'u16be' })
    const binaryPort = (await binary.listen()).port
    const client = new ApplicationClient(tcp(binaryPort), m.marshall, m.unmarshall, { timeout: 2_000 })
    await using s = await client.connect()
    expect(await s.sendReceive(Uint8Array.of(1, 2, 3))).toEqual(Uint8Array.of(1, 2, 3))
    const fault = binary.fault({ kind: 'corrupt', probability: 1 })
    const error = await s.sendReceive(Uint8Array.of(4, 5, 6)).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(FramingError)
    expect((error as Error).message).toMatch(/CRC-16\/MODBUS/)
    expect(fault.triggered).toBe(1)
  })

  it('corrupt flips one byte of a text frame (offset, xor); the terminator stays, so framing holds', async () => {
    proxy.fault({ kind: 'corrupt', offset: 0, xor: 0x20, commands: ['*IDN?'] })
    expect(await ask('*IDN?')).toBe('Labwire,SIM-PSU,0001,0.1.0')
  })

  it('fragment splits one frame into single bytes: the whole answer still arrives (labwire reassembles), byte by byte on the wire', async () => {
    proxy.fault({ kind: 'fragment', fragments: 1_000_000, fragmentDelay: 5, commands: ['*IDN?'] })
    expect(await ask('*IDN?')).toBe('labwire,SIM-PSU,0001,0.1.0')
    const chunks = await rawChunks('*IDN?', 27)
    // One byte per write, 5 ms apart: a reader delayed by load may see a few coalesced, never one chunk.
    expect(chunks.length).toBeGreaterThanOrEqual(8)
    expect(Buffer.concat(chunks).toString()).toBe('labwire,SIM-PSU,0001,0.1.0\n')
  })

  it('fragment slower than the client: TimeoutError whose partial holds the bytes so far', async () => {
    proxy.fault({ kind: 'fragment', fragments: 1_000_000, fragmentDelay: 20, commands: ['*IDN?'] })
    const error = await failure('*IDN?', 150)
    expect(error).toBeInstanceOf(TimeoutError)
    expect((error as TimeoutError).partial.length).toBeGreaterThan(0)
    expect('labwire,SIM-PSU,0001,0.1.0'.startsWith(new TextDecoder().decode((error as TimeoutError).partial))).toBe(true)
  })

  it('duplicate sends the frame twice: the second copy is on the wire after the first', async () => {
    proxy.fault({ kind: 'duplicate', commands: ['*IDN?'] })
    const chunks = await rawChunks('*IDN?', 54)
    expect(Buffer.concat(chunks).toString()).toBe('labwire,SIM-PSU,0001,0.1.0\n'.repeat(2))
  })

  it('truncate + disconnect closes mid-frame: ConnectionClosedError whose partial holds the first bytes', async () => {
    proxy.fault({ kind: 'truncate', keep: 7, commands: ['*IDN?'] })
    proxy.fault({ kind: 'disconnect', commands: ['*IDN?'] })
    const error = await failure('*IDN?')
    expect(error).toBeInstanceOf(ConnectionClosedError)
    expect(new TextDecoder().decode((error as ConnectionClosedError).partial)).toBe('labwire')
  })

  it('disconnect closes instead of replying: ConnectionClosedError with nothing partial', async () => {
    proxy.fault({ kind: 'disconnect', commands: ['VOLT?'] })
    const error = await failure('VOLT?')
    expect(error).toBeInstanceOf(ConnectionClosedError)
    expect((error as ConnectionClosedError).partial.length).toBe(0)
    expect(await ask('*OPC?')).toBe('1')
  })

  it('cable-cut closes every connection and refuses new ones until the cable is restored', async () => {
    await using bystander = await session()
    proxy.fault({ kind: 'cable-cut', commands: ['*IDN?'] })
    expect(await failure('*IDN?')).toBeInstanceOf(ConnectionClosedError)
    // The bystander's connection was closed too: its next request fails with a typed error.
    expect(await bystander.sendReceive(text.encode('*OPC?')).catch((e: unknown) => e)).toBeInstanceOf(LabwireError)
    expect(await failure('*OPC?')).toBeInstanceOf(ConnectionClosedError)
    proxy.device.faults.clear()
    proxy.restoreCable()
    expect(await ask('*OPC?')).toBe('1')
  })

  it('quiet: nothing goes through until reset', async () => {
    proxy.fault({ kind: 'quiet', commands: ['*RST'] })
    await using s = await session(150)
    await s.send(text.encode('*RST'))
    expect(await failure('*OPC?', 150)).toBeInstanceOf(TimeoutError)
    proxy.device.reset()
    expect(await ask('*OPC?')).toBe('1')
  })

  it('the simulator control channel drives the proxy: POST a fault, PUT the cable', async () => {
    await using control = new ControlServer({ servers: [proxy.server], port: 0 })
    const at = await control.listen()
    const call = (method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> =>
      new Promise((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: at.port, method, path, headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(3_000) }, (res) => {
          let data = ''
          res.setEncoding('utf8').on('data', (chunk: string) => (data += chunk))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(data) as unknown }))
        })
        req.on('error', reject)
        req.end(body === undefined ? undefined : JSON.stringify(body))
      })
    expect((await call('POST', '/devices/proxy/faults', { kind: 'no-reply', commands: ['*IDN?'] })).status).toBe(201)
    expect(await failure('*IDN?', 150)).toBeInstanceOf(TimeoutError)
    expect((await call('DELETE', '/devices/proxy/faults')).status).toBe(200)
    expect(await ask('*IDN?')).toBe('labwire,SIM-PSU,0001,0.1.0')
    expect((await call('PUT', '/devices/proxy/cable', { connected: false })).status).toBe(200)
    expect(await failure('*OPC?')).toBeInstanceOf(ConnectionClosedError)
    expect((await call('PUT', '/devices/proxy/cable', { connected: true })).status).toBe(200)
    expect(await ask('*OPC?')).toBe('1')
    const state = (await call('GET', '/devices/proxy')).body as { state: { requests: number } }
    expect(state.state.requests).toBeGreaterThanOrEqual(2)
  })
})

describe('proxy: the instrument side failing', () => {
  it('an instrument that cannot be reached: the client connection is closed at once (ConnectionClosedError, not a hang)', async () => {
    const dead = new TcpServer({ port: 0, callback: () => undefined })
    const deadPort = (await dead.listen()).port
    await dead.close()
    await using lonely = new Proxy({ upstream: tcp(deadPort), port: 0 })
    const lonelyPort = (await lonely.listen()).port
    const client = new ApplicationClient(tcp(lonelyPort), lines.marshall, lines.unmarshall, { timeout: 2_000 })
    await using s = await client.connect()
    const started = performance.now()
    const error = await s.sendReceive(text.encode('*IDN?')).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(LabwireError)
    expect(error).not.toBeInstanceOf(TimeoutError)
    expect(performance.now() - started).toBeLessThan(1_000)
  })

  it('the instrument closes mid-frame: the client gets the partial bytes, then ConnectionClosedError', async () => {
    // A bare node:net instrument that answers half a line and hangs up.
    const rude = createServer((socket) => socket.once('data', () => socket.end('labw')))
    await new Promise<void>((resolve) => rude.listen(0, '127.0.0.1', resolve))
    const rudePort = (rude.address() as AddressInfo).port
    try {
      await using front = new Proxy({ upstream: tcp(rudePort), port: 0 })
      const frontPort = (await front.listen()).port
      const client = new ApplicationClient(tcp(frontPort), lines.marshall, lines.unmarshall, { timeout: 2_000 })
      await using s = await client.connect()
      const error = await s.sendReceive(text.encode('*IDN?')).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(ConnectionClosedError)
      expect(new TextDecoder().decode((error as ConnectionClosedError).partial)).toBe('labw')
    } finally {
      await new Promise((resolve) => rude.close(resolve))
    }
  })

  it('close() ends open client connections and their instrument sessions', async () => {
    const s = await session()
    expect(new TextDecoder().decode(await s.sendReceive(text.encode('*OPC?')))).toBe('1')
    expect(instrument.connections.length).toBe(1)
    await proxy.close()
    expect(await s.sendReceive(text.encode('*OPC?')).catch((e: unknown) => e)).toBeInstanceOf(LabwireError)
    await s.close()
    const deadline = Date.now() + 2_000
    while (instrument.connections.length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
    expect(instrument.connections.length).toBe(0)
  })
})
