#!/usr/bin/env node
// The two-command quick start: `npm run demo` and `npm test` both land here.
//
//   node scripts/dev.mjs demo            build if the sources changed, then run the demo (examples/dist/demo.js)
//   node scripts/dev.mjs test [args…]    vitest run [args…], and beside it build, package checks,
//                                        typecheck and eslint, each only if its inputs changed
//
// Needs only Node >= 20.10 and npm. If pnpm (>= 10) is not on PATH, this script runs itself
// again under `npx --yes --package pnpm@<version>`, which puts pnpm on PATH for every nested
// script. It runs `pnpm install --frozen-lockfile` when node_modules is missing or was installed
// from a different lockfile.
//
// `test` starts vitest at once: tests run against the packages' TypeScript sources (aliases in
// vitest.config.ts). Meanwhile, on the other core, two chains run: build → package checks
// (scripts/packages.mjs), and typecheck + eslint on one TypeScript program of the sources
// (scripts/check-types.mjs; no build needed). A stage whose inputs have not changed since it last
// passed here is skipped (scripts/fingerprint.mjs: content hashes of its input files, recorded in
// node_modules/.cache/labwire/). The tests that run built code (child processes on dist/, the
// `labwire` binary, the examples) are a second vitest group that runs after the others and waits
// for the same build. Each stage prints one line; a failing stage's output is printed at the end.
// The last line is `vitest: N passed, N failed, N skipped`, for CI tooling.
//
// Colour: off when stdout is not a terminal or NO_COLOR is set, on when FORCE_COLOR is set (not
// "0"); the child tools get the matching NO_COLOR / FORCE_COLOR.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildUpToDate, cacheDir, clearBuildFailure, colorEnv, ensureBuilt, fingerprint, recorded, record, repoFiles, root, runCommand } from './fingerprint.mjs'

const PNPM_VERSION = '10.34.9'
const BOOTSTRAP_ENV = 'LABWIRE_PNPM_BOOTSTRAPPED'
const isWindows = process.platform === 'win32'
const started = performance.now()

// pnpm's and npm's "update available" banners and funding notes are noise in a scripted run.
process.env.npm_config_update_notifier ??= 'false'
process.env.npm_config_fund ??= 'false'

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

const { color, env } = colorEnv()
const seconds = (since) => `${((performance.now() - since) / 1000).toFixed(1)} s`
// On a terminal, vitest redraws its last lines in place; a line from this process in between would
// tear that display, so while vitest runs on a terminal the stage lines wait and follow its summary.
let held = null
const say = (line) => (held === null ? console.log(line) : held.push(line))

