import { setTimeout as sleep } from 'node:timers/promises'
import { ByteStream, ConnectionClosedError, toBytes, toText } from '@labwire/core'

// Two frames split across reads, then an unterminated one: the byte stream keeps every leftover.
async function* wire(): AsyncGenerator<Uint8Array> {
  yield toBytes('*IDN?\nVO')
  await sleep(10) // the rest arrives later, in another read
  yield toBytes('LT?\nPART')
}
const stream = new ByteStream(wire())
const newline = toBytes('\n')
console.log(toText(await stream.readUntil(newline))) // *IDN?
console.log(toText(await stream.readUntil(newline))) // VOLT?
try {
  await stream.readUntil(newline)
} catch (error) {
  if (!(error instanceof ConnectionClosedError)) throw error
  console.log(error.code, toText(error.partial)) // ERR_CONNECTION_CLOSED PART
}
