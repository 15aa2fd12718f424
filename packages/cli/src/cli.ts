#!/usr/bin/env node
import { main } from './main.js'

process.exitCode = await main(process.argv.slice(2))
// Everything is closed by now; if a stray handle still holds the event loop, do not hang.
setTimeout(() => process.exit(), 2_000).unref()
