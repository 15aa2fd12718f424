/**
 * Building devices from the plain model of a pyvisa-sim file: pyvisa-sim's matching order
 * (dialogues, getters, status registers, error queues, setters, channels, then the `error`
 * reply) as commands of the one {@link Device} engine, answering byte for byte as pyvisa-sim.
 *
 * @module
 */
import type { Logger } from '@labwire/core'
import { concatBytes, encodeSamples, ieeeBlock, latin1, sine, utf8 } from '../bytes.js'
import { delay, Device, NO_REPLY, NOT_MATCHED, type Command, type Outcome } from '../device.js'
import { pyFormat } from '../python/format.js'
import { Parser } from '../python/stringparser.js'
import { pyEquals, PyException, pyFloat, pyInt, pyKey, pyStr, pyToJson, type PyValue } from '../python/values.js'
import { pickEom, validateValue, type DeviceModel, type LabwireReply, type PropertyDef, type PyvisaSimCompat, type ResourceEntry } from './model.js'

/** Options for building a device (`DeviceDefinition.create`). */
export interface CreateDeviceOptions {
  /** Key of the `eom` map, e.g. `'TCPIP SOCKET'`, `'GPIB INSTR'`. Default: see {@link pickEom}. */
  eom?: string
  /** Resource-level settings (`channel_ids`). */
  resource?: ResourceEntry
  compat?: PyvisaSimCompat
  /** Where device errors go (a getter's format that raises, …): error level, with the device name and the command. */
  logger?: Logger
  /**
   * Largest width or precision a getter's format spec may ask for; more is a `FormatLimitError`,
   * logged, and no reply. Default 1 MiB (`DEFAULT_MAX_FORMAT_WIDTH`).
   */
  maxFormatWidth?: number
  /**
   * Most entries an `error_queue` holds; when it is full, new errors are dropped (the oldest,
   * first errors stay, as on SCPI instruments). pyvisa-sim's queue is unbounded: a client sending
   * unknown commands and never reading the queue would grow it forever. Default
   * {@link DEFAULT_MAX_ERROR_QUEUE}.
   */
  maxErrorQueue?: number
}

/** Default {@link CreateDeviceOptions.maxErrorQueue}: 1024 entries. */
export const DEFAULT_MAX_ERROR_QUEUE = 1024

/** The state of a device built from a file: its properties' values. */
export interface PyvisaState {
  properties: Record<string, PyValue>
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
function keyOf(bytes: Uint8Array): string {
  if (bytes.length > 64) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1')
  // A short query (the usual case): a plain loop is about 3× faster than a Buffer view and latin1Slice.
  let key = ''
  for (let i = 0; i < bytes.length; i++) key += String.fromCharCode(bytes[i] as number)
  return key
}

/**
 * The request's bytes as a map key (Latin-1: one char per byte). The engine hands every command the
 * same `raw` view of one request in turn; the key of the last view is kept so the dialogue, getter,
 * register and queue tables do not each convert it again.
 */
function keyMemo(): (bytes: Uint8Array) => string {
  let last: Uint8Array | undefined
  let lastBuffer: ArrayBufferLike | undefined
  let lastOffset = -1
  let lastLength = -1
  let lastKey = ''
  return (bytes) => {
    if (bytes === last && bytes.buffer === lastBuffer && bytes.byteOffset === lastOffset && bytes.byteLength === lastLength) return lastKey
    lastKey = keyOf(bytes)
    last = bytes
    lastBuffer = bytes.buffer
    lastOffset = bytes.byteOffset
    lastLength = bytes.byteLength
    return lastKey
  }
}
const binaryString = keyOf

type Response = Uint8Array | typeof NO_REPLY

/** What a `labwire.commands` entry answers, as an outcome. */
function replyOutcome(reply: LabwireReply): () => Outcome {
  switch (reply.kind) {
    case 'none':
      return () => NO_REPLY
    case 'text': {
      const bytes = utf8(reply.text)
      return () => bytes
    }
    case 'bytes':
      return () => reply.bytes
    case 'block': {
      const encode = { format: reply.format, byteOrder: reply.byteOrder }
      if (reply.values !== undefined) {
        const bytes = ieeeBlock(encodeSamples(reply.values, encode))
        return () => bytes
      }
      const options = reply.sine ?? {}
      return () => ieeeBlock(encodeSamples(sine(options), encode))
    }
  }
}

class PropertyValue {
  private value: PyValue
  private readonly perChannel = new Map<string, PyValue>()

  constructor(
    readonly def: PropertyDef,
    readonly channel: ChannelState | undefined,
  ) {
    this.value = validateValue(def, def.default)
  }

  get(): PyValue {
    if (this.channel === undefined) return this.value
    const key = pyKey(this.channel.selected)
    return this.perChannel.has(key) ? (this.perChannel.get(key) as PyValue) : this.value
  }

