/**
 * A linear-time matcher for the small regular language stringparser patterns compile to: code
 * point classes, greedy and lazy `?` `*` `+`, capture groups, anchored at both ends (with
 * Python's "`$` also matches before a final `\n`"). A Pike VM: every thread advances one code
 * point at a time in priority order, so the captures are exactly those a backtracking engine
 * (Python's `re`, V8's irregexp) finds first, and a match costs O(text length × pattern size)
 * whatever the text — never the quadratic (or worse) backtracking of `[0-9]+\.?[0-9]+` on a long
 * line of digits.
 *
 * @module
 */

/** A set of code points. */
export type CodePointClass = (codePoint: number) => boolean

/** A pattern as a tree. */
export type Pattern =
  | { readonly kind: 'class'; readonly test: CodePointClass }
  | { readonly kind: 'seq'; readonly items: readonly Pattern[] }
  | { readonly kind: 'opt' | 'star' | 'plus'; readonly item: Pattern; readonly greedy: boolean }
  | { readonly kind: 'group'; readonly index: number; readonly item: Pattern }

/** Pattern builders. */
export const P = {
  cls: (test: CodePointClass): Pattern => ({ kind: 'class', test }),
  /** One code point from the characters of `chars` (a literal when it has one). */
  oneOf: (chars: string): Pattern => {
    const set = new Set(Array.from(chars, (c) => c.codePointAt(0) as number))
    if (set.size === 1) {
      const only = [...set][0] as number
      return { kind: 'class', test: (cp) => cp === only }
    }
    return { kind: 'class', test: (cp) => set.has(cp) }
  },
  range: (ranges: string): Pattern => {
    // 'az09' = a-z or 0-9
    const bounds = Array.from(ranges, (c) => c.codePointAt(0) as number)
    return {
      kind: 'class',
      test: (cp) => {
        for (let i = 0; i < bounds.length; i += 2) if (cp >= (bounds[i] as number) && cp <= (bounds[i + 1] as number)) return true
        return false
      },
    }
  },
  literal: (text: string): Pattern => ({ kind: 'seq', items: Array.from(text, (c) => P.oneOf(c)) }),
  seq: (...items: Pattern[]): Pattern => ({ kind: 'seq', items }),
  opt: (item: Pattern, greedy = true): Pattern => ({ kind: 'opt', item, greedy }),
  star: (item: Pattern, greedy = true): Pattern => ({ kind: 'star', item, greedy }),
  plus: (item: Pattern, greedy = true): Pattern => ({ kind: 'plus', item, greedy }),
  group: (index: number, item: Pattern): Pattern => ({ kind: 'group', index, item }),
}

const CHAR = 0
const SPLIT = 1
const JMP = 2
const SAVE = 3
const END = 4

interface Inst {
  op: number
  /** CHAR: the class. */
  test: CodePointClass | undefined
  /** CHAR, SAVE, JMP: the next instruction; SPLIT: the preferred one. */
  x: number
  /** SPLIT: the other one; SAVE: the slot. */
  y: number
}

type Captures = readonly number[]

/** A compiled, fully anchored pattern. */
export class LinearMatcher {
  private readonly program: Inst[] = []
  private readonly slots: number
  /** Generation marks: `mark[pc] === step` when `pc` is already on the list being built. */
  private readonly mark: Int32Array
  private step = 0
  private readonly lists: [ThreadList, ThreadList]

  /** `groups` is the number of capture groups (indices 0 … groups − 1). */
  constructor(pattern: Pattern, groups: number) {
    this.slots = groups * 2
    this.emit(pattern)
    // Python's '$' also matches just before a final '\n'.
    this.emit(P.opt(P.oneOf('\n')))
    this.program.push({ op: END, test: undefined, x: 0, y: 0 })
    this.mark = new Int32Array(this.program.length).fill(-1)
    const list = (): ThreadList => ({ pcs: new Int32Array(this.program.length), caps: new Array<Captures>(this.program.length), count: 0 })
    this.lists = [list(), list()]
  }

