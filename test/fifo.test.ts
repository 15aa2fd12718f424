import { describe, expect, it } from 'vitest'
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import { Fifo, MemoryClient, MemoryServer } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'

describe('Fifo', () => {
  it('keeps order across pushes and shifts, including past its compaction point', () => {
    const fifo = new Fifo<number>()
    let next = 0
    let expected = 0
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 300; i++) fifo.push(next++)
      for (let i = 0; i < 250; i++) expect(fifo.shift()).toBe(expected++)
    }
    expect(fifo.length).toBe(next - expected)
    expect(fifo.peek()).toBe(expected)
    expect([...fifo]).toEqual(Array.from({ length: next - expected }, (_, i) => expected + i))
    expect(fifo.drain()).toHaveLength(next - expected)
    expect(fifo.length).toBe(0)
    expect(fifo.shift()).toBeUndefined()
  })

  it('keeps order when the ring wraps and grows mid-wrap, and starts afresh after draining', () => {
    const fifo = new Fifo<number>()
    expect(fifo.peek()).toBeUndefined()
    expect([...fifo]).toEqual([])
    const model: number[] = []
    let next = 0
    // Alternating push/shift patterns move the head around the ring; pushes past the capacity grow
    // it while the queue wraps.
    for (const [pushes, shifts] of [[5, 3], [6, 4], [9, 2], [1, 1], [20, 19], [3, 0], [40, 45], [2000, 1990]] as const) {
      for (let i = 0; i < pushes; i++) {
        fifo.push(next)
        model.push(next++)
      }
      for (let i = 0; i < shifts; i++) expect(fifo.shift()).toBe(model.shift())
      expect(fifo.length).toBe(model.length)
      expect(fifo.peek()).toBe(model[0])
      expect([...fifo]).toEqual(model)
    }
    while (model.length > 0) expect(fifo.shift()).toBe(model.shift())
    expect(fifo.length).toBe(0)
    fifo.push(-1)
    expect(fifo.drain()).toEqual([-1])
    fifo.push(7)
    expect(fifo.shift()).toBe(7)
  })

  it('matches an array model under random pushes, shifts and drains (the first item in a field, the rest in the ring)', () => {
    let seed = 12345
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff
      return seed % n
    }
    const fifo = new Fifo<number>()
    let model: number[] = []
    let next = 0
    for (let step = 0; step < 20_000; step++) {
      const op = random(100)
      if (op < 50) {
        fifo.push(next)
        model.push(next++)
      } else if (op < 99) {
        expect(fifo.shift()).toBe(model.shift())
      } else {
        expect(fifo.drain()).toEqual(model)
        model = []
      }
      expect(fifo.length).toBe(model.length)
      expect(fifo.peek()).toBe(model[0])
    }
    expect([...fifo]).toEqual(model)
  })
})

describe('a burst of calls on one session', () => {
  it('answers 20,000 concurrent sendReceive calls in call order (pipelined, maxInFlight 256)', async () => {
    const line = textMarshaller(new SentinelBytesMarshaller('\n'))
    const server = new MemoryServer({ callback: new ApplicationServer(line.unmarshall, line.marshall, (s: string) => `re:${s}`) })
    const client = new ApplicationClient(new MemoryClient(server), line.marshall, line.unmarshall, { maxInFlight: 256 })
    await using session = await client.connect()
    const replies = await Promise.all(Array.from({ length: 20_000 }, (_, i) => session.sendReceive(String(i))))
    expect(replies.every((reply, i) => reply === `re:${i}`)).toBe(true)
    await server.close()
  })
})
