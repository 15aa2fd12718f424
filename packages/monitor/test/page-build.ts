import { execFileSync } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const packageDir = fileURLToPath(new URL('..', import.meta.url))

/** Build dist/page.js (the page's browser bundle) when it is missing or older than its source. */
export function ensurePageBuilt(): void {
  const out = `${packageDir}dist/page.js`
  const source = `${packageDir}src/page/app.ts`
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(source).mtimeMs) return
  const tsup = fileURLToPath(new URL('../../../node_modules/.bin/tsup', import.meta.url))
  execFileSync(tsup, ['--env.PAGE_ONLY', '1'], { cwd: packageDir, stdio: 'pipe', timeout: 60_000 })
}
