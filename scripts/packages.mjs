#!/usr/bin/env node
// Package checks run by `pnpm lint` (after eslint, on built packages: run `pnpm build` first).
//
//   node scripts/packages.mjs            check every packages/*/ (a new package is picked up by itself)
//   node scripts/packages.mjs core cli   check only these package directories
//
// For each package:
//   1. package.json has the shape every labwire package shares (see `checkManifest` below: name, type,
//      license, description, keywords, sideEffects, engines, repository, files, exports), and its
//      LICENSE is the root LICENSE, byte for byte (npm cannot pack a file from outside the package
//      directory, so each package keeps its own copy: `cp LICENSE packages/<dir>/`);
//   2. publint, strict (what a published package exposes: exports, files, types);
//   3. Are The Types Wrong with the esm-only profile (the types resolve for ESM consumers under node16
//      and bundler resolution; CommonJS `require` is out of scope for an ESM-only package).
// Cost: the packages are packed once, by one `pnpm -r pack` (the tarballs `pnpm publish` would
// upload: workspace:* rewritten), and publint and attw run in this process on those tarballs
// (their libraries; 16 × 4 processes before, one TypeScript load now). When a check fails, its CLI
// (`publint run --strict`, `attw --profile esm-only`) is run on the same tarball for the full report.
// A passing package prints one line; a failing one prints the whole output of what failed.
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { checkPackage as attwCheck, createPackageFromTarballData } from '@arethetypeswrong/core'
import { publint } from 'publint'
import { colorEnv } from './fingerprint.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const bin = (name) => join(root, 'node_modules', '.bin', process.platform === 'win32' ? `${name}.cmd` : name)
const rootLicense = readFileSync(join(root, 'LICENSE'))

/** Every directory under packages/ that has a package.json. */
export function packageDirs() {
  return readdirSync(join(root, 'packages'), { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(root, 'packages', entry.name, 'package.json')))
    .map((entry) => entry.name)
    .sort()
}

/** Problems with packages/<dir>/package.json and its LICENSE, as sentences (empty when all is well). */
function checkManifest(dir) {
  const problems = []
  const pkg = JSON.parse(readFileSync(join(root, 'packages', dir, 'package.json'), 'utf8'))
  const expect = (ok, message) => ok || problems.push(message)
  expect(pkg.name === `@labwire/${dir}`, `"name" must be "@labwire/${dir}" (got ${JSON.stringify(pkg.name)})`)
  expect(pkg.type === 'module', '"type" must be "module"')
  expect(pkg.license === 'Apache-2.0', '"license" must be "Apache-2.0"')
  expect(typeof pkg.description === 'string' && pkg.description.length >= 20, '"description" is missing or too short (one sentence: what the package holds)')
  expect(
    Array.isArray(pkg.keywords) && pkg.keywords.includes('labwire') && pkg.keywords.length >= 3,
    '"keywords" must list "labwire" and at least two words a user would search for',
  )
  expect(pkg.sideEffects === false, '"sideEffects": false is missing (labwire modules do nothing on import)')
  expect(typeof pkg.engines?.node === 'string', '"engines": { "node": ">=20.10" } is missing')
  expect(
    pkg.repository?.type === 'git' && pkg.repository?.directory === `packages/${dir}`,
    `"repository" must be { "type": "git", "directory": "packages/${dir}" }`,
  )
  const files = Array.isArray(pkg.files) ? pkg.files : []
  for (const file of ['dist', 'README.md', 'LICENSE']) expect(files.includes(file), `"files" must list "${file}"`)
  const exports = pkg.exports?.['.']
  const conditions = exports !== null && typeof exports === 'object' ? Object.keys(exports) : []
  expect(
    conditions.join(',') === 'types,import,default',
    `"exports"["."] must have the conditions "types", "import", "default" in that order (got ${JSON.stringify(conditions)}); ` +
      '"default" lets require() load the package on Node >= 20.19',
  )
  expect(existsSync(join(root, 'packages', dir, 'README.md')), 'README.md is missing')
  const license = join(root, 'packages', dir, 'LICENSE')
  expect(
    existsSync(license) && readFileSync(license).equals(rootLicense),
    `LICENSE is missing or differs from the root LICENSE: cp LICENSE packages/${dir}/`,
  )
  return problems
}

