import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import type { Logger } from '@labwire/core'
import { RawClient } from './raw-client.js'
import {
  bundledDevice,
  bundledDevices,
  BUNDLED_DEVICES,
  Device,
  DeviceFileAliasError,
  DeviceFileError,
  DeviceFileTooLargeError,
  FormatLimitError,
  loadDevice,
  loadDevices,
  parseDevices,
  pyFormat,
  resolveDeviceFile,
  SimulatorServer,
  StringParser,
  UnknownDeviceError,
} from '../src/index.js'

// Issue 16, the simulator's share: each test is named after the failure it pins.

/** A logger that keeps what it is given. */
function recordingLogger(): Logger & { records: { level: string; context: Record<string, unknown>; message: string | undefined }[] } {
  const records: { level: string; context: Record<string, unknown>; message: string | undefined }[] = []
  const at = (level: string) => (context: object, message?: string) => {
    records.push({ level, context: context as Record<string, unknown>, message })
  }
  return { records, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

/**
 * The fastest of three runs, in ms: what the code costs, without the scheduler noise of a
 * loaded machine (the failures these tests pin cost seconds, not tens of milliseconds).
 */
async function fastest(fn: () => unknown): Promise<number> {
  let best = Infinity
  for (let i = 0; i < 3; i++) {
    const started = performance.now()
    await fn()
    best = Math.min(best, performance.now() - started)
  }
  return best
}

const dec = new TextDecoder()
const enc = new TextEncoder()

/** One request through a device's engine (no socket: the timing is the engine's alone). */
async function ask(device: Pick<Device, 'respond'>, line: string): Promise<string | undefined> {
  const reply = await device.respond(enc.encode(line), { connection: undefined, session: {} })
  return reply === undefined ? undefined : dec.decode(reply)
}

function fileDevice(body: string, options: { logger?: Logger } = {}): Device<unknown> {
  const text = `spec: "1.1"\ndevices:\n  dev:\n    eom:\n      TCPIP SOCKET: { q: "\\n", r: "\\n" }\n${body}`
  const definition = parseDevices(text, 'dev.yaml').devices.get('dev')
  if (definition === undefined) throw new Error('no device')
  return definition.create(options) as Device<unknown>
}

describe('setter patterns match in linear time (hardening #4)', () => {
  it('setter pattern {:.2f} on a 64 KiB line of digits answers in well under 100 ms (hardening #4)', async () => {
    const device = fileDevice(`    error: ERR
    properties:
      freq:
        default: 1.0
        getter: { q: "FREQ?", r: "{:.2f}" }
        setter: { q: "!FREQ {:.2f}", r: OK }
        specs: { type: float }
`)
    const digits = '7'.repeat(64 * 1024 - 16)
    // A line that cannot match (the worst case for backtracking: 3.5 s before the fix) and one that does.
    const failing = await fastest(async () => {
      expect(await ask(device, `!FREQ ${digits}x`)).toBe('ERR\n')
    })
    const matching = await fastest(async () => {
      expect(await ask(device, `!FREQ ${'0'.repeat(digits.length)}12.5`)).toBe('OK\n')
    })
    expect(failing).toBeLessThan(100)
    expect(matching).toBeLessThan(100)
    expect(await ask(device, 'FREQ?')).toBe('12.50\n')
  })

  it('ten 64 KiB digit lines on a socket do not stall the simulator: another client is answered at once (hardening #4)', async () => {
    const device = fileDevice(`    error: ERR
    properties:
      freq:
        default: 1.0
        getter: { q: "FREQ?", r: "{:.2f}" }
        setter: { q: "!FREQ {:.2f}", r: OK }
        specs: { type: float }
`)
    await using server = new SimulatorServer({ device })
    const { port } = await server.listen()
    const attacker = await RawClient.open(port)
    const other = await RawClient.open(port)
    try {
      const line = `!FREQ ${'7'.repeat(64 * 1024 - 16)}x\n`
      const started = performance.now()
      for (let i = 0; i < 10; i++) attacker.write(line)
      await attacker.waitFor('ERR\n'.repeat(10), 10_000)
      other.write('FREQ?\n')
      expect(await other.waitFor('1.00\n')).toBe('1.00\n')
      expect(performance.now() - started).toBeLessThan(1_000)
    } finally {
      attacker.destroy()
      other.destroy()
    }
  })

  it('several adjacent numeric fields ({:d}{:d}{:f}) on a long line of digits stay linear (hardening #4)', async () => {
    const parser = new StringParser('SET {:d}{:d}{:f}')
    const line = `SET ${'1'.repeat(32 * 1024)}`
    expect(
      await fastest(() => {
        expect(parser.fieldValues(`${line}z`)).toBeUndefined()
      }),
    ).toBeLessThan(100)
    let values: Map<string, unknown> | undefined
    expect(
      await fastest(() => {
        values = parser.fieldValues(line)
      }),
    ).toBeLessThan(100)
    // The captures a backtracking engine finds first: the lazy {:d}s take one digit each.
    expect([...(values?.values() ?? [])].map(String)).toEqual(['1', '1', String(Number('1'.repeat(32 * 1024 - 2)))])
  })

  it('a setter value with a long run of spaces converts in linear time: float() strips without a quadratic regex (hardening #4)', async () => {
    const device = fileDevice(`    error: ERR
    properties:
      volt:
        default: 1.0
        getter: { q: "VOLT?", r: "{:.1f}" }
        setter: { q: "VOLT {}", r: OK }
        specs: { type: float }
`)
    // 60,000 spaces: 2 s before the fix.
    expect(
      await fastest(async () => {
        expect(await ask(device, `VOLT 1${' '.repeat(60_000)}x`)).toBe('ERR\n')
      }),
    ).toBeLessThan(100)
    expect(
      await fastest(async () => {
        expect(await ask(device, `VOLT ${' '.repeat(30_000)}2.5${' '.repeat(30_000)}`)).toBe('OK\n')
      }),
    ).toBeLessThan(100)
    expect(await ask(device, 'VOLT?')).toBe('2.5\n')
  })

  it('the linear matcher gives exactly the regular expression’s captures on random patterns and lines (hardening #4)', () => {
    const specs = ['', 's', 'd', 'b', 'o', 'x', 'X', 'e', 'E', 'f', 'F', 'g', 'G', '%', '+d', ' f', '#x', '#b', '-e', '_']
    const field = fc.constantFrom(...specs).map((spec) => (spec === '_' ? '{_}' : spec === '' ? '{}' : `{:${spec}}`))
    const literal = fc.constantFrom('', 'A', ' ', ',', ':', '.', 'V ', 'é')
    const pattern = fc.array(fc.tuple(literal, field), { minLength: 1, maxLength: 4 }).chain((parts) =>
      literal.map((tail) => parts.map(([l, f]) => l + f).join('') + tail),
    )
    const line = fc.array(fc.constantFrom(...'0123456789.-+eE%x bAé,:\n'.split('')), { maxLength: 24 }).map((cs) => cs.join(''))
    fc.assert(
      fc.property(pattern, line, (source, text) => {
        const parser = new StringParser(source)
        const m = parser.regex.exec(text)
        const expected = m === null ? undefined : parser.fields.map((f, i) => attempt(() => f.convert(m[i + 1] ?? '')))
        const got = attempt(() => parser.fieldValues(text))
        if (expected === undefined) {
          expect(got).toBeUndefined()
        } else {
          expect(got).toBeInstanceOf(Map)
          expect([...(got as Map<string, unknown>).values()].map(String)).toEqual(expected.map(String))
        }
      }),
      { numRuns: 3000 },
    )
  })
})

function attempt<T>(fn: () => T): T | string {
  try {
    return fn()
  } catch (error) {
    return `throws ${String(error)}`
  }
}

describe('format widths (hardening #5)', () => {
  it('format {:0100000,d} pads linearly, as Python does (hardening #5)', async () => {
    let text = ''
    // 15 s per query before the fix.
    expect(
      await fastest(() => {
        text = pyFormat('{:0100000,d}', [5n])
      }),
    ).toBeLessThan(100)
    // Python: len(format(5, '0100000,d')) == 100001, re.fullmatch(r'0(,000)*,005', …)
    expect(text.length).toBe(100_001)
    expect(/^0(,000)*,005$/.test(text)).toBe(true)
    expect(pyFormat('{:08,d}', [1234n])).toBe('0,001,234')
    expect(pyFormat('{:010_x}', [0xabcn])).toBe('0_0000_0abc')
    expect(pyFormat('{:012,.2f}', [1234.5])).toBe('0,001,234.50')
  })

  it('format {:300000000d} is refused with FormatLimitError instead of allocating 600 MB (hardening #5)', async () => {
    const error = attemptError(() => pyFormat('{:300000000d}', [5n]))
    expect(error).toBeInstanceOf(FormatLimitError)
    expect(error).toMatchObject({ name: 'FormatLimitError', code: 'ERR_FORMAT_LIMIT', what: 'width', value: 300_000_000, limit: 1024 * 1024 })
    expect(attemptError(() => pyFormat('{:.5000000f}', [0.5]))).toMatchObject({ code: 'ERR_FORMAT_LIMIT', what: 'precision' })
    expect(attemptError(() => pyFormat('{:99999999999999999999999999s}', ['a']))).toBeInstanceOf(FormatLimitError)
    // The limit is an option.
    expect(pyFormat('{:>10d}', [5n], {}, { maxWidth: 10 })).toBe('         5')
    expect(attemptError(() => pyFormat('{:>11d}', [5n], {}, { maxWidth: 10 }))).toBeInstanceOf(FormatLimitError)
    // Huge precisions under the limit stay fast: past a double's exact expansion only zeros follow.
    expect(
      await fastest(() => {
        expect(pyFormat('{:.1000000f}', [0.1]).length).toBe(1_000_002)
      }),
    ).toBeLessThan(500)
  })

  it('a device whose getter asks for a width over maxFormatWidth logs FormatLimitError and sends nothing (hardening #5)', async () => {
    const logger = recordingLogger()
    const device = fileDevice(
      `    properties:
      wide:
        default: 5
        getter: { q: "WIDE?", r: "{:300000000d}" }
        specs: { type: int }
`,
      { logger },
    )
    expect(await ask(device, 'WIDE?')).toBeUndefined()
    expect(logger.records).toHaveLength(1)
    expect(logger.records[0]?.context.err).toBeInstanceOf(FormatLimitError)
  })
})

function attemptError(fn: () => unknown): unknown {
  try {
    fn()
  } catch (error) {
    return error
  }
  throw new Error('expected a throw')
}

describe('long latency faults (hardening #8)', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('a latency fault of 2³¹ ms or more waits, instead of firing at once (hardening #8)', async () => {
    vi.useFakeTimers()
    const device = new Device({ name: 'slow', state: {} }).command('PING?', () => 'PONG')
    device.fault({ kind: 'latency', latency: 2 ** 31 + 5_000 })
    let reply: string | undefined | null = null
    const pending = ask(device, 'PING?').then((r) => {
      reply = r
    })
    await vi.advanceTimersByTimeAsync(10_000)
    expect(reply).toBeNull()
    await vi.advanceTimersByTimeAsync(2 ** 31 - 10_000)
    expect(reply).toBeNull()
    await vi.advanceTimersByTimeAsync(10_000)
    await pending
    expect(reply).toBe('PONG\n')
  })
})

describe('long tick intervals (hardening #8, the same overflow)', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('a tick interval of 2³¹ ms or more is clamped, not turned into a 1 ms busy tick; zero is refused', async () => {
    vi.useFakeTimers()
    let ticks = 0
    const device = new Device({ name: 'drifty', state: {} }).onTick(2 ** 32, () => {
      ticks++
    })
    device.start()
    try {
      await vi.advanceTimersByTimeAsync(1_000)
      expect(ticks).toBe(0)
      await vi.advanceTimersByTimeAsync(2 ** 31)
      expect(ticks).toBe(1)
    } finally {
      device.stop()
    }
    expect(() => new Device({ name: 'x', state: {} }).onTick(0, () => undefined)).toThrow(RangeError)
    const file = `spec: "1.1"\ndevices:\n  d:\n    properties:\n      v: { default: 1.0, specs: { type: float } }\n    labwire:\n      drift:\n        v: { rate: 1, interval: 0 }\n`
    expect(attemptError(() => parseDevices(file, 'drift.yaml'))).toMatchObject({ message: 'drift.yaml:8:33: devices.d.labwire.drift.v.interval: must be a positive number of milliseconds, got 0' })
  })
})

