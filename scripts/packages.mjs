#!/usr/bin/env node
// Package checks run by `pnpm lint` (after eslint, on built packages: run `pnpm build` first).
//
//   node scripts/packages.mjs            check every packages/*/ (a new package is picked up by itself)
//   node scripts/packages.mjs core cli   check only these package directories
//
// For each package, in parallel:
//   1. package.json has the shape every labwire package shares (see `checkManifest` below: name, type,
//      license, description, keywords, sideEffects, engines, repository, files, exports), and its
//      LICENSE is the root LICENSE, byte for byte (npm cannot pack a file from outside the package
//      directory, so each package keeps its own copy: `cp LICENSE packages/<dir>/`);
//   2. `publint --strict` (what a published package exposes: exports, files, types);
//   3. `attw --pack --profile esm-only` (Are The Types Wrong: the types resolve for ESM consumers
//      under node16 and bundler resolution; CommonJS `require` is out of scope for an ESM-only package).
// A passing package prints one line; a failing one prints the whole output of what failed.
import { execFile } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
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

/** Run a tool in the package directory; resolve with its output and whether it passed. */
async function tool(dir, command, args) {
  try {
    const { stdout, stderr } = await promisify(execFile)(bin(command), args, {
      cwd: join(root, 'packages', dir),
      env: colorEnv(process.env, false).env,
      shell: process.platform === 'win32',
      maxBuffer: 16 * 1024 * 1024,
    })
    return { ok: true, output: stdout + stderr }
  } catch (error) {
    return { ok: false, output: `${error.stdout ?? ''}${error.stderr ?? ''}${error.stdout || error.stderr ? '' : String(error)}` }
  }
}

async function checkPackage(dir) {
  const failures = []
  const problems = checkManifest(dir)
  if (problems.length > 0) failures.push(`package.json / LICENSE:\n  - ${problems.join('\n  - ')}`)
  if (!existsSync(join(root, 'packages', dir, 'dist'))) {
    failures.push(`packages/${dir}/dist is missing: run \`pnpm build\` first`)
    return failures
  }
  // One after the other: both pack the package into the same <name>-<version>.tgz in its directory.
  const publint = await tool(dir, 'publint', ['--strict'])
  const attw = await tool(dir, 'attw', ['--pack', '--profile', 'esm-only', '--format', 'ascii', '--no-emoji'])
  if (!publint.ok) failures.push(`publint --strict:\n${publint.output}`)
  if (!attw.ok) failures.push(`attw --pack --profile esm-only:\n${attw.output}`)
  return failures
}

const wanted = process.argv.slice(2)
const dirs = wanted.length > 0 ? wanted : packageDirs()
const results = await Promise.all(dirs.map(async (dir) => [dir, await checkPackage(dir)]))
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
