// What changed since a stage last passed here, and the build that tests needing built output wait for.
// Shared by scripts/dev.mjs (`npm test`, `npm run demo`), the vitest setup of the tests that run
// built code (test/packaging/ensure-built.ts) and the packaging test.
//
// A stage's fingerprint is a SHA-256 over the path and content of each of its input files. The repo
// is walked afresh every time (everything except node_modules, .git, dist/, coverage/, .bench-out/),
// so new packages and new files count without a list to keep. A stage that passes records its
// fingerprint in node_modules/.cache/labwire/<stage>.json; the next run skips the stage while the
// fingerprint is the same (and, for the build, the outputs exist). Hashing content, not mtimes, means
// a `git checkout` back and forth or a fresh clone of the same commit is still "unchanged".
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..')
export const cacheDir = join(root, 'node_modules', '.cache', 'labwire')
const SKIP_DIRS = new Set(['node_modules', '.git', 'dist', 'coverage', '.bench-out'])
// Bump to invalidate every recorded stage (e.g. when a stage's command changes).
const STAMP_VERSION = 1

/** Every file of the repo (relative, '/'-separated, sorted) outside node_modules, .git and build output. */
export function repoFiles() {
  const files = []
  const walk = (dir) => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      if (entry.name.startsWith('.') && entry.name !== '.ci' && entry.name !== '.npmrc') continue
      if (SKIP_DIRS.has(entry.name)) continue
      const path = dir === '' ? entry.name : `${dir}/${entry.name}`
      if (entry.isDirectory()) walk(path)
      else if (entry.isFile()) files.push(path)
    }
  }
  walk('')
  return files.sort()
}

const ROOT_CONFIG = new Set(['package.json', 'pnpm-lock.yaml', 'pnpm-workspace.yaml', 'tsconfig.json', 'tsconfig.base.json', '.npmrc'])
const CODE = /\.(?:[cm]?[jt]s|json)$/

/** Which files each stage reads. */
export const STAGES = {
  // tsup over packages/*/src (+ each package's build config) and the examples.
  build: (path) =>
    ROOT_CONFIG.has(path) ||
    /^packages\/[^/]+\/(?:src\/|package\.json$|tsconfig\.json$|tsup\.config\.ts$)/.test(path) ||
    /^examples\/[^/]+\.ts$/.test(path),
  // tsc -p tsconfig.json: sources, tests, examples, configs.
  typecheck: (path) =>
    ROOT_CONFIG.has(path) ||
    (/^(?:packages\/[^/]+\/|test\/|examples\/|scripts\/|vitest\.config\.ts$)/.test(path) && /\.(?:[cm]?ts|json)$/.test(path)),
  // eslint . (type-aware): every script and source file, and the configs.
  eslint: (path) => ROOT_CONFIG.has(path) || path === 'eslint.config.js' || CODE.test(path),
  // scripts/check-types.mjs (what `npm test` runs): tsc and eslint on one program.
  types: (path) => path === 'scripts/check-types.mjs' || STAGES.typecheck(path) || STAGES.eslint(path),
  // scripts/packages.mjs: manifests, READMEs, licences and what each package ships (after the build).
  packages: (path) =>
    ROOT_CONFIG.has(path) || path === 'LICENSE' || path === 'scripts/packages.mjs' || /^packages\/[^/]+\/(?!test\/)/.test(path),
}

/** The stage's fingerprint; `files` (from repoFiles()) may be passed to share one walk. */
export function fingerprint(stage, files = repoFiles()) {
  const hash = createHash('sha256').update(`labwire ${STAMP_VERSION} ${stage} node ${process.versions.node}\n`)
  for (const path of files) {
    if (!STAGES[stage](path)) continue
    hash.update(`${path}\0`).update(readFileSync(join(root, path))).update('\0')
  }
  // The package check reads the build output: a new build means a new check.
  if (stage === 'packages') hash.update(fingerprint('build', files))
  return hash.digest('hex')
}

/**
 * The build's inputs in parts, so that a change rebuilds only what it touches: `root` (the shared
 * config: root package.json, lockfile, tsconfig files), `examples` (examples/*.ts) and one part per
 * package (its src/, package.json, tsconfig.json, tsup.config.ts).
 */
