/**
 * pyvisa-sim device files (spec 1.0 and 1.1), read with positions and validated, built into
 * {@link Device}s that answer byte for byte as pyvisa-sim does.
 *
 * @module
 */
import { readFile } from 'node:fs/promises'
import { throwIfAborted, type AbortOptions, type Logger } from '@labwire/core'
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml'
import { concatBytes, encodeSamples, ieeeBlock, latin1, sine, utf8, type SampleFormat } from '../bytes.js'
import { Device, NO_REPLY, NOT_MATCHED, type Command, type LoginDef, type Outcome } from '../device.js'
import { validateFaultSpec, type FaultSpec } from '../faults.js'
import { pyFormat } from '../python/format.js'
import { Parser } from '../python/stringparser.js'
import { pyEquals, PyException, pyFloat, pyInt, pyKey, pyLess, pyStr, pyToJson, type PyValue } from '../python/values.js'

/** A malformed device file: the message names the file, the line and column, and the field. */
export class DeviceFileError extends Error {
  override readonly name = 'DeviceFileError'
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${file}:${line}:${column}: ${field}: ${reason}`)
  }
}

/** Which pyvisa-sim release to mimic where releases differ. */
export type PyvisaSimCompat = '0.5' | '0.7'

/** Terminators of one interface type: `q` ends requests, `r` ends responses. */
export interface Eom {
  q: string
  r: string
}

/** A device definition from a file; {@link DeviceDefinition.create} builds a fresh {@link Device}. */
export interface DeviceDefinition {
  readonly name: string
  /** The `eom` map as written, e.g. `{ 'TCPIP SOCKET': { q: '\n', r: '\n' } }` (escapes resolved by YAML). */
  readonly eom: Readonly<Record<string, Eom>>
  /** A new device (fresh state). `eom` picks the terminators by key (see {@link pickEom}). */
  create(options?: CreateDeviceOptions): Device<PyvisaState>
}

/** Options for {@link DeviceDefinition.create}. */
export interface CreateDeviceOptions {
  /** Key of the `eom` map, e.g. `'TCPIP SOCKET'`, `'GPIB INSTR'`. Default: see {@link pickEom}. */
  eom?: string
  /** Resource-level settings (`channel_ids`). */
  resource?: ResourceEntry
  compat?: PyvisaSimCompat
  logger?: Logger
}

/** One entry of `resources`. */
export interface ResourceEntry {
  name: string
  device: string
  /** Per-channel-group ids that override the device's (`channel_ids`). */
  channelIds?: Record<string, string[]>
}

/** A loaded file: its devices by name and its resources. */
export interface LoadedDevices {
  file: string
  spec: string
  devices: Map<string, DeviceDefinition>
  resources: ResourceEntry[]
}

/** Options for {@link loadDevices}. */
export interface LoadDevicesOptions extends AbortOptions {
  compat?: PyvisaSimCompat
}

/** Options for {@link loadDevice}. */
export interface LoadDeviceOptions extends LoadDevicesOptions {
  /** A device name or a resource name. Default: the first resource's device, else the first device. */
  device?: string
  /** `eom` key. Default: `'TCPIP SOCKET'`, then `'TCPIP INSTR'`, then the first entry. */
  eom?: string
  logger?: Logger
}

/** The state of a device built from a file: its properties' values. */
export interface PyvisaState {
  properties: Record<string, PyValue>
}

const SPEC_VERSION: readonly number[] = [1, 1]
const INTERFACE_TYPES = new Set(['gpib', 'vxi', 'gpib_vxi', 'asrl', 'pxi', 'tcpip', 'usb', 'rio', 'firewire', 'rsnrp', 'unknown'])

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

/** Read a device file: every device definition and the resources. */
export async function loadDevices(file: string, options: LoadDevicesOptions = {}): Promise<LoadedDevices> {
  throwIfAborted(options)
  const text = await readFile(file, { encoding: 'utf8', ...(options.signal === undefined ? {} : { signal: options.signal }) })
  return parseDevices(text, file, options)
}

/** Load one device from a file and build it, ready to serve. */
export async function loadDevice(file: string, options: LoadDeviceOptions = {}): Promise<Device<PyvisaState>> {
  const loaded = await loadDevices(file, options)
  let name = options.device
  let resource: ResourceEntry | undefined
  if (name !== undefined && !loaded.devices.has(name)) {
    const wanted = resourceKey(name)
    resource = loaded.resources.find((r) => r.name === name) ?? loaded.resources.find((r) => resourceKey(r.name) === wanted)
    if (resource === undefined) throw new RangeError(`${file}: no device or resource named '${name}'; devices: ${[...loaded.devices.keys()].join(', ')}`)
    name = resource.device
  }
  if (name === undefined) {
    resource = loaded.resources[0]
    name = resource?.device ?? [...loaded.devices.keys()][0]
  }
  const definition = name === undefined ? undefined : loaded.devices.get(name)
  if (definition === undefined) throw new RangeError(`${file}: no devices`)
  return definition.create({
    ...(options.eom === undefined ? {} : { eom: options.eom }),
    ...(resource === undefined ? {} : { resource }),
    ...(options.compat === undefined ? {} : { compat: options.compat }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  })
}

/** A loose canonical form of a VISA resource name: case, board 0 and `inst0` do not matter. */
function resourceKey(name: string): string {
  return name
    .trim()
    .toUpperCase()
    .replace(/^([A-Z]+)0?::/, '$1::')
    .replace(/::INST0::INSTR$/, '::INSTR')
}

// ---------------------------------------------------------------------------------------------
// Reading and validating

type Plain = string | Plain[] | { [key: string]: Plain }

function scalarText(value: unknown): string {
  if (value === null || value === undefined) return ''
  return typeof value === 'string' ? value : JSON.stringify(value)
}

class Reader {
  constructor(
    readonly file: string,
    readonly doc: Document,
    readonly lines: LineCounter,
  ) {}

  fail(node: Node | null | undefined, field: string, reason: string): never {
    const offset = node?.range?.[0] ?? 0
    const { line, col } = this.lines.linePos(offset)
    throw new DeviceFileError(this.file, line, col, field, reason)
  }

  plain(node: Node | null | undefined): Plain {
    if (node === null || node === undefined) return ''
    if (isScalar(node)) return scalarText(node.value)
    if (isSeq(node)) return node.items.map((item) => this.plain(item as Node))
    if (isMap(node)) {
      const out: Record<string, Plain> = {}
      for (const pair of node.items) out[this.keyOf(pair.key as Node)] = this.plain(pair.value as Node)
      return out
    }
    // An alias: resolve it.
    return this.plain((node as { resolve?: (doc: Document) => Node | undefined }).resolve?.(this.doc))
  }

  keyOf(node: Node | null | undefined): string {
    if (isScalar(node)) return String(node.value)
    return JSON.stringify(this.plain(node))
  }

  /** Entries of a mapping node, with their nodes (for positions). */
  entries(node: Node | null | undefined, field: string): { key: string; node: Node | null; keyNode: Node | null }[] {
    const target = this.deref(node)
    if (target === null || target === undefined || (isScalar(target) && (target.value === '' || target.value === null))) return []
    if (!isMap(target)) this.fail(node, field, 'expected a mapping')
    return target.items.map((pair) => ({ key: this.keyOf(pair.key as Node), node: this.deref(pair.value as Node) ?? null, keyNode: (pair.key as Node) ?? null }))
  }

  items(node: Node | null | undefined, field: string): (Node | null)[] {
    const target = this.deref(node)
    if (target === null || target === undefined || (isScalar(target) && (target.value === '' || target.value === null))) return []
    if (!isSeq(target)) this.fail(node, field, 'expected a list')
    return target.items.map((item) => this.deref(item as Node) ?? null)
  }

  deref(node: Node | null | undefined): Node | null | undefined {
    if (node === null || node === undefined) return node
    if (!isScalar(node) && !isMap(node) && !isSeq(node)) return (node as { resolve?: (doc: Document) => Node | undefined }).resolve?.(this.doc)
    return node
  }

  get(node: Node | null | undefined, key: string): Node | null | undefined {
    const target = this.deref(node)
    if (!isMap(target)) return undefined
    for (const pair of target.items) if (this.keyOf(pair.key as Node) === key) return this.deref(pair.value as Node) ?? null
    return undefined
  }

  has(node: Node | null | undefined, key: string): boolean {
    return this.get(node, key) !== undefined
  }

  string(node: Node | null | undefined, field: string): string {
    const target = this.deref(node)
    if (target === null || target === undefined) return ''
    if (!isScalar(target)) this.fail(node, field, 'expected a string')
    return scalarText(target.value)
  }
}

/** Parse device-file text (exported for tests and for in-memory files). */
export function parseDevices(text: string, file: string, options: { compat?: PyvisaSimCompat } = {}): LoadedDevices {
  const lines = new LineCounter()
  const doc = parseDocument(text, { schema: 'failsafe', lineCounter: lines, uniqueKeys: false, prettyErrors: false })
  const r = new Reader(file, doc, lines)
  const first = doc.errors[0]
  if (first !== undefined) {
    const { line, col } = lines.linePos(first.pos[0])
    throw new DeviceFileError(file, line, col, '(yaml)', first.message.split('\n')[0] ?? first.message)
  }
  const root = doc.contents as Node | null
  if (!isMap(root)) r.fail(root, '(root)', 'a device file is a mapping with spec, devices and resources')
  const specNode = r.get(root, 'spec')
  if (specNode === undefined) r.fail(root, 'spec', 'the file does not specify a spec version')
  const spec = r.string(specNode, 'spec')
  const version = spec.split('.').map((part) => (/^\s*[+-]?\d+\s*$/.test(part) ? Number(part) : NaN))
  if (version.some(Number.isNaN)) r.fail(specNode, 'spec', `invalid spec version format, expected 'X.Y', found '${spec}'`)
  if (compareVersions(version, SPEC_VERSION) > 0) r.fail(specNode, 'spec', `spec ${spec} is newer than the supported ${SPEC_VERSION.join('.')}`)
  if (version[0] !== SPEC_VERSION[0]) r.fail(specNode, 'spec', `major version ${String(version[0])} is not supported (expected ${String(SPEC_VERSION[0])})`)

  const compat = options.compat ?? '0.5'
  const devices = new Map<string, DeviceDefinition>()
  const devicesNode = r.get(root, 'devices')
  for (const { key, node } of r.entries(devicesNode, 'devices')) {
    devices.set(key, buildDefinition(r, key, node, compat))
  }
  const resources: ResourceEntry[] = []
  for (const { key, node } of r.entries(r.get(root, 'resources'), 'resources')) {
    const field = `resources.${key}`
    if (!isMap(node)) r.fail(node, field, 'expected a mapping with a device')
    const deviceNode = r.get(node, 'device')
    if (deviceNode === undefined) r.fail(node, `${field}.device`, 'missing')
    const device = r.string(deviceNode, `${field}.device`)
    if (r.has(node, 'filename') || r.string(r.get(node, 'bundled'), `${field}.bundled`).toLowerCase() === 'true')
      r.fail(r.get(node, 'filename') ?? node, `${field}.filename`, 'devices from other files are not supported; put the device in this file')
    if (!devices.has(device)) r.fail(deviceNode, `${field}.device`, `no device '${device}' in devices`)
    const entry: ResourceEntry = { name: key, device }
    const channelIds = r.get(node, 'channel_ids')
    if (channelIds !== undefined) {
      entry.channelIds = {}
      for (const ch of r.entries(channelIds, `${field}.channel_ids`)) {
        entry.channelIds[ch.key] = r.items(ch.node, `${field}.channel_ids.${ch.key}`).map((item, i) => r.string(item, `${field}.channel_ids.${ch.key}[${i}]`))
      }
    }
    resources.push(entry)
  }
  return { file, spec, devices, resources }
}

function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}

/** pyvisa-sim's `to_bytes`: literal `\r` / `\n` escapes become CR / LF; in 0.7, `BYTES(...)` is Latin-1. */
function toBytes(text: string, compat: PyvisaSimCompat): Uint8Array {
  const value = text.replaceAll('\\r', '\r').replaceAll('\\n', '\n')
  if (compat === '0.5') return utf8(value)
  const parts = value.split(/(BYTES\([^)]+\))/)
  return concatBytes(parts.map((part) => {
    const m = /^BYTES\(([\s\S]*)\)$/.exec(part)
    return m === null ? utf8(part) : latin1(m[1] ?? '')
  }))
}

/** The bytes as a string of code units 0–255 (a lossless map key). */
const binaryString = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1')

type Response = Uint8Array | typeof NO_REPLY

interface SpecsDef {
  type: 'int' | 'float' | 'str'
  min: PyValue | undefined
  max: PyValue | undefined
  valid: PyValue[]
}

interface PropertyDef {
  name: string
  default: string
  getter: { q: string; r: string | undefined } | undefined
  setter: { q: string; r: string | undefined; e: string | undefined } | undefined
  specs: SpecsDef | undefined
  node: Node | null
}

interface ComponentDef {
  dialogues: { q: string; r: string | undefined }[]
  properties: PropertyDef[]
}

interface ChannelDef extends ComponentDef {
  name: string
  ids: string[]
  canSelect: boolean
}

interface LabwireDef {
  commands: { q: string; outcome: () => Outcome; delay: number | undefined }[]
  delays: Map<string, number>
  drift: { property: string; rate: number; noise: number; min: number | undefined; max: number | undefined; interval: number }[]
  faults: FaultSpec[]
  login: LoginDef | undefined
}


function convertSpec(type: SpecsDef['type'], value: PyValue): PyValue {
  if (type === 'int') return pyInt(value)
  if (type === 'float') return pyFloat(value)
  return pyStr(value)
}

function readSpecs(r: Reader, node: Node | null | undefined, field: string): SpecsDef | undefined {
  const target = r.deref(node)
  if (target === undefined || target === null) return undefined
  if (isScalar(target)) {
    if (r.string(target, field) === '') return undefined
    r.fail(target, field, 'expected a mapping with type, min, max, valid')
  }
  if (!isMap(target)) r.fail(target, field, 'expected a mapping with type, min, max, valid')
  if (target.items.length === 0) return undefined
  const typeNode = r.get(target, 'type')
  if (typeNode === undefined) r.fail(target, `${field}.type`, 'no property type was specified')
  const type = r.string(typeNode, `${field}.type`)
  if (type !== 'int' && type !== 'float' && type !== 'str') r.fail(typeNode, `${field}.type`, `invalid property type '${type}', valid types are: 'int', 'float', 'str'`)
  const convert = (n: Node | null | undefined, f: string): PyValue => {
    try {
      return convertSpec(type, r.string(n, f))
    } catch (error) {
      r.fail(n, f, error instanceof Error ? error.message : String(error))
    }
  }
  const minNode = r.get(target, 'min')
  const maxNode = r.get(target, 'max')
  const validNode = r.get(target, 'valid')
  let valid: PyValue[] = []
  if (validNode !== undefined) {
    const v = r.deref(validNode)
    if (isSeq(v)) valid = r.items(v, `${field}.valid`).map((item, i) => convert(item, `${field}.valid[${i}]`))
    else if (isScalar(v)) valid = Array.from(r.string(v, `${field}.valid`)).map((c) => convertSpec(type, c))
    else r.fail(v, `${field}.valid`, 'expected a list')
  }
  return {
    type,
    min: minNode === undefined ? undefined : convert(minNode, `${field}.min`),
    max: maxNode === undefined ? undefined : convert(maxNode, `${field}.max`),
    valid,
  }
}

function readPair(r: Reader, node: Node | null, field: string, withError: boolean): { q: string; r: string | undefined; e: string | undefined } {
  if (!isMap(node)) r.fail(node, field, 'expected a mapping with q (and r)')
  const qNode = r.get(node, 'q')
  if (qNode === undefined) r.fail(node, `${field}.q`, 'missing')
  const rNode = r.get(node, 'r')
  const eNode = withError ? r.get(node, 'e') : undefined
  return {
    q: stripSpaces(r.string(qNode, `${field}.q`)),
    r: rNode === undefined ? undefined : stripSpaces(r.string(rNode, `${field}.r`)),
    e: eNode === undefined ? undefined : stripSpaces(r.string(eNode, `${field}.e`)),
  }
}

function stripSpaces(text: string): string {
  return text.replace(/^ +| +$/g, '')
}

function readComponent(r: Reader, node: Node | null, field: string): ComponentDef {
  const dialogues = r.items(r.get(node, 'dialogues'), `${field}.dialogues`).map((item, i) => {
    const pair = readPair(r, item, `${field}.dialogues[${i}]`, false)
    try {
      new Parser(pair.q) // pyvisa-sim does not parse dialogues; only check that the text is a string
    } catch {
      // dialogues are exact text: braces are fine
    }
    return { q: pair.q, r: pair.r }
  })
  const properties = r.entries(r.get(node, 'properties'), `${field}.properties`).map(({ key, node: propNode }) => {
    const pf = `${field}.properties.${key}`
    if (!isMap(propNode)) r.fail(propNode, pf, 'expected a mapping with default, getter, setter, specs')
    const getterNode = r.get(propNode, 'getter')
    const setterNode = r.get(propNode, 'setter')
    const specs = readSpecs(r, r.get(propNode, 'specs'), `${pf}.specs`)
    const defaultNode = r.get(propNode, 'default')
    const def: PropertyDef = {
      name: key,
      default: r.string(defaultNode, `${pf}.default`),
      getter: getterNode === undefined ? undefined : (({ q, r: resp }) => ({ q, r: resp }))(readPair(r, getterNode, `${pf}.getter`, false)),
      setter: setterNode === undefined ? undefined : readPair(r, setterNode, `${pf}.setter`, true),
      specs,
      node: propNode,
    }
    if (specs !== undefined) {
      try {
        validate(def, def.default)
      } catch (error) {
        r.fail(defaultNode ?? propNode, `${pf}.default`, error instanceof Error ? error.message : String(error))
      }
    }
    if (def.setter !== undefined) {
      try {
        new Parser(def.setter.q)
      } catch (error) {
        r.fail(setterNode, `${pf}.setter.q`, error instanceof Error ? error.message : String(error))
      }
    }
    return def
  })
  return { dialogues, properties }
}

/** pyvisa-sim's Property.validate_value. */
function validate(def: PropertyDef, value: PyValue): PyValue {
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

function readLabwire(r: Reader, node: Node | null | undefined, field: string): LabwireDef {
  const out: LabwireDef = { commands: [], delays: new Map(), drift: [], faults: [], login: undefined }
  if (node === undefined || node === null) return out
  if (!isMap(node)) r.fail(node, field, 'expected a mapping')
  r.items(r.get(node, 'commands'), `${field}.commands`).forEach((item, i) => {
    const cf = `${field}.commands[${i}]`
    if (!isMap(item)) r.fail(item, cf, 'expected a mapping with q and one of r, hex, block')
    const qNode = r.get(item, 'q')
    if (qNode === undefined) r.fail(item, `${cf}.q`, 'missing')
    const q = r.string(qNode, `${cf}.q`)
    const delayNode = r.get(item, 'delay')
    const delayMs = delayNode === undefined ? undefined : readNumber(r, delayNode, `${cf}.delay`)
    let outcome: () => Outcome
    const blockNode = r.get(item, 'block')
    const hexNode = r.get(item, 'hex')
    const rNode = r.get(item, 'r')
    if (blockNode !== undefined) {
      outcome = readBlock(r, blockNode, `${cf}.block`)
    } else if (hexNode !== undefined) {
      const hex = r.string(hexNode, `${cf}.hex`).replace(/\s+/g, '')
      if (!/^([0-9a-fA-F]{2})*$/.test(hex)) r.fail(hexNode, `${cf}.hex`, 'expected pairs of hex digits')
      const bytes = Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16))
      outcome = () => bytes
    } else if (rNode !== undefined) {
      const bytes = utf8(r.string(rNode, `${cf}.r`))
      outcome = () => bytes
    } else {
      outcome = () => NO_REPLY
    }
    out.commands.push({ q, outcome, delay: delayMs })
  })
  for (const { key, node: d } of r.entries(r.get(node, 'delays'), `${field}.delays`)) out.delays.set(key, readNumber(r, d, `${field}.delays.${key}`))
  for (const { key, node: d } of r.entries(r.get(node, 'drift'), `${field}.drift`)) {
    const df = `${field}.drift.${key}`
    const num = (name: string, fallback: number | undefined): number | undefined => {
      const n = r.get(d, name)
      return n === undefined ? fallback : readNumber(r, n, `${df}.${name}`)
    }
    out.drift.push({ property: key, rate: num('rate', 0) ?? 0, noise: num('noise', 0) ?? 0, min: num('min', undefined), max: num('max', undefined), interval: num('interval', 100) ?? 100 })
  }
  r.items(r.get(node, 'faults'), `${field}.faults`).forEach((item, i) => {
    const plain = r.plain(item)
    try {
      out.faults.push(validateFaultSpec(plain))
    } catch (error) {
      const msg = error instanceof Error ? error.message : String(error)
      const key = msg.split(':')[0] ?? ''
      r.fail(r.get(item, key) ?? item, `${field}.faults[${i}].${key}`, msg.slice(key.length + 2))
    }
  })
  const loginNode = r.get(node, 'login')
  if (loginNode !== undefined) {
    const lf = `${field}.login`
    if (!isMap(loginNode)) r.fail(loginNode, lf, 'expected a mapping with username and password')
    const s = (name: string, fallback: string): string => {
      const n = r.get(loginNode, name)
      return n === undefined ? fallback : r.string(n, `${lf}.${name}`)
    }
    if (!r.has(loginNode, 'username')) r.fail(loginNode, `${lf}.username`, 'missing')
    out.login = {
      username: s('username', ''),
      password: s('password', ''),
      banner: s('banner', ''),
      loginPrompt: s('login_prompt', 'login: '),
      passwordPrompt: s('password_prompt', 'Password: '),
      prompt: s('prompt', '> '),
      failure: s('failure', 'Login incorrect'),
    }
  }
  return out
}

function readNumber(r: Reader, node: Node | null | undefined, field: string): number {
  const text = r.string(node, field)
  const value = Number(text)
  if (text.trim() === '' || !Number.isFinite(value)) r.fail(node, field, `expected a number, got '${text}'`)
  return value
}

const FORMATS: readonly SampleFormat[] = ['float32', 'float64', 'int8', 'int16', 'int32', 'uint8', 'uint16', 'ascii']

function readBlock(r: Reader, node: Node | null, field: string): () => Uint8Array {
  if (!isMap(node)) r.fail(node, field, 'expected a mapping with sine or values')
  const formatNode = r.get(node, 'format')
  const format = formatNode === undefined ? 'float32' : r.string(formatNode, `${field}.format`)
  if (!FORMATS.includes(format as SampleFormat)) r.fail(formatNode, `${field}.format`, `expected one of ${FORMATS.join(', ')}`)
  const orderNode = r.get(node, 'byte_order')
  const byteOrder = orderNode === undefined ? 'little' : r.string(orderNode, `${field}.byte_order`)
  if (byteOrder !== 'little' && byteOrder !== 'big') r.fail(orderNode, `${field}.byte_order`, "expected 'little' or 'big'")
  const encode = { format: format as SampleFormat, byteOrder: byteOrder === 'big' ? ('big' as const) : ('little' as const) }
  const valuesNode = r.get(node, 'values')
  if (valuesNode !== undefined) {
    const values = r.items(valuesNode, `${field}.values`).map((item, i) => readNumber(r, item, `${field}.values[${i}]`))
    const bytes = ieeeBlock(encodeSamples(values, encode))
    return () => bytes
  }
  const sineNode = r.get(node, 'sine')
  if (sineNode === undefined) r.fail(node, field, 'expected sine or values')
  const opt = (name: string): number | undefined => {
    const n = r.get(sineNode, name)
    return n === undefined ? undefined : readNumber(r, n, `${field}.sine.${name}`)
  }
  const options = { points: opt('points'), amplitude: opt('amplitude'), cycles: opt('cycles'), offset: opt('offset'), phase: opt('phase'), noise: opt('noise') }
  const clean = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Parameters<typeof sine>[0]
  if ((options.points ?? 100) > 10_000_000) r.fail(sineNode, `${field}.sine.points`, 'at most 10000000 points')
  return () => ieeeBlock(encodeSamples(sine(clean), encode))
}

function buildDefinition(r: Reader, name: string, node: Node | null, compat: PyvisaSimCompat): DeviceDefinition {
  const field = `devices.${name}`
  if (!isMap(node)) r.fail(node, field, 'expected a mapping')
  if (r.has(node, 'bases')) r.fail(r.get(node, 'bases'), `${field}.bases`, 'bases are not implemented (pyvisa-sim does not implement them either)')
  const delimiterNode = r.get(node, 'delimiter')
  const delimiter = delimiterNode === undefined ? ';' : r.string(delimiterNode, `${field}.delimiter`)
  const eom: Record<string, Eom> = {}
  for (const { key, node: e } of r.entries(r.get(node, 'eom'), `${field}.eom`)) {
    const parts = key.split(' ')
    if (parts.length !== 2 || !INTERFACE_TYPES.has((parts[0] ?? '').toLowerCase()))
      r.fail(e, `${field}.eom.${key}`, "expected '<INTERFACE> <CLASS>', e.g. 'TCPIP SOCKET', 'GPIB INSTR', 'ASRL INSTR'")
    const pair = readPair(r, e, `${field}.eom.${key}`, false)
    eom[key] = { q: pair.q, r: pair.r ?? '' }
  }
  // error: a string, or response / status_register / error_queue
  const errorNode = r.get(node, 'error')
  let errorText: string | undefined
  let commandError: string | undefined
  const registers: { q: string; bits: Map<string, bigint> }[] = []
  const queues: { q: string; default: string; messages: Map<string, string> }[] = []
  if (errorNode !== undefined && errorNode !== null && isScalar(errorNode)) {
    errorText = r.string(errorNode, `${field}.error`)
    commandError = errorText
  } else if (errorNode !== undefined && errorNode !== null) {
    if (!isMap(errorNode)) r.fail(errorNode, `${field}.error`, 'expected a string or a mapping with response, status_register, error_queue')
    const response = r.get(errorNode, 'response')
    if (response !== undefined) {
      const ce = r.get(response, 'command_error')
      if (ce !== undefined) commandError = r.string(ce, `${field}.error.response.command_error`)
    }
    r.items(r.get(errorNode, 'status_register'), `${field}.error.status_register`).forEach((item, i) => {
      const sf = `${field}.error.status_register[${i}]`
      if (!isMap(item)) r.fail(item, sf, 'expected a mapping with q and error bits')
      const q = r.get(item, 'q')
      if (q === undefined) r.fail(item, `${sf}.q`, 'missing')
      const bits = new Map<string, bigint>()
      for (const entry of r.entries(item, sf)) {
        if (entry.key === 'q') continue
        try {
          bits.set(entry.key, pyInt(r.string(entry.node, `${sf}.${entry.key}`)))
        } catch (error) {
          r.fail(entry.node, `${sf}.${entry.key}`, error instanceof Error ? error.message : String(error))
        }
      }
      registers.push({ q: r.string(q, `${sf}.q`), bits })
    })
    r.items(r.get(errorNode, 'error_queue'), `${field}.error.error_queue`).forEach((item, i) => {
      const qf = `${field}.error.error_queue[${i}]`
      if (!isMap(item)) r.fail(item, qf, 'expected a mapping with q, default and error messages')
      const q = r.get(item, 'q')
      if (q === undefined) r.fail(item, `${qf}.q`, 'missing')
      const def = r.get(item, 'default')
      if (def === undefined) r.fail(item, `${qf}.default`, 'missing')
      const messages = new Map<string, string>()
      for (const entry of r.entries(item, qf)) {
        if (entry.key === 'q' || entry.key === 'default' || entry.key === 'strict') continue
        messages.set(entry.key, r.string(entry.node, `${qf}.${entry.key}`))
      }
      queues.push({ q: r.string(q, `${qf}.q`), default: r.string(def, `${qf}.default`), messages })
    })
  }
  const component = readComponent(r, node, field)
  const channels: ChannelDef[] = r.entries(r.get(node, 'channels'), `${field}.channels`).map(({ key, node: chNode }) => {
    const cf = `${field}.channels.${key}`
    if (!isMap(chNode)) r.fail(chNode, cf, 'expected a mapping with ids, can_select, dialogues, properties')
    const ids = r.items(r.get(chNode, 'ids'), `${cf}.ids`).map((item, i) => r.string(item, `${cf}.ids[${i}]`))
    const canSelectNode = r.get(chNode, 'can_select')
    const canSelect = !(canSelectNode !== undefined && r.string(canSelectNode, `${cf}.can_select`) === 'False')
    return { name: key, ids, canSelect, ...readComponent(r, chNode, cf) }
  })
  if (channels.some((c) => !c.canSelect) && !component.properties.some((p) => p.name === 'selected_channel')) {
    const bad = channels.find((c) => !c.canSelect)
    r.fail(r.get(node, 'channels'), `${field}.channels.${bad?.name ?? ''}.can_select`, "can_select: False needs a device property named 'selected_channel'")
  }
  const labwire = readLabwire(r, r.get(node, 'labwire'), `${field}.labwire`)
  return {
    name,
    eom,
    create: (options = {}) =>
      createDevice({ name, delimiter, eom, commandError, registers, queues, component, channels, labwire, compat: options.compat ?? compat }, options),
  }
}

// ---------------------------------------------------------------------------------------------
// Building a device: pyvisa-sim's matching order as commands of the one engine.

interface BuildInput {
  name: string
  delimiter: string
  eom: Record<string, Eom>
  commandError: string | undefined
  registers: { q: string; bits: Map<string, bigint> }[]
  queues: { q: string; default: string; messages: Map<string, string> }[]
  component: ComponentDef
  channels: ChannelDef[]
  labwire: LabwireDef
  compat: PyvisaSimCompat
}

class PropertyValue {
  private value: PyValue
  private readonly perChannel = new Map<string, PyValue>()

  constructor(
    readonly def: PropertyDef,
    readonly channel: ChannelState | undefined,
  ) {
    this.value = validate(def, def.default)
  }

  get(): PyValue {
    if (this.channel === undefined) return this.value
    const key = pyKey(this.channel.selected)
    return this.perChannel.has(key) ? (this.perChannel.get(key) as PyValue) : this.value
  }

  set(value: PyValue): void {
    const checked = validate(this.def, value)
    if (this.channel === undefined) this.value = checked
    else this.perChannel.set(pyKey(this.channel.selected), checked)
  }

  /** Per-channel values, for the control channel. */
  channelValues(ids: readonly string[]): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    for (const id of ids) {
      const key = pyKey(id)
      out[id] = pyToJson(this.perChannel.has(key) ? (this.perChannel.get(key) as PyValue) : this.value)
    }
    return out
  }

  setChannel(id: string, value: PyValue): void {
    this.perChannel.set(pyKey(id), validate(this.def, value))
  }
}

interface ChannelState {
  selected: PyValue
}

function isValueError(error: unknown): boolean {
  return error instanceof PyException && error.pyType === 'ValueError'
}

function randomResponse(response: string): string {
  const directive = /{RANDOM\((\d*.\d*), (\d*.\d*), (\d*)\).*}/.exec(response)
  if (directive === null) throw new PyException('Exception', 'pyvisa-sim: Wrong RANDOM directive, see documentation for correct usage.')
  const template = response.replace(/RANDOM\((\d*.\d*), (\d*.\d*), (\d*)\)/g, '')
  const min = pyFloat(directive[1] ?? '')
  const max = pyFloat(directive[2] ?? '')
  const count = Number(pyInt(directive[3] ?? ''))
  const out: string[] = []
  for (let i = 0; i < count; i++) out.push(pyFormat(template, [min + (max - min) * Math.random()]))
  return out.join(', ')
}

function createDevice(input: BuildInput, options: CreateDeviceOptions): Device<PyvisaState> {
  const { compat } = input
  const terminators = pickEom(input.eom, options.eom)
  const tb = (text: string): Uint8Array => toBytes(text, compat)
  const response = (text: string | undefined): Response => (text === undefined ? NO_REPLY : tb(text))
  const properties = new Map<string, PropertyValue>()
  for (const def of input.component.properties) properties.set(def.name, new PropertyValue(def, undefined))

  const registers = new Map<string, { value: bigint; bits: Map<string, bigint> }>()
  const registerByError = new Map<string, { value: bigint; bits: Map<string, bigint> }>()
  for (const reg of input.registers) {
    const state = { value: 0n, bits: reg.bits }
    registers.set(binaryString(tb(reg.q)), state)
    for (const key of reg.bits.keys()) registerByError.set(key, state)
  }
  const queues = new Map<string, { queue: Uint8Array[]; default: Uint8Array; messages: Map<string, Uint8Array> }>()
  for (const q of input.queues) {
    queues.set(binaryString(tb(q.q)), {
      queue: [],
      default: tb(q.default),
      messages: new Map([...q.messages].map(([k, v]) => [k, tb(v)])),
    })
  }
  const commandErrorResponse: Response = response(input.commandError)
  /** pyvisa-sim's Device.error_response('command_error'). */
  const errorResponse = (): Response => {
    const register = registerByError.get('command_error')
    if (register !== undefined) register.value |= register.bits.get('command_error') ?? 0n
    for (const queue of queues.values()) {
      const message = queue.messages.get('command_error')
      if (message !== undefined) queue.queue.push(message)
    }
    return commandErrorResponse
  }

  const dialogueResponse = (value: Response): Response => {
    if (compat === '0.7' && value !== NO_REPLY) {
      // pyvisa-sim 0.6+ decodes every dialogue reply as UTF-8 to look for RANDOM: raw bytes that are not UTF-8 raise there.
      const text = new TextDecoder('utf-8', { fatal: true }).decode(value)
      if (text.includes('RANDOM')) return utf8(randomResponse(text))
    }
    return value
  }
  const getterResponse = (template: string | undefined, value: PyValue): Uint8Array => {
    if (template === undefined) throw new PyException('TypeError', "getter without 'r'")
    if (compat === '0.7' && template.includes('RANDOM')) return utf8(randomResponse(template))
    return utf8(pyFormat(template, [value]))
  }

  const dialogues = new Map<string, Response>()
  for (const d of input.component.dialogues) dialogues.set(binaryString(tb(d.q)), response(d.r))
  const getters = new Map<string, { prop: PropertyValue; r: string | undefined }>()
  const setters: { prop: PropertyValue; parser: Parser; r: Response; e: Response }[] = []
  for (const def of input.component.properties) {
    const prop = properties.get(def.name) as PropertyValue
    if (def.getter !== undefined) getters.set(binaryString(tb(def.getter.q)), { prop, r: def.getter.r })
    if (def.setter !== undefined) setters.push({ prop, parser: new Parser(def.setter.q), r: response(def.setter.r), e: response(def.setter.e) })
  }

  const commands: Command[] = []
  const device = new Device<PyvisaState>({
    name: input.name,
    state: { properties: {} },
    requestTerminator: terminators.q === '' ? '\n' : tb(terminators.q),
    responseTerminator: tb(terminators.r),
    delimiter: input.delimiter === '' ? null : utf8(input.delimiter),
    unknownCommand: () => {
      const out = errorResponse()
      return out === NO_REPLY ? undefined : out
    },
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    stateAccess: {
      get: () => {
        const out: Record<string, unknown> = {}
        for (const [name, prop] of properties) out[name] = pyToJson(prop.get())
        for (const ch of channelStates) {
          const group: Record<string, unknown> = {}
          for (const [name, prop] of ch.properties) group[name] = prop.channelValues(ch.ids)
          out[`channels.${ch.name}`] = group
        }
        return out
      },
      set: (key, value) => {
        const py = jsonToPy(value)
        const m = /^channels\.([^.]+)\.([^.]+)\.(.+)$/.exec(key)
        try {
          if (m !== null) {
            const ch = channelStates.find((c) => c.name === m[1])
            const prop = ch?.properties.get(m[3] ?? '')
            if (prop === undefined) throw new TypeError(`${key}: no such channel property (use channels.<group>.<id>.<property>)`)
            prop.setChannel(m[2] ?? '', py)
            return
          }
          const prop = properties.get(key)
          if (prop === undefined) throw new TypeError(`${key}: no such property`)
          prop.set(py)
        } catch (error) {
          if (error instanceof PyException) throw new RangeError(`${key}: ${error.message}`)
          throw error
        }
      },
    },
  })
  Object.defineProperty(device.state, 'properties', {
    enumerable: true,
    get: () => Object.fromEntries([...properties].map(([k, p]) => [k, p.get()])),
  })

  // labwire extension commands come first, so they can add binary answers next to pyvisa-sim's.
  for (const c of input.labwire.commands) {
    const key = binaryString(utf8(c.q))
    const command: Command = { label: `labwire: ${c.q}`, run: (_query, raw) => (binaryString(raw) === key ? c.outcome() : NOT_MATCHED) }
    if (c.delay !== undefined) command.delay = c.delay
    commands.push(command)
  }
  if (input.labwire.delays.size > 0) {
    // Per-command delays apply to whatever command answers: a pass-through command that waits first.
    commands.push({
      label: 'labwire: delays',
      run: async (query): Promise<Outcome> => {
        const ms = input.labwire.delays.get(query)
        if (ms !== undefined) await new Promise((resolve) => setTimeout(resolve, ms))
        return NOT_MATCHED
      },
    })
  }
  commands.push({ label: 'dialogues', run: (_q, raw) => { const hit = dialogues.get(binaryString(raw)); return hit === undefined ? NOT_MATCHED : dialogueResponse(hit) } })
  commands.push({
    label: 'getters',
    run: (_q, raw) => {
      const hit = getters.get(binaryString(raw))
      return hit === undefined ? NOT_MATCHED : getterResponse(hit.r, hit.prop.get())
    },
  })
  commands.push({
    label: 'status registers',
    run: (_q, raw) => {
      const reg = registers.get(binaryString(raw))
      if (reg === undefined) return NOT_MATCHED
      const value = reg.value
      reg.value = 0n
      return tb(value.toString())
    },
  })
  commands.push({
    label: 'error queues',
    run: (_q, raw) => {
      const queue = queues.get(binaryString(raw))
      if (queue === undefined) return NOT_MATCHED
      return queue.queue.shift() ?? queue.default
    },
  })
  commands.push({
    label: 'setters',
    run: (_query, raw) => {
      const query = strictUtf8(raw)
      for (const setter of setters) {
        let value: PyValue
        try {
          value = setter.parser.parse(query)
        } catch (error) {
          if (isValueError(error)) continue
          throw error
        }
        try {
          setter.prop.set(value)
          return setter.r
        } catch (error) {
          if (!isValueError(error)) throw error
          if (setter.e !== NO_REPLY) return setter.e
          if (compat === '0.5') return errorResponse()
        }
      }
      return NOT_MATCHED
    },
  })

  // Channels
  const channelStates = input.channels.map((def) => {
    const ids = options.resource?.channelIds?.[def.name]?.length ? (options.resource.channelIds[def.name] as string[]) : def.ids
    const state: ChannelState = { selected: null }
    const props = new Map<string, PropertyValue>()
    for (const p of def.properties) props.set(p.name, new PropertyValue(p, state))
    const chDialogues: { q: Uint8Array; r: Response }[] = def.dialogues.map((d) => ({ q: tb(d.q), r: response(d.r) }))
    const chGetters = def.properties.filter((p) => p.getter !== undefined).map((p) => ({ q: tb((p.getter as { q: string }).q), r: (p.getter as { r: string | undefined }).r, prop: props.get(p.name) as PropertyValue }))
    const chSetters: { prop: PropertyValue; parser: Parser; r: Response; e: Response }[] = def.properties.filter((p) => p.setter !== undefined).map((p) => {
      const s = p.setter as { q: string; r: string | undefined; e: string | undefined }
      return { prop: props.get(p.name) as PropertyValue, parser: new Parser(s.q), r: response(s.r), e: response(s.e) }
    })
    const defaultKey = (q: Uint8Array): string => binaryString(q)
    interface Tables {
      dialogues: Map<string, Response>
      getters: Map<string, { prop: PropertyValue; r: string | undefined }>
    }
    const byId = new Map<string, Tables>()
    const formatted = (id: string): Tables => {
      const cached = byId.get(id)
      if (cached !== undefined) return cached
      const fmt = (q: Uint8Array): string => binaryString(utf8(pyFormat(new TextDecoder().decode(q), [], { ch_id: id })))
      const tables: Tables = {
        dialogues: new Map(chDialogues.map((d) => [fmt(d.q), d.r])),
        getters: new Map(chGetters.map((g) => [fmt(g.q), { prop: g.prop, r: g.r }])),
      }
      byId.set(id, tables)
      return tables
    }
    const defaultTables: Tables = {
      dialogues: new Map(chDialogues.map((d) => [defaultKey(d.q), d.r])),
      getters: new Map(chGetters.map((g) => [defaultKey(g.q), { prop: g.prop, r: g.r }])),
    }
    const match = (raw: Uint8Array): Response | undefined => {
      const key = binaryString(raw)
      if (!def.canSelect) {
        const selectedProp = properties.get('selected_channel')
        if (selectedProp === undefined) throw new PyException('KeyError', "'selected_channel'")
        const chId = selectedProp.get()
        if (!ids.some((id) => pyEquals(id, chId))) return undefined
        state.selected = chId
        const d = defaultTables.dialogues.get(key)
        if (d !== undefined) return dialogueResponse(d)
        const g = defaultTables.getters.get(key)
        if (g !== undefined) return getterResponse(g.r, g.prop.get())
      } else {
        for (const id of ids) {
          state.selected = id
          const tables = formatted(id)
          const d = tables.dialogues.get(key)
          if (d !== undefined) return dialogueResponse(d)
          const g = tables.getters.get(key)
          if (g !== undefined) return getterResponse(g.r, g.prop.get())
        }
      }
      const query = strictUtf8(raw)
      for (const setter of chSetters) {
        let parsed: PyValue
        try {
          parsed = setter.parser.parse(query)
        } catch (error) {
          if (isValueError(error)) continue
          throw error
        }
        try {
          if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) && Object.hasOwn(parsed, 'ch_id')) {
            state.selected = parsed.ch_id as PyValue
            if (!Object.hasOwn(parsed, '0')) throw new PyException('KeyError', "'0'")
            const v = parsed['0'] as PyValue
            setter.prop.set(compat === '0.7' ? pyStr(v) : v)
          } else {
            setter.prop.set(compat === '0.7' ? pyStr(parsed) : parsed)
          }
          return setter.r
        } catch (error) {
          if (!isValueError(error)) throw error
          if (setter.e !== NO_REPLY) return setter.e
          return errorResponse()
        }
      }
      return undefined
    }
    return { name: def.name, ids, properties: props, match }
  })
  if (channelStates.length > 0) {
    commands.push({
      label: 'channels',
      run: (_query, raw) => {
        for (const ch of channelStates) {
          const out = ch.match(raw)
          // pyvisa-sim tests `if response:` here: an empty reply counts as no match.
          if (out !== undefined && (out === NO_REPLY || out.length > 0)) return out
        }
        return NOT_MATCHED
      },
    })
  }
  device.commands.push(...commands)

  for (const drift of input.labwire.drift) {
    const prop = properties.get(drift.property)
    if (prop === undefined) throw new RangeError(`${input.name}: labwire.drift.${drift.property}: no such property`)
    device.onTick(drift.interval, (_d, elapsed) => {
      const current = pyFloat(prop.get())
      let next = current + (drift.rate * elapsed) / 1000 + (drift.noise === 0 ? 0 : (Math.random() * 2 - 1) * drift.noise)
      if (drift.min !== undefined) next = Math.max(drift.min, next)
      if (drift.max !== undefined) next = Math.min(drift.max, next)
      try {
        prop.set(prop.def.specs?.type === 'int' ? BigInt(Math.round(next)) : next)
      } catch {
        // out of the property's specs: keep the old value
      }
    })
  }
  for (const fault of input.labwire.faults) device.faults.add(fault)
  if (input.labwire.login !== undefined) device.login = input.labwire.login
  return device
}

const strictDecoder = new TextDecoder('utf-8', { fatal: true })

/** `query.decode('utf-8')` as pyvisa-sim does before matching setters: bytes that are not UTF-8 raise. */
function strictUtf8(raw: Uint8Array): string {
  try {
    return strictDecoder.decode(raw)
  } catch {
    throw new PyException('ValueError', "UnicodeDecodeError: 'utf-8' codec can't decode the query")
  }
}

function jsonToPy(value: unknown): PyValue {
  if (typeof value === 'number') return Number.isInteger(value) ? BigInt(value) : value
  if (typeof value === 'string' || typeof value === 'boolean' || value === null) return value
  throw new TypeError('expected a number, a string, a boolean or null')
}
