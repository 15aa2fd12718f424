// Setup file of the "built" vitest project (vitest.config.ts): before a test that runs built code,
// wait for an up-to-date build. `npm test` builds beside the source tests, so this usually finds the
// build done (or waits for it through the build lock); run alone, it builds if the sources changed.
import { ensureBuilt } from '../../scripts/fingerprint.mjs'

const result = await ensureBuilt({
  onStart: () => console.warn('labwire: the sources changed since the last build; building (pnpm run build) before this test'),
})
if (result.status !== 0) {
  throw new Error(`pnpm run build failed, so the tests that run built code cannot run:\n${result.output}`)
}
