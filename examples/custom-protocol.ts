// A custom binary protocol built with compose(): header byte 0xA5, a one-byte body length, the body,
// and a CRC-16/MODBUS of everything before it (low byte first). A simulated device answers over TCP;
// a client sends a request, and a corrupted reply fails only its own call.
// `pnpm build`, then `node examples/dist/custom-protocol.js`.
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import { FramingError } from '@labwire/core'
import { checksumCodec, compose, crc16Modbus, LengthFieldBytesMarshaller, type Codec } from '@labwire/marshallers'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'

const HEADER = 0xa5
const frames = new LengthFieldBytesMarshaller({ lengthFieldOffset: 1, lengthFieldLength: 1, lengthAdjustment: 2, maxLength: 2 + 255 + 2 })
const header: Codec<Uint8Array> = {
  encode: (body) => Uint8Array.of(HEADER, body.length, ...body),
  decode: (frame) => {
    if (frame[0] !== HEADER) throw new FramingError(`bad header byte 0x${(frame[0] ?? 0).toString(16)}`, { recoverable: true })
    return frame.subarray(2)
  },
}
const protocol = compose(frames, checksumCodec(crc16Modbus, { byteOrder: 'little' }), header)

// The device: replies with the request's bytes summed, except that its second reply is corrupted on the wire.
let replies = 0
const device = new ApplicationServer(
  protocol.unmarshall,
  (body: Uint8Array) => {
    const wire = protocol.marshall(body)
    if (++replies === 2) wire[wire.length - 1] = (wire[wire.length - 1] ?? 0) ^ 0xff
    return wire
  },
  (request: Uint8Array) => Uint8Array.of(request.reduce((sum, b) => (sum + b) & 0xff, 0)),
)
await using server = new TcpServer({ port: 0, callback: device })
const { port } = await server.listen()

const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), protocol.marshall, protocol.unmarshall, { timeout: 2000 })
await using session = await client.connect()
console.log(await session.sendReceive(Uint8Array.of(1, 2, 3))) // Uint8Array(1) [ 6 ]
await session.sendReceive(Uint8Array.of(4)).catch((error: unknown) => {
  if (!(error instanceof FramingError)) throw error
  console.log(error.recoverable, error.message) // true CRC-16/MODBUS mismatch: expected 0x…, got 0x…
})
console.log(await session.sendReceive(Uint8Array.of(10, 20))) // Uint8Array(1) [ 30 ]: the session goes on
