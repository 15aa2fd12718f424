/**
 * A first-in first-out queue with O(1) `push` and `shift` (arrays' `shift` moves every element,
 * which makes long queues quadratic). A ring buffer: a queue that fills and empties once per
 * request (a lockstep session) changes no array length and allocates nothing.
 */
export class Fifo<T> {
  /** Power-of-two capacity; none until the first push (an idle queue costs no array). */
  private items: (T | undefined)[] = NONE
  private head = 0
  private count = 0

  /** Number of queued items. */
  get length(): number {
    return this.count
  }

  push(item: T): void {
    if (this.count === this.items.length) this.grow()
    this.items[(this.head + this.count) & (this.items.length - 1)] = item
    this.count++
  }

  /** The first item, without removing it. */
  peek(): T | undefined {
    return this.count === 0 ? undefined : this.items[this.head]
  }

  /** Remove and return the first item. */
  shift(): T | undefined {
    if (this.count === 0) return undefined
    const items = this.items
    const item = items[this.head]
    items[this.head] = undefined
    this.head = (this.head + 1) & (items.length - 1)
    // A queue that once held many items gives its memory back when it empties.
    if (--this.count === 0 && items.length > SHRINK_ABOVE) this.reset()
    return item
  }

  /** Remove and return every item, oldest first. */
  drain(): T[] {
    const out: T[] = []
    for (const item of this) out.push(item)
    this.reset()
    return out
  }

  *[Symbol.iterator](): IterableIterator<T> {
    const items = this.items
    const mask = items.length - 1
    for (let i = 0; i < this.count; i++) yield items[(this.head + i) & mask] as T
  }

  private grow(): void {
    const old = this.items
    const mask = old.length - 1
    const next = new Array<T | undefined>(Math.max(INITIAL, old.length * 2)).fill(undefined)
    for (let i = 0; i < this.count; i++) next[i] = old[(this.head + i) & mask]
    this.items = next
    this.head = 0
  }

  private reset(): void {
    this.items = NONE
    this.head = 0
    this.count = 0
  }
}

const INITIAL = 8
const NONE: never[] = []
const SHRINK_ABOVE = 1024