  private emit(pattern: Pattern): void {
    const prog = this.program
    const push = (op: number, test?: CodePointClass): Inst => {
      const inst: Inst = { op, test, x: prog.length + 1, y: 0 }
      prog.push(inst)
      return inst
    }
    switch (pattern.kind) {
      case 'class':
        push(CHAR, pattern.test)
        return
      case 'seq':
        for (const item of pattern.items) this.emit(item)
        return
      case 'group': {
        push(SAVE).y = pattern.index * 2
        this.emit(pattern.item)
        push(SAVE).y = pattern.index * 2 + 1
        return
      }
      case 'opt': {
        const split = push(SPLIT)
        const body = prog.length
        this.emit(pattern.item)
        setSplit(split, body, prog.length, pattern.greedy)
        return
      }
      case 'star': {
        const top = prog.length
        const split = push(SPLIT)
        const body = prog.length
        this.emit(pattern.item)
        push(JMP).x = top
        setSplit(split, body, prog.length, pattern.greedy)
        return
      }
      case 'plus': {
        const top = prog.length
        this.emit(pattern.item)
        const split = push(SPLIT)
        setSplit(split, top, prog.length, pattern.greedy)
        return
      }
    }
  }

  /**
   * Match the whole of `text`: the capture boundaries (`[start0, end0, start1, end1, …]`, UTF-16
   * indices, -1 for a group that did not take part), or `undefined`.
   */
  match(text: string): Captures | undefined {
    // Two thread lists (instruction, captures) in priority order, swapped every step; no allocation per thread.
    let current = this.lists[0]
    let next = this.lists[1]
    current.count = 0
    // The marks are generation numbers in an Int32Array: start again well before they could wrap.
    if (this.step > 0x3fffffff - text.length) {
      this.mark.fill(-1)
      this.step = 0
    }
    this.step++
    this.add(current, 0, new Array<number>(this.slots).fill(-1), 0)
    const n = text.length
    const program = this.program
    for (let pos = 0; ; ) {
      if (current.count === 0) return undefined
      if (pos >= n) {
        for (let i = 0; i < current.count; i++) if ((program[current.pcs[i] as number] as Inst).op === END) return current.caps[i]
        return undefined
      }
      const cp = text.codePointAt(pos) as number
      const after = pos + (cp > 0xffff ? 2 : 1)
      this.step++
      next.count = 0
      for (let i = 0; i < current.count; i++) {
        const inst = program[current.pcs[i] as number] as Inst
        if (inst.op === CHAR && (inst.test as CodePointClass)(cp)) this.add(next, inst.x, current.caps[i] as Captures, after)
      }
      pos = after
      const swap = current
      current = next
      next = swap
    }
  }

  /** Follow SPLIT/JMP/SAVE from `pc` in priority order; the first thread to reach an instruction keeps it. */
  private add(list: ThreadList, pc: number, caps: Captures, pos: number): void {
    for (;;) {
      if (this.mark[pc] === this.step) return
      this.mark[pc] = this.step
      const inst = this.program[pc] as Inst
      switch (inst.op) {
        case JMP:
          pc = inst.x
          continue
        case SPLIT:
          this.add(list, inst.x, caps, pos)
          pc = inst.y
          continue
        case SAVE: {
          const copy = caps.slice()
          copy[inst.y] = pos
          caps = copy
          pc = inst.x
          continue
        }
        default:
          list.pcs[list.count] = pc
          list.caps[list.count] = caps
          list.count++
          return
      }
    }
  }
}

interface ThreadList {
  /** Instruction of each thread (at most one thread per instruction). */
  pcs: Int32Array
  caps: Captures[]
  count: number
}

function setSplit(split: Inst, body: number, after: number, greedy: boolean): void {
  split.x = greedy ? body : after
  split.y = greedy ? after : body
}
