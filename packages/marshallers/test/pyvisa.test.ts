// Interop with PyVISA (Debian python3-pyvisa / python3-pyvisa-py): IEEE 488.2 blocks made by
// pyvisa.util.to_ieee_block decode in labwire, labwire's blocks decode in from_ieee_block, and a
// labwire TcpServer answering a waveform query is read by pyvisa-py's query_binary_values over a
// real socket. Skipped loudly when no Python with pyvisa and pyvisa_py is found.
import { execFile, execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { ApplicationServer } from '@labwire/application'
import { blockToValues, compose, IeeeBlockMarshaller, SentinelBytesMarshaller, textCodec, valuesToBlock, type BlockValueType } from '@labwire/marshallers'
import { TcpServer } from '@labwire/transport-tcp'
import { concat, fromChunks, utf8 } from '../../../test/helpers/chunks.js'

/** A Python that can import pyvisa and pyvisa_py (pyenv's python3 on PATH may not see Debian's packages). */
function findPython(): string | undefined {
  for (const candidate of ['python3', '/usr/bin/python3']) {
    try {
      execFileSync(candidate, ['-c', 'import pyvisa, pyvisa_py'], { stdio: 'ignore', timeout: 15_000 })
      return candidate
    } catch {
      // try the next one
    }
  }
  return undefined
}

const python = findPython()
if (python === undefined) console.warn('SKIPPED PyVISA interop tests: no python3 that can `import pyvisa, pyvisa_py` (apt-get install python3-pyvisa python3-pyvisa-py)')

function runPython(script: string, input: string, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(python as string, ['-c', script], { timeout: timeoutMs, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`python failed: ${error.message}\n${stderr}`))
      else resolve(stdout)
    })
    child.stdin?.end(input)
  })
}

/** PyVISA datatype letters for labwire's block value types. */
const LETTER: Record<BlockValueType, string> = { int8: 'b', uint8: 'B', int16: 'h', uint16: 'H', int32: 'i', uint32: 'I', float32: 'f', float64: 'd' }
const SAMPLES: Record<BlockValueType, number[]> = {
  int8: [-128, -1, 0, 10, 127],
  uint8: [0, 10, 13, 35, 255],
  int16: [-32768, -1, 0, 2570, 32767],
  uint16: [0, 10, 2570, 65535],
  int32: [-2147483648, -1, 0, 168430090, 2147483647],
  uint32: [0, 10, 4294967295],
  float32: [0, -1.5, 3.25, 1024.125],
  float64: [Math.PI, -0.1, 1e300, 10],
}

describe.skipIf(python === undefined)('PyVISA interop (pyvisa.util and pyvisa-py over TCP)', () => {
  const cases = Object.keys(SAMPLES).flatMap((type) => [false, true].map((big) => ({ type: type as BlockValueType, big })))

  it('blocks made by pyvisa.util.to_ieee_block decode in labwire, for every type and byte order', async () => {
    const script = `
import json, sys
from pyvisa import util
out = []
for case in json.load(sys.stdin):
    out.append(util.to_ieee_block(case['values'], case['letter'], case['big']).hex())
print(json.dumps(out))
`
    const input = cases.map((c) => ({ values: SAMPLES[c.type], letter: LETTER[c.type], big: c.big }))
    const blocks = JSON.parse(await runPython(script, JSON.stringify(input))) as string[]
    const m = new IeeeBlockMarshaller()
    // All of them back to back on one stream, each followed by the terminator as an instrument sends it.
    const wire = concat(...blocks.map((hex) => concat(Buffer.from(hex, 'hex'), utf8('\n'))))
    const bytes = fromChunks([wire.subarray(0, 7), wire.subarray(7)])
    for (const c of cases) {
      const data = await m.unmarshall(bytes)
      expect(Array.from(blockToValues(data, c.type, { byteOrder: c.big ? 'big' : 'little' })), `${c.type} big=${c.big}`).toEqual(SAMPLES[c.type])
    }
  })

  it("labwire's blocks decode in pyvisa.util.from_ieee_block, for every type and byte order", async () => {
    const m = new IeeeBlockMarshaller({ terminator: null })
    const input = cases.map((c) => ({
      block: Buffer.from(m.marshall(valuesToBlock(SAMPLES[c.type], c.type, { byteOrder: c.big ? 'big' : 'little' }))).toString('hex'),
      letter: LETTER[c.type],
      big: c.big,
    }))
    const script = `
import json, sys
from pyvisa import util
print(json.dumps([list(util.from_ieee_block(bytes.fromhex(c['block']), c['letter'], c['big'])) for c in json.load(sys.stdin)]))
`
    const decoded = JSON.parse(await runPython(script, JSON.stringify(input))) as number[][]
    cases.forEach((c, i) => expect(decoded[i], `${c.type} big=${c.big}`).toEqual(SAMPLES[c.type]))
  })

  it("a labwire TcpServer answering CURV? is read by pyvisa-py's query_binary_values over a real socket", async () => {
    const points = 50_000
    // Values whose bytes include '\n' (0x0a) and '#' (0x23): the block, not a line reader, must delimit them.
    const waveform = Array.from({ length: points }, (_, i) => ((i * 2570 + 35) % 65536) - 32768)
    const lines = compose(new SentinelBytesMarshaller('\n'), textCodec())
    const blocks = new IeeeBlockMarshaller()
    const server = new TcpServer({
      callback: new ApplicationServer(
        lines.unmarshall,
        (reply: Uint8Array) => reply,
        (command: string) => {
          if (command === '*IDN?') return lines.marshall('LABWIRE,SCOPE,0,1.0')
          if (command === 'CURV?') return blocks.marshall(valuesToBlock(waveform, 'int16', { byteOrder: 'big' }))
          if (command === 'SHORT?') return blocks.marshall(valuesToBlock([1.5, -2.25], 'float32'))
          return lines.marshall('ERR')
        },
      ),
    })
    try {
      const { port } = await server.listen()
      const script = `
import json, pyvisa
rm = pyvisa.ResourceManager('@py')
inst = rm.open_resource('TCPIP::127.0.0.1::${port}::SOCKET', read_termination='\\n', write_termination='\\n', timeout=10000)
idn = inst.query('*IDN?')
wave = inst.query_binary_values('CURV?', datatype='h', is_big_endian=True)
short = inst.query_binary_values('SHORT?', datatype='f')
idn2 = inst.query('*IDN?')
inst.close()
rm.close()
print(json.dumps({'idn': idn, 'wave': list(wave), 'short': list(short), 'idn2': idn2}))
`
      const result = JSON.parse(await runPython(script, '')) as { idn: string; wave: number[]; short: number[]; idn2: string }
      expect(result.idn).toBe('LABWIRE,SCOPE,0,1.0')
      expect(result.wave.length).toBe(points)
      expect(result.wave).toEqual(waveform)
      expect(result.short).toEqual([1.5, -2.25])
      // The block's terminator was consumed: the next query lines up.
      expect(result.idn2).toBe('LABWIRE,SCOPE,0,1.0')
    } finally {
      await server.close()
    }
  })
})
