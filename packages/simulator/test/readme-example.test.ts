import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

// The README's example, compiled by `pnpm build` (which `npm test` runs first), run as a user would.
const root = fileURLToPath(new URL('../../../', import.meta.url))
const built = `${root}examples/dist/simulator-devices.js`

describe('the @labwire/simulator README example (examples/simulator-devices.ts)', () => {
  it('serves a programmatic device and a device file, and shows a fault', () => {
    if (!existsSync(built)) throw new Error(`${built} is missing: run \`pnpm build\` first (\`npm test\` does)`)
    const run = spawnSync(process.execPath, [built], { cwd: root, encoding: 'utf8', timeout: 15_000 })
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' })
    expect(run.stdout).toBe('*IDN? -> ACME,PSU,1,1.0\nVOLT? -> 12.500\nBOGUS? -> ERR\n*IDN? -> labwire,SIM-PSU,0001,0.1.0\nVOLT? -> TimeoutError\n')
  })
})
