import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { FramingError } from '@labwire/core'
import { MAX_NEGOTIATION_REPLIES, TelnetCodec, TelnetCommand as C, TelnetOption as O, type TelnetCodecOptions } from '@labwire/transport-telnet'

const { IAC, SB, SE, WILL, WONT, DO, DONT } = C
const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values)
const ascii = (text: string): number[] => Array.from(text, (c) => c.charCodeAt(0))

/** A codec whose protocol output is recorded. */
function recorder(options: Omit<TelnetCodecOptions, 'send'> = {}): { codec: TelnetCodec; sent: number[] } {
  const sent: number[] = []
  const codec = new TelnetCodec({ ...options, send: (b) => sent.push(...b) })
  return { codec, sent }
}

/** Decode `input` split into the given chunk sizes (cycled); returns the data bytes. */
function decodeChunked(codec: TelnetCodec, input: Uint8Array, sizes: readonly number[] = [input.length || 1]): number[] {
  const out: number[] = []
  let offset = 0
  for (let i = 0; offset < input.length; i++) {
    const size = sizes[i % sizes.length] as number
    out.push(...codec.decode(input.subarray(offset, offset + size)))
    offset += size
  }
  return out
}

/**
 * Two codecs wired back to back, as client and server over a socket: protocol bytes each sends are
 * decoded by the other (data bytes from negotiation traffic are collected, and must stay empty).
 */
function pair(a: Omit<TelnetCodecOptions, 'send'>, b: Omit<TelnetCodecOptions, 'send'>): { a: TelnetCodec; b: TelnetCodec; wire: number[][]; stray: number[] } {
  const wire: number[][] = []
  const stray: number[] = []
  const ends: { left?: TelnetCodec; right?: TelnetCodec } = {}
  const left = new TelnetCodec({ ...a, send: (bytes) => { wire.push([0, ...bytes]); stray.push(...(ends.right as TelnetCodec).decode(bytes)) } })
  const right = new TelnetCodec({ ...b, send: (bytes) => { wire.push([1, ...bytes]); stray.push(...left.decode(bytes)) } })
  ends.right = right
  return { a: left, b: right, wire, stray }
}

describe('TelnetCodec: the byte path', () => {
  it('hands data through untouched (the same array) when it holds no IAC and no CR', () => {
    const { codec } = recorder()
    const data = bytes(...ascii('*IDN?\n'))
    expect(codec.decode(data)).toBe(data)
    expect(codec.encode(data)).toBe(data)
  })

  it('escapes 0xFF as IAC IAC and decodes IAC IAC back to one 0xFF, also across a chunk boundary', () => {
    const { codec, sent } = recorder()
    expect([...codec.encode(bytes(1, 0xff, 2, 0xff))]).toEqual([1, 0xff, 0xff, 2, 0xff, 0xff])
    expect(decodeChunked(codec, bytes(1, 0xff, 0xff, 2))).toEqual([1, 0xff, 2])
    // A lone 0xFF at the end of one chunk, its pair at the start of the next.
    expect([...codec.decode(bytes(7, 0xff))]).toEqual([7])
    expect([...codec.decode(bytes(0xff, 8))]).toEqual([0xff, 8])
    expect(sent).toEqual([])
  })

  it('drops NOP, GA, DM, AYT and other commands, at any chunk boundary', () => {
    const input = bytes(65, IAC, C.NOP, 66, IAC, C.GA, 67, IAC, C.DM, IAC, C.AYT, 68)
    for (let size = 1; size <= input.length; size++) {
      const { codec, sent } = recorder()
      expect(decodeChunked(codec, input, [size])).toEqual(ascii('ABCD'))
      expect(sent).toEqual([])
    }
  })

  it('CR outside BINARY: a lone CR is sent as CR NUL, CR LF unchanged, CR NUL decoded as CR (also split)', () => {
    const { codec } = recorder()
    expect([...codec.encode(bytes(...ascii('a\rb\r\nc\r')))]).toEqual([...ascii('a\r'), 0, ...ascii('b\r\nc\r'), 0])
    expect(decodeChunked(codec, bytes(...ascii('a\r'), 0, ...ascii('b\r\n')), [1])).toEqual(ascii('a\rb\r\n'))
    expect([...codec.decode(bytes(...ascii('x\r')))]).toEqual(ascii('x\r'))
    expect([...codec.decode(bytes(0, ...ascii('y')))]).toEqual(ascii('y'))
    // A CR followed by something else (a careless peer) is kept with that byte.
    expect([...codec.decode(bytes(...ascii('\rz')))]).toEqual(ascii('\rz'))
  })

  it('BINARY both ways: CR NUL and CR LF pass untouched; only 0xFF is escaped', () => {
    const { a, b } = pair({ acceptLocal: [O.BINARY], acceptRemote: [O.BINARY] }, { acceptLocal: [O.BINARY], acceptRemote: [O.BINARY] })
    a.request(O.BINARY, 'local', true)
    a.request(O.BINARY, 'remote', true)
    expect(a.binaryOutput && a.binaryInput && b.binaryInput && b.binaryOutput).toBe(true)
    const data = bytes(13, 0, 13, 10, 13, 0xff, 13)
    const wire = a.encode(data)
    expect([...wire]).toEqual([13, 0, 13, 10, 13, 0xff, 0xff, 13])
    expect(decodeChunked(b, wire, [1])).toEqual([...data])
  })
})