export function buildParts(files = repoFiles()) {
  const hashes = new Map()
  const part = (name) => {
    if (!hashes.has(name)) hashes.set(name, createHash('sha256').update(`labwire ${STAMP_VERSION} build:${name}\n`))
    return hashes.get(name)
  }
  part('root')
  part('examples')
  for (const dir of packageDirs()) part(`packages/${dir}`)
  for (const path of files) {
    if (!STAGES.build(path)) continue
    const name = path.startsWith('packages/') ? path.split('/', 2).join('/') : path.startsWith('examples/') ? 'examples' : 'root'
    part(name).update(`${path}\0`).update(readFileSync(join(root, path))).update('\0')
  }
  return Object.fromEntries([...hashes].map(([name, hash]) => [name, hash.digest('hex')]))
}

const stampFile = (stage) => join(cacheDir, `${stage}.json`)

/** The fingerprint recorded by the last passing run of the stage, if any. */
export function recorded(stage) {
  try {
    return JSON.parse(readFileSync(stampFile(stage), 'utf8')).fingerprint
  } catch {
    return undefined
  }
}

export function record(stage, fingerprint, seconds, extra = {}) {
  mkdirSync(cacheDir, { recursive: true })
  writeFileSync(stampFile(stage), `${JSON.stringify({ fingerprint, seconds, at: new Date().toISOString(), ...extra })}\n`)
}

function recordedParts() {
  try {
    return JSON.parse(readFileSync(stampFile('build'), 'utf8')).parts ?? {}
  } catch {
    return {}
  }
}

export function forget(stage) {
  rmSync(stampFile(stage), { force: true })
}

/** Forget a remembered build failure, so that the next ensureBuilt() tries again (dev.mjs does, once per run). */
export function clearBuildFailure() {
  rmSync(join(cacheDir, 'build-failed.json'), { force: true })
}

/** Package directories (packages/<dir> with a package.json), sorted. */
export function packageDirs() {
  return readdirSync(join(root, 'packages'), { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(root, 'packages', entry.name, 'package.json')))
    .map((entry) => entry.name)
    .sort()
}

/** True when every package has dist/index.js and dist/index.d.ts, and every example has its examples/dist/*.js. */
export function buildOutputsPresent() {
  for (const dir of packageDirs()) {
    const dist = join(root, 'packages', dir, 'dist')
    if (!existsSync(join(dist, 'index.js')) || !existsSync(join(dist, 'index.d.ts'))) return false
  }
  for (const name of readdirSync(join(root, 'examples'))) {
    if (!name.endsWith('.ts') || name === 'tsup.config.ts') continue
    if (!existsSync(join(root, 'examples', 'dist', name.replace(/\.ts$/, '.js')))) return false
  }
  return true
}

export function buildUpToDate(files = repoFiles()) {
  return recorded('build') === fingerprint('build', files) && buildOutputsPresent()
}

/**
 * The environment for child tools: colour only when wanted. NO_COLOR (any value) turns colour off;
 * FORCE_COLOR turns it on (off for "0" or "false"); otherwise colour follows whether stdout is a
 * terminal (and TERM is not "dumb"). Many tools treat any FORCE_COLOR, even "0", as "on", so when
 * colour is off FORCE_COLOR is removed and NO_COLOR set.
 */
export function colorEnv(env = process.env, isTTY = process.stdout.isTTY === true) {
  const force = env.FORCE_COLOR
  const color =
    env.NO_COLOR !== undefined && env.NO_COLOR !== ''
      ? false
      : force !== undefined
        ? force !== '0' && force !== 'false'
        : isTTY && env.TERM !== 'dumb'
  const out = { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false' }
  if (color) {
    delete out.NO_COLOR
    out.FORCE_COLOR = force && force !== '0' && force !== 'false' ? force : '1'
  } else {
    delete out.FORCE_COLOR
    out.NO_COLOR = '1'
    out.npm_config_color = 'false'
  }
  return { color, env: out }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function alive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return error.code === 'EPERM'
  }
}

/**
 * Hold node_modules/.cache/labwire/build.lock while `fn` runs (a directory: mkdir is atomic). A lock
 * left by a process that no longer exists is taken over. Waits at most `timeoutMs`.
 */
async function withBuildLock(fn, { timeoutMs = 15 * 60_000, onWait } = {}) {
  const lock = join(cacheDir, 'build.lock')
  mkdirSync(cacheDir, { recursive: true })
  const deadline = Date.now() + timeoutMs
  let waited = false
  for (;;) {
    try {
      mkdirSync(lock)
      writeFileSync(join(lock, 'pid'), String(process.pid))
      break
    } catch (error) {
      if (error.code !== 'EEXIST') throw error
      let holder = NaN
      try {
        holder = Number(readFileSync(join(lock, 'pid'), 'utf8'))
      } catch {
        // the holder has made the directory but not yet written its pid
      }
      if (Number.isInteger(holder) && holder > 0 && !alive(holder)) {
        rmSync(lock, { recursive: true, force: true })
        continue
      }
      if (Date.now() > deadline) throw new Error(`gave up waiting for the build lock ${lock} (held by pid ${holder})`)
      if (!waited) onWait?.(holder)
      waited = true
      await sleep(250)
    }
  }
  try {
    return await fn()
  } finally {
    rmSync(lock, { recursive: true, force: true })
  }
}