/** Run a command in the repo root with inherited stdio (or captured, if `quiet`); return its exit status. */
function runSync(command, args, { quiet = false, childEnv = env } = {}) {
  const result = spawnSync(command, args, {
    cwd: root,
    env: childEnv,
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

/** The major version of the pnpm on PATH, or 0 if there is none. */
function pnpmMajor() {
  const result = spawnSync('pnpm', ['--version'], { cwd: root, env, encoding: 'utf8', shell: isWindows, stdio: ['ignore', 'pipe', 'ignore'] })
  if (result.status !== 0 || typeof result.stdout !== 'string') return 0
  return Number(result.stdout.trim().split('.')[0]) || 0
}

/**
 * Make sure pnpm >= 10 is on PATH before the first step that needs it; if it is not, run this
 * script again through npx (which puts pnpm on PATH) and exit with its status. Called lazily: a
 * run with nothing to install or build needs no pnpm, and spawning it costs a second or two.
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
  const status = runSync('npx', ['--yes', '--package', `pnpm@${PNPM_VERSION}`, '--', 'node', fileURLToPath(import.meta.url), task, ...rest], {
    childEnv: { ...env, [BOOTSTRAP_ENV]: '1' },
  })
  process.exit(status)
}

// Install when node_modules is missing or stale (pnpm keeps a copy of the lockfile it installed).
const lockfile = join(root, 'pnpm-lock.yaml')
const installed = join(root, 'node_modules', '.pnpm', 'lock.yaml')
if (!existsSync(installed) || readFileSync(installed, 'utf8') !== readFileSync(lockfile, 'utf8')) {
  ensurePnpm()
  const first = existsSync(join(root, 'node_modules')) ? '' : ' (the first run downloads the dependencies)'
  const since = performance.now()
  const status = runSync('pnpm', ['install', '--frozen-lockfile', '--config.confirmModulesPurge=false', ...(color ? [] : ['--no-color'])], {
    quiet: true,
  })
  if (status !== 0) {
    say(`install: FAILED (exit ${status}) after ${seconds(since)}`)
    process.exit(status)
  }
  say(`install: pnpm install --frozen-lockfile done in ${seconds(since)}${first}`)
}

/** The build, through the lock shared with the vitest workers that wait for it; one line of report. */
async function build() {
  const since = performance.now()
  const result = await ensureBuilt({
    env,
    onWait: (pid) => say(`build: waiting for the build running in process ${pid}`),
  })
  if (result.status !== 0) {
    say(`build: FAILED after ${seconds(since)} (pnpm run build; output at the end)`)
    return { ok: false, label: 'pnpm run build', output: result.output }
  }
  say(result.built ? `build: built ${result.what} in ${seconds(since)}` : 'build: up to date (inputs unchanged, skipped)')
  return { ok: true }
}

// The build needs pnpm: make sure of it now, before any lock is taken or vitest started (ensurePnpm
// may run this whole script again through npx).
const files = repoFiles()
if (!buildUpToDate(files)) ensurePnpm()

if (task === 'demo') {
  const result = await build()
  if (!result.ok) {
    process.stdout.write(result.output)
    process.exit(1)
  }
  process.exit(runSync('node', [join('examples', 'dist', 'demo.js')], { childEnv: process.env }))
}

// ---- test ----------------------------------------------------------------------------------------

const bin = (path) => join(root, 'node_modules', ...path.split('/'))
clearBuildFailure()

/** A stage that runs only when its fingerprint differs from the one recorded when it last passed. */
async function stage(name, label, command, args) {
  const wanted = fingerprint(name, files)
  if (recorded(name) === wanted) {
    say(`${name}: up to date (inputs unchanged, skipped)`)
    return { ok: true }
  }
  const since = performance.now()
  const { status, output } = await runCommand(command, args, { env })
  if (status !== 0) {
    say(`${name}: FAILED after ${seconds(since)} (${label}; output at the end)`)
    return { ok: false, label, output }
  }
  record(name, wanted, (performance.now() - since) / 1000)
  say(`${name}: ${label} passed in ${seconds(since)}`)
  return { ok: true }
}

// Two chains beside vitest: build → package checks (scripts/packages.mjs packs and checks the built
// packages), and the typecheck and eslint in one process (scripts/check-types.mjs: one TypeScript
// program of the whole repo, through the root tsconfig.json's paths to packages/*/src, gives tsc's
// diagnostics and eslint's type information), which needs no build.
const building = build()
const buildThenPackages = (async () => {
  const built = await building
  if (!built.ok) return [built]
  return [built, await stage('packages', 'scripts/packages.mjs (manifests, publint, attw)', process.execPath, [join(root, 'scripts', 'packages.mjs')])]
})()
const types = stage('types', 'tsc --noEmit + eslint . (scripts/check-types.mjs)', process.execPath, [join(root, 'scripts', 'check-types.mjs')]).then((result) => [result])

// vitest's own summary is for people; a silent reporter beside it writes the plain closing count line.
const summaryFile = join(cacheDir, 'vitest-summary.txt')
rmSync(summaryFile, { force: true })
mkdirSync(cacheDir, { recursive: true })
const vitestSince = performance.now()
if (process.stdout.isTTY) held = []
const vitest = runCommand(
  process.execPath,
  [bin('vitest/vitest.mjs'), 'run', '--reporter=default', `--reporter=${join(root, 'scripts', 'vitest-summary-reporter.mjs')}`, ...rest],
  { env: { ...env, LABWIRE_VITEST_SUMMARY: summaryFile }, capture: false },
)

const vitestDone = vitest.then((result) => {
  const lines = held ?? []
  held = null
  for (const line of lines) say(line)
  return result.status
})
const [vitestStatus, ...chains] = await Promise.all([vitestDone, buildThenPackages, types])
const failures = chains.flat().filter((result) => !result.ok)
for (const failure of failures) {
  say(`\n---- ${failure.label} failed; its output: ----`)
  process.stdout.write(failure.output.endsWith('\n') || failure.output === '' ? failure.output : `${failure.output}\n`)
}

// No summary: vitest did not get to the end of a run (bad arguments, a config error, killed).
let summary = 'vitest: 0 passed, 1 failed, 0 skipped'
if (existsSync(summaryFile)) summary = readFileSync(summaryFile, 'utf8').trim()
else {
  say(`vitest: exited with ${vitestStatus} after ${seconds(vitestSince)} without a summary`)
  writeFileSync(summaryFile, `${summary}\n`)
}
const ok = vitestStatus === 0 && failures.length === 0
say(`test: ${ok ? 'passed' : 'FAILED'} in ${seconds(started)} (vitest ${vitestStatus === 0 ? 'passed' : `exit ${vitestStatus}`}${failures.length > 0 ? `; failed: ${failures.map((f) => f.label).join(', ')}` : ''})`)
say(summary)
process.exit(ok ? 0 : vitestStatus || 1)
