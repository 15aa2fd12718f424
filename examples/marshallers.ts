import { setImmediate } from 'node:timers/promises'
import { FrameTooLargeError, toBytes, toText } from '@labwire/core'
import { FixedLengthBytesMarshaller, SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'

// The wire delivers one byte at a time; the marshallers do not care where the chunks break.
async function* byteByByte(text: string): AsyncGenerator<Uint8Array> {
  for (const byte of toBytes(text)) {
    await setImmediate()
    yield Uint8Array.of(byte)
  }
}
const lines = textMarshaller(new SentinelBytesMarshaller('\r\n', { maxLength: 16 }))
const wire = byteByByte('MEAS:VOLT?\r\n1.234ABCD\r\nTHIS LINE IS FAR TOO LONG\r\n')
console.log(await lines.unmarshall(wire)) // MEAS:VOLT?
console.log(toText(await new FixedLengthBytesMarshaller(5).unmarshall(wire))) // 1.234
console.log(await lines.unmarshall(wire)) // ABCD: the leftover after the fixed-length read
await lines.unmarshall(wire).catch((error: unknown) => {
  if (!(error instanceof FrameTooLargeError)) throw error
  console.log(error.code, error.maxLength) // ERR_FRAME_TOO_LARGE 16
})
console.log(lines.marshall('*RST')) // Uint8Array(6) [ 42, 82, 83, 84, 13, 10 ]
