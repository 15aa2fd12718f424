import { ApplicationClient, type ApplicationClientSession } from '@labwire/application'
import { ConnectionClosedError, ConnectionError, FramingError, TimeoutError, type Logger } from '@labwire/core'
import { checksumCodec, compose, crc16Modbus, LengthFieldBytesMarshaller, StartStopBytesMarshaller, textCodec, xor8, type Codec } from '@labwire/marshallers'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { afterEach, describe, expect, it } from 'vitest'
import { ControlServer, Device, describeMessage, SimulatorServer, type DeviceEvent } from '../src/index.js'
import { RawClient } from './raw-client.js'

// Binary devices (issue 22 item 4): the one device engine with a framer and codecs instead of
// text lines — the marshallers README's protocol (A5, length, body, CRC-16/MODBUS low byte first).

const HEADER = 0xa5
const header: Codec<Uint8Array> = {
  encode: (body) => Uint8Array.of(HEADER, body.length, ...body),
  decode: (frame) => {
    if (frame[0] !== HEADER) throw new FramingError(`bad header byte 0x${(frame[0] ?? 0).toString(16)}`, { recoverable: true })
    return frame.subarray(2)
  },
}
const protocol = compose(
  new LengthFieldBytesMarshaller({ lengthFieldOffset: 1, lengthFieldLength: 1, lengthAdjustment: 2, maxLength: 2 + 255 + 2 }),
  checksumCodec(crc16Modbus, { byteOrder: 'little' }),
  header,
)

const READ = 0x01
const SET = 0x02
const BOOM = 0x03

interface Oven {
  temperature: number
  setpoint: number
}

function oven(logger?: Logger): Device<Oven, Uint8Array> {
  return new Device({
    name: 'oven',
    state: { temperature: 215, setpoint: 0 },
    framing: protocol,
    unknownCommand: (body) => Uint8Array.of(0xff, body[0] ?? 0),
    ...(logger === undefined ? {} : { logger }),
  })
    .command((body) => body.length === 1 && body[0] === READ, (_body, d) => Uint8Array.of(0x81, d.state.temperature >> 8, d.state.temperature & 0xff), { label: 'READ' })
    .command(
      (body) => (body.length === 3 && body[0] === SET ? { value: ((body[1] ?? 0) << 8) | (body[2] ?? 0) } : undefined),
      ({ value }, d) => {
        d.state.setpoint = value
        return Uint8Array.of(0x82)
      },
      { label: 'SET' },
    )
    .command(
      (body) => body[0] === BOOM,
      () => {
        throw new RangeError('heater fault')
      },
      { label: 'BOOM' },
    )
}

/** A logger that keeps what it is given. */
function recordingLogger(): Logger & { records: { level: string; context: Record<string, unknown>; message: string | undefined }[] } {
  const records: { level: string; context: Record<string, unknown>; message: string | undefined }[] = []
  const at = (level: string) => (context: object, message?: string) => {
    records.push({ level, context: context as Record<string, unknown>, message })
  }
  return { records, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((f) => f()))
})

async function start(device = oven(), logger?: Logger): Promise<{ device: Device<Oven, Uint8Array>; server: SimulatorServer; port: number }> {
  const server = new SimulatorServer({ device, ...(logger === undefined ? {} : { logger }) })
  const { port } = await server.listen()
  cleanups.push(() => server.close())
  return { device, server, port }
}

async function client(port: number, timeout = 400): Promise<ApplicationClientSession<Uint8Array, Uint8Array>> {
  const app = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), protocol.marshall, protocol.unmarshall, { timeout })
  const session = await app.connect({ signal: AbortSignal.timeout(5_000) })
  cleanups.push(() => session.close())
  return session
}