/** Run a command in the repo root; resolve with its exit status and its output (captured, or inherited). */
export function runCommand(command, args, { env = process.env, capture = true } = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: root,
      env,
      stdio: capture ? ['ignore', 'pipe', 'pipe'] : ['ignore', 'inherit', 'inherit'],
      shell: process.platform === 'win32',
    })
    let output = ''
    child.stdout?.setEncoding('utf8').on('data', (chunk) => (output += chunk))
    child.stderr?.setEncoding('utf8').on('data', (chunk) => (output += chunk))
    child.once('error', (error) => resolve({ status: 127, output: `could not run ${command}: ${error.message}\n` }))
    child.once('close', (code, signal) => resolve({ status: code ?? (signal ? 128 : 1), output }))
  })
}

/**
 * Build (`pnpm run build`) unless the recorded build matches the sources and the outputs exist.
 * Concurrent callers (dev.mjs and vitest workers) share one build through the lock. Resolves with
 * `{ built, seconds, status, output }`; a failed build is remembered for the same sources so waiting
 * tests fail at once instead of building again.
 */
export async function ensureBuilt({ env = colorEnv().env, onStart, onWait } = {}) {
  const failedStamp = join(cacheDir, 'build-failed.json')
  return withBuildLock(
    async () => {
      const files = repoFiles()
      const wanted = fingerprint('build', files)
      if (recorded('build') === wanted && buildOutputsPresent()) return { built: false, seconds: 0, status: 0, output: '' }
      try {
        const failed = JSON.parse(readFileSync(failedStamp, 'utf8'))
        if (failed.fingerprint === wanted) return { built: false, seconds: 0, status: 1, output: failed.output }
      } catch {
        // no failure recorded
      }
      onStart?.()
      const started = performance.now()
      const { status, output, what } = await buildChanged(files, env)
      const seconds = (performance.now() - started) / 1000
      if (status === 0) {
        rmSync(failedStamp, { force: true })
        record('build', wanted, seconds, { parts: buildParts(files), what })
      } else {
        forget('build')
        mkdirSync(cacheDir, { recursive: true })
        writeFileSync(failedStamp, JSON.stringify({ fingerprint: wanted, output }))
      }
      return { built: true, seconds, status, output, what }
    },
    { onWait },
  )
}

/**
 * Build what changed since the recorded build: everything (`pnpm run build`) when the shared config
 * changed or nothing is recorded; otherwise each changed package or package without dist/, with the
 * packages that depend on it (`pnpm -r --filter ...@labwire/<dir> run build`: their declarations are
 * checked against its new ones), and the examples when an example changed or is not built (they keep
 * `@labwire/*` as imports, so a package change does not change them).
 */
async function buildChanged(files, env) {
  const parts = buildParts(files)
  const before = recordedParts()
  if (before.root !== parts.root) return { ...(await runCommand('pnpm', ['run', 'build'], { env })), what: 'everything' }
  const packages = packageDirs().filter((dir) => {
    const dist = join(root, 'packages', dir, 'dist')
    return before[`packages/${dir}`] !== parts[`packages/${dir}`] || !existsSync(join(dist, 'index.js')) || !existsSync(join(dist, 'index.d.ts'))
  })
  const examplesBuilt = readdirSync(join(root, 'examples'))
    .filter((name) => name.endsWith('.ts') && name !== 'tsup.config.ts')
    .every((name) => existsSync(join(root, 'examples', 'dist', name.replace(/\.ts$/, '.js'))))
  const examples = before.examples !== parts.examples || !examplesBuilt
  let output = ''
  if (packages.length > 0) {
    const filters = packages.flatMap((dir) => ['--filter', `...@labwire/${dir}`])
    const result = await runCommand('pnpm', ['-r', ...filters, 'run', 'build'], { env })
    output += result.output
    if (result.status !== 0) return { status: result.status, output, what: packages.join(', ') }
  }
  if (examples) {
    const result = await runCommand('pnpm', ['run', 'build:examples'], { env })
    output += result.output
    if (result.status !== 0) return { status: result.status, output, what: 'examples' }
  }
  const what = [...packages.map((dir) => `${dir} (+ dependents)`), ...(examples ? ['examples'] : [])].join(', ')
  return { status: 0, output, what }
}
