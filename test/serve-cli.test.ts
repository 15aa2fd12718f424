// `labwire serve` flags on the built CLI: --check, config errors (exit 8), --mode stdio, -p.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const CLI = fileURLToPath(new URL('../packages/cli/dist/cli.js', import.meta.url))
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "pnpm build" first (the root "pnpm test" does)`)

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

/** Run `labwire serve …` to its end (bounded), optionally writing `input` then closing stdin, or signalling once `readyLine` shows. */
function run(args: string[], options: { input?: string; signalOn?: RegExp; limitMs?: number } = {}): Promise<Run> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } })
  let stdout = ''
  let stderr = ''
  let signalled = false
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
    if (!signalled && options.signalOn?.test(stdout) === true) {
      signalled = true
      child.kill('SIGTERM')
    }
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  if (options.input !== undefined) child.stdin.end(options.input)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`labwire serve did not exit within ${options.limitMs ?? 15_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, options.limitMs ?? 15_000)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'labwire-serve-cli-'))
  await writeFile(join(dir, 'upper.mjs'), 'export default (text) => text.toUpperCase()\n')
  await writeFile(join(dir, 'ok.ini'), '[upper]\nimport_from = upper.mjs\nframer = line\n')
  await writeFile(join(dir, 'two.ini'), '[a]\nimport_from = upper.mjs\nframer = line\n[b]\nimport_from = upper.mjs\nframer = line\n')
  await writeFile(join(dir, 'bad.ini'), '[defaults]\nlog_dri = /tmp\n\n[upper]\nimport_from = upper.mjs\nport = 99999\n')
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('labwire serve (flags)', () => {
  it('--check: 0 and a summary for a valid file; 8 and every issue with its line for a bad one', async () => {
    const ok = await run([join(dir, 'ok.ini'), '--check'])
    expect(ok).toMatchObject({ code: 0, stdout: `${join(dir, 'ok.ini')}: ok, 1 service: upper\n` })
    const bad = await run([join(dir, 'bad.ini'), '--check'])
    expect(bad.code).toBe(8)
    expect(bad.stderr.trim().split('\n')).toEqual([
      `labwire serve: ${join(dir, 'bad.ini')}:2: [defaults] log_dri: unknown key; did you mean "log_dir"?`,
      `labwire serve: ${join(dir, 'bad.ini')}:6: [upper] port: "99999" is not a port number (0-65535)`,
    ])
  })

  it('--mode stdio serves the one service on stdin/stdout and exits 0 at end of input', async () => {
    const result = await run([join(dir, 'ok.ini'), '--mode', 'stdio', '-q'], { input: 'one\ntwo\n' })
    expect(result).toMatchObject({ code: 0, stdout: 'ONE\nTWO\n' })
  })

  it('--mode stdio and -p need one service: usage error (2) naming --service', async () => {
    const result = await run([join(dir, 'two.ini'), '--mode', 'stdio'])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('pick one with --service NAME')
    const picked = await run([join(dir, 'two.ini'), '--mode', 'stdio', '--service', 'b', '-q'], { input: 'x\n' })
    expect(picked).toMatchObject({ code: 0, stdout: 'X\n' })
  })

  it('-p sets the port; SIGTERM with nothing in flight exits 0 ("stopped clean")', async () => {
    const result = await run([join(dir, 'ok.ini'), '-p', '0', '-q'], { signalOn: /^ready$/m })
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/^listening upper tcp:\/\/127\.0\.0\.1:\d+\nready\nstopped clean\n$/)
  })
})
