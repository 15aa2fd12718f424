#!/usr/bin/env node
// The two-command quick start: `npm run demo` and `npm test` both land here.
//
//   node scripts/dev.mjs demo            build if the sources changed, then run the demo (examples/dist/demo.js)
//   node scripts/dev.mjs test [args…]    build (always), lint, typecheck, then `vitest run [args…]`
//
// Needs only Node >= 20.10 and npm. If pnpm (>= 10) is not on PATH, this script runs itself
// again under `npx --yes --package pnpm@<version>`, which puts pnpm on PATH for every nested
// script. It runs `pnpm install --frozen-lockfile` when node_modules is missing or was installed
// from a different lockfile.
//
// Install, build, lint and typecheck print one line each; their own output is shown only when
// they fail. vitest prints its summary as usual.
//
// "The sources changed" means: the fingerprint (path, size, mtime) of every build input differs
// from the one recorded in node_modules/.cache/labwire-build.json by the last successful build
// made here, or a package's dist/ or examples/dist/ is missing. Build inputs are everything under
// packages/*/src, each package's package.json, tsconfig.json and tsup.config.ts (packages/* is
// listed afresh on every run, so new packages count), examples/*.ts, the root package.json,
// tsconfig files and the lockfile. `pnpm build` run by hand does not record a fingerprint, so
// the next demo builds once more.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const PNPM_VERSION = '10.34.9'
const BOOTSTRAP_ENV = 'LABWIRE_PNPM_BOOTSTRAPPED'
const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const isWindows = process.platform === 'win32'
const started = performance.now()

// pnpm's and npm's "update available" banners are noise in a scripted run.
process.env.npm_config_update_notifier ??= 'false'

const [task, ...rest] = process.argv.slice(2)
if (task !== 'demo' && task !== 'test') {
  console.error('usage: node scripts/dev.mjs demo|test [vitest args…]')
  process.exit(2)
}

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
if (major < 20 || (major === 20 && minor < 10)) {
  console.error(`labwire needs Node >= 20.10; this is ${process.versions.node}`)
  process.exit(1)
}

/** Run a command in the repo root with inherited stdio (or captured, if `quiet`); return its exit status. */
function run(command, args, { quiet = false, env = process.env } = {}) {
  const result = spawnSync(command, args, {
    cwd: root,
    env,
    stdio: quiet ? ['ignore', 'pipe', 'pipe'] : 'inherit',
    shell: isWindows,
    encoding: 'utf8',
  })
  if (result.error !== undefined) {
    console.error(`could not run ${command}: ${result.error.message}`)
    return 1
  }
  if (quiet && result.status !== 0) {
    process.stdout.write(result.stdout ?? '')
    process.stderr.write(result.stderr ?? '')
  }
  return result.status ?? 1
}

/** Run a step; exit with its status if it fails. */
function step(label, command, args, options) {
  console.error(options?.quiet ? `▶ ${label} (output shown only on failure)` : `\n▶ ${label}`)
  const status = run(command, args, options)
  if (status !== 0) {
    console.error(`\n✗ ${label} failed (exit ${status})`)
    process.exit(status)
  }
}

/** The major version of the pnpm on PATH, or 0 if there is none. */
function pnpmMajor() {
  const result = spawnSync('pnpm', ['--version'], { cwd: root, encoding: 'utf8', shell: isWindows, stdio: ['ignore', 'pipe', 'ignore'] })
  if (result.status !== 0 || typeof result.stdout !== 'string') return 0
  return Number(result.stdout.trim().split('.')[0]) || 0
}

/**
 * Make sure pnpm >= 10 is on PATH before the first step that needs it; if it is not, run this
 * script again through npx (which puts pnpm on PATH) and exit with its status. Called lazily: a
 * demo whose build is up to date needs no pnpm, and spawning it costs a second or two.
 */
let pnpmChecked = false
function ensurePnpm() {
  if (pnpmChecked) return
  pnpmChecked = true
  if (pnpmMajor() >= 10) return
  if (process.env[BOOTSTRAP_ENV] === '1') {
    console.error(`pnpm ${PNPM_VERSION} was fetched with npx but is still not on PATH; install it with: npm i -g pnpm@${PNPM_VERSION}`)
    process.exit(1)
  }
  console.error(`pnpm >= 10 not found on PATH: running through npx --package pnpm@${PNPM_VERSION}`)
  const status = run('npx', ['--yes', '--package', `pnpm@${PNPM_VERSION}`, '--', 'node', fileURLToPath(import.meta.url), task, ...rest], {
    env: { ...process.env, [BOOTSTRAP_ENV]: '1' },
  })
  process.exit(status)
}

