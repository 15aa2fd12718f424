/**
 * A first-in first-out queue with O(1) `push` and `shift` (arrays' `shift` moves every element,
 * which makes long queues quadratic). The first item is kept in a field and the rest in a ring
 * buffer: a queue that fills and empties once per request (a lockstep session) touches no array
 * and allocates nothing.
 */
export class Fifo<T> {
  /** The oldest item, kept in a field: a queue that never holds more than one item (a lockstep session) never touches an array. */
  private first: T | undefined = undefined
  /** The items after the first: a power-of-two ring, none until a second item is queued. */
  private items: (T | undefined)[] = NONE
  private head = 0
  private count = 0

  /** Number of queued items. */
  get length(): number {
    return this.count
  }

  push(item: T): void {
    if (this.count++ === 0) {
      this.first = item
      return
    }
    const rest = this.count - 2
    if (rest === this.items.length) this.grow(rest)
    this.items[(this.head + rest) & (this.items.length - 1)] = item
  }

  /** The first item, without removing it. */
  peek(): T | undefined {
    return this.first
  }

  /** Remove and return the first item. */
  shift(): T | undefined {
    if (this.count === 0) return undefined
    const item = this.first
    if (--this.count === 0) {
      this.first = undefined
      return item
    }
    const items = this.items
    this.first = items[this.head]
    items[this.head] = undefined
    this.head = (this.head + 1) & (items.length - 1)
    // A queue that once held many items gives its memory back when it empties.
    if (this.count === 1 && items.length > SHRINK_ABOVE) {
      this.items = NONE
      this.head = 0
    }
    return item
  }

  /** Remove and return every item, oldest first. */
  drain(): T[] {
    const out: T[] = []
    for (const item of this) out.push(item)
    this.first = undefined
    this.items = NONE
    this.head = 0
    this.count = 0
    return out
  }

  *[Symbol.iterator](): IterableIterator<T> {
    if (this.count === 0) return
    yield this.first as T
    const items = this.items
    const mask = items.length - 1
    for (let i = 0; i < this.count - 1; i++) yield items[(this.head + i) & mask] as T
  }

  /** The ring is full with `rest` items: double it. */
  private grow(rest: number): void {
    const old = this.items
    const mask = old.length - 1
    const next = new Array<T | undefined>(Math.max(INITIAL, old.length * 2)).fill(undefined)
    for (let i = 0; i < rest; i++) next[i] = old[(this.head + i) & mask]
    this.items = next
    this.head = 0
  }
}

const INITIAL = 8
const NONE: never[] = []
const SHRINK_ABOVE = 1024