async function rawClient(port: number): Promise<RawClient> {
  const raw = await RawClient.open(port)
  cleanups.push(() => {
    raw.destroy()
    return Promise.resolve()
  })
  return raw
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected a rejection')
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')

describe('a binary device (framer + codecs) over real TCP', () => {
  it('answers commands matched on decoded messages, keeps state, NAKs unknown opcodes', async () => {
    const { device, port } = await start()
    const session = await client(port)
    expect(hex(await session.sendReceive(Uint8Array.of(READ)))).toBe('8100d7')
    expect(hex(await session.sendReceive(Uint8Array.of(SET, 0x01, 0x2c)))).toBe('82')
    expect(device.state.setpoint).toBe(300)
    expect(hex(await session.sendReceive(Uint8Array.of(0x7e, 0x00)))).toBe('ff7e')
    // The reply is the framed bytes: header, length, body, CRC low byte first.
    const raw = await rawClient(port)
    raw.write(protocol.marshall(Uint8Array.of(READ)))
    const wire = await raw.waitForLength(7)
    expect(hex(wire.subarray(0, 5))).toBe('a503' + '8100d7')
    const crc = crc16Modbus.compute(wire.subarray(0, 5))
    expect([wire[5], wire[6]]).toEqual([crc & 0xff, crc >> 8])
  })

  it('serves the same device as a plain TcpServer callback (device.handler())', async () => {
    const device = oven()
    const server = new TcpServer({ port: 0, callback: device.handler() })
    const { port } = await server.listen()
    cleanups.push(() => server.close())
    const session = await client(port)
    expect(hex(await session.sendReceive(Uint8Array.of(READ)))).toBe('8100d7')
    device.state.temperature = 1000
    expect(hex(await session.sendReceive(Uint8Array.of(READ)))).toBe('8103e8')
  })

  it('a request with a bad CRC is a FramingError logged at warn level; the connection goes on', async () => {
    const logger = recordingLogger()
    const { port } = await start(oven(), logger)
    const raw = await rawClient(port)
    const bad = protocol.marshall(Uint8Array.of(READ))
    bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 0xff
    raw.write(bad)
    raw.write(protocol.marshall(Uint8Array.of(SET, 0, 7)))
    const wire = await raw.waitForLength(5)
    expect(hex(wire)).toBe(hex(protocol.marshall(Uint8Array.of(0x82)))) // only the good request was answered
    expect(raw.isEnded).toBe(false)
    const warnings = logger.records.filter((r) => r.level === 'warn')
    expect(warnings).toHaveLength(1)
    const err = warnings[0]?.context.err
    expect(err).toBeInstanceOf(FramingError)
    expect((err as FramingError).recoverable).toBe(true)
    expect((err as FramingError).message).toMatch(/CRC-16\/MODBUS mismatch/)
  })

  it('a frame over the framer maxLength closes that connection (fail fast); others go on', async () => {
    const small = compose(new LengthFieldBytesMarshaller({ lengthFieldOffset: 1, lengthFieldLength: 1, lengthAdjustment: 2, maxLength: 8 }), checksumCodec(crc16Modbus, { byteOrder: 'little' }), header)
    const device = new Device({ name: 'tiny', state: {}, framing: small }).command(() => true, (body) => body)
    const server = new SimulatorServer({ device })
    const { port } = await server.listen()
    cleanups.push(() => server.close())
    const raw = await rawClient(port)
    raw.write(Uint8Array.of(HEADER, 50, ...new Uint8Array(52)))
    await raw.waitForLength(1) // resolves when the server closes it
    expect(raw.isEnded).toBe(true)
    const session = await client(port)
    expect(hex(await session.sendReceive(Uint8Array.of(9, 9)))).toBe('0909')
  })

  it('a handler that throws is logged with the message as hex; no reply, the connection goes on', async () => {
    const logger = recordingLogger()
    const { port } = await start(oven(logger))
    const session = await client(port, 150)
    expect(await failure(session.sendReceive(Uint8Array.of(BOOM, 0xaa)))).toBeInstanceOf(TimeoutError)
    expect(logger.records).toHaveLength(1)
    expect(logger.records[0]?.context.err).toBeInstanceOf(RangeError)
    expect(logger.records[0]?.context.command).toBe('03 aa')
    const fresh = await client(port)
    expect(hex(await fresh.sendReceive(Uint8Array.of(READ)))).toBe('8100d7')
  })

  it('emits request events with the decoded message', async () => {
    const { device, port } = await start()
    const events: DeviceEvent[] = []
    device.on((event) => events.push(event))
    const session = await client(port)
    await session.sendReceive(Uint8Array.of(SET, 0, 1))
    const request = events.find((e) => e.type === 'request')
    expect(request?.type === 'request' && hex(request.message)).toBe('020001')
  })
})

describe('faults on a binary device, as the ApplicationClient sees them', () => {
  it('latency: the answer comes late; with a shorter client timeout, TimeoutError', async () => {
    const { device, port } = await start()
    device.fault({ kind: 'latency', latency: 250 })
    const slow = await client(port, 2_000)
    const t0 = performance.now()
    expect(hex(await slow.sendReceive(Uint8Array.of(READ)))).toBe('8100d7')
    expect(performance.now() - t0).toBeGreaterThanOrEqual(240)
    const hasty = await client(port, 100)
    expect(await failure(hasty.sendReceive(Uint8Array.of(READ)))).toBeInstanceOf(TimeoutError)
  })

  it('no-reply: TimeoutError; the command still ran', async () => {
    const { device, port } = await start()
    device.fault({ kind: 'no-reply', commands: ['SET'] })
    const session = await client(port, 150)
    expect(await failure(session.sendReceive(Uint8Array.of(SET, 0, 42)))).toBeInstanceOf(TimeoutError)
    expect(device.state.setpoint).toBe(42)
  })

  it('faults match by command label: a fault on SET leaves READ alone; by message hex too', async () => {
    const { device, port } = await start()
    const bySet = device.fault({ kind: 'no-reply', commands: ['SET'] })
    const session = await client(port, 300)
    expect(hex(await session.sendReceive(Uint8Array.of(READ)))).toBe('8100d7')
    expect(bySet.triggered).toBe(0)
    device.faults.clear()
    const byHex = device.fault({ kind: 'junk', junk: 'Z\x00??', replace: true, commands: ['7e'] })
    expect(await failure(session.sendReceive(Uint8Array.of(0x7e)))).toBeInstanceOf(FramingError)
    expect(byHex.triggered).toBe(1)
    expect(hex(await session.sendReceive(Uint8Array.of(READ)))).toBe('8100d7')
  })

  it('disconnect: ConnectionClosedError', async () => {
    const { device, port } = await start()
    device.fault({ kind: 'disconnect', commands: ['READ'] })
    const session = await client(port)
    expect(await failure(session.sendReceive(Uint8Array.of(READ)))).toBeInstanceOf(ConnectionClosedError)
  })

  it('cable-cut: every connection closes, new ones fail until the cable is restored', async () => {
    const { device, server, port } = await start()
    const a = await client(port)
    const b = await client(port)
    device.fault({ kind: 'cable-cut', commands: ['READ'] })
    expect(await failure(a.sendReceive(Uint8Array.of(READ)))).toBeInstanceOf(ConnectionClosedError)
    expect(await failure(b.sendReceive(Uint8Array.of(SET, 0, 1)))).toBeInstanceOf(ConnectionClosedError)
    expect(server.cableConnected).toBe(false)
    device.faults.clear()
    const refused = await failure(
      (async () => {
        const c = await client(port)
        return c.sendReceive(Uint8Array.of(READ))
      })(),
    )
    expect(refused instanceof ConnectionClosedError || refused instanceof ConnectionError).toBe(true)
    server.restoreCable()
    const c = await client(port)
    expect(hex(await c.sendReceive(Uint8Array.of(READ)))).toBe('8100d7')
  })

  it('junk before the frame: the client framer reads the junk as a frame and its CRC fails (FramingError)', async () => {
    const { device, port } = await start()
    device.fault({ kind: 'junk', junk: 'Z\x00??', commands: ['READ'] })
    const session = await client(port)
    const error = await failure(session.sendReceive(Uint8Array.of(READ)))
    expect(error).toBeInstanceOf(FramingError)
    expect((error as FramingError).message).toMatch(/CRC-16\/MODBUS mismatch/)
  })

  it('junk replacing the reply: FramingError, and the session goes on', async () => {
    const { device, port } = await start()
    const fault = device.fault({ kind: 'junk', junk: 'Z\x00??', replace: true })
    const session = await client(port)
    expect(await failure(session.sendReceive(Uint8Array.of(READ)))).toBeInstanceOf(FramingError)
    device.faults.remove(fault.id)
    expect(hex(await session.sendReceive(Uint8Array.of(READ)))).toBe('8100d7')
  })

  it('truncate: TimeoutError whose partial holds the bytes sent', async () => {
    const { device, port } = await start()
    device.fault({ kind: 'truncate', keep: 4 })
    const session = await client(port, 150)
    const error = await failure(session.sendReceive(Uint8Array.of(READ)))
    expect(error).toBeInstanceOf(TimeoutError)
    expect(hex((error as TimeoutError).partial)).toBe('a5038100')
  })

  it('fragment: the reply arrives in pieces and the client reassembles the frame', async () => {
    const { device, port } = await start()
    device.fault({ kind: 'fragment', fragments: 7, fragmentDelay: 15 })
    const raw = await rawClient(port)
    raw.write(protocol.marshall(Uint8Array.of(READ)))
    await raw.waitForLength(1)
    expect(raw.received.length).toBeLessThan(7) // the first piece alone
    await raw.waitForLength(7)
    const session = await client(port, 2_000)
    expect(hex(await session.sendReceive(Uint8Array.of(READ)))).toBe('8100d7')
  })

  it('quiet: TimeoutError on every connection until reset', async () => {
    const { device, port } = await start()
    const fault = device.fault({ kind: 'quiet', commands: ['SET'] })
    const session = await client(port, 150)
    expect(await failure(session.sendReceive(Uint8Array.of(SET, 0, 5)))).toBeInstanceOf(TimeoutError)
    expect(device.quiet).toBe(true)
    expect(device.state.setpoint).toBe(0) // a quiet device does not execute
    device.faults.remove(fault.id)
    const other = await client(port, 150)
    expect(await failure(other.sendReceive(Uint8Array.of(READ)))).toBeInstanceOf(TimeoutError)
    device.reset()
    const after = await client(port)
    expect(hex(await after.sendReceive(Uint8Array.of(READ)))).toBe('8100d7')
  })
})

describe('the control channel drives a binary device', () => {
  it('state, faults and broadcast (hex) over HTTP reach the binary client', async () => {
    const { device, server, port } = await start()
    const control = new ControlServer({ servers: [server] })
    const address = await control.listen()
    cleanups.push(() => control.close())
    const base = `http://127.0.0.1:${address.port}/devices/oven`
    const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
      const res = await fetch(base + path, {
        method,
        headers: { 'content-type': 'application/json' },
        signal: AbortSignal.timeout(5_000),
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
      return { status: res.status, json: await res.json() }
    }
    const session = await client(port, 150)
    expect((await call('GET', '')).json).toMatchObject({ name: 'oven', state: { temperature: 215, setpoint: 0 }, commands: ['READ', 'SET', 'BOOM'] })
    expect((await call('PATCH', '/state', { temperature: 300 })).json).toEqual({ temperature: 300, setpoint: 0 })
    expect(hex(await session.sendReceive(Uint8Array.of(READ)))).toBe('81012c')
    expect((await call('POST', '/faults', { kind: 'no-reply', commands: ['READ'] })).status).toBe(201)
    expect(await failure(session.sendReceive(Uint8Array.of(READ)))).toBeInstanceOf(TimeoutError)
    expect((await call('DELETE', '/faults')).json).toEqual([])
    expect(device.faults.active).toBe(false)

    const listener = await rawClient(port)
    await expect.poll(() => server.connections.length, { timeout: 2_000 }).toBe(2)
    expect((await call('POST', '/broadcast', { hex: 'ee 01' })).json).toEqual({ sent: 2 })
    expect(hex(await listener.waitForLength(6))).toBe(hex(protocol.marshall(Uint8Array.of(0xee, 0x01))))
    expect((await call('POST', '/broadcast', { hex: 'e' })).status).toBe(400)
    expect((await call('POST', '/broadcast', { hex: 'ee', message: 'x' })).status).toBe(400)
  })
})

describe('a framed text device: STX … ETX, an XOR checksum in hex, text patterns', () => {
  it('matches templates on the decoded text and frames the replies', async () => {
    const stxEtx = compose(new StartStopBytesMarshaller('\x02', '\x03', { maxLength: 128 }), checksumCodec(xor8, { encoding: 'hex' }), textCodec('ascii'))
    const psu = new Device({ name: 'psu', state: { volts: 0 }, framing: stxEtx, unknownCommand: 'ERR' })
      .command('VOLT {v:f}', ({ v }, d) => {
        d.state.volts = v
        return 'OK'
      })
      .command('VOLT?', (_, d) => d.state.volts.toFixed(2))
      .command((text) => text.startsWith('ECHO '), (text) => text.slice(5))
    const server = new SimulatorServer({ device: psu })
    const { port } = await server.listen()
    cleanups.push(() => server.close())
    const app = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), stxEtx.marshall, stxEtx.unmarshall, { timeout: 500 })
    const session = await app.connect({ signal: AbortSignal.timeout(5_000) })
    cleanups.push(() => session.close())
    expect(await session.sendReceive('VOLT 1.5')).toBe('OK')
    expect(await session.sendReceive('VOLT?')).toBe('1.50')
    expect(await session.sendReceive('ECHO hi')).toBe('hi')
    expect(await session.sendReceive('NOPE')).toBe('ERR')
    psu.fault({ kind: 'truncate', commands: ['VOLT?'], keep: 3 })
    expect(await failure(session.sendReceive('VOLT?'))).toBeInstanceOf(TimeoutError)
  })
})

