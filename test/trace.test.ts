import { describe, expect, it } from 'vitest'
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import {
  composeFilters,
  escapeBytes,
  formatTraceLine,
  hexOf,
  traceFilter,
  traceTransport,
  type ConnectionFilter,
  type ConnectionFilterFactory,
  type TraceEvent,
} from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { applicationCompliance } from './compliance/application.js'
import { transportCompliance } from './compliance/transport.js'
import { bytes, tcpSetup, text, within } from './helpers/fixtures.js'

const fixed = new Date('2026-11-21T20:01:02.345Z')

describe('formatTraceLine', () => {
  it('shows timestamp, peer, direction, length, hex and escaped text', () => {
    const line = formatTraceLine({ kind: 'out', time: fixed, peer: '127.0.0.1:5025', bytes: bytes('*IDN?\n') })
    expect(line).toBe('2026-11-21T20:01:02.345Z 127.0.0.1:5025 -> 6 B  2a 49 44 4e 3f 0a  "*IDN?\\n"')
    const back = formatTraceLine({ kind: 'in', time: fixed, peer: 'psu', bytes: new Uint8Array([0x31, 0x0d, 0x0a]) })
    expect(back).toBe('2026-11-21T20:01:02.345Z psu <- 3 B  31 0d 0a  "1\\r\\n"')
  })

  it('escapes every non-printable byte, quotes and backslashes', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i)
    const escaped = escapeBytes(all)
    expect(escaped).toMatch(/^[\x20-\x7e]*$/)
    expect(escapeBytes(new Uint8Array([0, 9, 0x22, 0x5c, 0x7f, 0xff]))).toBe('\\x00\\t\\"\\\\\\x7f\\xff')
    expect(hexOf(all).split(' ')).toHaveLength(256)
  })

  it('cuts a chunk at maxBytes and says how many bytes were left out', () => {
    const line = formatTraceLine({ kind: 'in', time: fixed, peer: 'p', bytes: bytes('abcdef') }, 2)
    expect(line).toBe('2026-11-21T20:01:02.345Z p <- 6 B  61 62 … (+4 B)  "ab" … (+4 B)')
  })

  it('marks open and close', () => {
    expect(formatTraceLine({ kind: 'open', time: fixed, peer: 'p', bytes: new Uint8Array() })).toBe('2026-11-21T20:01:02.345Z p == connected')
    expect(formatTraceLine({ kind: 'close', time: fixed, peer: 'p', bytes: new Uint8Array() })).toBe('2026-11-21T20:01:02.345Z p == closed')
  })
})

/** A filter that XORs every byte with `key` each way (a stand-in protocol layer with real effect), and on open sends `hello` straight to the socket. */
function xorFilter(key: number, hello?: string): ConnectionFilterFactory {
  return (context) => {
    const xor = (data: Uint8Array): Uint8Array => data.map((b) => b ^ key)
    return {
      input: xor,
      output: xor,
      open() {
        if (hello !== undefined) context.send(bytes(hello))
      },
    }
  }
}

describe('traceFilter', () => {
  it('passes bytes through unchanged and reports each chunk each way, open and close once', () => {
    const lines: string[] = []
    const events: TraceEvent[] = []
    const filter = traceFilter({ sink: (l) => lines.push(l), onEvent: (e) => events.push(e), now: () => fixed })({ side: 'client', peer: 'dev:1', send: () => undefined })
    filter.open?.()
    const chunk = bytes('VOLT?\n')
    expect(filter.output(chunk)).toBe(chunk)
    expect(filter.input(bytes('1.5\n'))).toEqual(bytes('1.5\n'))
    filter.close?.()
    filter.close?.()
    expect(events.map((e) => e.kind)).toEqual(['open', 'out', 'in', 'close'])
    expect(lines[1]).toBe('2026-11-21T20:01:02.345Z dev:1 -> 6 B  56 4f 4c 54 3f 0a  "VOLT?\\n"')
    expect(lines[2]).toContain('<- 4 B  31 2e 35 0a  "1.5\\n"')
  })

  it('stays silent while enabled() is false', () => {
    let on = false
    const lines: string[] = []
    const filter = traceFilter({ sink: (l) => lines.push(l), enabled: () => on })({ side: 'server', peer: 'p', send: () => undefined })
    filter.input(bytes('a'))
    on = true
    filter.input(bytes('b'))
    expect(lines).toHaveLength(1)
    expect(lines[0]).toContain('"b"')
  })
})

describe('composeFilters', () => {
  it('runs input first to last and output last to first; a trace placed first sees the wire bytes, placed last the data', () => {
    const wire: TraceEvent[] = []
    const data: TraceEvent[] = []
    const sent: Uint8Array[] = []
    const factory = composeFilters(traceFilter({ onEvent: (e) => wire.push(e), sink: () => undefined }), xorFilter(0x20, 'HI'), traceFilter({ onEvent: (e) => data.push(e), sink: () => undefined }))
    const filter = factory({ side: 'client', peer: 'p', send: (b) => sent.push(b) })
    filter.open?.()
    // What the xor layer sends on open passes through the trace below it, and reaches the socket xor-free.
    expect(sent.map(text)).toEqual(['HI'])
    expect(wire.filter((e) => e.kind === 'out').map((e) => text(e.bytes))).toEqual(['HI'])
    expect(text(filter.output(bytes('abc')))).toBe('ABC')
    expect(text(filter.input(bytes('XYZ')))).toBe('xyz')
    expect(wire.filter((e) => e.kind !== 'open').map((e) => `${e.kind}:${text(e.bytes)}`)).toEqual(['out:HI', 'out:ABC', 'in:XYZ'])
    expect(data.filter((e) => e.kind !== 'open').map((e) => `${e.kind}:${text(e.bytes)}`)).toEqual(['out:abc', 'in:xyz'])
  })

  it('waits for each ready() in turn and closes every filter', async () => {
    const order: string[] = []
    const layer = (name: string): ConnectionFilterFactory => () =>
      ({
        input: (c) => c,
        output: (c) => c,
        ready: async () => {
          await Promise.resolve()
          order.push(`ready ${name}`)
        },
        close: () => order.push(`close ${name}`),
      }) satisfies ConnectionFilter
    const filter = composeFilters(layer('a'), layer('b'))({ side: 'client', peer: 'p', send: () => undefined })
    await filter.ready?.()
    filter.close?.()
    expect(order).toEqual(['ready a', 'ready b', 'close a', 'close b'])
  })

  it('returns a single factory as is', () => {
    const only = xorFilter(1)
    expect(composeFilters(only)).toBe(only)
  })
})