  set(value: PyValue): void {
    const checked = validateValue(this.def, value)
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
    this.perChannel.set(pyKey(id), validateValue(this.def, value))
  }
}

interface ChannelState {
  selected: PyValue
}

/** A getter's format error, with the property, the template and, for the common mistake, the fix. */
function explainGetterError(error: unknown, def: PropertyDef, template: string, value: PyValue): unknown {
  if (!(error instanceof PyException)) return error
  let hint = ''
  if (typeof value === 'string' && def.specs === undefined && /Unknown format code '[^s]' for object of type 'str'/.test(error.message))
    hint = `; the property has no specs, so its value is a str: add "specs: { type: float }" (or int)`
  return new PyException(error.pyType, `${error.message.slice(error.pyType.length + 2)} (property ${def.name}, getter r ${JSON.stringify(template)}${hint})`)
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

/**
 * A new device (fresh state) from one device of a file. `compat` defaults to `'0.5'`; `eom`
 * picks the terminators (see {@link pickEom}).
 */
export function buildDevice(input: DeviceModel, options: CreateDeviceOptions = {}): Device<PyvisaState> {
  const compat = options.compat ?? '0.5'
  const formatOptions = options.maxFormatWidth === undefined ? {} : { maxWidth: options.maxFormatWidth }
  const maxErrorQueue = options.maxErrorQueue ?? DEFAULT_MAX_ERROR_QUEUE
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
      // Bounded like a real instrument's queue (pyvisa-sim's grows forever): when full, new errors are dropped.
      if (message !== undefined && queue.queue.length < maxErrorQueue) queue.queue.push(message)
    }
    return commandErrorResponse
  }

  // Which dialogue replies hold RANDOM (their text) or not (false): a reply is decoded once, not per query.
  const randomText = new WeakMap<Uint8Array, string | false>()
  const dialogueResponse = (value: Response): Response => {
    if (compat === '0.7' && value !== NO_REPLY) {
      let text = randomText.get(value)
      if (text === undefined) {
        // pyvisa-sim 0.6+ decodes every dialogue reply as UTF-8 to look for RANDOM: raw bytes that are not UTF-8 raise there (every time: not cached).
        const decoded = new TextDecoder('utf-8', { fatal: true }).decode(value)
        text = decoded.includes('RANDOM') ? decoded : false
        randomText.set(value, text)
      }
      if (text !== false) return utf8(randomResponse(text))
    }
    return value
  }
  const getterResponse = (template: string | undefined, prop: PropertyValue): Uint8Array => {
    if (template === undefined) throw new PyException('TypeError', "getter without 'r'")
    if (compat === '0.7' && template.includes('RANDOM')) return utf8(randomResponse(template))
    const value = prop.get()
    try {
      return utf8(pyFormat(template, [value], {}, formatOptions))
    } catch (error) {
      throw explainGetterError(error, prop.def, template, value)
    }
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
  const requestKey = keyMemo()
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
    const outcome = replyOutcome(c.reply)
    const command: Command = { label: `labwire: ${c.q}`, bytesOnly: true, run: (_query, raw) => (requestKey(raw) === key ? outcome() : NOT_MATCHED) }
    if (c.delay !== undefined) command.delay = c.delay
    commands.push(command)
  }
  if (input.labwire.delays.size > 0) {
    // Per-command delays apply to whatever command answers: a pass-through command that waits first.
    commands.push({
      label: 'labwire: delays',
      run: async (query): Promise<Outcome> => {
        const ms = input.labwire.delays.get(query)
        if (ms !== undefined) await delay(ms)
        return NOT_MATCHED
      },
    })
  }
  commands.push({ label: 'dialogues', bytesOnly: true, run: (_q, raw) => { const hit = dialogues.get(requestKey(raw)); return hit === undefined ? NOT_MATCHED : dialogueResponse(hit) } })
  commands.push({
    label: 'getters',
    bytesOnly: true,
    run: (_q, raw) => {
      const hit = getters.get(requestKey(raw))
      return hit === undefined ? NOT_MATCHED : getterResponse(hit.r, hit.prop)
    },
  })
  commands.push({
    label: 'status registers',
    bytesOnly: true,
    run: (_q, raw) => {
      const reg = registers.get(requestKey(raw))
      if (reg === undefined) return NOT_MATCHED
      const value = reg.value
      reg.value = 0n
      return tb(value.toString())
    },
  })
  commands.push({
    label: 'error queues',
    bytesOnly: true,
    run: (_q, raw) => {
      const queue = queues.get(requestKey(raw))
      if (queue === undefined) return NOT_MATCHED
      return queue.queue.shift() ?? queue.default
    },
  })
  commands.push({
    label: 'setters',
    bytesOnly: true,
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
      const key = requestKey(raw)
      if (!def.canSelect) {
        const selectedProp = properties.get('selected_channel')
        if (selectedProp === undefined) throw new PyException('KeyError', "'selected_channel'")
        const chId = selectedProp.get()
        if (!ids.some((id) => pyEquals(id, chId))) return undefined
        state.selected = chId
        const d = defaultTables.dialogues.get(key)
        if (d !== undefined) return dialogueResponse(d)
        const g = defaultTables.getters.get(key)
        if (g !== undefined) return getterResponse(g.r, g.prop)
      } else {
        for (const id of ids) {
          state.selected = id
          const tables = formatted(id)
          const d = tables.dialogues.get(key)
          if (d !== undefined) return dialogueResponse(d)
          const g = tables.getters.get(key)
          if (g !== undefined) return getterResponse(g.r, g.prop)
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
      bytesOnly: true,
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