describe('Device options with framing', () => {
  it('refuses terminators, a delimiter or maxRequestLength next to framing, and a framing without methods', () => {
    expect(() => new Device({ name: 'x', state: {}, framing: protocol, requestTerminator: '\n' })).toThrow(RangeError)
    expect(() => new Device({ name: 'x', state: {}, framing: protocol, delimiter: ';' })).toThrow(/delimiter does not apply/)
    expect(() => new Device({ name: 'x', state: {}, framing: protocol, maxRequestLength: 10 })).toThrow(RangeError)
    expect(() => new Device({ name: 'x', state: {}, framing: { marshall: 1 } as never })).toThrow(TypeError)
  })

  it('executeMessage runs a decoded message without a socket; describeMessage names messages', async () => {
    const device = oven()
    expect(hex((await device.executeMessage(Uint8Array.of(READ))) ?? new Uint8Array(0))).toBe(hex(protocol.marshall(Uint8Array.of(0x81, 0, 0xd7))))
    expect(() => new Device({ name: 't', state: {} }).executeMessage('x')).toThrow(TypeError)
    expect(() => device.execute(Uint8Array.of(READ))).toThrow(/execute\(\) is for text devices/)
    expect(describeMessage(Uint8Array.of(1, 0xab))).toBe('01 ab')
    expect(describeMessage('VOLT?')).toBe('VOLT?')
    expect(describeMessage({ op: 1 })).toBe('{"op":1}')
  })

  it('a text device still takes a function matcher on the query text', async () => {
    const device = new Device({ name: 't', state: {} }).command((q) => /^\*IDN\?$/i.test(q), () => 'ACME')
    expect(hex(Buffer.concat(await device.execute(new TextEncoder().encode('*idn?'))))).toBe(hex(Buffer.from('ACME\n')))
  })
})
