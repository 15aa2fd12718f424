import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { configDefaults, defineConfig } from 'vitest/config'

const root = fileURLToPath(new URL('.', import.meta.url))

// Every packages/<dir> is @labwire/<dir>; tests import its src (no build needed).
const packagesDir = join(root, 'packages')
const packageNames = readdirSync(packagesDir, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(join(packagesDir, entry.name, 'src', 'index.ts')))
  .map((entry) => entry.name)
const alias = Object.fromEntries(packageNames.map((name) => [`@labwire/${name}`, join(packagesDir, name, 'src', 'index.ts')]))

// Tests fall in two groups. Most run against the sources and start at once. A test that runs built
// code (a child process on packages/*/dist, examples/dist, the `labwire` binary, the packaging test)
// is in the "built" group: it runs after the others, and its setup file waits for an up-to-date
// build (scripts/fingerprint.mjs: one build shared by every worker and by `npm test`, skipped when
// the sources did not change). A test file is in that group when it, or a local module it imports,
// mentions `dist` as a word or the `bin/labwire` binary. So `npm test -- test/marshallers.test.ts`
// never builds, and `npm test -- test/demo.test.ts` builds only if the sources changed.
const include = ['test/**/*.test.ts', 'packages/*/test/**/*.test.ts']
const needsBuildText = /\bdist\b|bin\/labwire/

function testFiles(): string[] {
  const files: string[] = []
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === 'node_modules' || entry.name === 'dist') continue
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (entry.name.endsWith('.test.ts')) files.push(path)
    }
  }
  walk(join(root, 'test'))
  for (const name of readdirSync(packagesDir)) walk(join(packagesDir, name, 'test'))
  return files
}

/** Does the file, or a local module it imports (transitively; not sources, examples or scripts/), run built code? */
function needsBuild(file: string, seen = new Set<string>()): boolean {
  if (seen.has(file)) return false
  seen.add(file)
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return false
  }
  if (needsBuildText.test(text)) return true
  for (const [, specifier] of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
    const target = resolve(dirname(file), specifier as string)
    if (/\/packages\/[^/]+\/src\//.test(target) || target.includes('/examples/') || target.startsWith(join(root, 'scripts'))) continue
    for (const candidate of [target, target.replace(/\.js$/, '.ts'), `${target}.ts`]) {
      if (existsSync(candidate) && needsBuild(candidate, seen)) return true
    }
  }
  return false
}

const built = testFiles()
  .filter((file) => needsBuild(file))
  .map((file) => relative(root, file).split('\\').join('/'))

export default defineConfig({
  resolve: { alias },
  test: {
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    // Two test files per core: the tests mostly wait on sockets, timers and child processes, and
    // vitest's default (cores - 1) runs them one at a time on a 2-core machine (warm npm test
    // 286 s there, 124 s with 4). `npm test -- --maxWorkers=N` overrides it. Under CI (`CI` set) the
    // files run at vitest's default, one per core but one: a few timing and peak-memory bounds are
    // still sensitive to neighbours, and CI has the time.
    maxWorkers: process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false' ? Math.max(availableParallelism() - 1, 1) : Math.max(2, availableParallelism() * 2),
    // Unhandled rejections and errors fail the run (vitest's default; kept explicit).
    dangerouslyIgnoreUnhandledErrors: false,
    projects: [
      {
        extends: true,
        test: { name: 'src', include, exclude: [...configDefaults.exclude, ...built] },
      },
      {
        extends: true,
        test: {
          name: 'built',
          include: built.length > 0 ? built : ['no-test-needs-the-build'],
          setupFiles: ['test/packaging/ensure-built.ts'],
          // After the source tests: in a full `npm test` the build runs meanwhile, beside them.
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
})