describe('device errors are logged (hardening #18, new-user report)', () => {
  it('a handler that throws is logged at error level with the device name and the command (hardening #18)', async () => {
    const logger = recordingLogger()
    const device = new Device({ name: 'meter', state: {}, logger }).command('BOOM?', () => {
      throw new RangeError('sensor unplugged')
    })
    expect(await ask(device, 'BOOM?')).toBeUndefined()
    expect(logger.records).toHaveLength(1)
    const [record] = logger.records
    expect(record?.level).toBe('error')
    expect(record?.context).toMatchObject({ device: 'meter', command: 'BOOM?' })
    expect(record?.message).toContain('device "meter": command "BOOM?" failed: sensor unplugged')
  })

  it('a property without type: float formatted with {:+.6E} logs a clear error and sends nothing, as pyvisa-sim raises (new-user report)', async () => {
    const logger = recordingLogger()
    const device = fileDevice(
      `    properties:
      volt:
        default: 1.5
        getter: { q: "VOLT?", r: "{:+.6E}" }
`,
      { logger },
    )
    expect(await ask(device, 'VOLT?')).toBeUndefined()
    expect(logger.records.map((r) => r.level)).toEqual(['error'])
    const message = logger.records[0]?.message ?? ''
    expect(message).toContain('device "dev": command "VOLT?" failed')
    expect(message).toContain("Unknown format code 'E' for object of type 'str'")
    expect(message).toContain('property volt')
    expect(message).toContain('type: float')
  })

  it('a device built without a logger can be given one later (device.logger is writable)', async () => {
    const logger = recordingLogger()
    const device = new Device({ name: 'late', state: {} }).command('X', () => {
      throw new Error('no')
    })
    device.logger = logger
    await ask(device, 'X')
    expect(logger.records).toHaveLength(1)
  })
})

