import { setTimeout as sleep } from 'node:timers/promises'
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import { MemoryClient, MemoryServer, TimeoutError } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'

// A device whose SLOW? query takes 200 ms, over the in-memory transport (no sockets needed).
const lines = textMarshaller(new SentinelBytesMarshaller('\n'))
const device = new ApplicationServer(lines.unmarshall, lines.marshall, async (command: string) => {
  if (command === 'SLOW?') await sleep(200)
  if (command === 'FAIL?') throw new Error('device fault')
  return `${command.replace('?', '')} OK`
}, { errorResponse: (error) => `ERROR ${error instanceof Error ? error.message : 'unknown'}` })
await using server = new MemoryServer({ callback: device })
const client = new ApplicationClient(new MemoryClient(server), lines.marshall, lines.unmarshall, { timeout: 1_000 })
await using session = await client.connect()

try {
  await session.sendReceive('SLOW?', { timeout: 50 })
} catch (error) {
  if (!(error instanceof TimeoutError)) throw error
  console.log(error.code) // ERR_TIMEOUT
}
// The late 'SLOW OK' is read and discarded: it is never taken for the next answer.
console.log(await session.sendReceive('FAST?')) // FAST OK
console.log(await session.sendReceive('FAIL?')) // ERROR device fault (errorResponse keeps the connection open)
// Calls made at once are queued FIFO and answered in order.
console.log(await Promise.all(['A?', 'B?', 'C?'].map((command) => session.sendReceive(command)))) // [ 'A OK', 'B OK', 'C OK' ]
