/**
 * The two wire formats, as synchronous decoders over a connection's `ByteStream` and encoders.
 *
 * labwire frame (all integers little-endian):
 * ```
 * u32 length   bytes after this field (8 + 4 if a deadline + payload length)
 * u8  type     see FrameType
 * u8  flags    bit 0: a u32 timeout follows the header; bit 1: one-way request
 * u16 method   method id
 * u32 call     call id (0 for HELLO / PING of the session)
 * [u32 timeout ms]   when flags bit 0: the call's remaining time
 * payload
 * ```
 * basic-socket-rpc 0.6 frame: `u32 size (whole frame, header included) | u8 type | payload`.
 *
 * @module
 */
import { Buffer } from 'node:buffer'
import { NEED_MORE, type ByteStream, type FrameDecoder, type NeedMore } from '@labwire/core'
import { RpcProtocolError } from './errors.js'

/** labwire frame types. */
export const FrameType = {
  /** client → server: the spec fingerprint (JSON). */
  HELLO: 0x01,
  /** server → client: handshake accepted (payload empty) or refused (JSON `{ code, message, mismatches? }`). */
  HELLO_OK: 0x02,
  HELLO_ERROR: 0x03,
  REQUEST: 0x10,
  RESPONSE: 0x11,
  /** server → client: the call failed (JSON `{ name, code?, message, stack? }`). */
  ERROR: 0x12,
  /** client → server: stop the call. */
  CANCEL: 0x13,
  STREAM_CHUNK: 0x14,
  STREAM_END: 0x15,
  PING: 0x20,
  PONG: 0x21,
} as const

export const FLAG_DEADLINE = 0x01
export const FLAG_ONE_WAY = 0x02

/** One decoded labwire frame. */
export interface Frame {
  type: number
  flags: number
  method: number
  call: number
  /** Remaining ms when FLAG_DEADLINE was set. */
  timeout: number | undefined
  payload: Uint8Array
}

/** Header bytes before the optional timeout. */
export const HEADER = 12
/** Largest frame a labwire peer accepts by default: 256 MiB (above any transport's default frame limit). */
export const DEFAULT_MAX_FRAME = 256 * 1024 * 1024
/** Frames up to this size are assembled in one buffer as they arrive (no second copy). */
const EXPECT_LIMIT = 256 * 1024 * 1024
/** Payloads above this are written as a separate chunk after the header instead of being copied into one frame. */
const SPLIT_ABOVE = 64 * 1024

function u32(stream: ByteStream, at: number): number {
  return ((stream.byteAt(at) as number) | ((stream.byteAt(at + 1) as number) << 8) | ((stream.byteAt(at + 2) as number) << 16)) + (stream.byteAt(at + 3) as number) * 0x1000000
}

/** The labwire frame decoder; frames over `maxFrame` bytes are an `RpcProtocolError`. */
export function frameDecoder(maxFrame = DEFAULT_MAX_FRAME): FrameDecoder<Frame> {
  return {
    decode(stream: ByteStream): Frame | NeedMore {
      if (stream.bufferedLength < 4) return NEED_MORE
      const length = u32(stream, 0)
      if (length < 8) throw new RpcProtocolError(`frame length ${length} is below the 8-byte header`)
      if (length + 4 > maxFrame) throw new RpcProtocolError(`frame of ${length + 4} bytes exceeds the limit of ${maxFrame} bytes (maxFrameLength)`)
      if (stream.bufferedLength < length + 4) {
        if (length + 4 <= EXPECT_LIMIT) stream.expect(length + 4)
        return NEED_MORE
      }
      // Header fields read straight from the bytes (no DataView per frame: this is the per-call path).
      const bytes = stream.take(length + 4)
      const flags = bytes[5] as number
      let start = HEADER
      let timeout: number | undefined
      if ((flags & FLAG_DEADLINE) !== 0) {
        if (bytes.length < HEADER + 4) throw new RpcProtocolError('frame has the deadline flag but no room for the timeout')
        timeout = readU32(bytes, HEADER)
        start += 4
      }
      return { type: bytes[4] as number, flags, method: (bytes[6] as number) | ((bytes[7] as number) << 8), call: readU32(bytes, 8), timeout, payload: bytes.subarray(start) }
    },
  }
}

function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] as number) | ((bytes[at + 1] as number) << 8) | ((bytes[at + 2] as number) << 16)) + (bytes[at + 3] as number) * 0x1000000
}

