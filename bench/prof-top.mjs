// Summarise a .cpuprofile: top functions by self time (and the share of the profile), for the hot-path notes in README.md.
// Usage: node bench/prof-top.mjs <file.cpuprofile> [count=25]
import { readFileSync } from 'node:fs'
import process from 'node:process'

const [file, countArg] = process.argv.slice(2)
if (file === undefined) {
  process.stderr.write('usage: node bench/prof-top.mjs <file.cpuprofile> [count]\n')
  process.exit(2)
}
const profile = JSON.parse(readFileSync(file, 'utf8'))
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const self = new Map()
const deltas = profile.timeDeltas
let total = 0
for (let i = 0; i < profile.samples.length; i++) {
  const node = byId.get(profile.samples[i])
  const dt = deltas[i] ?? 0
  total += dt
  const { functionName, url, lineNumber } = node.callFrame
  const where = url === '' ? '' : `${url.replace(/^file:\/\/.*?\/(packages|bench)\//, '$1/')}:${lineNumber + 1}`
  const key = `${functionName || '(anonymous)'} ${where}`
  self.set(key, (self.get(key) ?? 0) + dt)
}
const groups = new Map()
for (const [key, us] of self) {
  const group = /packages\/([\w-]+)\//.exec(key)?.[1] ?? (/ node:/.test(key) ? 'node internals' : /bench\//.test(key) ? 'bench' : key.trim())
  groups.set(group, (groups.get(group) ?? 0) + us)
}
process.stdout.write('by package: ' + [...groups.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([g, us]) => `${g} ${(us / 1000).toFixed(0)} ms`).join(', ') + '\n')
const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, Number(countArg ?? 25))
process.stdout.write(`total ${(total / 1000).toFixed(0)} ms sampled\n`)
for (const [key, us] of rows) process.stdout.write(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(1).padStart(8)} ms  ${key}\n`)