// Install when node_modules is missing or stale (pnpm keeps a copy of the lockfile it installed).
const lockfile = join(root, 'pnpm-lock.yaml')
const installed = join(root, 'node_modules', '.pnpm', 'lock.yaml')
if (!existsSync(installed) || readFileSync(installed, 'utf8') !== readFileSync(lockfile, 'utf8')) {
  ensurePnpm()
  const first = existsSync(join(root, 'node_modules')) ? '' : '; the first run downloads the dependencies'
  step(`pnpm install --frozen-lockfile${first}`, 'pnpm', ['install', '--frozen-lockfile', '--config.confirmModulesPurge=false'], {
    quiet: true,
  })
}

/** Every build input's path, size and mtime, hashed; new packages/* directories are found here. */
function sourceFingerprint() {
  const files = []
  const add = (path) => {
    if (existsSync(join(root, path))) files.push(path)
  }
  const walk = (dir) => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`
      if (entry.isDirectory()) walk(path)
      else if (entry.isFile()) files.push(path)
    }
  }
  for (const entry of readdirSync(join(root, 'packages'), { withFileTypes: true })) {
    if (!entry.isDirectory()) continue
    const dir = `packages/${entry.name}`
    if (existsSync(join(root, dir, 'src'))) walk(`${dir}/src`)
    for (const name of ['package.json', 'tsconfig.json', 'tsup.config.ts']) add(`${dir}/${name}`)
  }
  for (const name of readdirSync(join(root, 'examples'))) if (name.endsWith('.ts')) add(`examples/${name}`)
  for (const name of ['package.json', 'pnpm-lock.yaml', 'pnpm-workspace.yaml', 'tsconfig.json', 'tsconfig.base.json']) add(name)
  const hash = createHash('sha256')
  for (const path of files.sort()) {
    const { size, mtimeMs } = statSync(join(root, path))
    hash.update(`${path}\0${size}\0${mtimeMs}\n`)
  }
  return hash.digest('hex')
}

/** True when every package has its dist/index.js and .d.ts, and the examples are built. */
function outputsPresent() {
  for (const entry of readdirSync(join(root, 'packages'), { withFileTypes: true })) {
    const dir = join(root, 'packages', entry.name)
    if (!entry.isDirectory() || !existsSync(join(dir, 'package.json'))) continue
    if (!existsSync(join(dir, 'dist', 'index.js')) || !existsSync(join(dir, 'dist', 'index.d.ts'))) return false
  }
  return existsSync(join(root, 'examples', 'dist', 'demo.js'))
}

const buildStamp = join(root, 'node_modules', '.cache', 'labwire-build.json')

/** Build quietly and record the fingerprint the build started from (a change made meanwhile makes it stale). */
function build() {
  ensurePnpm()
  const fingerprint = sourceFingerprint()
  step('pnpm run build', 'pnpm', ['run', 'build'], { quiet: true })
  mkdirSync(dirname(buildStamp), { recursive: true })
  writeFileSync(buildStamp, `${JSON.stringify({ fingerprint, builtAt: new Date().toISOString() })}\n`)
}

if (task === 'demo') {
  let recorded
  try {
    recorded = JSON.parse(readFileSync(buildStamp, 'utf8')).fingerprint
  } catch {
    recorded = undefined
  }
  if (recorded === sourceFingerprint() && outputsPresent()) console.error('▶ build is up to date (sources unchanged)')
  else build()
  process.exit(run('node', [join('examples', 'dist', 'demo.js')]))
}

// CI runs this: always a fresh build, never a recorded one.
build()
step('pnpm run lint', 'pnpm', ['run', 'lint'], { quiet: true })
step('pnpm run typecheck', 'pnpm', ['run', 'typecheck'], { quiet: true })
// vitest's own summary is for people; a JSON report beside it gives the plain closing count line
// ("vitest: N passed, N failed, N skipped") that CI tooling reads.
const report = join(root, 'node_modules', '.cache', 'vitest-report.json')
const vitestArgs = ['exec', 'vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...rest]
const vitestStatus = run('pnpm', vitestArgs)
if (existsSync(report)) {
  const { numPassedTests = 0, numFailedTests = 0, numPendingTests = 0, numTodoTests = 0 } = JSON.parse(readFileSync(report, 'utf8'))
  console.log(`vitest: ${numPassedTests} passed, ${numFailedTests} failed, ${numPendingTests + numTodoTests} skipped`)
}
if (vitestStatus !== 0) {
  console.error(`\n✗ vitest run failed (exit ${vitestStatus})`)
  process.exit(vitestStatus)
}
console.error(`\n✓ build, lint, typecheck and tests passed in ${((performance.now() - started) / 1000).toFixed(1)} s`)
