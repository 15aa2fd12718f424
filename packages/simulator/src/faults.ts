/**
 * Fault injection: what can go wrong between a device and its client, switchable at run time.
 *
 * @module
 */

/** The kinds of fault. */
export type FaultKind =
  /** Delay the reply by `latency` ms ± `jitter` ms. */
  | 'latency'
  /** Execute the command but send no reply. */
  | 'no-reply'
  /** Close the connection instead of replying. */
  | 'disconnect'
  /** "Cut the cable": close every connection and refuse new ones until the cable is restored. */
  | 'cable-cut'
  /** Send junk bytes before the reply (or instead of it, with `replace`). */
  | 'junk'
  /** Send only the first `keep` bytes of the reply (its terminator is lost). */
  | 'truncate'
  /** Send the reply in `fragments` pieces, `fragmentDelay` ms apart. */
  | 'fragment'
  /** The device stops answering (and executing) until it is reset. */
  | 'quiet'

/** A fault as configured (in code, in a device file under `labwire.faults`, or through the control channel). */
export interface FaultSpec {
  kind: FaultKind
  /** Chance that a matching request triggers it, 0 to 1. Default 1. */
  probability?: number
  /**
   * Only requests whose message equals one of these trigger it (any sub-query of a `;` message).
   * On a device with `framing`: the label of the command that takes the message, or the message
   * as text (bytes as lower-case hex pairs, `'01 2c'`). Default: every request.
   */
  commands?: string[]
  /** Switched on? Default true. */
  enabled?: boolean
  /** `latency`: milliseconds. Default 100. */
  latency?: number
  /** `latency`: plus or minus this many milliseconds, uniformly. Default 0. */
  jitter?: number
  /** `junk`: the junk, as text; default 16 random bytes that hold no terminator byte. */
  junk?: string
  /** `junk`: replace the reply instead of preceding it. Default false. */
  replace?: boolean
  /** `truncate`: bytes kept. Default half the reply. */
  keep?: number
  /** `fragment`: number of pieces. Default 3. */
  fragments?: number
  /** `fragment`: milliseconds between pieces. Default 20. */
  fragmentDelay?: number
}

/** A fault as stored: its spec plus an id and trigger count. */
export interface Fault extends Required<Pick<FaultSpec, 'kind' | 'probability' | 'enabled'>>, Omit<FaultSpec, 'kind' | 'probability' | 'enabled'> {
  readonly id: number
  /** How many times it has triggered. */
  triggered: number
}

const KINDS: readonly FaultKind[] = ['latency', 'no-reply', 'disconnect', 'cable-cut', 'junk', 'truncate', 'fragment', 'quiet']

/** Check a fault spec from untrusted input (a file, an HTTP body); throws `TypeError` naming the bad field. */
export function validateFaultSpec(input: unknown): FaultSpec {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new TypeError('a fault must be an object')
  const spec = input as Record<string, unknown>
  if (typeof spec.kind !== 'string' || !KINDS.includes(spec.kind as FaultKind)) throw new TypeError(`kind: must be one of ${KINDS.join(', ')}`)
  const out: FaultSpec = { kind: spec.kind as FaultKind }
  for (const key of ['probability', 'latency', 'jitter', 'keep', 'fragments', 'fragmentDelay'] as const) {
    const value = spec[key]
    if (value === undefined) continue
    const number = typeof value === 'string' ? Number(value) : value
    if (typeof number !== 'number' || !Number.isFinite(number) || number < 0) throw new TypeError(`${key}: must be a non-negative number`)
    if (key === 'probability' && number > 1) throw new TypeError('probability: must be between 0 and 1')
    out[key] = number
  }
  for (const key of ['enabled', 'replace'] as const) {
    const value = spec[key]
    if (value === undefined) continue
    if (typeof value === 'boolean') out[key] = value
    else if (value === 'true' || value === 'false') out[key] = value === 'true'
    else throw new TypeError(`${key}: must be a boolean`)
  }
  if (spec.junk !== undefined) {
    if (typeof spec.junk !== 'string') throw new TypeError('junk: must be a string')
    out.junk = spec.junk
  }
  if (spec.commands !== undefined) {
    if (!Array.isArray(spec.commands) || !spec.commands.every((c) => typeof c === 'string')) throw new TypeError('commands: must be a list of strings')
    out.commands = spec.commands
  }
  for (const key of Object.keys(spec)) {
    if (!['kind', 'probability', 'latency', 'jitter', 'keep', 'fragments', 'fragmentDelay', 'enabled', 'replace', 'junk', 'commands'].includes(key))
      throw new TypeError(`${key}: unknown fault field`)
  }
  return out
}

/** The faults of one device. */
export class FaultSet {
  private readonly faults = new Map<number, Fault>()
  private nextId = 1
  /** Random source in [0, 1); replace it for reproducible runs. */
  random: () => number = Math.random

  /** Add a fault; returns it (with its id). */
  add(spec: FaultSpec): Fault {
    const checked = validateFaultSpec(spec)
    const fault: Fault = { ...checked, id: this.nextId++, probability: checked.probability ?? 1, enabled: checked.enabled ?? true, triggered: 0 }
    this.faults.set(fault.id, fault)
    return fault
  }

  /** Remove a fault. Returns false when there was none with that id. */
  remove(id: number): boolean {
    return this.faults.delete(id)
  }

  /** Switch a fault on or off. Returns false when there was none with that id. */
  enable(id: number, enabled: boolean): boolean {
    const fault = this.faults.get(id)
    if (fault === undefined) return false
    fault.enabled = enabled
    return true
  }

  /** Look a fault up. */
  get(id: number): Fault | undefined {
    return this.faults.get(id)
  }

  /** Every fault, in the order added. */
  list(): Fault[] {
    return [...this.faults.values()]
  }

  /** Remove every fault. */
  clear(): void {
    this.faults.clear()
  }

  /** True when there is at least one enabled fault (the fast path skips fault handling otherwise). */
  get active(): boolean {
    for (const fault of this.faults.values()) if (fault.enabled) return true
    return false
  }

  /** The faults a request triggers, in order added (each rolled against its probability). */
  triggered(queries: readonly string[]): Fault[] {
    const out: Fault[] = []
    for (const fault of this.faults.values()) {
      if (!fault.enabled) continue
      if (fault.commands !== undefined && !fault.commands.some((c) => queries.includes(c))) continue
      if (fault.probability < 1 && this.random() >= fault.probability) continue
      fault.triggered++
      out.push(fault)
    }
    return out
  }
}
