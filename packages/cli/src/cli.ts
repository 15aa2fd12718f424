#!/usr/bin/env node
import { ExitCode } from './exit-codes.js'
import { main } from './main.js'
import { flushOutput } from './output.js'

for (const stream of [process.stdout, process.stderr]) {
  // A reader that went away (EPIPE) is noted by flushOutput, not an uncaught exception.
  stream.on('error', () => undefined)
  // Writes to a pipe are asynchronous on POSIX: a trace or a large reply faster than its reader
  // would pile up in memory. Blocking writes stream instead (the process waits for its reader,
  // and so the device waits for the process: backpressure all the way), as C programs do.
  ;(stream as unknown as { _handle?: { setBlocking?: (on: boolean) => void } })._handle?.setBlocking?.(true)
}
const code = await main(process.argv.slice(2))
// Never exit before stdout is flushed, however slow its reader; if it cannot be, exit non-zero.
const written = await flushOutput([process.stdout, process.stderr])
process.exitCode = written ? code : code === ExitCode.ok ? ExitCode.output : code
// Everything is closed and flushed by now; if a stray handle still holds the event loop, do not hang.
setTimeout(() => process.exit(), 2_000).unref()
