/**
 * The packages as a user gets them: `pnpm publish` every packages/* (its built dist/) to a local verdaccio, then, in a
 * fresh folder and with plain npm only, `npm install @labwire/cli`, serve the bundled power supply
 * with `npx labwire sim`, ask it `*IDN?` with `npx labwire query`, load every package with `import`
 * and `require`, and compile a TypeScript consumer against the published types.
 *
 * Opt-in (it installs verdaccio and downloads the third-party dependencies through it):
 * `LABWIRE_PUBLISH_TEST=1 npm test -- test/packaging`. `.ci/run` sets the flag.
 *
 * verdaccio 6.8 (6.10 needs Node 22) is installed with npm into node_modules/.cache/labwire/verdaccio-6.8
 * (not a devDependency of the repo; reused by later runs). It listens on 127.0.0.1, port 0, stores
 * into a temp folder, proxies everything but @labwire/* to the registry npm uses here (`npm config
 * get registry`, its only uplink), and is killed by PID at the end; the temp folder is removed.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cacheDir, colorEnv, packageDirs, root } from '../../scripts/fingerprint.mjs'

const enabled = process.env.LABWIRE_PUBLISH_TEST === '1'
const VERDACCIO = '6.8'
const [nodeMajor = 0, nodeMinor = 0] = process.versions.node.split('.').map(Number)
const requireEsm = nodeMajor > 22 || (nodeMajor === 22 && nodeMinor >= 12) || (nodeMajor === 20 && nodeMinor >= 19)

if (!enabled) {
  console.warn('packaging test SKIPPED: set LABWIRE_PUBLISH_TEST=1 (as .ci/run does) to publish every package to a local verdaccio and install it with npm')
}

interface Result {
  code: number | null
  stdout: string
  stderr: string
}

/** Run a command to completion; killed (its process group) after `timeoutMs`. */
function run(command: string, args: readonly string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => {
      killGroup(child)
      reject(new Error(`${command} ${args.join(' ')} did not finish in ${options.timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, options.timeoutMs)
    child.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/** Kill a child started with `detached: true` and everything it started (npx → sh → node). */
function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(-child.pid, 'SIGTERM')
  } catch {
    // already gone
  }
}

/** Resolve with the first match of `pattern` in the child's stdout; reject on exit or after `timeoutMs`. */
function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let seen = ''
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString('utf8')
      const match = seen.match(pattern)
      if (match) finish(() => resolve(match))
    }
    const onExit = (code: number | null): void => finish(() => reject(new Error(`exited (${code}) before printing ${pattern}; output: ${seen}`)))
    const timer = setTimeout(() => finish(() => reject(new Error(`no ${pattern} in ${timeoutMs} ms; output: ${seen}`))), timeoutMs)
    const finish = (settle: () => void): void => {
      clearTimeout(timer)
      child.stdout?.off('data', onData)
      child.stderr?.off('data', onData)
      child.off('exit', onExit)
      settle()
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('exit', onExit)
  })
}

function expectOk(result: Result, what: string): void {
  expect(result.code, `${what} failed:\nstdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(0)
}

describe.skipIf(!enabled)('published packages: pnpm publish to verdaccio, then plain npm in a fresh folder', () => {
  const dirs = packageDirs()
  const names = dirs.map((dir) => `@labwire/${dir}`)
  let work = ''
  let consumer = ''
  let registry = ''
  let verdaccio: ChildProcess | undefined
  const started = new Set<ChildProcess>()
  // Plain output, no update notice, no funding lines; npm's cache is per run, so a tarball cached
  // by an earlier run (same name and version, older content) can never be installed.
  const env = (): NodeJS.ProcessEnv => ({
    ...colorEnv(process.env, false).env,
    npm_config_registry: registry,
    npm_config_userconfig: join(work, 'npmrc'),
    npm_config_cache: join(work, 'npm-cache'),
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
    npm_config_loglevel: 'error',
  })

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'labwire-publish-'))
    consumer = join(work, 'consumer')
    mkdirSync(consumer)
    const baseEnv = { ...colorEnv(process.env, false).env, npm_config_loglevel: 'error', npm_config_audit: 'false' }

    // The uplink: the registry npm uses on this machine.
    const uplink = (await run('npm', ['config', 'get', 'registry'], { cwd: work, env: baseEnv, timeoutMs: 30_000 })).stdout.trim()
    expect(uplink, 'npm config get registry').toMatch(/^https?:\/\//)

    // verdaccio 6.8, installed once with npm outside the repo's dependencies.
    const verdaccioDir = join(cacheDir, `verdaccio-${VERDACCIO}`)
    const verdaccioPackage = join(verdaccioDir, 'node_modules', 'verdaccio', 'package.json')
    const installedVersion = existsSync(verdaccioPackage) ? (JSON.parse(readFileSync(verdaccioPackage, 'utf8')) as { version: string }).version : ''
    if (!installedVersion.startsWith(`${VERDACCIO}.`)) {
      mkdirSync(verdaccioDir, { recursive: true })
      writeFileSync(join(verdaccioDir, 'package.json'), '{ "private": true }\n')
      const install = await run('npm', ['install', `verdaccio@${VERDACCIO}`, '--no-save', '--no-package-lock'], { cwd: verdaccioDir, env: baseEnv, timeoutMs: 300_000 })
      expectOk(install, `npm install verdaccio@${VERDACCIO}`)
    }

    // Its config: storage in the temp folder; @labwire/* only from here (never the uplink), the rest proxied.
    const htpasswd = join(work, 'htpasswd')
    writeFileSync(
      join(work, 'config.yaml'),
      [
        `storage: ${JSON.stringify(join(work, 'storage'))}`,
        'auth:',
        `  htpasswd: { file: ${JSON.stringify(htpasswd)}, max_users: 1 }`,
        'uplinks:',
        `  upstream: { url: ${JSON.stringify(uplink)}, timeout: 60s, max_fails: 4 }`,
        'packages:',
        "  '@labwire/*': { access: $all, publish: $authenticated, unpublish: $authenticated }",
        "  '**': { access: $all, publish: $authenticated, proxy: upstream }",
        'log: { type: stdout, format: json, level: error }',
        'web: { enable: false }',
        '',
      ].join('\n'),
    )
    writeFileSync(
      join(work, 'start-verdaccio.cjs'),
      [
        `const { runServer } = require(${JSON.stringify(join(verdaccioDir, 'node_modules', 'verdaccio'))})`,
        'runServer(process.argv[2]).then((server) => {',
        "  server.listen(0, '127.0.0.1', () => console.log(`verdaccio listening on ${server.address().port}`))",
        "}, (error) => { console.error(error); process.exit(1) })",
        '',
      ].join('\n'),
    )
    verdaccio = spawn(process.execPath, [join(work, 'start-verdaccio.cjs'), join(work, 'config.yaml')], { cwd: work, env: baseEnv, stdio: ['ignore', 'pipe', 'pipe'] })
    started.add(verdaccio)
    const [, port] = await waitForLine(verdaccio, /verdaccio listening on (\d+)/, 60_000)
    registry = `http://127.0.0.1:${port}/`

    // One user (verdaccio's htpasswd), whose token publishes.
    const response = await fetch(`${registry}-/user/org.couchdb.user:labwire`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'labwire', password: 'labwire-publish-test' }),
      signal: AbortSignal.timeout(30_000),
    })
    expect(response.status, await response.clone().text()).toBe(201)
    const { token } = (await response.json()) as { token: string }
    writeFileSync(join(work, 'npmrc'), `registry=${registry}\n//127.0.0.1:${port}/:_authToken=${token}\n`)

    // pnpm publish (it writes the real versions in place of workspace:*), two at a time.
    const queue = [...dirs]
    const publishOne = async (): Promise<void> => {
      for (let dir = queue.shift(); dir !== undefined; dir = queue.shift()) {
        const result = await run('pnpm', ['publish', '--no-git-checks', '--registry', registry], {
          cwd: join(root, 'packages', dir),
          env: env(),
          timeoutMs: 120_000,
        })
        expectOk(result, `pnpm publish packages/${dir}`)
      }
    }
    await Promise.all([publishOne(), publishOne()])

    writeFileSync(join(consumer, 'package.json'), '{ "name": "labwire-consumer", "private": true, "version": "1.0.0" }\n')
  }, 900_000)

  afterAll(() => {
    for (const child of started) {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
    if (work !== '') rmSync(work, { recursive: true, force: true })
  })

  it('npm install @labwire/cli brings what it needs; npx labwire sim serves the bundled power supply; npx labwire query answers *IDN?', async () => {
    expectOk(await run('npm', ['install', '@labwire/cli'], { cwd: consumer, env: env(), timeoutMs: 300_000 }), 'npm install @labwire/cli')
    // TODO(issue: bundled devices by name): `npx labwire sim scpi-psu` once the CLI resolves a
    // bundled device by name; until then the path inside the installed @labwire/simulator.
    const device = join(consumer, 'node_modules', '@labwire', 'simulator', 'devices', 'scpi-psu.yaml')
    expect(existsSync(device), `${device} is shipped`).toBe(true)
    const sim = spawn('npx', ['--no-install', 'labwire', 'sim', device, '--host', '127.0.0.1', '--port', '0'], {
      cwd: consumer,
      env: env(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    started.add(sim)
    try {
      const [, port] = await waitForLine(sim, /listening tcp:\/\/127\.0\.0\.1:(\d+)/, 30_000)
      const query = await run('npx', ['--no-install', 'labwire', 'query', `TCPIP::127.0.0.1::${port}::SOCKET`, '*IDN?', 'VOLT 5', 'VOLT?'], {
        cwd: consumer,
        env: env(),
        timeoutMs: 30_000,
      })
      expectOk(query, 'npx labwire query')
      expect(query.stdout.trim().split('\n')).toEqual(['labwire,SIM-PSU,0001,0.1.0', '5.000'])
    } finally {
      killGroup(sim)
    }
  }, 420_000)

  it('every package installs with npm and loads with import (and with require on Node >= 20.19)', async () => {
    expectOk(await run('npm', ['install', ...names], { cwd: consumer, env: env(), timeoutMs: 300_000 }), `npm install ${names.join(' ')}`)
    for (const name of names) {
      const imported = await run(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(name)}); console.log(Object.keys(m).length)`], {
        cwd: consumer,
        env: env(),
        timeoutMs: 30_000,
      })
      expectOk(imported, `import('${name}')`)
      expect(Number(imported.stdout.trim()), `${name} exports something`).toBeGreaterThan(0)
      if (!requireEsm) continue
      const required = await run(process.execPath, ['-e', `console.log(Object.keys(require(${JSON.stringify(name)})).length)`], {
        cwd: consumer,
        env: env(),
        timeoutMs: 30_000,
      })
      expectOk(required, `require('${name}')`)
      expect(Number(required.stdout.trim()), `require('${name}') exports something`).toBeGreaterThan(0)
    }
    if (!requireEsm) console.warn(`packaging test: require() of the ESM-only packages needs Node >= 20.19; this is ${process.versions.node}, so only import was checked`)
  }, 420_000)

  it('the published types resolve: tsc (NodeNext, strict) compiles a consumer that uses every package', async () => {
    expectOk(await run('npm', ['install', '@types/node@20'], { cwd: consumer, env: env(), timeoutMs: 300_000 }), 'npm install @types/node@20')
    const imports = names.map((name, index) => `import * as p${index} from '${name}'`).join('\n')
    writeFileSync(
      join(consumer, 'consumer.mts'),
      [
        imports,
        "import { ApplicationClient } from '@labwire/application'",
        "import type { TransportClient } from '@labwire/core'",
        "import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'",
        "import { TcpClient } from '@labwire/transport-tcp'",
        '',
        "const lines = textMarshaller(new SentinelBytesMarshaller('\\n'))",
        "const transport: TransportClient = new TcpClient({ host: '127.0.0.1', port: 5025 })",
        'const client = new ApplicationClient(transport, lines.marshall, lines.unmarshall, { timeout: 1_000 })',
        'export const reply: () => Promise<string> = async () => (await client.connect()).sendReceive(\'*IDN?\')',
        `export const modules = [${names.map((_, index) => `p${index}`).join(', ')}]`,
        '',
      ].join('\n'),
    )
    writeFileSync(
      join(consumer, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] },
        files: ['consumer.mts'],
      }),
    )
    const tsc = await run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json', '--pretty', 'false'], {
      cwd: consumer,
      env: env(),
      timeoutMs: 180_000,
    })
    expectOk(tsc, 'tsc on the consumer')
  }, 420_000)
})
