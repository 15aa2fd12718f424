import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadConfig, parseConfig } from '@labwire/host'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'labwire-serve-config-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const issuesOf = (fn: () => unknown): ConfigError => {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return error as ConfigError
  }
  throw new Error('expected a ConfigError')
}

describe('loadConfig: speedysvc .ini', () => {
  it('reads speedysvc\'s own test_service.ini and README service.ini unchanged', () => {
    // speedysvc/test/test_service.ini
    const a = parseConfig('[defaults]\nlog_dir=/tmp/test_server_logs/\ntcp_bind=127.0.0.1\n\n[TestServerMethods]\nimport_from=speedysvc.test.test_server\n', '/lab/test_service.ini', { env: {} })
    expect(a.services).toHaveLength(1)
    const s = a.services[0]
    expect(s?.name).toBe('TestServerMethods')
    expect(s?.importFrom).toBe('/lab/speedysvc/test/test_server')
    expect(s?.host).toBe('127.0.0.1')
    expect(s?.logDir).toBe('/tmp/test_server_logs')
    expect(s?.transport).toBe('tcp')
    // README's service.ini, with the reference page's other keys
    const b = parseConfig(
      [
        '[defaults]',
        '# Uncomment this line to listen on the network',
        '#bind_tcp=(host adaptor)',
        'log_dir=/tmp/test_server_logs/',
        '',
        '[EchoServer]',
        'import_from=echoserver',
        'max_proc_num=3',
        'min_proc_num=3',
        'max_proc_mem_bytes=100000000',
        'wait_until_completed=true',
        'force_insecure_serialisation=false',
        '',
        '[web monitor]',
        'host=127.0.0.1',
        'port=5155',
      ].join('\n'),
      '/lab/service.ini',
      { env: {} },
    )
    expect(b.services.map((x) => [x.name, x.minProcNum, x.maxProcNum, x.maxProcMemBytes, x.waitUntilCompleted, x.allowInsecureSerialisation])).toEqual([['EchoServer', 3, 3, 100000000, true, false]])
    expect(b.monitor).toEqual({ host: '127.0.0.1', port: 5155 })
  })

  it('inherits [defaults] and lets a section override them', () => {
    const c = parseConfig('[defaults]\ntransport = telnet\nmax_proc_num = 2\n[a]\nimport_from = a.js\n[b]\nimport_from = b.js\ntransport = tcp\n', '/x/lab.ini', { env: {} })
    expect(c.services.map((s) => [s.name, s.transport, s.maxProcNum])).toEqual([
      ['a', 'telnet', 2],
      ['b', 'tcp', 2],
    ])
  })

  it('an unknown key names file, section, key and line and suggests the nearest', () => {
    const error = issuesOf(() => parseConfig('[defaults]\nlog_dir = /tmp\n\n[dmm]\nimport_from = dmm.yaml\nmax_proc_nmu = 2\n', 'lab.ini', { env: {} }))
    expect(error.issues).toEqual([{ file: 'lab.ini', section: 'dmm', key: 'max_proc_nmu', line: 6, reason: 'unknown key; did you mean "max_proc_num"?' }])
    expect(error.message).toBe('lab.ini:6: [dmm] max_proc_nmu: unknown key; did you mean "max_proc_num"?')
    expect(error.code).toBe('ERR_CONFIG')
  })

  it('bad values: every problem, each with its line', () => {
    const error = issuesOf(() => parseConfig('[a]\nimport_from = a.js\nport = 70000\ntransport = tpc\nwait_until_completed = maybe\n[b]\nresource = tcp://h:1\nmax_proc_num = 2\n', 'lab.ini', { env: {} }))
    expect(error.issues.map((i) => `${i.line}:${i.section}:${i.key}`)).toEqual(['3:a:port', '4:a:transport', '5:a:wait_until_completed', '8:b:max_proc_num'])
    expect(error.issues[1]?.reason).toContain('did you mean "tcp"?')
  })

  it('a section with neither import_from nor resource, duplicate keys, keys outside sections', () => {
    const error = issuesOf(() => parseConfig('stray = 1\n[a]\nport = 1\nport = 2\n', 'lab.ini', { env: {} }))
    expect(error.issues.map((i) => [i.line, i.reason.split(' ')[0]])).toEqual([
      [1, 'a'],
      [4, '"port"'],
    ])
    const missing = issuesOf(() => parseConfig('[a]\nport = 1\n', 'lab.ini', { env: {} }))
    expect(missing.issues[0]).toMatchObject({ section: 'a', line: 1 })
    expect(missing.issues[0]?.reason).toContain('needs import_from')
  })

  it('two services on one port is an error naming both', () => {
    const error = issuesOf(() => parseConfig('[a]\nimport_from = a.js\nport = 5025\n[b]\nimport_from = b.js\nport = 5025\n', 'lab.ini', { env: {} }))
    expect(error.issues).toEqual([expect.objectContaining({ section: 'b', key: 'port', line: 6, reason: 'port 5025 is also service "a"\'s' })])
  })

  it('environment variables override keys: LABWIRE_<SERVICE>_<KEY>', () => {
    const c = parseConfig('[my-dmm]\nimport_from = dmm.yaml\nport = 5025\n', '/x/lab.ini', { env: { LABWIRE_MY_DMM_PORT: '6000', LABWIRE_MY_DMM_HOST: '::1', LABWIRE_DEBUG: '1' } })
    expect(c.services[0]).toMatchObject({ port: 6000, host: '::1' })
    const error = issuesOf(() => parseConfig('[dmm]\nimport_from = dmm.yaml\n', 'lab.ini', { env: { LABWIRE_DMM_PROT: '1' } }))
    expect(error.issues[0]).toMatchObject({ file: 'environment', section: 'dmm', key: 'LABWIRE_DMM_PROT' })
    expect(error.issues[0]?.reason).toContain('did you mean LABWIRE_DMM_PORT?')
    const bad = issuesOf(() => parseConfig('[dmm]\nimport_from = dmm.yaml\n', 'lab.ini', { env: { LABWIRE_DMM_PORT: 'x' } }))
    expect(bad.message).toBe('environment: [dmm] LABWIRE_DMM_PORT: "x" is not a port number (0-65535)')
  })

  it('a missing file is a ConfigError naming it', async () => {
    await expect(loadConfig(join(dir, 'nope.ini'))).rejects.toMatchObject({ name: 'ConfigError', message: `${join(dir, 'nope.ini')}: no such file` })
  })
})

