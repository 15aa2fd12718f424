#!/usr/bin/env node
import { ExitCode } from './exit-codes.js'
import { main } from './main.js'
import { flushOutput } from './output.js'

// A reader that went away (EPIPE) is noted by flushOutput, not an uncaught exception.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined)
const code = await main(process.argv.slice(2))
// Never exit before stdout is flushed, however slow its reader; if it cannot be, exit non-zero.
const written = await flushOutput([process.stdout, process.stderr])
process.exitCode = written ? code : code === ExitCode.ok ? ExitCode.output : code
// Everything is closed and flushed by now; if a stray handle still holds the event loop, do not hang.
setTimeout(() => process.exit(), 2_000).unref()
