/**
 * A binary instrument in the simulator: the marshallers README's protocol (header byte 0xA5, a
 * one-byte body length, the body, CRC-16/MODBUS low byte first) served by the same device engine
 * as the text devices — state, commands matched on decoded messages, faults on the framed bytes.
 * Run it with `node examples/dist/simulator-binary.js` after `pnpm build`.
 *
 * @module
 */
import { ApplicationClient } from '@labwire/application'
import { FramingError, TimeoutError } from '@labwire/core'
import { checksumCodec, compose, crc16Modbus, LengthFieldBytesMarshaller, type Codec } from '@labwire/marshallers'
import { Device, serveDevice } from '@labwire/simulator'
import { TcpClient } from '@labwire/transport-tcp'

// [A5][len][body…][crc lo][crc hi]: the framer returns the whole frame, the codecs check the CRC and strip the header.
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

// An oven: opcode 0x01 reads the temperature (0.1 °C, int16 big-endian), 0x02 sets the setpoint; anything else is NAKed.
const READ = 0x01
const SET = 0x02
const int16 = (opcode: number, value: number): Uint8Array => Uint8Array.of(opcode, (value >> 8) & 0xff, value & 0xff)

const oven = new Device({
  name: 'oven',
  state: { temperature: 215, setpoint: 0 },
  framing: protocol,
  unknownCommand: (body) => Uint8Array.of(0xff, body[0] ?? 0),
})
  .command((body) => body.length === 1 && body[0] === READ, (_body, d) => int16(0x80 | READ, d.state.temperature), { label: 'READ' })
  .command(
    (body) => (body.length === 3 && body[0] === SET ? { value: ((body[1] ?? 0) << 8) | (body[2] ?? 0) } : undefined),
    ({ value }, d) => {
      d.state.setpoint = value
      return Uint8Array.of(0x80 | SET)
    },
    { label: 'SET' },
  )

await using server = await serveDevice(oven)
const { port } = server.address ?? { port: 0 }
const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), protocol.marshall, protocol.unmarshall, { timeout: 300 })
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')

{
  await using session = await client.connect()
  console.log('READ ->', hex(await session.sendReceive(Uint8Array.of(READ)))) // 8100d7: 21.5 °C
  console.log('SET 300 ->', hex(await session.sendReceive(int16(SET, 300)))) // 82
  console.log('0x7E ->', hex(await session.sendReceive(Uint8Array.of(0x7e)))) // ff7e: NAK
  console.log('state', JSON.stringify(oven.getState()))

  // A fault on the framed reply: replace the READ reply with a frame whose CRC is wrong.
  const corrupt = oven.fault({ kind: 'junk', commands: ['READ'], junk: 'Z\x00??', replace: true })
  await session.sendReceive(Uint8Array.of(READ)).catch((error: unknown) => {
    if (!(error instanceof FramingError)) throw error
    console.log('READ ->', error.name, error.message.split(':')[0]) // FramingError CRC-16/MODBUS mismatch
  })
  oven.faults.remove(corrupt.id)
  console.log('READ ->', hex(await session.sendReceive(Uint8Array.of(READ)))) // the session goes on
}
{
  // Half a frame and no more: the client times out, the partial frame in hand.
  oven.fault({ kind: 'truncate', commands: ['READ'], keep: 3 })
  await using session = await client.connect()
  await session.sendReceive(Uint8Array.of(READ)).catch((error: unknown) => {
    if (!(error instanceof TimeoutError)) throw error
    console.log('READ ->', error.name, error.partial?.length, 'bytes') // TimeoutError 3 bytes
  })
}
