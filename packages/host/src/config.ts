import { readFile } from 'node:fs/promises'
import { dirname, extname, resolve } from 'node:path'
import { parse as parseIni } from 'ini'
import { isMap, isScalar, LineCounter, parseDocument, type Node as YamlNode } from 'yaml'
import { ConfigError, type ConfigIssue } from './errors.js'

/** The transports a service can be served on. */
export const TRANSPORTS = ['tcp', 'telnet', 'tls', 'unix', 'udp', 'websocket', 'stdio', 'nats'] as const
/** A transport name. */
export type TransportName = (typeof TRANSPORTS)[number]

/** Framers by name (see the README's table). */
export const FRAMERS = ['line', 'crlf', 'cr', 'length16', 'length32', 'slip', 'cobs'] as const
/** A framer name. */
export type FramerName = (typeof FRAMERS)[number]

/** Payload codecs by name. */
export const CODECS = ['bytes', 'text', 'json', 'msgpack'] as const
/** A codec name. */
export type CodecName = (typeof CODECS)[number]

/** How a gateway knows a request has a reply: `auto` = a line with `?` (SCPI's rule), `always` = every line. */
export type ReplyRule = 'auto' | 'always'

/** The access policy of a service's server (the serving kernel's `access` option). */
export interface AccessConfig {
  maxSessions?: number
  exclusive?: 'queue' | 'refuse'
  queueTimeout?: number
}

/** One service, validated, with `[defaults]` and environment overrides applied. JSON-serialisable. */
export interface ServiceConfig {
  /** The section name. With `import_from`, the module's export of this name is served when there is one (speedysvc's rule). */
  name: string
  /** Position in the file: services boot in this order. */
  index: number
  /** The config file this came from. */
  file: string
  /** `import_from`, resolved against the config file's folder (a path), or a package specifier. */
  importFrom?: string
  /** The export to serve (`export` key); default: the section name, then `default`. */
  export?: string
  /** An instrument to re-serve (`resource`): `TCPIP::host::port::SOCKET`, `tcp://`, `telnet://`. */
  resource?: string
  /** A device or resource name inside a device file. */
  device?: string
  /** The device file's `eom` entry to use. */
  eom?: string
  transport: TransportName
  host: string
  port?: number
  path?: string
  endpoint?: string
  /** `transport = nats`: the NATS servers to publish on (`nats_servers`, comma-separated `nats://host:port`). */
  natsServers?: string[]
  framerIn?: FramerName
  framerOut?: FramerName
  codecIn?: CodecName
  codecOut?: CodecName
  minProcNum: number
  maxProcNum: number
  maxProcMemBytes?: number
  waitUntilCompleted: boolean
  allowInsecureSerialisation: boolean
  access: AccessConfig
  logDir?: string
  autoRegister: boolean
  registry?: string
  tlsCert?: string
  tlsKey?: string
  idleTimeout?: number
  requestTimeout?: number
  /** Gateway: the instrument's reply timeout, ms. */
  timeout: number
  /** Gateway: a lock's lease when `@lock` gives none, ms. */
  lockLease: number
  /** Gateway: how long a request from another client waits for a held lock, ms. */
  lockWait: number
  reply: ReplyRule
  /** The value of every key as written (after defaults and environment), for reload comparison and messages. */
  values: Record<string, string>
  /** 1-based line of each key in the file (defaults' keys at their line in `[defaults]`). */
  lines: Record<string, number>
}

/** The `[web monitor]` section. */
export interface MonitorConfig {
  host: string
  port: number
  token?: string
}

/** A whole config. */
export interface HostConfig {
  file: string
  services: ServiceConfig[]
  monitor?: MonitorConfig
}

type Kind = 'string' | 'int' | 'bool' | 'port' | 'ms' | readonly string[]

interface KeySpec {
  kind: Kind
  /** Allowed in [defaults]. */
  defaults?: boolean
}

const PROC = { kind: 'int', defaults: true } as const satisfies KeySpec

