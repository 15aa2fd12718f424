/**
 * Reading pyvisa-sim device files: YAML text → the plain {@link FileModel}, validated, every
 * error at `file:line:column`. Bounded: the file's size ({@link ReadOptions.maxFileSize}) and
 * what its aliases expand to ({@link ReadOptions.maxAliasExpansion}) are capped, so a small file
 * cannot make the reader do exponential work (an alias bomb).
 *
 * @module
 */
import { open } from 'node:fs/promises'
import { throwIfAborted, type AbortOptions } from '@labwire/core'
import { isAlias, isMap, isScalar, isSeq, Lexer, LineCounter, parseDocument, type Alias, type Node } from 'yaml'
import type { SampleFormat } from '../bytes.js'
import { validateFaultSpec } from '../faults.js'
import { Parser } from '../python/stringparser.js'
import { pyInt, type PyValue } from '../python/values.js'
import { convertSpec, validateValue, type ChannelDef, type ComponentDef, type DeviceModel, type Eom, type FileModel, type LabwireDef, type LabwireReply, type PropertyDef, type ResourceEntry, type SpecsDef } from './model.js'

/** A malformed device file: the message names the file, the line and column, and the field. */
export class DeviceFileError extends Error {
  override readonly name: string = 'DeviceFileError'
  /** Stable code: `ERR_DEVICE_FILE`, or a subclass's. */
  readonly code: string = 'ERR_DEVICE_FILE'
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

/**
 * A device file whose YAML aliases expand to more than {@link ReadOptions.maxAliasExpansion}
 * nodes (an alias bomb), or refer to themselves. `line` and `column` are the alias where the
 * limit was crossed.
 */
export class DeviceFileAliasError extends DeviceFileError {
  override readonly name: string = 'DeviceFileAliasError'
  override readonly code: string = 'ERR_DEVICE_FILE_ALIASES'
}

/** A device file over {@link ReadOptions.maxFileSize} bytes or {@link ReadOptions.maxYamlTokens} YAML tokens. */
export class DeviceFileTooLargeError extends DeviceFileError {
  override readonly name: string = 'DeviceFileTooLargeError'
  override readonly code: string = 'ERR_DEVICE_FILE_TOO_LARGE'
  constructor(
    file: string,
    /** The limit: bytes, or tokens. */
    readonly limit: number,
    /** Which limit. */
    readonly option: 'maxFileSize' | 'maxYamlTokens' = 'maxFileSize',
  ) {
    super(file, 1, 1, '(file)', option === 'maxFileSize' ? `the file is over ${limit} bytes (maxFileSize)` : `the file has more than ${limit} YAML tokens (maxYamlTokens)`)
  }
}

/** Default {@link ReadOptions.maxFileSize}: 4 MiB. */
export const DEFAULT_MAX_FILE_SIZE = 4 * 1024 * 1024
/** Default {@link ReadOptions.maxAliasExpansion}: 100,000 nodes. */
export const DEFAULT_MAX_ALIAS_EXPANSION = 100_000
/** Default {@link ReadOptions.maxYamlTokens}: 500,000 tokens. */
export const DEFAULT_MAX_YAML_TOKENS = 500_000

/** Limits of reading a device file. */
export interface ReadOptions {
  /** Largest file, in bytes. Default {@link DEFAULT_MAX_FILE_SIZE} (4 MiB); more is a {@link DeviceFileTooLargeError}. */
  maxFileSize?: number
  /**
   * Most YAML nodes that aliases (`*name`) may add to the document once expanded: each alias
   * counts the size of what it stands for, nested aliases included. Default
   * {@link DEFAULT_MAX_ALIAS_EXPANSION}; more is a {@link DeviceFileAliasError}.
   */
  maxAliasExpansion?: number
  /**
   * Most YAML tokens (scalars, indicators, indentation, line breaks) in the file. The `yaml`
   * package builds its syntax tree at roughly 0.3–1 MB/s on node-dense YAML (`[a,a,a,…]`), so
   * this bounds the time to read a file within `maxFileSize` (a long scalar, such as a recorded
   * `hex:` block, is one token). Counted by the lexer before parsing (about 10× faster), stopping
   * at the limit. Default {@link DEFAULT_MAX_YAML_TOKENS}; more is a {@link DeviceFileTooLargeError}.
   */
  maxYamlTokens?: number
}

/** Read a file, at most `maxFileSize` bytes (a FIFO or `/dev/zero` cannot make it read forever). */
export async function readBounded(file: string, options: ReadOptions & AbortOptions = {}): Promise<string> {
  throwIfAborted(options)
  const limit = options.maxFileSize ?? DEFAULT_MAX_FILE_SIZE
  const handle = await open(file, 'r')
  try {
    const chunks: Buffer[] = []
    let total = 0
    for (;;) {
      throwIfAborted(options)
      const buffer = Buffer.allocUnsafe(Math.min(64 * 1024, limit + 1 - total))
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null)
      if (bytesRead === 0) break
      total += bytesRead
      if (total > limit) throw new DeviceFileTooLargeError(file, limit)
      chunks.push(buffer.subarray(0, bytesRead))
    }
    return Buffer.concat(chunks, total).toString('utf8')
  } finally {
    await handle.close()
  }
}

