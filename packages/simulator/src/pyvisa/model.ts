/**
 * The plain model of a pyvisa-sim device file: what {@link readDeviceFile} makes of the YAML and
 * {@link buildDevice} turns into a {@link Device}. Plain data (no YAML nodes, no closures), plus
 * pyvisa-sim's value checks, which reading (a property's default) and building (every set) share.
 *
 * @module
 */
import type { SampleFormat, SineOptions } from '../bytes.js'
import type { LoginDef } from '../device.js'
import type { FaultSpec } from '../faults.js'
import { pyEquals, PyException, pyFloat, pyInt, pyLess, pyStr, type PyValue } from '../python/values.js'

/** Which pyvisa-sim release to mimic where releases differ. */
export type PyvisaSimCompat = '0.5' | '0.7'

/** Terminators of one interface type: `q` ends requests, `r` ends responses. */
export interface Eom {
  q: string
  r: string
}

/** One entry of `resources`. */
export interface ResourceEntry {
  name: string
  device: string
  /** Per-channel-group ids that override the device's (`channel_ids`). */
  channelIds?: Record<string, string[]>
}

/** `specs` of a property. */
export interface SpecsDef {
  type: 'int' | 'float' | 'str'
  min: PyValue | undefined
  max: PyValue | undefined
  valid: PyValue[]
}

/** One property: default, getter, setter, specs. */
export interface PropertyDef {
  name: string
  default: string
  getter: { q: string; r: string | undefined } | undefined
  setter: { q: string; r: string | undefined; e: string | undefined } | undefined
  specs: SpecsDef | undefined
}

/** Dialogues and properties (of a device, or of a channel group). */
export interface ComponentDef {
  dialogues: { q: string; r: string | undefined }[]
  properties: PropertyDef[]
}

/** A channel group. */
export interface ChannelDef extends ComponentDef {
  name: string
  ids: string[]
  canSelect: boolean
}

/** What a `labwire.commands` entry answers. */
export type LabwireReply =
  | { kind: 'text'; text: string }
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'block'; format: SampleFormat; byteOrder: 'little' | 'big'; values: number[] | undefined; sine: SineOptions | undefined }
  | { kind: 'none' }

/** The `labwire:` extensions of a device. */
export interface LabwireDef {
  commands: { q: string; reply: LabwireReply; delay: number | undefined }[]
  delays: Map<string, number>
  drift: { property: string; rate: number; noise: number; min: number | undefined; max: number | undefined; interval: number }[]
  faults: FaultSpec[]
  login: LoginDef | undefined
}

/** One device of a file. */
export interface DeviceModel {
  name: string
  delimiter: string
  /** The `eom` map as written, e.g. `{ 'TCPIP SOCKET': { q: '\n', r: '\n' } }`. */
  eom: Record<string, Eom>
  /** The reply to an unknown command (`error` or `error.response.command_error`). */
  commandError: string | undefined
  registers: { q: string; bits: Map<string, bigint> }[]
  queues: { q: string; default: string; messages: Map<string, string> }[]
  component: ComponentDef
  channels: ChannelDef[]
  labwire: LabwireDef
}

/** A whole file. */
export interface FileModel {
  file: string
  spec: string
  devices: DeviceModel[]
  resources: ResourceEntry[]
}

/** pyvisa-sim's conversion of a value to a spec type (`int()`, `float()`, `str()`). */
export function convertSpec(type: SpecsDef['type'], value: PyValue): PyValue {
  if (type === 'int') return pyInt(value)
  if (type === 'float') return pyFloat(value)
  return pyStr(value)
}

/** pyvisa-sim's Property.validate_value: convert, then check min, max and valid. */
export function validateValue(def: PropertyDef, value: PyValue): PyValue {
  const specs = def.specs
  if (specs === undefined) return value
  const converted = convertSpec(specs.type, value)
  if (specs.min !== undefined && pyLess(converted, specs.min))
    throw new PyException('ValueError', `Value provided for ${def.name}: ${pyStr(converted)} is less than the minimum ${pyStr(specs.min)}`)
  if (specs.max !== undefined && pyLess(specs.max, converted))
    throw new PyException('ValueError', `Value provided for ${def.name}: ${pyStr(converted)} is more than the maximum ${pyStr(specs.max)}`)
  if (specs.valid.length > 0 && !specs.valid.some((v) => pyEquals(v, converted)))
    throw new PyException('ValueError', `Value provide for ${def.name}: ${pyStr(converted)}Does not belong to the list of valid values`)
  return converted
}

/**
 * Pick terminators from an `eom` map: `key` when given (an error if absent), else `'TCPIP SOCKET'`,
 * then `'TCPIP INSTR'`, then the first entry; with no map at all, `'\n'` both ways (pyvisa-sim's
 * fallback).
 */
export function pickEom(eom: Readonly<Record<string, Eom>>, key?: string): { key: string | undefined; q: string; r: string } {
  if (key !== undefined) {
    const entry = eom[key]
    if (entry === undefined) throw new RangeError(`no eom entry '${key}'; the device has: ${Object.keys(eom).join(', ') || 'none'}`)
    return { key, ...entry }
  }
  for (const candidate of ['TCPIP SOCKET', 'TCPIP INSTR']) {
    const entry = eom[candidate]
    if (entry !== undefined) return { key: candidate, ...entry }
  }
  const first = Object.keys(eom)[0]
  if (first !== undefined) return { key: first, ...(eom[first] as Eom) }
  return { key: undefined, q: '\n', r: '\n' }
}
