/**
 * A first-in first-out queue with O(1) `push` and `shift` (arrays' `shift` moves every element,
 * which makes long queues quadratic).
 */
export class Fifo<T> {
  private items: (T | undefined)[] = []
  private head = 0

  /** Number of queued items. */
  get length(): number {
    return this.items.length - this.head
  }

  push(item: T): void {
    this.items.push(item)
  }

  /** The first item, without removing it. */
  peek(): T | undefined {
    return this.items[this.head]
  }

  /** Remove and return the first item. */
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined
    const item = this.items[this.head]
    this.items[this.head] = undefined
    this.head++
    if (this.head === this.items.length) {
      this.items.length = 0
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return item
  }

  /** Remove and return every item, oldest first. */
  drain(): T[] {
    const out = this.items.slice(this.head) as T[]
    this.items = []
    this.head = 0
    return out
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i] as T
  }
}
