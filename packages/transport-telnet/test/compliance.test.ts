/**
 * The transport and application compliance suites over Telnet (TelnetClient ↔ TelnetServer on
 * 127.0.0.1), plus the done-when byte checks: every byte value, 0xFF and CR NUL / CR LF
 * round-trip unchanged in one frame and byte by byte.
 */
import { describe, expect, it } from 'vitest'
import { FixedLengthBytesMarshaller } from '@labwire/marshallers'
import { TelnetClient, TelnetServer } from '@labwire/transport-telnet'
import { applicationCompliance } from '../../../test/compliance/application.js'
import { transportCompliance } from '../../../test/compliance/transport.js'
import { within, type TransportSetup } from '../../../test/helpers/fixtures.js'

export const telnetSetup: TransportSetup = {
  name: 'telnet',
  async start(handler) {
    const server = new TelnetServer({ port: 0, callback: handler })
    const { port } = await server.listen()
    return { client: new TelnetClient({ host: '127.0.0.1', port }), close: () => server.close() }
  },
}

transportCompliance(telnetSetup)
applicationCompliance(telnetSetup)

const ALL = Uint8Array.from({ length: 256 }, (_, i) => i)
/** Every byte value, then the sequences the NVT rules touch, and 0xFF next to them. */
const TRICKY = Uint8Array.from([...ALL, 13, 0, 13, 10, 13, 13, 0, 0xff, 13, 0xff, 0xff, 10, 13])
const WAIT = 5_000

describe('telnet: every byte value round-trips client ↔ server unchanged', () => {
  for (const binary of [true, false]) {
    const mode = binary ? 'BINARY' : 'NVT (BINARY refused)'
    it(`${mode}: in one frame and split byte by byte`, async () => {
      // Fixed-length echo of exactly TRICKY.length bytes: nothing in the payload is a delimiter.
      const frame = new FixedLengthBytesMarshaller(TRICKY.length)
      await using server = new TelnetServer({ port: 0, callback: (bytes) => frame.unmarshall(bytes) })
      const { port } = await server.listen()
      await using session = await new TelnetClient({ host: '127.0.0.1', port, binary }).connect({ signal: AbortSignal.timeout(WAIT) })
      const stream = session.request(TRICKY)
      expect(await within(frame.unmarshall(stream), WAIT, 'one frame')).toEqual(TRICKY)
      for (const byte of TRICKY) await session.write(Uint8Array.of(byte))
      expect(await within(frame.unmarshall(stream), WAIT, 'byte by byte')).toEqual(TRICKY)
    })
  }
})
