/**
 * A client ByteStream's `accessNotices` screen: the opening bytes are held while they may be a
 * server's access notice; a whole notice fails the stream with its typed error, anything else is
 * released as data, byte for byte (issue 15, clients).
 */
import { describe, expect, it } from 'vitest'
import {
  AccessRefusedError,
  AccessTimeoutError,
  ByteStream,
  ConnectionClosedError,
  MAX_ACCESS_NOTICE,
  accessNotice,
} from '@labwire/core'
import { bytes, rejectionOf, text } from './helpers/fixtures.js'

const LF = new Uint8Array([0x0a])
const refusedNotice = accessNotice(new AccessRefusedError(undefined, { holder: '127.0.0.1:40000' }))
const timeoutNotice = accessNotice(new AccessTimeoutError('waited 150 ms for exclusive access to the device without getting it (queueTimeout)', { waited: 150 }))

function client(): ByteStream {
  return new ByteStream(undefined, { accessNotices: true, label: 'device' })
}

describe('ByteStream accessNotices', () => {
  it('a notice arriving a byte at a time fails the stream with AccessRefusedError naming the holder; no byte reaches a reader', async () => {
    const stream = client()
    const read = rejectionOf(stream.readUntil(LF))
    for (const byte of refusedNotice) stream.push(new Uint8Array([byte]))
    const error = await read
    expect(error).toBeInstanceOf(AccessRefusedError)
    expect((error as AccessRefusedError).holder).toBe('127.0.0.1:40000')
    expect(stream.accessError).toBe(error)
    expect(stream.bufferedLength).toBe(0)
  })

  it('a timeout notice then the end: AccessTimeoutError with how long it waited', async () => {
    const stream = client()
    stream.push(timeoutNotice)
    stream.end()
    const error = await rejectionOf(stream.readUntil(LF))
    expect(error).toBeInstanceOf(AccessTimeoutError)
    expect((error as AccessTimeoutError).waited).toBe(150)
  })

  it('a notice cut before its line end, then the close, still counts', async () => {
    const stream = client()
    stream.push(refusedNotice.subarray(0, refusedNotice.length - 2))
    stream.end()
    expect(await rejectionOf(stream.readUntil(LF))).toBeInstanceOf(AccessRefusedError)
  })

  it('a reply that starts with NAK but is no notice is released whole, in order', async () => {
    const stream = client()
    const reply = bytes('\u0015labwire hello\nnext\n')
    stream.push(reply.subarray(0, 3))
    expect(stream.bufferedLength).toBe(0) // held: could still be a notice
    stream.push(reply.subarray(3))
    expect(text(await stream.readUntil(LF))).toBe('\u0015labwire hello')
    expect(text(await stream.readUntil(LF))).toBe('next')
    expect(stream.accessError).toBeUndefined()
  })

  it('ordinary replies pass at once, and a notice later in the stream is data (only the opening is screened)', async () => {
    const stream = client()
    stream.push(bytes('+1.0E+00\n'))
    expect(stream.bufferedLength).toBe(9)
    stream.push(refusedNotice)
    expect(text(await stream.readUntil(LF))).toBe('+1.0E+00')
    expect((await stream.readUntil(LF))[0]).toBe(0x15)
  })

  it(`holds at most ${MAX_ACCESS_NOTICE} bytes: a longer line with the notice prefix is released as data`, async () => {
    const stream = client()
    const prefix = refusedNotice.subarray(0, 25)
    stream.push(prefix)
    stream.push(new Uint8Array(MAX_ACCESS_NOTICE).fill(0x41))
    expect(stream.bufferedLength).toBe(prefix.length + MAX_ACCESS_NOTICE)
    stream.push(LF)
    expect((await stream.readUntil(LF, { maxLength: 4096 })).length).toBe(prefix.length + MAX_ACCESS_NOTICE)
  })

  it('an opening that is not a notice and then the end: the bytes are there, the read ends with ConnectionClosedError', async () => {
    const stream = client()
    stream.push(bytes('\u0015lab'))
    stream.end()
    const error = await rejectionOf(stream.readUntil(LF))
    expect(error).toBeInstanceOf(ConnectionClosedError)
    expect(text((error as ConnectionClosedError).partial)).toBe('\u0015lab')
  })

  it('without the option a notice is plain data', async () => {
    const stream = new ByteStream()
    stream.push(refusedNotice)
    expect((await stream.readUntil(LF))[0]).toBe(0x15)
  })
})