/** Every service key (canonical spelling) and its kind. */
const SERVICE_KEYS: Record<string, KeySpec> = {
  import_from: { kind: 'string' },
  export: { kind: 'string' },
  resource: { kind: 'string' },
  device: { kind: 'string' },
  eom: { kind: 'string' },
  transport: { kind: TRANSPORTS, defaults: true },
  tcp_bind: { kind: 'string', defaults: true },
  port: { kind: 'port', defaults: true },
  path: { kind: 'string' },
  endpoint: { kind: 'string' },
  nats_servers: { kind: 'string', defaults: true },
  framer: { kind: FRAMERS, defaults: true },
  framer_in: { kind: FRAMERS, defaults: true },
  framer_out: { kind: FRAMERS, defaults: true },
  codec: { kind: CODECS, defaults: true },
  codec_in: { kind: CODECS, defaults: true },
  codec_out: { kind: CODECS, defaults: true },
  min_proc_num: PROC,
  max_proc_num: PROC,
  max_proc_mem_bytes: PROC,
  wait_until_completed: { kind: 'bool', defaults: true },
  tcp_allow_insecure_serialisation: { kind: 'bool', defaults: true },
  max_sessions: { kind: 'int', defaults: true },
  exclusive: { kind: ['queue', 'refuse', 'false'], defaults: true },
  queue_timeout: { kind: 'ms', defaults: true },
  log_dir: { kind: 'string', defaults: true },
  auto_register: { kind: 'bool', defaults: true },
  registry: { kind: 'string', defaults: true },
  tls_cert: { kind: 'string', defaults: true },
  tls_key: { kind: 'string', defaults: true },
  idle_timeout: { kind: 'ms', defaults: true },
  request_timeout: { kind: 'ms', defaults: true },
  timeout: { kind: 'ms', defaults: true },
  lock_lease: { kind: 'ms', defaults: true },
  lock_wait: { kind: 'ms', defaults: true },
  reply: { kind: ['auto', 'always'], defaults: true },
}

/** Other spellings accepted for a key: speedysvc's reference page and README, and `host`. */
const ALIASES: Record<string, string> = {
  host: 'tcp_bind',
  bind_tcp: 'tcp_bind',
  force_insecure_serialisation: 'tcp_allow_insecure_serialisation',
}

const MONITOR_KEYS: Record<string, KeySpec> = { host: { kind: 'string' }, port: { kind: 'port' }, token: { kind: 'string' } }

const DEFAULTS = 'defaults'
const MONITOR = 'web monitor'
const MONITOR_ALIASES = new Set(['web monitor', 'web_monitor', 'webmonitor', 'monitor'])

/** One section as read from a file: values as strings, with the line of each key. */
interface RawSection {
  name: string
  line: number | undefined
  values: Map<string, { value: string; line: number | undefined }>
  /** YAML/JSON: a nested `access` map, flattened into max_sessions/exclusive/queue_timeout. */
}

/** Options for {@link loadConfig} and {@link parseConfig}. */
export interface LoadConfigOptions {
  /** Environment for `LABWIRE_<SERVICE>_<KEY>` overrides. Default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>
  /** Format; default from the extension: `.yaml`/`.yml`, `.json`, else `.ini`. */
  format?: 'ini' | 'yaml' | 'json'
}

/**
 * Read and validate a config file (speedysvc's `.ini` shape, or the same model in YAML or JSON).
 * Throws {@link ConfigError} listing every problem with file, section, key and line.
 *
 * @example
 * ```ts
 * const config = await loadConfig('lab.ini')
 * for (const service of config.services) console.log(service.name, service.transport, service.port)
 * ```
 */
export async function loadConfig(file: string, options: LoadConfigOptions = {}): Promise<HostConfig> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'permission denied' : `cannot be read (${error instanceof Error ? error.message : String(error)})`
    throw new ConfigError([{ file, reason }], { cause: error })
  }
  return parseConfig(text, file, options)
}