describe('TelnetCodec: negotiation (RFC 1143)', () => {
  it('refuses unknown options: DO x → WONT x, WILL x → DONT x, and says nothing to WONT/DONT of an option that is off', () => {
    const { codec, sent } = recorder()
    expect([...codec.decode(bytes(IAC, DO, 99, IAC, WILL, 42, IAC, WONT, 5, IAC, DONT, 6))]).toEqual([])
    expect(sent).toEqual([IAC, WONT, 99, IAC, DONT, 42])
  })

  it('accepts an allowed option once; a repeated DO is not answered again (no loop); DONT switches it off with one WONT', () => {
    const { codec, sent } = recorder({ acceptLocal: [O.SUPPRESS_GO_AHEAD] })
    codec.decode(bytes(IAC, DO, O.SUPPRESS_GO_AHEAD))
    codec.decode(bytes(IAC, DO, O.SUPPRESS_GO_AHEAD))
    expect(sent).toEqual([IAC, WILL, O.SUPPRESS_GO_AHEAD])
    expect(codec.enabled(O.SUPPRESS_GO_AHEAD, 'local')).toBe(true)
    codec.decode(bytes(IAC, DONT, O.SUPPRESS_GO_AHEAD, IAC, DONT, O.SUPPRESS_GO_AHEAD))
    expect(sent).toEqual([IAC, WILL, O.SUPPRESS_GO_AHEAD, IAC, WONT, O.SUPPRESS_GO_AHEAD])
    expect(codec.enabled(O.SUPPRESS_GO_AHEAD, 'local')).toBe(false)
  })

  it('our own request answered by the peer needs no reply; a refused one settles off; repeated requests send nothing', () => {
    const { codec, sent } = recorder()
    codec.request(O.BINARY, 'remote', true)
    codec.request(O.BINARY, 'remote', true)
    expect(sent).toEqual([IAC, DO, O.BINARY])
    expect(codec.negotiating).toBe(true)
    codec.decode(bytes(IAC, WILL, O.BINARY))
    expect(sent).toEqual([IAC, DO, O.BINARY])
    expect(codec.enabled(O.BINARY, 'remote')).toBe(true)
    expect(codec.negotiating).toBe(false)
    codec.request(O.ECHO, 'local', true)
    codec.decode(bytes(IAC, DONT, O.ECHO))
    expect(codec.enabled(O.ECHO, 'local')).toBe(false)
    expect(codec.negotiating).toBe(false)
    expect(sent).toEqual([IAC, DO, O.BINARY, IAC, WILL, O.ECHO])
  })

  it('two peers asking for the same options at the same time settle with no extra messages', () => {
    const both = { acceptLocal: [O.BINARY, O.SUPPRESS_GO_AHEAD], acceptRemote: [O.BINARY, O.SUPPRESS_GO_AHEAD] }
    const wire: number[][] = []
    const a = new TelnetCodec({ ...both, send: (b) => wire.push([0, ...b]) })
    const b = new TelnetCodec({ ...both, send: (x) => wire.push([1, ...x]) })
    for (const codec of [a, b]) {
      codec.request(O.BINARY, 'local', true)
      codec.request(O.BINARY, 'remote', true)
    }
    // Both requests cross on the wire; deliver them now.
    const crossing = wire.splice(0)
    for (const [from, ...msg] of crossing) (from === 0 ? b : a).decode(Uint8Array.from(msg))
    expect(wire).toEqual([])
    expect([a.enabled(O.BINARY, 'local'), a.enabled(O.BINARY, 'remote'), b.enabled(O.BINARY, 'local'), b.enabled(O.BINARY, 'remote')]).toEqual([true, true, true, true])
  })

  it('a peer that answers every message with its opposite cannot make us loop', () => {
    // A hostile peer: every WILL we send gets DONT, every DO gets WONT, and it then asks again.
    const { codec, sent } = recorder({ acceptLocal: [O.ECHO], acceptRemote: [O.SUPPRESS_GO_AHEAD] })
    for (let i = 0; i < 100; i++) {
      codec.decode(bytes(IAC, DO, O.ECHO, IAC, DONT, O.ECHO, IAC, WILL, O.SUPPRESS_GO_AHEAD, IAC, WONT, O.SUPPRESS_GO_AHEAD))
    }
    // Each round is one accept and one acknowledgement per option, until the per-option cap
    // (MAX_NEGOTIATION_REPLIES, issue 16 #1): after that the peer is ignored for those options.
    expect(sent.length).toBe(2 * MAX_NEGOTIATION_REPLIES * 3)
    expect(codec.negotiating).toBe(false)
  })

  it('TTYPE: accepts DO TTYPE and answers SEND with IS <name>; the server side asks and records the name', () => {
    const { a: client, b: server, stray } = pair({ acceptLocal: [O.TERMINAL_TYPE], terminalType: 'LABWIRE' }, { acceptRemote: [O.TERMINAL_TYPE] })
    server.request(O.TERMINAL_TYPE, 'remote', true)
    expect(client.enabled(O.TERMINAL_TYPE, 'local')).toBe(true)
    expect(server.terminalType).toBe('LABWIRE')
    expect(stray).toEqual([])
  })

  it('NAWS: the client reports its size (0xFF inside doubled) and the server decodes it', () => {
    const { a: client, b: server, wire } = pair({ acceptLocal: [O.NAWS], windowSize: { columns: 255, rows: 24 } }, { acceptRemote: [O.NAWS] })
    server.request(O.NAWS, 'remote', true)
    expect(server.peerWindowSize).toEqual({ columns: 255, rows: 24 })
    expect(wire).toContainEqual([0, IAC, SB, O.NAWS, 0, 255, 255, 0, 24, IAC, SE])
    expect(client.enabled(O.NAWS, 'local')).toBe(true)
  })

  it('a subnegotiation split over many chunks is parsed; data around it is kept', () => {
    const { codec, sent } = recorder({ acceptLocal: [O.TERMINAL_TYPE], terminalType: 'VT100' })
    codec.decode(bytes(IAC, DO, O.TERMINAL_TYPE))
    sent.length = 0
    const input = bytes(...ascii('ab'), IAC, SB, O.TERMINAL_TYPE, 1, IAC, SE, ...ascii('cd'))
    expect(decodeChunked(codec, input, [1])).toEqual(ascii('abcd'))
    expect(sent).toEqual([IAC, SB, O.TERMINAL_TYPE, 0, ...ascii('VT100'), IAC, SE])
  })

  it('a subnegotiation of an option never agreed is ignored; one missing its SE ends at the next command', () => {
    const { codec, sent } = recorder({ acceptLocal: [O.TERMINAL_TYPE], terminalType: 'X' })
    expect([...codec.decode(bytes(IAC, SB, 200, 1, 2, 3, IAC, SE, 65))]).toEqual([65])
    expect(sent).toEqual([])
    // SB without SE, then IAC DO TTYPE: the SB ends and the DO is handled.
    expect([...codec.decode(bytes(IAC, SB, 200, 1, IAC, DO, O.TERMINAL_TYPE, 66))]).toEqual([66])
    expect(sent).toEqual([IAC, WILL, O.TERMINAL_TYPE])
  })

  it('an endless subnegotiation is a FramingError at maxSubnegotiation, and memory stays bounded', () => {
    const { codec } = recorder({ maxSubnegotiation: 16 })
    codec.decode(bytes(IAC, SB, 24))
    codec.decode(new Uint8Array(16).fill(65))
    expect(() => codec.decode(bytes(65))).toThrow(FramingError)
    expect(() => new TelnetCodec({ send: () => undefined, maxSubnegotiation: 2 })).toThrow(RangeError)
  })
})

