#!/usr/bin/env node
// The `labwire` command. A committed file (not dist/) so that package managers can link the bin
// at install time, before the first build; the command itself is dist/cli.js.
import('../dist/cli.js').catch((error) => {
  if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/cli.js')) {
    console.error('labwire: packages/cli/dist/cli.js is missing; build it first (pnpm build)')
    process.exitCode = 1
    return
  }
  throw error
})