function writeU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value & 0xff
  out[at + 1] = (value >>> 8) & 0xff
  out[at + 2] = (value >>> 16) & 0xff
  out[at + 3] = (value >>> 24) & 0xff
}

/**
 * Encode a labwire frame: one buffer, or header and payload as two chunks when the payload is
 * large (so a big argument is never copied into a frame).
 */
export function encodeFrame(type: number, method: number, call: number, payload: Uint8Array, options?: { timeout?: number | undefined; oneWay?: boolean }): Uint8Array[] {
  const hasTimeout = options?.timeout !== undefined
  const head = HEADER + (hasTimeout ? 4 : 0)
  const length = head - 4 + payload.length
  if (length > 0xffffffff) throw new RpcProtocolError(`payload of ${payload.length} bytes does not fit a frame`)
  const split = payload.length > SPLIT_ABOVE
  // Buffer.allocUnsafe: small frames come from Node's pool (no ArrayBuffer per frame); every byte is written below.
  const out = Buffer.allocUnsafe(split ? head : head + payload.length)
  writeU32(out, 0, length)
  out[4] = type
  out[5] = (hasTimeout ? FLAG_DEADLINE : 0) | (options?.oneWay === true ? FLAG_ONE_WAY : 0)
  out[6] = method & 0xff
  out[7] = (method >>> 8) & 0xff
  writeU32(out, 8, call)
  if (hasTimeout) writeU32(out, HEADER, Math.min(0xffffffff, Math.max(0, Math.ceil(options.timeout as number))))
  if (split) return [out, payload]
  out.set(payload, head)
  return [out]
}

// ── basic-socket-rpc 0.6 ─────────────────────────────────────────────────────────────────────

/** basic-socket-rpc message types. */
export const BsrType = {
  /** client: INIT (three version bytes); server: INIT reply (one bool byte). */
  INIT: 0,
  /** client: request (u16le command id + arguments); server: response (result only, no command id). */
  RPC: 1,
  /** server: exception (u32le-length UTF-8 class name, u32le-length UTF-8 text). */
  EXCEPTION: 4,
} as const

/** The version basic-socket-rpc 0.6 sends in INIT. */
export const BSR_VERSION = new Uint8Array([0, 0, 1])

/** One basic-socket-rpc frame. */
export interface BsrFrame {
  type: number
  payload: Uint8Array
}

/** The basic-socket-rpc frame decoder. */
export function bsrDecoder(maxFrame = DEFAULT_MAX_FRAME): FrameDecoder<BsrFrame> {
  return {
    decode(stream: ByteStream): BsrFrame | NeedMore {
      if (stream.bufferedLength < 4) return NEED_MORE
      const size = u32(stream, 0)
      if (size < 5) throw new RpcProtocolError(`Reported message size too small: ${size}`)
      if (size > maxFrame) throw new RpcProtocolError(`message of ${size} bytes exceeds the limit of ${maxFrame} bytes (maxFrameLength)`)
      if (stream.bufferedLength < size) {
        if (size <= EXPECT_LIMIT) stream.expect(size)
        return NEED_MORE
      }
      const bytes = stream.take(size)
      return { type: bytes[4] as number, payload: bytes.subarray(5) }
    },
  }
}

/** Encode a basic-socket-rpc frame (`u32le size | u8 type | payload`). */
export function encodeBsr(type: number, ...parts: Uint8Array[]): Uint8Array {
  let total = 5
  for (const p of parts) total += p.length
  const out = new Uint8Array(total)
  new DataView(out.buffer).setUint32(0, total, true)
  out[4] = type
  let at = 5
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

const utf8 = new TextEncoder()

/** A basic-socket-rpc string: u32le byte length + UTF-8 (its `serialize_str`). */
export function bsrString(text: string): Uint8Array {
  const body = utf8.encode(text)
  const out = new Uint8Array(4 + body.length)
  new DataView(out.buffer).setUint32(0, body.length, true)
  out.set(body, 4)
  return out
}

/** Parse an exception frame's payload into `[className, text]`. */
export function parseBsrException(payload: Uint8Array): [string, string] {
  const decoder = new TextDecoder()
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength)
  const read = (at: number): [string, number] => {
    if (payload.length - at < 4) throw new RpcProtocolError('exception frame: missing string length')
    const n = view.getUint32(at, true)
    if (at + 4 + n > payload.length) throw new RpcProtocolError('exception frame: string runs past the frame')
    return [decoder.decode(payload.subarray(at + 4, at + 4 + n)), at + 4 + n]
  }
  const [name, next] = read(0)
  const [text] = read(next)
  return [name, text]
}
