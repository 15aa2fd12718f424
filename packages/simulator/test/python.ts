import { spawnSync } from 'node:child_process'

/** A python3 that can run the checks (3.11+; with pyvisa when `needPyvisa`), or undefined. */
export function findPython(needPyvisa = false): string | undefined {
  for (const candidate of ['/usr/bin/python3', 'python3']) {
    const probe = spawnSync(candidate, ['-c', `import sys; assert sys.version_info >= (3, 11)${needPyvisa ? '; import pyvisa' : ''}`], {
      encoding: 'utf8',
      timeout: 10_000,
    })
    if (probe.status === 0) return candidate
  }
  return undefined
}

/** Run a Python script with JSON on stdin; parse its JSON stdout. */
export function runPythonJson(python: string, script: string, input: unknown, env: Record<string, string> = {}): unknown {
  const result = spawnSync(python, ['-c', script], {
    input: JSON.stringify(input),
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, ...env },
    maxBuffer: 64 * 1024 * 1024,
  })
  if (result.status !== 0) throw new Error(`python failed (${String(result.status)}): ${result.stderr}`)
  return JSON.parse(result.stdout) as unknown
}
