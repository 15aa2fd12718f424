import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

// These run the built examples (examples/dist, made by `pnpm build`, which `npm test` runs
// first) as child processes, against the built packages: what a user of the repo runs.
const root = fileURLToPath(new URL('..', import.meta.url))
const built = (name: string): string => `${root}/examples/dist/${name}.js`

interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Collect a child's output until it exits; the signal kills it if it takes too long. */
function exited(child: ChildProcess, signal: AbortSignal): Promise<Exit> {
  let stdout = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  return new Promise<Exit>((resolve, reject) => {
    const onAbort = (): void => {
      child.kill('SIGKILL')
      reject(new Error(`child did not exit in time; stdout so far:\n${stdout}\nstderr:\n${stderr}`))
    }
    signal.addEventListener('abort', onAbort, { once: true })
    child.once('error', reject)
    child.once('close', (code, exitSignal) => {
      signal.removeEventListener('abort', onAbort)
      resolve({ code, signal: exitSignal, stdout, stderr })
    })
  })
}

function runExample(name: string, args: string[] = []): Promise<Exit> {
  const file = built(name)
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`pnpm build\` first (\`npm test\` does)`)
  return exited(spawn(process.execPath, [file, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] }), AbortSignal.timeout(15_000))
}

describe('the demo (examples/dist/demo.js)', () => {
  it('serves the YAML power supply (packages/simulator/devices/scpi-psu.yaml), prints the conversation and exits 0', async () => {
    const { code, stdout, stderr } = await runExample('demo')
    expect(stderr).toBe('')
    expect(code).toBe(0)
    const lines = stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^simulated power supply listening on 127\.0\.0\.1:\d+$/)
    expect(lines.slice(1)).toEqual([
      '> *IDN?',
      '< labwire,SIM-PSU,0001,0.1.0',
      '> *RST',
      '> VOLT 5',
      '> CURR 0.2',
      '> OUTP 1',
      '> OUTP?',
      '< 1',
      '> VOLT?',
      '< 5.000',
      '> CURR?',
      '< 0.200',
      '> VOLT 99',
      '> FOO:BAR 1',
      '> SYST:ERR?',
      '< -100,"Command error"',
      '> SYST:ERR?',
      '< -100,"Command error"',
      '> SYST:ERR?',
      '< 0,"No error"',
      '> *ESR?',
      '< 32',
      '> OUTP 0',
      '> OUTP?',
      '< 0',
      'demo finished',
    ])
  })
})

describe('the package README examples run', () => {
  const expected: Record<string, string> = {
    core: '*IDN?\nVOLT?\nERR_CONNECTION_CLOSED PART\n',
    marshallers: 'MEAS:VOLT?\n1.234\nABCD\nERR_FRAME_TOO_LARGE 16\nUint8Array(6) [ 42, 82, 83, 84, 13, 10 ]\n',
    application: "ERR_TIMEOUT\nFAST OK\nERROR device fault\n[ 'A OK', 'B OK', 'C OK' ]\n",
    'transport-tcp': 'HELLO\nWORLD\n',
  }
  for (const [name, stdout] of Object.entries(expected)) {
    it(`examples/${name}.ts`, async () => {
      const exit = await runExample(name)
      expect(exit).toEqual({ code: 0, signal: null, stdout, stderr: '' })
    })
  }
})

describe('the README examples: simulator.ts, client.ts and client.mjs', () => {
  it('both clients query the simulator over TCP; the simulator stops on SIGINT', async () => {
    const file = built('simulator')
    if (!existsSync(file)) throw new Error(`${file} is missing: run \`pnpm build\` first (\`npm test\` does)`)
    const simulator = spawn(process.execPath, [file, '0'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    const simulatorExit = exited(simulator, AbortSignal.timeout(15_000))
    try {
      const port = await new Promise<string>((resolve, reject) => {
        let seen = ''
        const timer = AbortSignal.timeout(10_000)
        const onAbort = (): void => reject(new Error(`simulator did not report its port; output: ${seen}`))
        timer.addEventListener('abort', onAbort, { once: true })
        simulator.stdout.on('data', (chunk: string) => {
          seen += chunk // exited() set the encoding
          const match = /listening on 127\.0\.0\.1:(\d+)\n/.exec(seen)
          if (match !== null) {
            timer.removeEventListener('abort', onAbort)
            resolve(match[1] as string)
          }
        })
        void simulatorExit.then(() => onAbort(), onAbort)
      })
      const client = await runExample('client', ['127.0.0.1', port])
      expect(client).toEqual({ code: 0, signal: null, stdout: 'ACME,Model 1,0001,1.0\n1.500\n', stderr: '' })
      // The README's plain-JavaScript form (try/finally instead of `await using`) runs as it is, uncompiled.
      const plain = spawn(process.execPath, [`${root}/examples/client.mjs`, '127.0.0.1', port], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
      expect(await exited(plain, AbortSignal.timeout(15_000))).toEqual({
        code: 0,
        signal: null,
        stdout: 'ACME,Model 1,0001,1.0\n1.500\n',
        stderr: '',
      })
    } finally {
      simulator.kill('SIGINT')
    }
    const exit = await simulatorExit
    expect(exit.stderr).toBe('')
    expect(exit.code).toBe(0)
  })
})