/** Validate config text as {@link loadConfig} does; `file` names it in errors and anchors relative paths. */
export function parseConfig(text: string, file: string, options: LoadConfigOptions = {}): HostConfig {
  const ext = extname(file).toLowerCase()
  const format = options.format ?? (ext === '.yaml' || ext === '.yml' ? 'yaml' : ext === '.json' ? 'json' : 'ini')
  const issues: ConfigIssue[] = []
  const sections = format === 'ini' ? readIni(text, file, issues) : readYaml(text, file, format, issues)
  if (issues.length > 0) throw new ConfigError(issues)
  const fromEnv = applyEnv(sections, options.env ?? process.env, issues)
  const config = validate(sections, file, fromEnv, issues)
  if (issues.length > 0) throw new ConfigError(issues)
  return config
}

// ---------------------------------------------------------------------------------------------
// Reading: .ini with the `ini` package (values), plus a line scan for positions.

function readIni(text: string, file: string, issues: ConfigIssue[]): RawSection[] {
  // Positions: `ini` reports none, so scan the text for section headers and keys.
  const positions = new Map<string, { line: number; keys: Map<string, number> }>()
  const order: string[] = []
  let current: string | undefined
  const lines = text.split(/\r?\n/)
  lines.forEach((raw, i) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return
    const header = /^\[(.*)\]$/.exec(line)
    if (header !== null) {
      current = (header[1] as string).trim()
      if (positions.has(current)) issues.push({ file, section: current, line: i + 1, reason: `section [${current}] appears twice (first at line ${positions.get(current)?.line ?? '?'})` })
      else {
        positions.set(current, { line: i + 1, keys: new Map() })
        order.push(current)
      }
      return
    }
    const eq = line.indexOf('=')
    const key = (eq < 0 ? line : line.slice(0, eq)).trim()
    if (current === undefined) {
      issues.push({ file, key, line: i + 1, reason: 'a key outside any section (start with [defaults] or [ServiceName])' })
      return
    }
    if (eq < 0) {
      issues.push({ file, section: current, key, line: i + 1, reason: 'expected "key = value"' })
      return
    }
    const keys = positions.get(current)?.keys
    if (keys?.has(key) === true) issues.push({ file, section: current, key, line: i + 1, reason: `"${key}" is set twice in this section (first at line ${keys.get(key) ?? '?'})` })
    else keys?.set(key, i + 1)
  })
  // Values: the `ini` package. A "." in a section name means nesting to it: escape it.
  const escaped = lines.map((raw) => raw.replace(/^(\s*\[)(.*)(\]\s*)$/, (_all, open: string, name: string, close: string) => `${open}${name.replace(/\./g, '\\.')}${close}`)).join('\n')
  let parsed: Record<string, unknown>
  try {
    parsed = parseIni(escaped)
  } catch (error) {
    issues.push({ file, reason: `not a valid .ini file: ${error instanceof Error ? error.message : String(error)}` })
    return []
  }
  const sections: RawSection[] = []
  for (const name of order) {
    const body = parsed[name]
    const position = positions.get(name)
    const values = new Map<string, { value: string; line: number | undefined }>()
    if (typeof body === 'object' && body !== null) {
      for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
        const line = position?.keys.get(key)
        if (Array.isArray(value) || (typeof value === 'object' && value !== null)) {
          issues.push({ file, section: name, key, ...(line === undefined ? {} : { line }), reason: 'expected one value' })
          continue
        }
        values.set(key, { value: String(value), line })
      }
    }
    sections.push({ name, line: position?.line, values })
  }
  return sections
}

// YAML and JSON: the `yaml` package (JSON is YAML 1.2), whose nodes carry their offsets.

