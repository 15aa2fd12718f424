#!/usr/bin/env node
// The typecheck and eslint stages of `npm test`, on one TypeScript program.
//
//   node scripts/check-types.mjs        tsc --noEmit -p tsconfig.json, then eslint . (eslint.config.js)
//
// `tsc --noEmit` and eslint's type-aware rules each build a program of the whole repo (sources,
// tests, examples: the root tsconfig.json) and type-check it; that is most of their cost. Here the
// program is built once: its diagnostics are what tsc reports, and eslint gets it through
// typescript-eslint's `parserOptions.programs`, so its rules reuse the types tsc computed. The
// rules, files and ignores are eslint.config.js's, unchanged. `pnpm typecheck` and `pnpm lint` still
// run tsc and eslint themselves. Exit 1 when tsc reports a diagnostic or eslint an error.
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ESLint } from 'eslint'
import ts from 'typescript'
import { colorEnv } from './fingerprint.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const { color } = colorEnv()
const started = performance.now()
const seconds = () => `${((performance.now() - started) / 1000).toFixed(1)} s`

const host = { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (diagnostic) => report([diagnostic]) }
const config = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), { noEmit: true }, host)
if (config === undefined) process.exit(1)
const program = ts.createProgram({ rootNames: config.fileNames, options: config.options, projectReferences: config.projectReferences })
const diagnostics = [...config.errors, ...ts.getPreEmitDiagnostics(program)]

function report(list) {
  const formatHost = { getCanonicalFileName: (name) => name, getCurrentDirectory: () => root, getNewLine: () => '\n' }
  process.stdout.write(color ? ts.formatDiagnosticsWithColorAndContext(list, formatHost) : ts.formatDiagnostics(list, formatHost))
}
if (diagnostics.length > 0) {
  report(diagnostics)
  console.log(`tsc: ${diagnostics.length} error(s)`)
} else console.log(`tsc: no errors (${config.fileNames.length} files, ${seconds()})`)

const eslint = new ESLint({
  cwd: root,
  overrideConfig: { files: ['**/*.ts'], languageOptions: { parserOptions: { programs: [program] } } },
})
const results = await eslint.lintFiles(['.'])
const errors = results.reduce((sum, result) => sum + result.errorCount + result.fatalErrorCount, 0)
const formatter = await eslint.loadFormatter('stylish')
const text = await formatter.format(results)
if (text !== '') process.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
console.log(`eslint: ${results.length} files, ${errors} error(s) (${seconds()})`)
process.exit(diagnostics.length > 0 || errors > 0 ? 1 : 0)