describe('loadConfig: YAML and JSON, same model', () => {
  it('YAML with a nested access map', async () => {
    const file = join(dir, 'lab.yaml')
    await writeFile(file, 'defaults:\n  log_dir: logs\nweb monitor:\n  port: 9100\npsu:\n  import_from: psu.yaml\n  transport: telnet\n  access:\n    max_sessions: 2\n    exclusive: queue\n')
    const c = await loadConfig(file, { env: {} })
    expect(c.services[0]).toMatchObject({ name: 'psu', transport: 'telnet', access: { maxSessions: 2, exclusive: 'queue' }, logDir: join(dir, 'logs'), importFrom: join(dir, 'psu.yaml') })
    expect(c.monitor).toEqual({ host: '127.0.0.1', port: 9100 })
  })

  it('examples/serve/lab.ini and lab.yaml are the same lab', async () => {
    const examples = join(import.meta.dirname, '../examples/serve')
    const settings = (c: Awaited<ReturnType<typeof loadConfig>>): unknown[] => c.services.map((s) => ({ ...s, file: '', lines: {}, values: {} }))
    const ini = await loadConfig(join(examples, 'lab.ini'), { env: {} })
    const yaml = await loadConfig(join(examples, 'lab.yaml'), { env: {} })
    expect(ini.services.map((s) => s.name)).toEqual(['psu', 'dmm', 'switch', 'psu-gateway', 'upper', 'Echo', 'Greet'])
    expect(settings(yaml)).toEqual(settings(ini))
  })

  it('YAML and JSON errors carry lines too', () => {
    const y = issuesOf(() => parseConfig('psu:\n  import_from: psu.yaml\n  tranport: tcp\n', 'lab.yaml', { env: {} }))
    expect(y.message).toBe('lab.yaml:3: [psu] tranport: unknown key; did you mean "transport"?')
    const j = issuesOf(() => parseConfig('{\n  "psu": {\n    "import_from": "psu.yaml",\n    "port": "abc"\n  }\n}\n', 'lab.json', { env: {} }))
    expect(j.message).toBe('lab.json:4: [psu] port: "abc" is not a port number (0-65535)')
    const broken = issuesOf(() => parseConfig('{ "psu": ', 'lab.json', { env: {} }))
    expect(broken.issues[0]?.reason).toMatch(/^not valid JSON/)
  })
})