describe('traceTransport over real TCP', () => {
  const line = textMarshaller(new SentinelBytesMarshaller('\n'))

  it('traces requests and replies without changing them, including pipelined replies read in one chunk', async () => {
    const app = new ApplicationServer(line.unmarshall, line.marshall, (cmd: string) => (cmd.endsWith('?') ? `re ${cmd}` : undefined))
    const server = new TcpServer({ port: 0, callback: app })
    const { port } = await server.listen()
    try {
      const events: TraceEvent[] = []
      const lines: string[] = []
      const transport = traceTransport(new TcpClient({ host: '127.0.0.1', port }), { label: `tcp://127.0.0.1:${port}`, onEvent: (e) => events.push(e), sink: (l) => lines.push(l) })
      const client = new ApplicationClient(transport, line.marshall, line.unmarshall, { timeout: 5_000, maxInFlight: 2 })
      {
        await using session = await client.connect()
        expect(await within(session.sendReceive('*IDN?'), 5_000, 'idn')).toBe('re *IDN?')
        await session.send('VOLT 1')
        // Two requests in flight: their replies may arrive in one chunk; the second is kept for its caller.
        expect(await within(Promise.all([session.sendReceive('A?'), session.sendReceive('B?')]), 5_000, 'pipelined')).toEqual(['re A?', 're B?'])
      }
      const out = events.filter((e) => e.kind === 'out').map((e) => text(e.bytes)).join('')
      const incoming = events.filter((e) => e.kind === 'in').map((e) => text(e.bytes)).join('')
      expect(out).toBe('*IDN?\nVOLT 1\nA?\nB?\n')
      expect(incoming).toBe('re *IDN?\nre A?\nre B?\n')
      expect(events[0]?.kind).toBe('open')
      expect(events.at(-1)?.kind).toBe('close')
      expect(lines.every((l) => l.includes(`tcp://127.0.0.1:${port}`))).toBe(true)
    } finally {
      await server.close()
    }
  })
})

// The wrapper must not change behaviour: the whole application compliance suite through it.
applicationCompliance({
  name: 'tcp + traceTransport',
  async start(handler) {
    const fixture = await tcpSetup.start(handler)
    return { client: traceTransport(fixture.client, { label: 'traced', sink: () => undefined }), close: () => fixture.close() }
  },
})

describe('traceFilter on real TcpClient and TcpServer', () => {
  it('shows every byte on both sides, with open and close', async () => {
    const serverEvents: TraceEvent[] = []
    const clientEvents: TraceEvent[] = []
    let serverClosed!: () => void
    const serverClose = new Promise<void>((resolve) => (serverClosed = resolve))
    const line = textMarshaller(new SentinelBytesMarshaller('\n'))
    const app = new ApplicationServer(line.unmarshall, line.marshall, (cmd: string) => cmd.toUpperCase())
    const server = new TcpServer({ port: 0, callback: app, filter: traceFilter({ onEvent: (e) => { serverEvents.push(e); if (e.kind === 'close') serverClosed() }, sink: () => undefined }) })
    const { port } = await server.listen()
    try {
      const transport = new TcpClient({ host: '127.0.0.1', port, filter: traceFilter({ onEvent: (e) => clientEvents.push(e), sink: () => undefined }) })
      const client = new ApplicationClient(transport, line.marshall, line.unmarshall, { timeout: 5_000 })
      {
        await using session = await client.connect()
        expect(await within(session.sendReceive('abc'), 5_000, 'reply')).toBe('ABC')
      }
      const bytesOf = (events: TraceEvent[], kind: 'in' | 'out'): string => events.filter((e) => e.kind === kind).map((e) => text(e.bytes)).join('')
      expect(bytesOf(clientEvents, 'out')).toBe('abc\n')
      expect(bytesOf(clientEvents, 'in')).toBe('ABC\n')
      await within(serverClose, 5_000, 'server side close')
      expect(bytesOf(serverEvents, 'in')).toBe('abc\n')
      expect(bytesOf(serverEvents, 'out')).toBe('ABC\n')
      expect(serverEvents[0]?.kind).toBe('open')
      expect(clientEvents[0]?.kind).toBe('open')
      expect(serverEvents.at(-1)?.kind).toBe('close')
      expect(clientEvents.at(-1)?.kind).toBe('close')
    } finally {
      await server.close()
    }
  })
})

// The filter must not change behaviour either: the transport compliance suite with a trace filter on both sides.
transportCompliance({
  name: 'tcp + traceFilter',
  async start(handler) {
    const server = new TcpServer({ port: 0, callback: handler, filter: traceFilter({ sink: () => undefined }) })
    const { port } = await server.listen()
    return { client: new TcpClient({ host: '127.0.0.1', port, filter: traceFilter({ sink: () => undefined }) }), close: () => server.close() }
  },
})