const SPEC_VERSION: readonly number[] = [1, 1]
const INTERFACE_TYPES = new Set(['gpib', 'vxi', 'gpib_vxi', 'asrl', 'pxi', 'tcpip', 'usb', 'rio', 'firewire', 'rsnrp', 'unknown'])

type Plain = string | Plain[] | { [key: string]: Plain }

function scalarText(value: unknown): string {
  if (value === null || value === undefined) return ''
  return typeof value === 'string' ? value : JSON.stringify(value)
}

/** The parsed YAML with positions; aliases resolved once, through a table built by {@link Reader.checkAliases}. */
class Reader {
  private readonly targets = new Map<Alias, Node>()

  constructor(
    readonly file: string,
    readonly lines: LineCounter,
  ) {}

  fail(node: Node | null | undefined, field: string, reason: string, kind: typeof DeviceFileError = DeviceFileError): never {
    const offset = node?.range?.[0] ?? 0
    const { line, col } = this.lines.linePos(offset)
    throw new kind(this.file, line, col, field, reason)
  }

  /**
   * One walk over the document in order (linear in its size): resolve every alias to the last
   * anchor before it (YAML's rule), refuse recursive aliases and non-scalar mapping keys
   * (PyYAML refuses them too: unhashable), and count what the aliases expand to, failing at the
   * alias where the count passes `limit`.
   */
  checkAliases(root: Node | null, limit: number): void {
    const anchors = new Map<string, Node>()
    const sizes = new Map<Node, number>()
    const open = new Set<Node>()
    let added = 0
    const visit = (node: Node | null | undefined): number => {
      if (node === null || node === undefined) return 1
      if (isAlias(node)) {
        const target = anchors.get(node.source)
        if (target === undefined) this.fail(node, '(yaml)', `alias *${node.source} has no anchor &${node.source} before it`)
        if (open.has(target)) this.fail(node, '(yaml)', `alias *${node.source} refers to a node that contains it (a recursive alias)`, DeviceFileAliasError)
        this.targets.set(node, target)
        const size = sizes.get(target) ?? 1
        added += size
        if (added > limit)
          this.fail(node, '(yaml)', `aliases expand to more than ${limit} nodes (maxAliasExpansion): refused (an alias bomb?)`, DeviceFileAliasError)
        return size
      }
      if (node.anchor !== undefined && node.anchor !== null) anchors.set(node.anchor, node)
      let size = 1
      if (isMap(node)) {
        open.add(node)
        for (const pair of node.items) {
          const key = pair.key as Node | null
          size += visit(key)
          const keyTarget = isAlias(key) ? this.targets.get(key) : key
          if (keyTarget !== null && keyTarget !== undefined && !isScalar(keyTarget))
            this.fail(key, '(yaml)', 'a mapping key must be a plain value, not a list or a mapping (PyYAML refuses it too: unhashable key)')
          size += visit(pair.value as Node | null)
        }
        open.delete(node)
      } else if (isSeq(node)) {
        open.add(node)
        for (const item of node.items) size += visit(item as Node | null)
        open.delete(node)
      }
      sizes.set(node, size)
      return size
    }
    visit(root)
  }