describe('bundled devices by name (new-user report)', () => {
  it('bundledDevices() lists every shipped device with a path that exists and a description', () => {
    const list = bundledDevices()
    expect(list.map((d) => d.name)).toEqual([...BUNDLED_DEVICES])
    for (const device of list) {
      expect(existsSync(device.path)).toBe(true)
      expect(device.description).toBeTruthy()
    }
  })

  it('resolveDeviceFile: a bundled name gives its path, a file is returned as given, anything else lists the names', () => {
    const psu = bundledDevices().find((d) => d.name === 'scpi-psu')
    expect(resolveDeviceFile('scpi-psu')).toBe(psu?.path)
    expect(resolveDeviceFile(psu?.path ?? '')).toBe(psu?.path)
    const error = attemptError(() => resolveDeviceFile('scpi-pus'))
    expect(error).toBeInstanceOf(UnknownDeviceError)
    expect(error).toMatchObject({ code: 'ERR_UNKNOWN_DEVICE', names: [...BUNDLED_DEVICES] })
    expect((error as Error).message).toContain("did you mean 'scpi-psu'")
    expect((error as Error).message).toContain('scpi-psu, dmm, cli-switch')
    expect(attemptError(() => resolveDeviceFile('/nonexistent/psu.yaml'))).toBeInstanceOf(UnknownDeviceError)
  })
})

