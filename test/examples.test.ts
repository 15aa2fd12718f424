import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { ApplicationClient, type ApplicationClientSession } from '@labwire/application'
import { toBytes, toText } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpClient } from '@labwire/transport-tcp'
import { ScpiPsu, startScpiPsu } from '../examples/scpi-psu.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const read = (path: string): string => readFileSync(join(root, path), 'utf8')

/** Code blocks marked `<!-- example: path -->` in a Markdown file, by path (```ts for .ts files, ```js for .mjs). */
function markedExamples(markdown: string): Map<string, string> {
  const blocks = new Map<string, string>()
  for (const match of markdown.matchAll(/<!-- example: (\S+) -->\r?\n```(ts|js)\r?\n([\s\S]*?)```/g)) {
    const [, path, language] = match as unknown as [string, string, string, string]
    expect(language, `the block for ${path} is fenced as ${language}`).toBe(path.endsWith('.ts') ? 'ts' : 'js')
    blocks.set(path, match[3] as string)
  }
  return blocks
}

describe('README code blocks are the example files, verbatim', () => {
  const cases: [readme: string, examples: string[]][] = [
    ['README.md', ['examples/client.ts', 'examples/client.mjs', 'examples/simulator.ts']],
    ['packages/core/README.md', ['examples/core.ts']],
    ['packages/marshallers/README.md', ['examples/marshallers.ts']],
    ['packages/application/README.md', ['examples/application.ts']],
    ['packages/transport-tcp/README.md', ['examples/transport-tcp.ts', 'examples/transport-tls.ts', 'examples/transport-unix.ts']],
  ]
  for (const [readme, examples] of cases) {
    it(`${readme} shows ${examples.join(', ')}`, () => {
      const blocks = markedExamples(read(readme))
      for (const example of examples) {
        expect(blocks.get(example), `${readme} has no block marked <!-- example: ${example} -->`).toBeDefined()
        expect(blocks.get(example), `${readme}'s block for ${example} differs from the file`).toBe(read(example))
      }
      // A marked block that names no existing example would drift unnoticed.
      for (const path of blocks.keys()) expect(examples).toContain(path)
    })
  }
})

describe('ScpiPsu (instrument logic)', () => {
  it('answers queries only, case-insensitively, in short and long form', () => {
    const psu = new ScpiPsu()
    expect(psu.execute('*IDN?')).toBe('labwire,SIM-PSU,0001,0.1.0')
    expect(psu.execute('VOLT 12.5')).toBeUndefined()
    expect(psu.execute('volt?')).toBe('12.500')
    expect(psu.execute(':SOURCE:VOLT?')).toBeUndefined() // no SOURce subsystem: undefined header
    expect(psu.execute('VOLTage?')).toBe('12.500')
    expect(psu.execute('voltage 1e1')).toBeUndefined()
    expect(psu.execute('Volt?')).toBe('10.000')
    expect(psu.execute('SYST:ERR?')).toBe('-113,"Undefined header"')
    expect(psu.execute('SYSTem:ERRor:NEXT?')).toBe('0,"No error"')
  })

  it('runs ; separated commands in order and joins the query replies with ;', () => {
    const psu = new ScpiPsu()
    expect(psu.execute('VOLT 3;CURR 0.5;OUTP ON')).toBeUndefined()
    expect(psu.execute('VOLT?; CURR?;OUTP?;*RST;OUTP?;VOLT?')).toBe('3.000;0.500;1;0;0.000')
  })

  it('models the load resistor and the current limit', () => {
    const psu = new ScpiPsu({ loadResistance: 4 })
    psu.execute('VOLT 2;CURR 1')
    expect(psu.execute('MEAS:VOLT?;MEAS:CURR?')).toBe('0.000;0.000') // output off
    psu.execute('OUTP 1')
    expect(psu.execute('MEAS:VOLT?;MEAS:CURR?')).toBe('2.000;0.500') // constant voltage
    psu.execute('CURR 0.25')
    expect(psu.execute('MEAS:VOLT?;MEAS:CURR?')).toBe('1.000;0.250') // constant current
  })

  it('queues errors FIFO with SCPI codes and reports -350 when the queue overflows', () => {
    const psu = new ScpiPsu()
    psu.execute('VOLT 31') // above maxVoltage
    psu.execute('CURR -1')
    psu.execute('VOLT abc')
    psu.execute('VOLT')
    psu.execute('OUTP MAYBE')
    psu.execute('*IDN? now')
    psu.execute('NOPE?')
    expect(psu.voltage).toBe(0)
    const drained = Array.from({ length: 8 }, () => psu.execute('SYST:ERR?'))
    expect(drained).toEqual([
      '-222,"Data out of range"',
      '-222,"Data out of range"',
      '-104,"Data type error"',
      '-109,"Missing parameter"',
      '-104,"Data type error"',
      '-108,"Parameter not allowed"',
      '-113,"Undefined header"',
      '0,"No error"',
    ])
    for (let i = 0; i < 12; i++) psu.execute('BAD')
    const overflowed = Array.from({ length: 11 }, () => psu.execute('SYST:ERR?'))
    expect(overflowed.slice(0, 9)).toEqual(Array.from({ length: 9 }, () => '-113,"Undefined header"'))
    expect(overflowed.slice(9)).toEqual(['-350,"Queue overflow"', '0,"No error"'])
    psu.execute('BAD;*CLS')
    expect(psu.execute('SYST:ERR?')).toBe('0,"No error"')
  })
})

