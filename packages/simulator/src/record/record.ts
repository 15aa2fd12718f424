/**
 * From a transcript to a pyvisa-sim device file: each query becomes a dialogue, setters and
 * getters that follow a clear pattern become properties, error replies stay errors, a CLI
 * device's login becomes `labwire.login`. The result is checked by replaying the transcript
 * through the device it describes (with the simulator's own loader) before it is returned.
 *
 * @module
 */
import { pyFormat } from '../python/format.js'
import type { PyValue } from '../python/values.js'
import { parseDevices } from '../pyvisa/loader.js'
import { fromHex, type TranscriptEntry } from './transcript.js'

/** Options for {@link recordDevice}. */
export interface RecordOptions {
  /** The device's name in the file. Default `'recorded'`. */
  name?: string
  /** The request terminator (pyvisa-sim `eom` `q`). Default `'\n'`. */
  requestTerminator?: string
  /** The response terminator (`eom` `r`). Default `'\n'`. */
  responseTerminator?: string
  /** Where it was recorded from, for the file's header comment. */
  source?: string
  /** Infer properties from setter/getter pairs. Default true. */
  properties?: boolean
}

/** What {@link recordDevice} produced. */
export interface Recording {
  /** The device file (YAML). */
  yaml: string
  /** Queries answered differently at different times that the file cannot reproduce (it keeps the last reply). */
  varying: string[]
  /** Properties inferred (name → setter and getter). */
  properties: string[]
  /** True when a login dialogue was recognised. */
  login: boolean
  /** Exchanges the file reproduces byte for byte, of those recorded. */
  verified: { matching: number; total: number }
}

/** One request and the bytes the instrument sent until the next request on that connection. */
interface Seen {
  connection: number
  q: Uint8Array
  reply: Uint8Array
  /** The reply with the login prompt removed: what the device engine itself produces. */
  body: Uint8Array
}

interface LoginSeen {
  username: string
  password: string
  banner: string
  loginPrompt: string
  passwordPrompt: string
  prompt: string
}

interface PropertyModel {
  name: string
  head: string
  getter: string
  setter: string
  template: string
  type: 'str' | 'float' | 'int'
  default: string
  setterReply: string | undefined
  /** Setter commands that did not take (the getter kept its value): they stay dialogues. */
  rejected: Set<string>
}

const utf8 = new TextDecoder('utf-8', { fatal: true })
const encoder = new TextEncoder()

/**
 * Build a pyvisa-sim device file from transcript entries (what `labwire proxy --record` writes).
 *
 * @example
 * ```ts
 * const { yaml } = recordDevice(await readTranscript('session.jsonl'), { name: 'psu' })
 * await writeFile('psu.yaml', yaml)
 * ```
 */