function readYaml(text: string, file: string, format: 'yaml' | 'json', issues: ConfigIssue[]): RawSection[] {
  const counter = new LineCounter()
  const doc = parseDocument(text, { lineCounter: counter, uniqueKeys: true, prettyErrors: false })
  const lineOf = (node: YamlNode | null | undefined): number | undefined => (node?.range === undefined || node.range === null ? undefined : counter.linePos(node.range[0]).line)
  for (const error of doc.errors) {
    issues.push({ file, line: counter.linePos(error.pos[0]).line, reason: `not valid ${format === 'json' ? 'JSON' : 'YAML'}: ${error.message.split('\n')[0] ?? error.message}` })
  }
  if (issues.length > 0) return []
  const root = doc.contents
  if (root === null) return []
  if (!isMap(root)) {
    const line = lineOf(root)
    issues.push({ file, ...(line === undefined ? {} : { line }), reason: 'expected a map of sections (defaults, web monitor, one per service)' })
    return []
  }
  const sections: RawSection[] = []
  for (const pair of root.items) {
    const keyNode = pair.key as YamlNode
    const name = isScalar(keyNode) ? String(keyNode.value) : String(keyNode)
    const line = lineOf(keyNode)
    const values = new Map<string, { value: string; line: number | undefined }>()
    const body = pair.value as YamlNode | null
    if (body !== null && !(isScalar(body) && body.value === null)) {
      if (!isMap(body)) {
        issues.push({ file, section: name, ...(line === undefined ? {} : { line }), reason: 'expected a map of keys' })
        continue
      }
      for (const item of body.items) {
        const k = item.key as YamlNode
        const key = isScalar(k) ? String(k.value) : String(k)
        const v = item.value as YamlNode | null
        const keyLine = lineOf(k)
        if (key === 'access' && v !== null && isMap(v)) {
          // access: { max_sessions, exclusive, queue_timeout } is the flat keys, nested.
          for (const sub of v.items) {
            const sk = sub.key as YamlNode
            const subKey = isScalar(sk) ? String(sk.value) : String(sk)
            const sv = sub.value as YamlNode | null
            if (sv === null || !isScalar(sv)) {
              issues.push({ file, section: name, key: `access.${subKey}`, ...(lineOf(sk) === undefined ? {} : { line: lineOf(sk) as number }), reason: 'expected one value' })
              continue
            }
            values.set(subKey, { value: String(sv.value), line: lineOf(sk) })
          }
          continue
        }
        if (v === null || !isScalar(v)) {
          issues.push({ file, section: name, key, ...(keyLine === undefined ? {} : { line: keyLine }), reason: 'expected one value (a string, number or boolean)' })
          continue
        }
        values.set(key, { value: scalarText(v.value), line: keyLine })
      }
    }
    sections.push({ name, line, values })
  }
  return sections
}

function scalarText(value: unknown): string {
  if (value === null || value === undefined) return ''
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return value.toString()
  return JSON.stringify(value)
}

// ---------------------------------------------------------------------------------------------
// Environment overrides: LABWIRE_<SECTION>_<KEY>.

/** The environment-variable stem of a section: upper case, every other character `_`. */
export function envName(section: string): string {
  return section.toUpperCase().replace(/[^A-Z0-9]/g, '_')
}

/** Apply overrides; returns which `section\0key` pairs came from the environment (for messages). */
function applyEnv(sections: RawSection[], env: Readonly<Record<string, string | undefined>>, issues: ConfigIssue[]): Set<string> {
  const envSet = new Set<string>()
  // Longest stem first, so a service called "dmm_2" does not take "LABWIRE_DMM_2_PORT" from "dmm".
  const stems = sections.map((section) => ({ section, stem: `LABWIRE_${envName(section.name)}_` })).sort((a, b) => b.stem.length - a.stem.length)
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || !name.startsWith('LABWIRE_')) continue
    const match = stems.find(({ stem }) => name.startsWith(stem))
    if (match === undefined) continue
    const key = name.slice(match.stem.length).toLowerCase()
    const known = match.section.name === MONITOR || MONITOR_ALIASES.has(match.section.name) ? MONITOR_KEYS : SERVICE_KEYS
    if (!(key in known) && !(key in ALIASES && known === SERVICE_KEYS)) {
      const near = nearest(key, [...Object.keys(known), ...(known === SERVICE_KEYS ? Object.keys(ALIASES) : [])])
      issues.push({ file: 'environment', section: match.section.name, key: name, reason: `unknown key "${key}"${near === undefined ? '' : `; did you mean LABWIRE_${envName(match.section.name)}_${near.toUpperCase()}?`}` })
      continue
    }
    const canonical = known === SERVICE_KEYS ? (ALIASES[key] ?? key) : key
    for (const [alias, target] of Object.entries(ALIASES)) if (target === canonical && known === SERVICE_KEYS) match.section.values.delete(alias)
    match.section.values.set(canonical, { value, line: undefined })
    envSet.add(`${match.section.name}\0${canonical}`)
  }
  return envSet
}