describe('TelnetCodec: properties', () => {
  const chunking = fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 8 })

  it('any bytes, any chunking, NVT or BINARY: decode(encode(data)) === data and no protocol reply is sent', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 6 }), chunking, fc.boolean(), (writes, sizes, binary) => {
        const accept = binary ? { acceptLocal: [O.BINARY], acceptRemote: [O.BINARY] } : {}
        const { a, b, wire } = pair(accept, accept)
        if (binary) {
          a.request(O.BINARY, 'local', true)
          expect(b.binaryInput).toBe(true)
        }
        wire.length = 0
        // Each write is encoded on its own (a CR at the end of one write, LF at the start of the next).
        const encoded = writes.flatMap((w) => [...a.encode(w)])
        const decoded = decodeChunked(b, Uint8Array.from(encoded), sizes)
        expect(decoded).toEqual(writes.flatMap((w) => [...w]))
        expect(wire).toEqual([])
      }),
      { numRuns: 500 },
    )
  })

  it('data interleaved with negotiation and subnegotiation, in any chunking, yields the same data bytes as one chunk', () => {
    const command = fc.oneof(
      fc.constantFrom(O.BINARY, O.ECHO, O.SUPPRESS_GO_AHEAD, O.TERMINAL_TYPE, O.NAWS, 77).chain((opt) => fc.constantFrom(WILL, WONT, DO, DONT).map((verb) => [IAC, verb, opt])),
      fc.uint8Array({ maxLength: 10 }).map((d) => [IAC, SB, O.NAWS, ...[...d].flatMap((x) => (x === IAC ? [IAC, IAC] : [x])), IAC, SE]),
      fc.constantFrom([IAC, C.NOP], [IAC, C.GA]),
    )
    const piece = fc.oneof(fc.uint8Array({ maxLength: 12 }).map((d) => ({ data: [...d] })), command.map((cmd) => ({ cmd })))
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), chunking, (pieces, sizes) => {
        const opts = { acceptLocal: [O.SUPPRESS_GO_AHEAD, O.NAWS, O.TERMINAL_TYPE], acceptRemote: [O.SUPPRESS_GO_AHEAD] }
        // BINARY stays off (never accepted), so the NVT rule applies throughout: encode with a codec in NVT mode.
        const enc = recorder().codec
        const input = pieces.flatMap((p) => ('data' in p ? [...enc.encode(Uint8Array.from(p.data))] : p.cmd))
        const expected = pieces.flatMap((p) => ('data' in p ? p.data : []))
        const whole = recorder(opts)
        expect(decodeChunked(whole.codec, Uint8Array.from(input))).toEqual(expected)
        const chunked = recorder(opts)
        expect(decodeChunked(chunked.codec, Uint8Array.from(input), sizes)).toEqual(expected)
        expect(chunked.sent).toEqual(whole.sent)
        const byByte = recorder(opts)
        expect(decodeChunked(byByte.codec, Uint8Array.from(input), [1])).toEqual(expected)
        expect(byByte.sent).toEqual(whole.sent)
      }),
      { numRuns: 500 },
    )
  })
})