export function recordDevice(entries: readonly TranscriptEntry[], options: RecordOptions = {}): Recording {
  const name = options.name ?? 'recorded'
  const q = options.requestTerminator ?? '\n'
  const r = options.responseTerminator ?? '\n'
  const { seen, login } = collect(entries, encoder.encode(q))
  let properties = options.properties === false ? [] : inferProperties(seen, r)
  let result = build(name, q, r, seen, properties, login, options.source)
  for (let attempt = 0; attempt < 4 && result.mismatched.size > 0 && properties.length > 0; attempt++) {
    const bad = properties.filter((p) => [...result.mismatched].some((text) => text === p.getter || text.startsWith(`${p.head} `)))
    if (bad.length === 0) break
    properties = properties.filter((p) => !bad.includes(p))
    result = build(name, q, r, seen, properties, login, options.source)
  }
  return {
    yaml: result.yaml,
    varying: [...result.mismatched],
    properties: properties.map((p) => `${p.name}: ${p.setter} / ${p.getter} → ${p.template}`),
    login: login !== undefined,
    verified: { matching: result.matching, total: seen.length },
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

function endsWith(bytes: Uint8Array, tail: Uint8Array): boolean {
  if (tail.length > bytes.length) return false
  for (let i = 0; i < tail.length; i++) if (bytes[bytes.length - tail.length + i] !== tail[i]) return false
  return true
}

function strip(bytes: Uint8Array, tail: Uint8Array): Uint8Array {
  return endsWith(bytes, tail) ? bytes.subarray(0, bytes.length - tail.length) : bytes
}

function text(bytes: Uint8Array): string | undefined {
  try {
    return utf8.decode(bytes)
  } catch {
    return undefined
  }
}

/** Exchanges in the order the requests were seen (state is shared by every connection, as on an instrument). */
function collect(entries: readonly TranscriptEntry[], q: Uint8Array): { seen: Seen[]; login: LoginSeen | undefined } {
  const greeting = new Map<number, Uint8Array[]>()
  const current = new Map<number, { q: Uint8Array; replies: Uint8Array[] }>()
  const perConnection = new Map<number, { q: Uint8Array; replies: Uint8Array[] }[]>()
  const order: { connection: number; exchange: { q: Uint8Array; replies: Uint8Array[] } }[] = []
  for (const entry of entries) {
    if ('event' in entry) continue
    const bytes = fromHex(entry.hex)
    if (entry.direction === 'request') {
      const exchange = { q: strip(bytes, q), replies: [] as Uint8Array[] }
      current.set(entry.connection, exchange)
      const list = perConnection.get(entry.connection) ?? []
      list.push(exchange)
      perConnection.set(entry.connection, list)
      order.push({ connection: entry.connection, exchange })
    } else {
      const exchange = current.get(entry.connection)
      if (exchange === undefined) {
        const list = greeting.get(entry.connection) ?? []
        list.push(bytes)
        greeting.set(entry.connection, list)
      } else exchange.replies.push(bytes)
    }
  }
  // A login: the greeting ends in a login prompt, the first two lines sent are user and password.
  let login: LoginSeen | undefined
  const skip = new Set<object>()
  for (const [connection, parts] of greeting) {
    const greetingText = text(concat(parts)) ?? ''
    const exchanges = perConnection.get(connection) ?? []
    const lastLine = greetingText.slice(greetingText.lastIndexOf('\n') + 1)
    if (!/(login|user(name)?)\s*:\s*$/i.test(lastLine) || exchanges.length < 2) continue
    const [user, pass] = exchanges as [(typeof exchanges)[0], (typeof exchanges)[0]]
    const found: LoginSeen = {
      username: (text(user.q) ?? '').replace(/\r$/, ''),
      password: (text(pass.q) ?? '').replace(/\r$/, ''),
      banner: greetingText.slice(0, greetingText.length - lastLine.length),
      loginPrompt: lastLine,
      passwordPrompt: text(concat(user.replies)) ?? '',
      prompt: text(concat(pass.replies)) ?? '',
    }
    if (found.prompt === '' || /incorrect|invalid|fail/i.test(found.prompt)) continue
    login ??= found
    skip.add(user)
    skip.add(pass)
  }
  const prompt = login === undefined ? undefined : encoder.encode(login.prompt)
  const seen: Seen[] = []
  for (const { connection, exchange } of order) {
    if (skip.has(exchange)) continue
    const reply = concat(exchange.replies)
    const loggedIn = login !== undefined && greeting.has(connection)
    const message = loggedIn ? strip(exchange.q, Uint8Array.of(0x0d)) : exchange.q
    const body = loggedIn && prompt !== undefined ? strip(reply, prompt) : reply
    seen.push({ connection, q: message, reply, body })
  }
  return { seen, login }
}

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/
const INTEGER = /^[+-]?\d+$/

function candidates(): { type: 'float' | 'int' | 'str'; template: string }[] {
  const specs: { type: 'float' | 'int' | 'str'; spec: string }[] = [{ type: 'int', spec: '{:d}' }]
  for (let n = 0; n <= 9; n++) specs.push({ type: 'float', spec: `{:.${n}f}` })
  for (let n = 0; n <= 9; n++) for (const t of ['E', 'e', '+E', '+e']) specs.push({ type: 'float', spec: `{:${t.startsWith('+') ? '+' : ''}.${n}${t.slice(-1)}}` })
  specs.push({ type: 'float', spec: '{}' }, { type: 'float', spec: '{:g}' }, { type: 'str', spec: '{}' })
  const out: { type: 'float' | 'int' | 'str'; template: string }[] = []
  for (const wrap of ['', '"', "'"]) for (const { type, spec } of specs) out.push({ type, template: `${wrap}${spec}${wrap}` })
  return out
}

function valueOf(type: 'float' | 'int' | 'str', arg: string): PyValue | undefined {
  if (type === 'str') return arg
  if (type === 'int') return INTEGER.test(arg) ? BigInt(arg) : undefined
  return NUMBER.test(arg) ? Number(arg) : undefined
}

/** The value a reply shows under `template` (its literal text around the one field removed), if the template renders it back exactly. */
function parseReply(type: 'float' | 'int' | 'str', template: string, reply: string): PyValue | undefined {
  const open = template.indexOf('{')
  const close = template.lastIndexOf('}')
  const prefix = template.slice(0, open)
  const suffix = template.slice(close + 1)
  if (!reply.startsWith(prefix) || !reply.endsWith(suffix) || reply.length < prefix.length + suffix.length) return undefined
  const value = valueOf(type, reply.slice(prefix.length, reply.length - suffix.length))
  return value !== undefined && format(template, value) === reply ? value : undefined
}

/** A float as Python's float() reads it back. */
function numberText(value: number): string {
  return Number.isInteger(value) ? `${value}.0` : String(value)
}

function format(template: string, value: PyValue): string | undefined {
  try {
    return pyFormat(template, [value])
  } catch {
    return undefined
  }
}

/** Setter `HEAD value` + getter `HEAD?` pairs whose replies one format explains. */
function inferProperties(seen: readonly Seen[], r: string): PropertyModel[] {
  const rb = encoder.encode(r)
  const texts = seen.map((s) => ({ q: text(s.q), body: s.body }))
  const heads = new Set<string>()
  for (const { q } of texts) {
    const m = q === undefined ? null : /^([^\s?]+) (\S.*)$/.exec(q)
    if (m !== null && texts.some((t) => t.q === `${m[1] ?? ''}?`)) heads.add(m[1] as string)
  }
  const out: PropertyModel[] = []
  const used = new Set<string>()
  for (const head of heads) {
    const getter = `${head}?`
    const events: ({ kind: 'set'; q: string; arg: string; reply: string | undefined } | { kind: 'get'; reply: string | undefined })[] = []
    for (const t of texts) {
      if (t.q === getter) events.push({ kind: 'get', reply: endsWith(t.body, rb) ? text(strip(t.body, rb)) : undefined })
      else if (t.q?.startsWith(`${head} `) === true) {
        const replyText = t.body.length === 0 ? undefined : endsWith(t.body, rb) ? text(strip(t.body, rb)) : '\u0000bad'
        events.push({ kind: 'set', q: t.q, arg: t.q.slice(head.length + 1), reply: replyText })
      }
    }
    if (events.some((e) => e.kind === 'get' && e.reply === undefined)) continue
    for (const candidate of candidates()) {
      const model = fit(head, getter, candidate, events)
      if (model === undefined) continue
      let name = head.toLowerCase().replace(/[^a-z0-9_]+/g, '_').replace(/^_+|_+$/g, '') || 'property'
      while (used.has(name)) name += '_'
      used.add(name)
      out.push({ ...model, name })
      break
    }
  }
  return out
}

function fit(
  head: string,
  getter: string,
  candidate: { type: 'float' | 'int' | 'str'; template: string },
  events: readonly ({ kind: 'set'; q: string; arg: string; reply: string | undefined } | { kind: 'get'; reply: string | undefined })[],
): Omit<PropertyModel, 'name'> | undefined {
  let value: PyValue | undefined
  let defaultText: string | undefined
  let defaultValue: PyValue | undefined
  let pending: { q: string; value: PyValue; previous: PyValue | undefined } | undefined
  const accepted = new Map<string, boolean>()
  let setterReply: string | undefined | null = null
  const rejectedReplies = new Map<string, string | undefined>()
  for (const event of events) {
    if (event.kind === 'set') {
      const v = valueOf(candidate.type, event.arg)
      if (v === undefined) return undefined
      pending = { q: event.q, value: v, previous: value }
      value = v
      rejectedReplies.set(event.q, event.reply)
      continue
    }
    const reply = event.reply as string
    if (value === undefined) {
      // Before any setter: the default must be a value this format renders as the reply.
      const v = parseReply(candidate.type, candidate.template, reply)
      if (v === undefined) return undefined
      if (defaultText !== undefined && defaultText !== reply) return undefined
      defaultText = reply
      defaultValue = v
      value = v
      continue
    }
    if (format(candidate.template, value) === reply) {
      if (pending !== undefined) {
        if (accepted.get(pending.q) === false) return undefined
        accepted.set(pending.q, true)
        const r = rejectedReplies.get(pending.q)
        if (setterReply !== null && setterReply !== r) return undefined
        setterReply = r
      }
      pending = undefined
      continue
    }
    // The getter still shows the value from before the setter: that setter did not take.
    if (pending !== undefined && pending.previous !== undefined && format(candidate.template, pending.previous) === reply) {
      if (accepted.get(pending.q) === true) return undefined
      accepted.set(pending.q, false)
      value = pending.previous
      pending = undefined
      continue
    }
    return undefined
  }
  if (![...accepted.values()].some(Boolean)) return undefined
  let defaultString: string
  if (defaultValue === undefined) {
    // Never read before it was set: start from the first value set.
    const first = events.find((e) => e.kind === 'set')
    if (first === undefined || first.kind !== 'set') return undefined
    defaultString = first.arg
  } else defaultString = typeof defaultValue === 'number' ? numberText(defaultValue) : typeof defaultValue === 'bigint' ? defaultValue.toString() : typeof defaultValue === 'string' ? defaultValue : JSON.stringify(defaultValue)
  const rejected = new Set([...accepted].filter(([, ok]) => !ok).map(([q]) => q))
  return { head, getter, setter: `${head} {}`, template: candidate.template, type: candidate.type, default: defaultString, setterReply: setterReply ?? undefined, rejected }
}

const PLAIN = /^[\x20-\x7e\r\n\t]*$/

/** A string for a YAML double-quoted scalar (JSON's escapes are YAML's). */
function quote(value: string): string {
  return JSON.stringify(value)
}

function build(
  name: string,
  q: string,
  r: string,
  seen: readonly Seen[],
  properties: readonly PropertyModel[],
  login: LoginSeen | undefined,
  source: string | undefined,
): { yaml: string; mismatched: Set<string>; matching: number } {
  const rb = encoder.encode(r)
  const claimed = new Set<string>()
  for (const p of properties) {
    claimed.add(p.getter)
    for (const s of seen) {
      const t = text(s.q)
      if (t !== undefined && t.startsWith(`${p.head} `) && !p.rejected.has(t)) claimed.add(t)
    }
  }
  // Last reply of each query; replies that differ are noted.
  const last = new Map<string, { q: Uint8Array; body: Uint8Array; varies: boolean }>()
  for (const s of seen) {
    const key = Buffer.from(s.q).toString('latin1')
    const t = text(s.q)
    if (t !== undefined && claimed.has(t)) continue
    const previous = last.get(key)
    const varies = previous !== undefined && (previous.varies || Buffer.compare(previous.body, s.body) !== 0)
    last.set(key, { q: s.q, body: s.body, varies })
  }
  // The most common error-looking reply becomes the answer to unknown commands.
  const errors = new Map<string, Set<string>>()
  for (const { q: qb, body } of last.values()) {
    const t = text(strip(body, rb))
    if (t !== undefined && endsWith(body, rb) && /\b(error|invalid|unknown|undefined|illegal)\b/i.test(t) && PLAIN.test(t)) {
      const set = errors.get(t) ?? new Set<string>()
      set.add(Buffer.from(qb).toString('latin1'))
      errors.set(t, set)
    }
  }
  const errorReply = [...errors].filter(([, qs]) => qs.size >= 2).sort((a, b) => b[1].size - a[1].size)[0]?.[0]

  const dialogues: string[] = []
  const commands: string[] = []
  for (const { q: qb, body } of last.values()) {
    const qt = text(qb)
    const replyBytes = body.length === 0 ? undefined : strip(body, rb)
    const terminated = body.length === 0 || endsWith(body, rb)
    const rt = replyBytes === undefined ? undefined : text(replyBytes)
    const plainQ = qt !== undefined && PLAIN.test(qt) && !qt.includes('\\') && qt === qt.replace(/^ +| +$/g, '')
    const plainR = rt === undefined ? replyBytes === undefined : PLAIN.test(rt) && !rt.includes('\\') && rt === rt.replace(/^ +| +$/g, '')
    if (plainQ && plainR && terminated) {
      dialogues.push(`      - q: ${quote(qt)}${rt === undefined ? '' : `\n        r: ${quote(rt)}`}`)
      continue
    }
    // Not expressible as a pyvisa-sim dialogue: a labwire command with the exact bytes.
    const key = qt ?? Buffer.from(qb).toString('latin1')
    const reply = terminated ? replyBytes : body
    const rText = reply === undefined ? undefined : text(reply)
    const answer = reply === undefined ? '' : rText !== undefined && !rText.includes('\u0000') ? `\n          r: ${quote(rText)}` : `\n          hex: ${quote(Buffer.from(reply).toString('hex'))}`
    commands.push(`        - q: ${quote(key)}${answer}`)
  }
  const props = properties.map((p) => {
    const lines = [`      ${p.name}:`, `        default: ${quote(p.default)}`, `        getter:`, `          q: ${quote(p.getter)}`, `          r: ${quote(p.template)}`, `        setter:`, `          q: ${quote(p.setter)}`]
    if (p.setterReply !== undefined) lines.push(`          r: ${quote(p.setterReply)}`)
    lines.push(`        specs:`, `          type: ${p.type}`)
    return lines.join('\n')
  })
  const out: string[] = []
  out.push(`# Recorded by labwire proxy${source === undefined ? '' : ` from ${source}`} on ${new Date().toISOString()}: ${seen.length} exchanges.`)
  out.push('# Dialogues hold the last reply seen; properties were inferred from setter/getter pairs.')
  out.push('spec: "1.1"', 'devices:', `  ${quote(name)}:`, '    eom:', '      TCPIP SOCKET:', `        q: ${quote(q)}`, `        r: ${quote(r)}`, '    delimiter: ""')
  if (errorReply !== undefined) out.push(`    error: ${quote(errorReply)}`)
  if (dialogues.length > 0) out.push('    dialogues:', ...dialogues)
  if (props.length > 0) out.push('    properties:', ...props)
  if (commands.length > 0 || login !== undefined) {
    out.push('    labwire:')
    if (commands.length > 0) out.push('      commands:', ...commands)
    if (login !== undefined) {
      out.push(
        '      login:',
        `        username: ${quote(login.username)}`,
        `        password: ${quote(login.password)}`,
        `        banner: ${quote(login.banner)}`,
        `        login_prompt: ${quote(login.loginPrompt)}`,
        `        password_prompt: ${quote(login.passwordPrompt)}`,
        `        prompt: ${quote(login.prompt)}`,
      )
    }
  }
  const yaml = `${out.join('\n')}\n`
  const { mismatched, matching } = verify(yaml, seen)
  return { yaml, mismatched, matching }
}

/** Replay the recorded requests, in order, through the device the file describes. */
function verify(yaml: string, seen: readonly Seen[]): { mismatched: Set<string>; matching: number } {
  const loaded = parseDevices(yaml, 'recording.yaml')
  const definition = [...loaded.devices.values()][0]
  const mismatched = new Set<string>()
  let matching = 0
  if (definition === undefined) return { mismatched, matching }
  const device = definition.create({})
  for (const s of seen) {
    const replies = device.execute(s.q)
    if (replies instanceof Promise) return { mismatched, matching }
    const got = concat(replies)
    if (Buffer.compare(got, s.body) === 0) matching++
    else mismatched.add(Buffer.from(s.q).toString('latin1'))
  }
  return { mismatched, matching }
}
