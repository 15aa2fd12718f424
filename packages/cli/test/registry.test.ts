// `labwire registry`, run in-process (the function the CLI dispatches to), on loopback port 0.
import { PassThrough } from 'node:stream'
import { RegistryClient } from '@labwire/registry'
import { describe, expect, it } from 'vitest'
import { exitCodeOf } from '../src/exit-codes.js'
import { registry } from '../src/registry.js'
import type { Io } from '../src/style.js'

function io(): Io & { out: () => string; err: () => string } {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  let out = ''
  let err = ''
  stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk))
  stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk))
  return { stdout, stderr, stdin: new PassThrough(), env: { NO_COLOR: '1' }, out: () => out, err: () => err }
}

async function until(check: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('labwire registry', () => {
  for (const mode of ['udp', 'tcp'] as const) {
    it(`serves over ${mode}; list and discover ask it`, async () => {
      const stop = new AbortController()
      const serving = io()
      const done = registry(['--port', '0', '--mode', mode, '--prune-timeout', '60000'], serving, stop.signal)
      await until(() => serving.out().includes('listening'), 5000)
      const match = /^listening (udp|tcp):\/\/127\.0\.0\.1:(\d+)$/m.exec(serving.out())
      expect(match?.[1]).toBe(mode)
      const port = Number(match?.[2])
      await new RegistryClient({ port, mode }).register(['scope', 'dmm'], 5025)
      const listed = io()
      expect(await registry(['list', '--port', String(port), '--mode', mode], listed)).toBe(0)
      expect(listed.out()).toBe('DMM\nSCOPE\n')
      const found = io()
      expect(await registry(['discover', 'Scope', '--port', String(port), '--mode', mode], found)).toBe(0)
      expect(found.out()).toBe('127.0.0.1:5025\n')
      stop.abort()
      expect(await done).toBe(0)
      expect(serving.err()).toMatch(/stop: closing/)
    })
  }

  it('usage errors and an unreachable registry map to exit codes', async () => {
    const code = async (args: string[]): Promise<number> => registry(args, io()).then((c) => c, exitCodeOf)
    expect(await code(['--mode', 'sctp'])).toBe(2)
    expect(await code(['--prune-timeout', 'soon'])).toBe(2)
    expect(await code(['frobnicate'])).toBe(2)
    expect(await code(['discover'])).toBe(2)
    // A UDP port nobody listens on: ICMP port unreachable (3) or no answer (4).
    expect([3, 4]).toContain(await code(['discover', 'x', '--port', '9', '--timeout', '300']))
    expect(await code(['--help'])).toBe(0)
  })
})
