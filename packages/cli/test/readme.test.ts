import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { REPO, finished } from './helpers.js'

/** The root README's quick start, run through node_modules/.bin/labwire (what `npx labwire` runs). */
describe('root README quick start: npx labwire sim / query', () => {
  const readme = readFileSync(join(REPO, 'README.md'), 'utf8')
  const commands = [...readme.matchAll(/^npx labwire (.+?)\s+#.*$/gm)].map((m) => m[1] as string)
  const bin = join(REPO, 'node_modules/.bin/labwire')

  it('documents sim, query and shell, and node_modules/.bin/labwire exists (root devDependency)', () => {
    expect(commands.map((c) => c.split(' ')[0])).toEqual(['sim', 'query', 'shell'])
    expect(existsSync(bin), `${bin} is missing: the root package.json must list @labwire/cli`).toBe(true)
  })

  it('runs the documented commands and gets the documented replies', async () => {
    const args = (command: string, port: string): string[] =>
      [...command.replaceAll('<port>', port).matchAll(/'([^']*)'|(\S+)/g)].map((m) => (m[1] ?? m[2]) as string)
    const sim = spawn(bin, args(commands[0] as string, '0'), { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] })
    const simDone = finished(sim, 20_000)
    try {
      const port = await new Promise<string>((resolve, reject) => {
        let out = ''
        sim.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString()
          const match = /^listening tcp:\/\/127\.0\.0\.1:(\d+)$/m.exec(out)
          if (match !== null) resolve(match[1] as string)
        })
        simDone.then((r) => reject(new Error(`sim exited ${r.code}: ${r.stderr}`)), reject)
      })
      const query = spawn(bin, args(commands[1] as string, port), { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] })
      const result = await finished(query, 20_000)
      expect(result.stderr).toBe('')
      expect(result.stdout).toBe('labwire,SIM-PSU,0001,0.1.0\n5.000\n')
      expect(readme).toContain('labwire,SIM-PSU,0001,0.1.0 then 5.000')
    } finally {
      sim.kill('SIGINT')
    }
    expect((await simDone).code).toBe(0)
  })
})