// ---------------------------------------------------------------------------------------------
// Validation.

function validate(sections: RawSection[], file: string, envSet: ReadonlySet<string>, issues: ConfigIssue[]): HostConfig {
  const dir = dirname(resolve(file))
  const at = (section: string, key: string, line: number | undefined): Pick<ConfigIssue, 'file' | 'section' | 'key' | 'line'> => {
    const fromEnv = envSet.has(`${section}\0${key}`)
    return { file: fromEnv ? 'environment' : file, section, key: fromEnv ? `LABWIRE_${envName(section)}_${key.toUpperCase()}` : key, ...(line === undefined ? {} : { line }) }
  }
  let defaults: RawSection | undefined
  let monitor: MonitorConfig | undefined
  const services: RawSection[] = []
  for (const section of sections) {
    if (section.name === DEFAULTS) defaults = section
    else if (MONITOR_ALIASES.has(section.name.toLowerCase())) {
      const host = section.values.get('host')?.value ?? '127.0.0.1'
      let port = 5155
      for (const [key, { value, line }] of section.values) {
        if (!(key in MONITOR_KEYS)) {
          const near = nearest(key, Object.keys(MONITOR_KEYS))
          issues.push({ ...at(section.name, key, line), reason: `unknown key${near === undefined ? '' : `; did you mean "${near}"?`}` })
        } else if (key === 'port') {
          const parsed = convert(value, 'port')
          if (parsed instanceof Invalid) issues.push({ ...at(section.name, key, line), reason: parsed.reason })
          else port = parsed as number
        }
      }
      const token = section.values.get('token')?.value
      monitor = { host, port, ...(token === undefined ? {} : { token }) }
    } else services.push(section)
  }
  // [defaults]: only keys that make sense for every service.
  const inherited = new Map<string, { value: string; line: number | undefined }>()
  if (defaults !== undefined) {
    for (const [rawKey, entry] of defaults.values) {
      const key = ALIASES[rawKey] ?? rawKey
      const spec = SERVICE_KEYS[key]
      if (spec === undefined) {
        const near = nearest(rawKey, [...Object.keys(SERVICE_KEYS).filter((k) => SERVICE_KEYS[k]?.defaults === true), ...Object.keys(ALIASES)])
        issues.push({ ...at(DEFAULTS, rawKey, entry.line), reason: `unknown key${near === undefined ? '' : `; did you mean "${near}"?`}` })
        continue
      }
      if (spec.defaults !== true) {
        issues.push({ ...at(DEFAULTS, rawKey, entry.line), reason: `"${key}" belongs to one service, not to [defaults]` })
        continue
      }
      const checked = convert(entry.value, spec.kind)
      if (checked instanceof Invalid) {
        issues.push({ ...at(DEFAULTS, rawKey, entry.line), reason: checked.reason })
        continue
      }
      inherited.set(key, entry)
    }
  }
  const seenPorts = new Map<string, string>()
  const out: ServiceConfig[] = []
  services.forEach((section, index) => {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.\- ]*$/.test(section.name)) {
      issues.push({ file, section: section.name, ...(section.line === undefined ? {} : { line: section.line }), reason: 'a service name is letters, digits, "_", "-", "." and spaces' })
      return
    }
    const merged = new Map(inherited)
    const lines: Record<string, number> = {}
    for (const [key, entry] of inherited) if (entry.line !== undefined) lines[key] = entry.line
    const typed: Record<string, unknown> = {}
    const own = new Map<string, { value: string; line: number | undefined }>()
    for (const [rawKey, entry] of section.values) {
      const key = ALIASES[rawKey] ?? rawKey
      if (SERVICE_KEYS[key] === undefined) {
        const near = nearest(rawKey, [...Object.keys(SERVICE_KEYS), ...Object.keys(ALIASES)])
        issues.push({ ...at(section.name, rawKey, entry.line), reason: `unknown key${near === undefined ? '' : `; did you mean "${near}"?`}` })
        continue
      }
      if (own.has(key)) {
        issues.push({ ...at(section.name, rawKey, entry.line), reason: `"${rawKey}" and its other spelling are both set` })
        continue
      }
      own.set(key, entry)
      merged.set(key, entry)
      if (entry.line !== undefined) lines[key] = entry.line
    }
    let bad = false
    for (const [key, entry] of merged) {
      const spec = SERVICE_KEYS[key] as KeySpec
      const value = convert(entry.value, spec.kind)
      if (value instanceof Invalid) {
        issues.push({ ...at(own.has(key) ? section.name : DEFAULTS, key, entry.line), reason: value.reason })
        bad = true
        continue
      }
      if (Array.isArray(spec.kind) && !spec.kind.includes(entry.value)) {
        const near = nearest(entry.value, spec.kind)
        issues.push({ ...at(own.has(key) ? section.name : DEFAULTS, key, entry.line), reason: `"${entry.value}" is not one of ${spec.kind.join(', ')}${near === undefined ? '' : `; did you mean "${near}"?`}` })
        bad = true
        continue
      }
      typed[key] = value
    }
    if (bad) return
    const where = (key: string): Pick<ConfigIssue, 'file' | 'section' | 'key' | 'line'> => at(section.name, key, lines[key] ?? section.line)
    const str = (key: string): string | undefined => typed[key] as string | undefined
    const num = (key: string): number | undefined => typed[key] as number | undefined
    const bool = (key: string): boolean | undefined => typed[key] as boolean | undefined

    const importFrom = str('import_from')
    const resource = str('resource')
    if (importFrom === undefined && resource === undefined) {
      issues.push({ file, section: section.name, ...(section.line === undefined ? {} : { line: section.line }), reason: 'needs import_from (a module or device file) or resource (an instrument to re-serve)' })
      return
    }
    if (importFrom !== undefined && resource !== undefined) {
      issues.push({ ...where('resource'), reason: 'give import_from or resource, not both' })
      return
    }
    const transport = (str('transport') ?? (str('path') !== undefined ? 'unix' : 'tcp')) as TransportName
    const minProcNum = num('min_proc_num') ?? 1
    const maxProcNum = num('max_proc_num') ?? Math.max(1, minProcNum)
    if (minProcNum < 1) issues.push({ ...where('min_proc_num'), reason: 'must be at least 1' })
    if (maxProcNum < 1) issues.push({ ...where('max_proc_num'), reason: 'must be at least 1' })
    if (minProcNum > maxProcNum) issues.push({ ...where('min_proc_num'), reason: `min_proc_num ${minProcNum} is above max_proc_num ${maxProcNum}` })
    if (resource !== undefined && maxProcNum > 1) issues.push({ ...where('max_proc_num'), reason: 'a gateway owns the instrument\'s one connection: it runs in one process (max_proc_num = 1)' })
    if ((transport === 'udp' || transport === 'stdio') && maxProcNum > 1) issues.push({ ...where('max_proc_num'), reason: `a ${transport} service runs in one process (max_proc_num = 1)` })
    const path = str('path')
    if (transport === 'unix' && path === undefined) issues.push({ ...where('transport'), reason: 'transport unix needs path (the socket file)' })
    if (transport !== 'unix' && path !== undefined) issues.push({ ...where('path'), reason: `path is for transport unix (this service's transport is ${transport})` })
    if (transport === 'tls' && (str('tls_cert') === undefined || str('tls_key') === undefined)) issues.push({ ...where('transport'), reason: 'transport tls needs tls_cert and tls_key (PEM files)' })
    const endpoint = str('endpoint')
    if (endpoint !== undefined && transport !== 'websocket') issues.push({ ...where('endpoint'), reason: `endpoint is the WebSocket path (this service's transport is ${transport})` })
    const natsServers = str('nats_servers')
      ?.split(',')
      .map((server) => server.trim())
      .filter((server) => server !== '')
    if (transport === 'nats' && (natsServers === undefined || natsServers.length === 0)) issues.push({ ...where('transport'), reason: 'transport nats needs nats_servers (e.g. nats://127.0.0.1:4222)' })
    if (transport === 'nats' && !/^[A-Za-z0-9_-]+$/.test(section.name)) issues.push({ ...where('transport'), reason: `a NATS service name may hold only A-Z a-z 0-9 - _ (ADR-32); rename the section "${section.name}"` })
    if (transport === 'nats' && maxProcNum > 1) issues.push({ ...where('max_proc_num'), reason: 'a nats service runs in one process per host: run it on more hosts (its queue group shares the load)' })
    const port = num('port')
    const host = str('tcp_bind') ?? '127.0.0.1'
    if (port !== undefined && port !== 0 && transport !== 'unix' && transport !== 'stdio' && transport !== 'nats') {
      const bind = `${transport === 'udp' ? 'udp' : 'tcp'}:${host}:${port}`
      const other = seenPorts.get(bind)
      if (other !== undefined) issues.push({ ...where('port'), reason: `port ${port} is also service "${other}"'s` })
      else seenPorts.set(bind, section.name)
    }
    const framerIn = (str('framer_in') ?? str('framer')) as FramerName | undefined
    const framerOut = (str('framer_out') ?? str('framer')) as FramerName | undefined
    const codecIn = (str('codec_in') ?? str('codec')) as CodecName | undefined
    const codecOut = (str('codec_out') ?? str('codec')) as CodecName | undefined
    const exclusive = str('exclusive')
    const access: AccessConfig = {
      ...(num('max_sessions') === undefined ? {} : { maxSessions: num('max_sessions') as number }),
      ...(exclusive === undefined || exclusive === 'false' ? {} : { exclusive: exclusive as 'queue' | 'refuse' }),
      ...(num('queue_timeout') === undefined ? {} : { queueTimeout: num('queue_timeout') as number }),
    }
    const values: Record<string, string> = {}
    for (const [key, entry] of merged) values[key] = entry.value
    const resolvePath = (p: string | undefined): string | undefined => (p === undefined ? undefined : resolve(dir, p))
    const service: ServiceConfig = {
      name: section.name,
      index,
      file,
      transport,
      host,
      minProcNum,
      maxProcNum,
      waitUntilCompleted: bool('wait_until_completed') ?? false,
      allowInsecureSerialisation: bool('tcp_allow_insecure_serialisation') ?? false,
      access,
      autoRegister: bool('auto_register') ?? false,
      timeout: num('timeout') ?? 5_000,
      lockLease: num('lock_lease') ?? 30_000,
      lockWait: num('lock_wait') ?? 10_000,
      reply: (str('reply') ?? 'auto') as ReplyRule,
      values,
      lines,
      ...(importFrom === undefined ? {} : { importFrom: resolveImport(importFrom, dir) }),
      ...(str('export') === undefined ? {} : { export: str('export') as string }),
      ...(resource === undefined ? {} : { resource }),
      ...(str('device') === undefined ? {} : { device: str('device') as string }),
      ...(str('eom') === undefined ? {} : { eom: str('eom') as string }),
      ...(port === undefined ? {} : { port }),
      ...(path === undefined ? {} : { path: resolvePath(path) as string }),
      ...(endpoint === undefined ? {} : { endpoint }),
      ...(natsServers === undefined || transport !== 'nats' ? {} : { natsServers }),
      ...(framerIn === undefined ? {} : { framerIn }),
      ...(framerOut === undefined ? {} : { framerOut }),
      ...(codecIn === undefined ? {} : { codecIn }),
      ...(codecOut === undefined ? {} : { codecOut }),
      ...(num('max_proc_mem_bytes') === undefined ? {} : { maxProcMemBytes: num('max_proc_mem_bytes') as number }),
      ...(str('log_dir') === undefined ? {} : { logDir: resolvePath(str('log_dir')) as string }),
      ...(str('registry') === undefined ? {} : { registry: str('registry') as string }),
      ...(str('tls_cert') === undefined ? {} : { tlsCert: resolvePath(str('tls_cert')) as string }),
      ...(str('tls_key') === undefined ? {} : { tlsKey: resolvePath(str('tls_key')) as string }),
      ...(num('idle_timeout') === undefined ? {} : { idleTimeout: num('idle_timeout') as number }),
      ...(num('request_timeout') === undefined ? {} : { requestTimeout: num('request_timeout') as number }),
    }
    out.push(service)
  })
  const names = new Map<string, string>()
  for (const service of out) {
    const stem = envName(service.name)
    const other = names.get(stem)
    if (other !== undefined) issues.push({ file, section: service.name, reason: `its environment name LABWIRE_${stem}_* is also service "${other}"'s: rename one` })
    names.set(stem, service.name)
  }
  return { file, services: out, ...(monitor === undefined ? {} : { monitor }) }
}

