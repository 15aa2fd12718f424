import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { DeviceFileError, loadDevice, loadDevices, parseDevices, pickEom } from '../src/index.js'

const dir = mkdtempSync(join(tmpdir(), 'labwire-sim-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function file(name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

async function loadError(path: string): Promise<DeviceFileError> {
  try {
    await loadDevices(path)
  } catch (error) {
    if (error instanceof DeviceFileError) return error
    throw error
  }
  throw new Error('expected a DeviceFileError')
}

const GOOD = `spec: "1.1"
devices:
  dev:
    eom:
      TCPIP SOCKET:
        q: "\\n"
        r: "\\n"
    dialogues:
      - q: "*IDN?"
        r: "X"
    properties:
      volt:
        default: 1.0
        getter:
          q: "VOLT?"
          r: "{:.2f}"
        setter:
          q: "VOLT {:.2f}"
        specs:
          type: float
          min: 0
          max: 5
resources:
  TCPIP::localhost::5025::SOCKET:
    device: dev
`

describe('device files: errors name the file, the line and the field', () => {
  it('a good file loads; devices and resources are listed', async () => {
    const loaded = await loadDevices(file('good.yaml', GOOD))
    expect([...loaded.devices.keys()]).toEqual(['dev'])
    expect(loaded.resources).toEqual([{ name: 'TCPIP::localhost::5025::SOCKET', device: 'dev' }])
    expect(loaded.spec).toBe('1.1')
  })

  const cases: [string, string, number, string, RegExp][] = [
    ['bad spec type', GOOD.replace('type: float', 'type: double'), 20, 'devices.dev.properties.volt.specs.type', /invalid property type 'double'/],
    ['default out of range', GOOD.replace('default: 1.0', 'default: 9.0'), 13, 'devices.dev.properties.volt.default', /more than the maximum/],
    ['min not a number', GOOD.replace('min: 0', 'min: zero'), 21, 'devices.dev.properties.volt.specs.min', /could not convert/],
    ['missing q in a dialogue', GOOD.replace('      - q: "*IDN?"\n        r: "X"', '      - r: "X"'), 9, 'devices.dev.dialogues[0].q', /missing/],
    ['bad eom key', GOOD.replace('TCPIP SOCKET:', 'TCPIP-SOCKET:'), 6, 'devices.dev.eom.TCPIP-SOCKET', /INTERFACE/],
    ['resource with an unknown device', GOOD.replace('device: dev', 'device: nope'), 25, 'resources.TCPIP::localhost::5025::SOCKET.device', /no device 'nope'/],
    ['spec too new', GOOD.replace('spec: "1.1"', 'spec: "1.2"'), 1, 'spec', /newer/],
    ['no spec', GOOD.replace('spec: "1.1"\n', ''), 1, 'spec', /does not specify a spec version/],
    ['dialogues not a list', GOOD.replace('    dialogues:\n      - q: "*IDN?"\n        r: "X"', '    dialogues: 3'), 8, 'devices.dev.dialogues', /expected a list/],
    ['bad setter format type', GOOD.replace('q: "VOLT {:.2f}"', 'q: "VOLT {:.2c}"'), 18, 'devices.dev.properties.volt.setter.q', /not an valid type/],
    ['labwire fault with an unknown kind', GOOD.replace('resources:', '    labwire:\n      faults:\n        - kind: meteor\nresources:'), 25, 'devices.dev.labwire.faults[0].kind', /one of/],
    ['YAML syntax', GOOD.replace('    dialogues:', '    dialogues: [oops'), 8, '(yaml)', /./],
  ]
  for (const [name, text, line, field, reason] of cases) {
    it(name, async () => {
      const path = file(`${name.replace(/\W+/g, '-')}.yaml`, text)
      const error = await loadError(path)
      expect(error.file).toBe(path)
      expect(error.field).toBe(field)
      expect(error.line).toBe(line)
      expect(error.reason).toMatch(reason)
      expect(error.message).toBe(`${path}:${line}:${error.column}: ${field}: ${error.reason}`)
    })
  }

  it('loadDevice picks by device or resource name, and the eom by key with the documented fallbacks', async () => {
    const path = file('multi.yaml', GOOD.replace('TCPIP SOCKET:', 'GPIB INSTR:\n        q: "\\r\\n"\n        r: "\\r\\n"\n      TCPIP INSTR:'))
    const byResource = await loadDevice(path, { device: 'TCPIP::localhost::5025::SOCKET' })
    expect(byResource.name).toBe('dev')
    expect(Buffer.from(byResource.requestTerminator).toString()).toBe('\n') // TCPIP INSTR, as TCPIP SOCKET is absent
    expect((await loadDevice(path, { device: 'tcpip0::localhost::5025::SOCKET' })).name).toBe('dev')
    const gpib = await loadDevice(path, { eom: 'GPIB INSTR' })
    expect(Buffer.from(gpib.responseTerminator).toString()).toBe('\r\n')
    await expect(loadDevice(path, { eom: 'USB RAW' })).rejects.toThrow(/no eom entry 'USB RAW'/)
    await expect(loadDevice(path, { device: 'other' })).rejects.toThrow(/no device or resource named 'other'/)
    expect(pickEom({})).toEqual({ key: undefined, q: '\n', r: '\n' })
    expect(pickEom({ 'ASRL INSTR': { q: '\r', r: '\r' }, 'USB INSTR': { q: '\n', r: '\n' } })).toEqual({ key: 'ASRL INSTR', q: '\r', r: '\r' })
  })

  it('pyvisa-sim ignores unknown keys; so does labwire (only its own labwire: key is read)', () => {
    const loaded = parseDevices(GOOD.replace('    dialogues:', '    vendor_notes: anything\n    dialogues:'), 'inline.yaml')
    expect(loaded.devices.has('dev')).toBe(true)
  })
})