describe('simulated SCPI power supply over TCP', () => {
  const scpi = textMarshaller(new SentinelBytesMarshaller('\n'))
  const connect = (port: number): Promise<ApplicationClientSession<string, string>> =>
    new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), scpi.marshall, scpi.unmarshall, { timeout: 2_000 }).connect({
      signal: AbortSignal.timeout(2_000),
    })

  it('holds a conversation, including the error queue', async () => {
    await using psu = await startScpiPsu()
    expect(psu.host).toBe('127.0.0.1')
    await using session = await connect(psu.port)
    const ask = (command: string): Promise<string> => session.sendReceive(command)

    expect(await ask('*IDN?')).toBe('labwire,SIM-PSU,0001,0.1.0')
    await session.send('*RST')
    await session.send('VOLT 5')
    await session.send('CURR 0.2')
    await session.send('OUTP ON')
    expect(await ask('OUTP?')).toBe('1')
    expect(await ask('MEAS:VOLT?')).toBe('2.000')
    expect(await ask('MEAS:CURR?')).toBe('0.200')
    await session.send('curr 1')
    expect(await ask('VOLT?;CURR?;MEAS:VOLT?;MEAS:CURR?')).toBe('5.000;1.000;5.000;0.500')
    await session.send('VOLT 99')
    await session.send('FOO:BAR 1')
    expect(await ask('SYST:ERR?')).toBe('-222,"Data out of range"')
    expect(await ask('syst:err?')).toBe('-113,"Undefined header"')
    expect(await ask('SYST:ERR?')).toBe('0,"No error"')
    await session.send('OUTP OFF')
    expect(await ask('OUTP?;MEAS:VOLT?')).toBe('0;0.000')
    expect(psu.psu.voltage).toBe(5)
  })

  it('sends no bytes for commands without ?, and accepts CRLF line ends', async () => {
    await using psu = await startScpiPsu()
    await using session = await new TcpClient({ host: psu.host, port: psu.port, timeout: 2_000 }).connect({ signal: AbortSignal.timeout(2_000) })
    const newline = toBytes('\n')
    // Three commands, then a query, in one write: the first line back must be the query's reply.
    session.request(toBytes('VOLT 1.5\r\nOUTP ON\r\nBOGUS\r\nVOLT?;OUTP?\r\n'))
    expect(toText(await session.stream.readUntil(newline))).toBe('1.500;1')
    session.request(toBytes('SYST:ERR?\n'))
    expect(toText(await session.stream.readUntil(newline))).toBe('-113,"Undefined header"')
    expect(session.stream.bufferedLength).toBe(0)
  })

  it('shares one instrument between connections, like a real one', async () => {
    await using psu = await startScpiPsu({ serial: 'X42' })
    await using first = await connect(psu.port)
    await using second = await connect(psu.port)
    await first.send('VOLT 7')
    expect(await first.sendReceive('*IDN?')).toBe('labwire,SIM-PSU,X42,0.1.0') // VOLT 7 has been handled
    expect(await second.sendReceive('VOLT?')).toBe('7.000')
  })
})
