/**
 * The basic-socket-rpc 0.6 profile, pinned by byte-exact frames for every message type, as server
 * (a raw socket speaks the bytes) and as client (a raw server answers with the bytes).
 */
import { Buffer } from 'node:buffer'
import { createServer, connect, type Socket } from 'node:net'
import { TimeoutError } from '@labwire/core'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { describe, expect, it } from 'vitest'
import { RemoteError, RpcClient, RpcServer, RpcSpecError, codecs, defineService } from '../src/index.js'
import { within } from './fixtures.js'

const WAIT = 5_000

/** The greet example's service, plus a method that throws. */
const greet = defineService({
  name: 'greet',
  methods: {
    hello: { id: 0, request: codecs.string, response: codecs.string },
    goodbye: { id: 1, request: codecs.string, response: codecs.string },
    add_2_words: { id: 2, request: codecs.tuple(codecs.uint32le, codecs.uint32le), response: codecs.uint32le },
    func_no_args: { id: 3, request: codecs.none, response: codecs.none },
    check: { id: 4, request: codecs.int32le, response: codecs.none },
  },
})

class ValueError extends Error {
  override name = 'ValueError'
}

const greetHandlers = {
  hello: (name: string) => `hello ${name}`,
  goodbye: (name: string) => `goodbye ${name}`,
  add_2_words: ([a, b]: [number, number]) => a + b,
  func_no_args: () => undefined,
  check: (n: number) => {
    if (n < 0) throw new ValueError('bad')
  },
}

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const ascii = (s: string): string => Buffer.from(s).toString('hex')

// Every message type, byte by byte (u32le size incl. header | u8 type | payload).
const F = {
  clientInit: hex('08000000 00 000001'),
  serverInitTrue: hex('06000000 00 01'),
  serverInitFalse: hex('06000000 00 00'),
  helloBob: hex(`0e000000 01 0000 03000000 ${ascii('bob')}`),
  helloBobReply: hex(`12000000 01 09000000 ${ascii('hello bob')}`),
  add: hex('0f000000 01 0200 02000000 03000000'),
  addReply: hex('09000000 01 05000000'),
  noArgs: hex('07000000 01 0300'),
  noArgsReply: hex('05000000 01'),
  checkNeg: hex('0b000000 01 0400 ffffffff'),
  valueError: hex(`1a000000 04 0a000000 ${ascii('ValueError')} 03000000 ${ascii('bad')}`),
}

function exception(name: string, text: string): Buffer {
  const n = Buffer.from(name)
  const t = Buffer.from(text)
  const out = Buffer.alloc(5 + 4 + n.length + 4 + t.length)
  out.writeUInt32LE(out.length, 0)
  out[4] = 4
  out.writeUInt32LE(n.length, 5)
  n.copy(out, 9)
  out.writeUInt32LE(t.length, 9 + n.length)
  t.copy(out, 13 + n.length)
  return out
}

/** A raw socket that reads exactly the bytes it expects. */
class Raw {
  private buffered = Buffer.alloc(0)
  private waiting: (() => void) | undefined
  ended = false
  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk])
      this.waiting?.()
    })
    socket.on('close', () => {
      this.ended = true
      this.waiting?.()
    })
  }
  async read(n: number): Promise<Buffer> {
    const deadline = Date.now() + WAIT
    while (this.buffered.length < n) {
      if (this.ended) throw new Error(`socket closed with ${this.buffered.length} of ${n} bytes`)
      if (Date.now() > deadline) throw new Error(`timed out with ${this.buffered.length} of ${n} bytes`)
      await new Promise<void>((resolve) => {
        this.waiting = resolve
        setTimeout(resolve, 50)
      })
    }
    const out = this.buffered.subarray(0, n)
    this.buffered = this.buffered.subarray(n)
    return out
  }
  async expect(bytes: Buffer): Promise<void> {
    expect((await this.read(bytes.length)).toString('hex')).toBe(bytes.toString('hex'))
  }
  async closed(): Promise<void> {
    const deadline = Date.now() + WAIT
    while (!this.ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    expect(this.ended).toBe(true)
  }
}

async function rawTo(port: number): Promise<Raw> {
  const socket = connect({ host: '127.0.0.1', port })
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  return new Raw(socket)
}