  plain(node: Node | null | undefined): Plain {
    const target = this.deref(node)
    if (target === null || target === undefined) return ''
    if (isScalar(target)) return scalarText(target.value)
    if (isSeq(target)) return target.items.map((item) => this.plain(item as Node))
    if (isMap(target)) {
      const out: Record<string, Plain> = {}
      for (const pair of target.items) out[this.keyOf(pair.key as Node)] = this.plain(pair.value as Node)
      return out
    }
    return ''
  }

  /** A mapping key as text ({@link Reader.checkAliases} made sure it is a scalar). */
  keyOf(node: Node | null | undefined): string {
    const target = this.deref(node)
    return isScalar(target) ? String(target.value) : ''
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
    if (isAlias(node)) return this.targets.get(node)
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

/**
 * Device-file text → the plain model. YAML is read as pyvisa-sim reads it (PyYAML `BaseLoader`:
 * every scalar a string, duplicate keys allowed, the last wins).
 */
export function parseDeviceText(text: string, file: string, options: ReadOptions = {}): FileModel {
  const maxFileSize = options.maxFileSize ?? DEFAULT_MAX_FILE_SIZE
  if (text.length > maxFileSize || Buffer.byteLength(text) > maxFileSize) throw new DeviceFileTooLargeError(file, maxFileSize)
  const maxTokens = options.maxYamlTokens ?? DEFAULT_MAX_YAML_TOKENS
  const lexer = new Lexer().lex(text)
  for (let tokens = 0; lexer.next().done !== true; ) if (++tokens > maxTokens) throw new DeviceFileTooLargeError(file, maxTokens, 'maxYamlTokens')
  const lines = new LineCounter()
  const doc = parseDocument(text, { schema: 'failsafe', lineCounter: lines, uniqueKeys: false, prettyErrors: false })
  const r = new Reader(file, lines)
  const first = doc.errors[0]
  if (first !== undefined) {
    const { line, col } = lines.linePos(first.pos[0])
    throw new DeviceFileError(file, line, col, '(yaml)', first.message.split('\n')[0] ?? first.message)
  }
  const root = doc.contents as Node | null
  r.checkAliases(root, options.maxAliasExpansion ?? DEFAULT_MAX_ALIAS_EXPANSION)
  const rootMap = r.deref(root)
  if (!isMap(rootMap)) r.fail(root, '(root)', 'a device file is a mapping with spec, devices and resources')
  const specNode = r.get(rootMap, 'spec')
  if (specNode === undefined) r.fail(rootMap, 'spec', 'the file does not specify a spec version')
  const spec = r.string(specNode, 'spec')
  const version = spec.split('.').map((part) => (/^\s*[+-]?\d+\s*$/.test(part) ? Number(part) : NaN))
  if (version.some(Number.isNaN)) r.fail(specNode, 'spec', `invalid spec version format, expected 'X.Y', found '${spec}'`)
  if (compareVersions(version, SPEC_VERSION) > 0) r.fail(specNode, 'spec', `spec ${spec} is newer than the supported ${SPEC_VERSION.join('.')}`)
  if (version[0] !== SPEC_VERSION[0]) r.fail(specNode, 'spec', `major version ${String(version[0])} is not supported (expected ${String(SPEC_VERSION[0])})`)

  const devices = new Map<string, DeviceModel>()
  for (const { key, node } of r.entries(r.get(rootMap, 'devices'), 'devices')) devices.set(key, readDevice(r, key, node))
  const resources: ResourceEntry[] = []
  for (const { key, node } of r.entries(r.get(rootMap, 'resources'), 'resources')) {
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
  return { file, spec, devices: [...devices.values()], resources }
}

/** Read a device file from disk (size-capped) and parse it. */
export async function readDeviceFile(file: string, options: ReadOptions & AbortOptions = {}): Promise<FileModel> {
  return parseDeviceText(await readBounded(file, options), file, options)
}

function compareVersions(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
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
    }
    if (specs !== undefined) {
      try {
        validateValue(def, def.default)
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
    let reply: LabwireReply
    const blockNode = r.get(item, 'block')
    const hexNode = r.get(item, 'hex')
    const rNode = r.get(item, 'r')
    if (blockNode !== undefined) {
      reply = readBlock(r, blockNode, `${cf}.block`)
    } else if (hexNode !== undefined) {
      const hex = r.string(hexNode, `${cf}.hex`).replace(/\s+/g, '')
      if (!/^([0-9a-fA-F]{2})*$/.test(hex)) r.fail(hexNode, `${cf}.hex`, 'expected pairs of hex digits')
      reply = { kind: 'bytes', bytes: Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16)) }
    } else if (rNode !== undefined) {
      reply = { kind: 'text', text: r.string(rNode, `${cf}.r`) }
    } else {
      reply = { kind: 'none' }
    }
    out.commands.push({ q, reply, delay: delayMs })
  })
  for (const { key, node: d } of r.entries(r.get(node, 'delays'), `${field}.delays`)) out.delays.set(key, readNumber(r, d, `${field}.delays.${key}`))
  for (const { key, node: d } of r.entries(r.get(node, 'drift'), `${field}.drift`)) {
    const df = `${field}.drift.${key}`
    const num = (name: string, fallback: number | undefined): number | undefined => {
      const n = r.get(d, name)
      return n === undefined ? fallback : readNumber(r, n, `${df}.${name}`)
    }
    const interval = num('interval', 100) ?? 100
    if (!(interval > 0)) r.fail(r.get(d, 'interval'), `${df}.interval`, `must be a positive number of milliseconds, got ${interval}`)
    out.drift.push({ property: key, rate: num('rate', 0) ?? 0, noise: num('noise', 0) ?? 0, min: num('min', undefined), max: num('max', undefined), interval })
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

function readBlock(r: Reader, node: Node | null, field: string): LabwireReply {
  if (!isMap(node)) r.fail(node, field, 'expected a mapping with sine or values')
  const formatNode = r.get(node, 'format')
  const format = formatNode === undefined ? 'float32' : r.string(formatNode, `${field}.format`)
  if (!FORMATS.includes(format as SampleFormat)) r.fail(formatNode, `${field}.format`, `expected one of ${FORMATS.join(', ')}`)
  const orderNode = r.get(node, 'byte_order')
  const byteOrder = orderNode === undefined ? 'little' : r.string(orderNode, `${field}.byte_order`)
  if (byteOrder !== 'little' && byteOrder !== 'big') r.fail(orderNode, `${field}.byte_order`, "expected 'little' or 'big'")
  const base = { kind: 'block' as const, format: format as SampleFormat, byteOrder: byteOrder === 'big' ? ('big' as const) : ('little' as const) }
  const valuesNode = r.get(node, 'values')
  if (valuesNode !== undefined) {
    return { ...base, values: r.items(valuesNode, `${field}.values`).map((item, i) => readNumber(r, item, `${field}.values[${i}]`)), sine: undefined }
  }
  const sineNode = r.get(node, 'sine')
  if (sineNode === undefined) r.fail(node, field, 'expected sine or values')
  const opt = (name: string): number | undefined => {
    const n = r.get(sineNode, name)
    return n === undefined ? undefined : readNumber(r, n, `${field}.sine.${name}`)
  }
  const options = { points: opt('points'), amplitude: opt('amplitude'), cycles: opt('cycles'), offset: opt('offset'), phase: opt('phase'), noise: opt('noise') }
  if ((options.points ?? 100) > 10_000_000) r.fail(sineNode, `${field}.sine.points`, 'at most 10000000 points')
  return { ...base, values: undefined, sine: Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) }
}

function readDevice(r: Reader, name: string, node: Node | null): DeviceModel {
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
  let commandError: string | undefined
  const registers: DeviceModel['registers'] = []
  const queues: DeviceModel['queues'] = []
  if (errorNode !== undefined && errorNode !== null && isScalar(errorNode)) {
    commandError = r.string(errorNode, `${field}.error`)
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
  return { name, delimiter, eom, commandError, registers, queues, component, channels, labwire }
}
