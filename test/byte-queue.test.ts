import { describe, expect, it } from 'vitest'
import { ByteQueue, ByteStream, ConnectionError, TimeoutError } from '@labwire/core'
import { rejection } from './compliance/marshaller.js'
import { utf8 } from './helpers/chunks.js'

function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes)
}

/** A queue whose pause/resume requests are recorded in order. */
function recordingQueue(highWaterMark: number): { queue: ByteQueue; events: string[] } {
  const events: string[] = []
  const queue = new ByteQueue({ highWaterMark, onPause: () => events.push('pause'), onResume: () => events.push('resume') })
  return { queue, events }
}

async function pull(queue: ByteQueue): Promise<string> {
  const result = await queue.next()
  if (result.done === true) throw new Error('unexpected end of queue')
  return text(result.value)
}

describe('ByteQueue backpressure', () => {
  it('asks the producer to pause once queued bytes exceed the high-water mark, once', () => {
    const { queue, events } = recordingQueue(10)
    queue.push(utf8('123456'))
    queue.push(utf8('7890'))
    expect(queue.queuedBytes).toBe(10)
    expect(queue.paused).toBe(false)
    expect(events).toEqual([])
    queue.push(utf8('x'))
    expect(queue.paused).toBe(true)
    queue.push(utf8('yz'))
    expect(events).toEqual(['pause'])
    expect(queue.queuedBytes).toBe(13)
  })

  it('asks the producer to resume once the consumer has drained to half the high-water mark', async () => {
    const { queue, events } = recordingQueue(10)
    for (const c of ['aaaa', 'bbbb', 'cccc', 'dd']) queue.push(utf8(c))
    expect(events).toEqual(['pause'])
    expect(await pull(queue)).toBe('aaaa') // 10 left
    expect(await pull(queue)).toBe('bbbb') // 6 left
    expect(events).toEqual(['pause'])
    expect(await pull(queue)).toBe('cccc') // 2 left
    expect(events).toEqual(['pause', 'resume'])
    expect(queue.paused).toBe(false)
    expect(await pull(queue)).toBe('dd')
    expect(events).toEqual(['pause', 'resume'])
  })

  it('pauses again on the next overflow after a resume', async () => {
    const { queue, events } = recordingQueue(4)
    queue.push(utf8('12345'))
    expect(await pull(queue)).toBe('12345')
    queue.push(utf8('abcde'))
    expect(events).toEqual(['pause', 'resume', 'pause'])
  })

  it('bounds the queued bytes of a producer that honours pause', async () => {
    const hwm = 1024
    const chunk = 100
    let paused = false
    const queue = new ByteQueue({ highWaterMark: hwm, onPause: () => (paused = true), onResume: () => (paused = false) })
    let produced = 0
    let consumed = 0
    let maxQueued = 0
    const total = 100_000
    for (let round = 0; round < 10_000 && consumed < total; round++) {
      // The producer writes until asked to pause (as a socket's data events would stop).
      while (!paused && produced < total) {
        queue.push(new Uint8Array(chunk))
        produced += chunk
        maxQueued = Math.max(maxQueued, queue.queuedBytes)
      }
      if (produced >= total) queue.end()
      // The consumer reads a few chunks.
      for (let i = 0; i < 3; i++) {
        const result = await queue.next()
        if (result.done === true) break
        consumed += result.value.length
      }
    }
    expect(consumed).toBe(total)
    expect(maxQueued).toBeLessThanOrEqual(hwm + chunk)
  })

  it('a consumer waiting on an empty queue gets pushed chunks directly (nothing queued)', async () => {
    const { queue, events } = recordingQueue(1)
    const waiting = queue.next()
    queue.push(utf8('hello'))
    const result = await waiting
    expect(result.done).toBe(false)
    expect(text(result.value as Uint8Array)).toBe('hello')
    expect(queue.queuedBytes).toBe(0)
    expect(events).toEqual([])
  })

  it('ignores empty chunks', () => {
    const { queue } = recordingQueue(0)
    queue.push(new Uint8Array(0))
    expect(queue.queuedBytes).toBe(0)
    expect(queue.paused).toBe(false)
  })
})

describe('ByteQueue end and failure', () => {
  it('delivers data pushed before end(), then done, and ignores later pushes', async () => {
    const queue = new ByteQueue()
    queue.push(utf8('a'))
    queue.push(utf8('b'))
    queue.end()
    expect(queue.closed).toBe(true)
    queue.push(utf8('late'))
    expect(await pull(queue)).toBe('a')
    expect(await pull(queue)).toBe('b')
    expect((await queue.next()).done).toBe(true)
    expect((await queue.next()).done).toBe(true)
  })

  it('delivers data pushed before fail(), then rejects with ConnectionError whose cause is the raw error', async () => {
    const queue = new ByteQueue()
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })
    queue.push(utf8('a'))
    queue.push(utf8('b'))
    queue.fail(reset)
    queue.end() // ignored: the failure stands
    expect(await pull(queue)).toBe('a')
    expect(await pull(queue)).toBe('b')
    const error = await rejection(queue.next())
    expect(error).toBeInstanceOf(ConnectionError)
    expect((error as ConnectionError).cause).toBe(reset)
    expect((error as ConnectionError).message).toMatch(/ECONNRESET/)
    expect(await rejection(queue.next())).toBe(error)
  })

  it('passes a labwire error given to fail() through unchanged', async () => {
    const queue = new ByteQueue()
    const timeout = new TimeoutError('idle')
    queue.fail(timeout)
    expect(await rejection(queue.next())).toBe(timeout)
  })

  it('settles a waiting consumer on end() and on fail()', async () => {
    const ended = new ByteQueue()
    const waitingEnd = ended.next()
    ended.end()
    expect((await waitingEnd).done).toBe(true)

    const failed = new ByteQueue()
    const waitingFail = rejection(failed.next())
    failed.fail('not an Error')
    const error = await waitingFail
    expect(error).toBeInstanceOf(ConnectionError)
    expect((error as ConnectionError).cause).toBe('not an Error')
  })

  it('rejects a second concurrent next() with ConnectionError', async () => {
    const queue = new ByteQueue()
    const first = queue.next()
    expect(await rejection(queue.next())).toBeInstanceOf(ConnectionError)
    queue.push(utf8('x'))
    expect(text((await first).value as Uint8Array)).toBe('x')
  })

  it('feeds a ByteStream: frames survive a pause, and the tail survives fail()', async () => {
    const { queue, events } = recordingQueue(8)
    const stream = new ByteStream(queue)
    queue.push(utf8('one\ntwo\n'))
    queue.push(utf8('three\nfo'))
    expect(events).toEqual(['pause'])
    queue.fail(new Error('reset'))
    const NL = utf8('\n')
    expect(text(await stream.readUntil(NL))).toBe('one')
    expect(text(await stream.readUntil(NL))).toBe('two')
    expect(text(await stream.readUntil(NL))).toBe('three')
    expect(await rejection(stream.readUntil(NL))).toBeInstanceOf(ConnectionError)
    expect(text(stream.peek())).toBe('fo')
    expect(events).toEqual(['pause', 'resume'])
  })
})