describe('basic-socket-rpc profile as server: byte-exact', () => {
  const serve = async () => {
    const server = new TcpServer({ port: 0, callback: new RpcServer(greet, greetHandlers, { protocol: 'basic-socket-rpc' }) })
    const { port } = await server.listen()
    return { port, [Symbol.asyncDispose]: () => server.close() }
  }

  it('INIT, requests, responses without a command id, and a ValueError exception frame', async () => {
    await using s = await serve()
    const raw = await rawTo(s.port)
    raw.socket.write(F.clientInit)
    await raw.expect(F.serverInitTrue)
    raw.socket.write(F.helloBob)
    await raw.expect(F.helloBobReply)
    raw.socket.write(Buffer.concat([F.add, F.noArgs])) // two frames in one write
    await raw.expect(F.addReply)
    await raw.expect(F.noArgsReply)
    raw.socket.write(F.checkNeg)
    await raw.expect(F.valueError)
    // The session goes on after an exception, as the Python server's does.
    for (const byte of F.helloBob) raw.socket.write(Buffer.from([byte])) // a byte at a time
    await raw.expect(F.helloBobReply)
    raw.socket.destroy()
  })

  it('protocol errors are exception frames named ProtocolError / ValueError, as the Python server sends', async () => {
    await using s = await serve()
    const raw = await rawTo(s.port)
    raw.socket.write(F.helloBob)
    await raw.expect(exception('ProtocolError', 'Need to initialize connection first'))
    raw.socket.write(F.clientInit)
    await raw.expect(F.serverInitTrue)
    raw.socket.write(F.clientInit)
    await raw.expect(exception('ProtocolError', 'Initialization already occurred'))
    raw.socket.write(hex('07000000 01 0900'))
    await raw.expect(exception('ProtocolError', 'Unknown command with id: 9'))
    raw.socket.write(hex('06000000 01 00'))
    await raw.expect(exception('ProtocolError', 'Insufficient bytes in command.'))
    raw.socket.write(hex('0b000000 01 0000 05000000')) // a string whose length runs past the frame
    const head = await raw.read(5)
    expect(head[4]).toBe(4)
    const body = await raw.read(head.readUInt32LE(0) - 5)
    expect(body.subarray(4, 14).toString()).toBe('ValueError')
    raw.socket.write(hex('05000000 07'))
    await raw.expect(exception('ProtocolError', 'Unexpected msg_type: 7'))
    raw.socket.write(hex('03000000'))
    await raw.expect(exception('ProtocolError', 'Reported message size too small: 3'))
    await raw.closed()
  })

  it('a wrong major version is refused; a short INIT closes the connection', async () => {
    await using s = await serve()
    const raw = await rawTo(s.port)
    raw.socket.write(hex('08000000 00 010000'))
    await raw.expect(exception('ProtocolError', 'Incorrect major version: 1. Expected 0'))
    raw.socket.write(hex('06000000 00 00'))
    await raw.expect(exception('ValueError', 'Cannot deserialize version, insufficient bytes: 1. Expected 3'))
    await raw.closed()
  })
})

describe('basic-socket-rpc profile as client: byte-exact', () => {
  /** A raw server that runs `script` on the one connection it accepts. */
  async function rawServer(script: (raw: Raw) => Promise<void>) {
    let done: Promise<void> = Promise.resolve()
    const server = createServer((socket) => {
      done = script(new Raw(socket))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as { port: number }).port
    return {
      port,
      done: () => done,
      [Symbol.asyncDispose]: () => new Promise<void>((resolve) => server.close(() => resolve())),
    }
  }

  it('sends INIT (retrying while the server says not now), requests with u16le ids; reads responses and exceptions', async () => {
    await using server = await rawServer(async (raw) => {
      await raw.expect(F.clientInit)
      raw.socket.write(F.serverInitFalse)
      await raw.expect(F.clientInit)
      raw.socket.write(F.serverInitTrue)
      await raw.expect(F.helloBob)
      raw.socket.write(F.helloBobReply)
      await raw.expect(F.add)
      raw.socket.write(F.addReply)
      await raw.expect(F.noArgs)
      raw.socket.write(F.noArgsReply)
      await raw.expect(F.checkNeg)
      raw.socket.write(F.valueError)
      raw.socket.end()
    })
    const client = new RpcClient(greet, new TcpClient({ host: '127.0.0.1', port: server.port }), { protocol: 'basic-socket-rpc', initRetryInterval: 20 })
    await using s = await client.connect()
    expect(await s.hello('bob')).toBe('hello bob')
    expect(await s.add_2_words([2, 3])).toBe(5)
    expect(await s.func_no_args()).toBeUndefined()
    const error = (await s.check(-1).catch((e: unknown) => e)) as RemoteError
    expect(error).toBeInstanceOf(RemoteError)
    expect([error.remoteName, error.message]).toEqual(['ValueError', 'bad'])
    await within(server.done(), WAIT, 'script')
  })

  it('a timed-out call leaves its place: the late reply is dropped, never taken for the next answer', async () => {
    await using server = await rawServer(async (raw) => {
      await raw.expect(F.clientInit)
      raw.socket.write(F.serverInitTrue)
      await raw.expect(F.helloBob)
      await new Promise((r) => setTimeout(r, 150))
      raw.socket.write(F.helloBobReply) // late: for the timed-out call
      await raw.expect(F.add)
      raw.socket.write(F.addReply)
    })
    await using s = await new RpcClient(greet, new TcpClient({ host: '127.0.0.1', port: server.port }), { protocol: 'basic-socket-rpc' }).connect()
    await expect(s.hello('bob', { timeout: 50 })).rejects.toBeInstanceOf(TimeoutError)
    expect(await s.add_2_words([2, 3])).toBe(5)
    await within(server.done(), WAIT, 'script')
  })
})

describe('basic-socket-rpc profile: labwire client ↔ labwire server', () => {
  it('round trips and refuses specs it cannot carry', async () => {
    await using server = new TcpServer({ port: 0, callback: new RpcServer(greet, greetHandlers, { protocol: 'basic-socket-rpc' }) })
    const { port } = await server.listen()
    await using s = await new RpcClient(greet, new TcpClient({ host: '127.0.0.1', port }), { protocol: 'basic-socket-rpc' }).connect()
    const sums = await Promise.all(Array.from({ length: 20 }, (_, i) => s.add_2_words([i, 1])))
    expect(sums).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
    expect(await s.goodbye('ann')).toBe('goodbye ann')
    await expect(s.check(-1)).rejects.toMatchObject({ remoteName: 'ValueError', message: 'bad' })
    const streaming = defineService({ name: 's', methods: { r: { id: 1, request: codecs.none, response: codecs.raw, stream: true } } })
    expect(() => new RpcServer(streaming, { r: function* () {} }, { protocol: 'basic-socket-rpc' })).toThrow(RpcSpecError)
    expect(() => new RpcClient(streaming, new TcpClient({ host: '127.0.0.1', port }), { protocol: 'basic-socket-rpc' })).toThrow(RpcSpecError)
  })
})