const dir = mkdtempSync(join(tmpdir(), 'labwire-hardsim-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** A classic "billion laughs": each level refers nine times to the one before. */
function aliasBomb(levels: number, use: (top: string) => string): string {
  const lines = ['spec: "1.1"', 'x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
  for (let i = 1; i < levels; i++) lines.push(`x${i}: &a${i} [${Array.from({ length: 9 }, () => `*a${i - 1}`).join(',')}]`)
  lines.push(use(`*a${levels - 1}`))
  return `${lines.join('\n')}\n`
}

async function loadError(path: string, options: Parameters<typeof loadDevices>[1] = {}): Promise<unknown> {
  try {
    await loadDevices(path, options)
  } catch (error) {
    return error
  }
  throw new Error('expected the load to fail')
}

describe('YAML alias bombs and oversized files (hardening #3)', () => {
  it('yaml alias bomb is refused fast with file:line:column (hardening #3)', async () => {
    // ~800 bytes that expand to 9^9 ≈ 387 million nodes; the aliases sit where labwire walks (faults).
    const text = aliasBomb(9, (top) => `devices:\n  dev:\n    labwire:\n      faults:\n        - ${top}\n`)
    expect(text.length).toBeLessThan(1024)
    const path = join(dir, 'bomb.yaml')
    writeFileSync(path, text)
    const started = performance.now()
    const error = await loadError(path)
    expect(performance.now() - started).toBeLessThan(500)
    expect(error).toBeInstanceOf(DeviceFileAliasError)
    expect(error).toBeInstanceOf(DeviceFileError)
    expect(error).toMatchObject({ name: 'DeviceFileAliasError', code: 'ERR_DEVICE_FILE_ALIASES', file: path, field: '(yaml)' })
    // The position is the alias where the expansion passed the limit.
    const { line, column } = error as DeviceFileError
    expect((error as Error).message.startsWith(`${path}:${line}:${column}: (yaml): aliases expand to more than 100000 nodes (maxAliasExpansion)`)).toBe(true)
    expect(text.split('\n')[line - 1]?.slice(column - 1).startsWith('*a')).toBe(true)
  })

  it('yaml alias used as a mapping key is refused fast: a key must be a plain value (hardening #3)', () => {
    const text = aliasBomb(9, (top) => `devices:\n  dev:\n    properties:\n      ? ${top}\n      : { default: 1 }\n`)
    const started = performance.now()
    const error = attemptError(() => parseDevices(text, 'key.yaml'))
    expect(performance.now() - started).toBeLessThan(500)
    expect(error).toBeInstanceOf(DeviceFileError)
    // The first refusal is the expansion itself (the key's alias is the ninth level's ninth use).
    expect((error as Error).message).toMatch(/^key\.yaml:\d+:\d+: \(yaml\): /)
    // A small list as a key: refused as unhashable, as PyYAML does.
    const small = `spec: "1.1"\nk: &k [a, b]\ndevices:\n  dev:\n    properties:\n      ? *k\n      : { default: 1 }\n`
    const keyError = attemptError(() => parseDevices(small, 'small.yaml'))
    expect(keyError).toBeInstanceOf(DeviceFileError)
    expect((keyError as Error).message).toBe('small.yaml:6:9: (yaml): a mapping key must be a plain value, not a list or a mapping (PyYAML refuses it too: unhashable key)')
  })

  it('a recursive alias is refused (hardening #3)', () => {
    const error = attemptError(() => parseDevices('spec: "1.1"\nloop: &l [a, *l]\ndevices: {}\n', 'loop.yaml'))
    expect(error).toBeInstanceOf(DeviceFileAliasError)
    expect((error as Error).message).toContain('loop.yaml:2:')
    expect((error as Error).message).toContain('recursive alias')
  })

  it('aliases a real file uses (shared specs, reused dialogues) still load; maxAliasExpansion is an option (hardening #3)', async () => {
    const text = `spec: "1.1"
specs: &volts { type: float, min: 0, max: 30 }
devices:
  dev:
    eom:
      TCPIP SOCKET: { q: "\\n", r: "\\n" }
    properties:
      a: { default: 1.0, getter: { q: "A?", r: "{:.1f}" }, specs: *volts }
      b: { default: 2.0, getter: { q: "B?", r: "{:.1f}" }, specs: *volts }
`
    const path = join(dir, 'shared.yaml')
    writeFileSync(path, text)
    const device = await loadDevice(path)
    expect(await ask(device, 'B?')).toBe('2.0\n')
    expect(await loadError(path, { maxAliasExpansion: 4 })).toBeInstanceOf(DeviceFileAliasError)
  })

  it('a device file over maxFileSize (default 4 MiB) is refused without reading it all (hardening #3)', async () => {
    const path = join(dir, 'big.yaml')
    writeFileSync(path, `spec: "1.1"\n# ${'x'.repeat(4 * 1024 * 1024)}\n`)
    const error = await loadError(path)
    expect(error).toBeInstanceOf(DeviceFileTooLargeError)
    expect(error).toMatchObject({ code: 'ERR_DEVICE_FILE_TOO_LARGE', limit: 4 * 1024 * 1024 })
    expect((error as Error).message).toBe(`${path}:1:1: (file): the file is over 4194304 bytes (maxFileSize)`)
    expect(await loadError(join(dir, 'shared.yaml'), { maxFileSize: 64 })).toBeInstanceOf(DeviceFileTooLargeError)
    expect(attemptError(() => parseDevices('spec: "1.1"\n'.padEnd(200, ' '), 'mem.yaml', { maxFileSize: 100 }))).toBeInstanceOf(DeviceFileTooLargeError)
    // A file that never ends (a character device) stops at the limit too.
    if (existsSync('/dev/zero')) expect(await loadError('/dev/zero', { maxFileSize: 1024 })).toBeInstanceOf(DeviceFileTooLargeError)
  })

  it('a node-dense file under maxFileSize is refused by maxYamlTokens before the slow parse (hardening #3)', () => {
    // 1 MiB of [a,a,a,…]: the yaml package needs seconds to build it; the lexer counts past the limit in milliseconds.
    const text = `spec: "1.1"\nx: [${'a,'.repeat(512 * 1024)}a]\ndevices: {}\n`
    let error: unknown
    const started = performance.now()
    error = attemptError(() => parseDevices(text, 'dense.yaml'))
    expect(performance.now() - started).toBeLessThan(1_000)
    expect(error).toBeInstanceOf(DeviceFileTooLargeError)
    expect(error).toMatchObject({ option: 'maxYamlTokens', limit: 500_000 })
    expect((error as Error).message).toBe('dense.yaml:1:1: (file): the file has more than 500000 YAML tokens (maxYamlTokens)')
    error = attemptError(() => parseDevices('spec: "1.1"\ndevices: {}\n', 'tiny.yaml', { maxYamlTokens: 5 }))
    expect(error).toMatchObject({ code: 'ERR_DEVICE_FILE_TOO_LARGE', option: 'maxYamlTokens' })
  })
})

describe('bounded error queue (every buffer bounded)', () => {
  it('an error queue nobody reads stops at maxErrorQueue (default 1024) instead of growing forever', async () => {
    const device = await loadDevice(bundledDevice('scpi-psu'), { maxErrorQueue: 3 })
    // One message of 2,000 unknown commands (the delimiter is ';').
    await ask(device, Array.from({ length: 2000 }, () => 'NOPE').join(';'))
    const answers: (string | undefined)[] = []
    for (let i = 0; i < 5; i++) answers.push(await ask(device, 'SYST:ERR?'))
    expect(answers).toEqual(['-100,"Command error"\n', '-100,"Command error"\n', '-100,"Command error"\n', '0,"No error"\n', '0,"No error"\n'])
    const byDefault = await loadDevice(bundledDevice('scpi-psu'))
    await ask(byDefault, Array.from({ length: 2000 }, () => 'NOPE').join(';'))
    let count = 0
    while ((await ask(byDefault, 'SYST:ERR?')) !== '0,"No error"\n') count++
    expect(count).toBe(1024)
  })
})