/**
 * Where `import_from` points. A path (has a `/` or an extension) is taken relative to the config's
 * folder. A bare dotted name (speedysvc's Python module path, `echoserver` or `lab.echo`) becomes
 * a path too: `lab/echo` with the extension found on disk at load time. A name starting with `@`
 * or `npm:` is a package.
 */
function resolveImport(spec: string, dir: string): string {
  if (spec.startsWith('npm:')) return spec.slice(4)
  if (spec.startsWith('@')) return spec
  if (spec.startsWith('file:')) return spec
  if (spec.includes('/') || spec.includes('\\') || /\.[a-z0-9]+$/i.test(spec) && /\.(?:m?js|cjs|ts|ya?ml|json)$/i.test(spec)) return resolve(dir, spec)
  return resolve(dir, spec.replace(/\./g, '/'))
}

const TRUE = new Set(['true', '1', 'yes', 'on'])
const FALSE = new Set(['false', '0', 'no', 'off'])

/** Why a value is not of its kind. */
class Invalid {
  constructor(readonly reason: string) {}
}

/** A value as its kind, or an {@link Invalid} saying why it is not one. */
function convert(value: string, kind: Kind): unknown {
  const text = value.trim()
  if (Array.isArray(kind)) return text
  switch (kind) {
    case 'string':
      return text
    case 'bool':
      if (TRUE.has(text.toLowerCase())) return true
      if (FALSE.has(text.toLowerCase())) return false
      return new Invalid(`"${value}" is not a boolean (true/false, 1/0, yes/no, on/off)`)
    case 'int':
      if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) return new Invalid(`"${value}" is not a whole number`)
      return Number(text)
    case 'ms':
      if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) return new Invalid(`"${value}" is not a whole number of milliseconds`)
      return Number(text)
    case 'port':
      if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) return new Invalid(`"${value}" is not a port number (0-65535)`)
      return Number(text)
  }
  return text
}

/** The candidate nearest to `word` by edit distance, when near enough to be a likely typo. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of candidates) {
    const d = distance(word.toLowerCase(), candidate.toLowerCase())
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0] as number
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const saved = row[j] as number
      row[j] = Math.min((row[j] as number) + 1, (row[j - 1] as number) + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1))
      previous = saved
    }
  }
  return row[b.length] as number
}