/** Run a tool (pnpm from PATH, the others from node_modules/.bin) in `cwd`; resolve with its output and whether it passed. */
async function tool(cwd, command, args) {
  try {
    const { stdout, stderr } = await promisify(execFile)(command === 'pnpm' ? 'pnpm' : bin(command), args, {
      cwd,
      env: colorEnv(process.env, false).env,
      shell: process.platform === 'win32',
      maxBuffer: 16 * 1024 * 1024,
    })
    return { ok: true, output: stdout + stderr }
  } catch (error) {
    return { ok: false, output: `${error.stdout ?? ''}${error.stderr ?? ''}${error.stdout || error.stderr ? '' : String(error)}` }
  }
}

// attw's esm-only profile: problems seen only by node10 or by node16 from CommonJS do not count.
const IGNORED_RESOLUTIONS = new Set(['node10', 'node16-cjs'])

/** publint (strict: warnings count) and attw (esm-only) on the packed tarball; the failures, as text. */
async function checkTarball(dir, tarball) {
  const failures = []
  const data = readFileSync(tarball)
  const { messages } = await publint({ pack: { tarball: new Uint8Array(data).buffer }, strict: true })
  if (messages.some((message) => message.type === 'error' || message.type === 'warning')) {
    const report = await tool(root, 'publint', ['run', tarball, '--strict'])
    failures.push(`publint --strict:\n${report.output}`)
  }
  const analysis = await attwCheck(createPackageFromTarballData(new Uint8Array(data)))
  const problems = analysis.types ? analysis.problems.filter((problem) => !('resolutionKind' in problem) || !IGNORED_RESOLUTIONS.has(problem.resolutionKind)) : []
  if (problems.length > 0) {
    const report = await tool(root, 'attw', [tarball, '--profile', 'esm-only', '--format', 'ascii', '--no-emoji'])
    failures.push(`attw --profile esm-only:\n${report.output || JSON.stringify(problems, null, 2)}`)
  }
  return failures
}

const wanted = process.argv.slice(2)
const dirs = wanted.length > 0 ? wanted : packageDirs()
const results = new Map(
  dirs.map((dir) => {
    const problems = checkManifest(dir)
    return [dir, problems.length > 0 ? [`package.json / LICENSE:\n  - ${problems.join('\n  - ')}`] : []]
  }),
)
const built = dirs.filter((dir) => {
  if (existsSync(join(root, 'packages', dir, 'dist'))) return true
  results.get(dir).push(`packages/${dir}/dist is missing: run \`pnpm build\` first`)
  return false
})
if (built.length > 0) {
  const packs = mkdtempSync(join(tmpdir(), 'labwire-packages-'))
  try {
    const filters = built.flatMap((dir) => ['--filter', `./packages/${dir}`])
    const packed = await tool(root, 'pnpm', ['-r', ...filters, 'pack', '--pack-destination', packs])
    if (!packed.ok) {
      console.error(`✗ pnpm pack failed:\n${packed.output}`)
      process.exit(1)
    }
    // One package after another: the checks are CPU work, and this runs beside vitest.
    for (const dir of built) {
      const pkg = JSON.parse(readFileSync(join(root, 'packages', dir, 'package.json'), 'utf8'))
      const tarball = join(packs, `${pkg.name.replace('@', '').replace('/', '-')}-${pkg.version}.tgz`)
      if (!existsSync(tarball)) results.get(dir).push(`pnpm pack made no ${tarball}`)
      else results.get(dir).push(...(await checkTarball(dir, tarball)))
    }
  } finally {
    rmSync(packs, { recursive: true, force: true })
  }
}
let failed = 0
for (const [dir, failures] of results) {
  if (failures.length === 0) {
    console.log(`✓ @labwire/${dir}: package.json, LICENSE, publint --strict, attw --profile esm-only`)
  } else {
    failed++
    console.error(`✗ @labwire/${dir} (packages/${dir}):\n${failures.join('\n')}\n`)
  }
}
if (failed > 0) process.exit(1)
