// FRAMING — every framer's decoder fed one large frame chunk by chunk, the way a connection's
// data events feed it: push a chunk into the byte stream, call decode, until the frame comes out.
// Two shapes: a 64 MiB frame in 64 KiB chunks and a 1 MiB frame in 64-byte chunks; each also at
// twice the size, to show the cost is linear (time ratio for 2× the bytes ≈ 2, not 4).
// Baseline, measured in the same run on the same chunks: collect them and Buffer.concat once.
// In-process (no sockets): this isolates the framing cost. IdleGapBytesMarshaller is a timer, not
// a decoder, and is not measured.
import { performance } from 'node:perf_hooks'
import {
  ByteStream,
  CobsBytesMarshaller,
  DelimitedBytesMarshaller,
  FixedLengthBytesMarshaller,
  IeeeBlockMarshaller,
  LengthFieldBytesMarshaller,
  NEED_MORE,
  SentinelBytesMarshaller,
  SlipBytesMarshaller,
  StartStopBytesMarshaller,
  decoderOf,
} from './labwire.mjs'
import { MiB, emit, median, round } from './lib.mjs'

const REPS = Number(process.env.LABWIRE_BENCH_REPS ?? 5)
const MAX = 300 * MiB

const framers = {
  sentinel: () => new SentinelBytesMarshaller('\n', { maxLength: MAX }),
  delimited: () => new DelimitedBytesMarshaller(['\r\n', '\n', '\r'], { maxLength: MAX }),
  start_stop: () => new StartStopBytesMarshaller(Uint8Array.of(2), Uint8Array.of(3), { maxLength: MAX }),
  length_field: () => new LengthFieldBytesMarshaller({ lengthFieldLength: 4, initialBytesToStrip: 4, maxLength: MAX }),
  ieee_block: () => new IeeeBlockMarshaller({ maxLength: MAX }),
  slip: () => new SlipBytesMarshaller({ maxLength: MAX }),
  cobs: () => new CobsBytesMarshaller({ maxLength: MAX }),
  fixed_length: (size) => new FixedLengthBytesMarshaller(size),
}

/** A payload with none of the framers' special bytes (0x00, \n, \r, STX, ETX, SLIP END/ESC). */
function payloadOf(size) {
  const p = new Uint8Array(size)
  for (let i = 0; i < size; i++) p[i] = 0x20 + (i % 90)
  return p
}

function chunksOf(wire, chunkSize) {
  const chunks = []
  for (let at = 0; at < wire.length; at += chunkSize) chunks.push(wire.subarray(at, at + chunkSize))
  return chunks
}

/** Push the chunks one by one, decoding after each, as a data event would (`times` frames, each on a fresh stream); returns ms. */
function decodeRun(decoder, chunks, size, times) {
  const start = performance.now()
  for (let t = 0; t < times; t++) {
    const stream = new ByteStream(undefined, { highWaterMark: MAX })
    let frame = NEED_MORE
    for (const chunk of chunks) {
      stream.push(chunk)
      frame = decoder.decode(stream)
    }
    if (frame === NEED_MORE || frame.length !== size) throw new Error(`decoder did not deliver the ${size}-byte frame`)
  }
  return performance.now() - start
}

/** The baseline: keep the chunks, Buffer.concat them once (`times` times). */
function concatRun(chunks, size, times) {
  const start = performance.now()
  for (let t = 0; t < times; t++) {
    const kept = []
    for (const chunk of chunks) kept.push(chunk)
    const out = Buffer.concat(kept)
    if (out.length < size) throw new Error('concat lost bytes')
  }
  return performance.now() - start
}

function shape(size, chunkSize, times) {
  const payload = payloadOf(size)
  const rows = {}
  for (const [name, make] of Object.entries(framers)) {
    const m = make(size)
    const decoder = decoderOf(m.unmarshall)
    const chunks = chunksOf(m.marshall(payload), chunkSize)
    // Warm-up, then interleaved repetitions against the baseline on the same chunks.
    decodeRun(decoder, chunks, size, times)
    concatRun(chunks, size, times)
    const framed = []
    const plain = []
    for (let rep = 0; rep < REPS; rep++) {
      if (rep % 2 === 0) {
        framed.push(decodeRun(decoder, chunks, size, times))
        plain.push(concatRun(chunks, size, times))
      } else {
        plain.push(concatRun(chunks, size, times))
        framed.push(decodeRun(decoder, chunks, size, times))
      }
    }
    // Best of the repetitions: on a shared machine the minimum is the least disturbed run (medians also shown).
    const ms = Math.min(...framed) / times
    const concatMs = Math.min(...plain) / times
    rows[name] = {
      ms: round(ms, 2),
      mib_per_s: round(size / MiB / (ms / 1000), 0),
      concat_ms: round(concatMs, 2),
      ratio_to_concat: round(concatMs / ms),
      median_ms: round(median(framed) / times, 2),
      median_concat_ms: round(median(plain) / times, 2),
    }
  }
  return rows
}

export async function framing() {
  const shapes = [
    { label: '64MiB_in_64KiB', size: 64 * MiB, chunk: 64 * 1024, times: 1 },
    { label: '128MiB_in_64KiB', size: 128 * MiB, chunk: 64 * 1024, times: 1 },
    // Small frames are timed over several frames per repetition (per-frame figures are shown).
    { label: '1MiB_in_64B', size: MiB, chunk: 64, times: 8 },
    { label: '2MiB_in_64B', size: 2 * MiB, chunk: 64, times: 8 },
  ]
  const results = {}
  for (const s of shapes) {
    results[s.label] = shape(s.size, s.chunk, s.times)
    await new Promise((resolve) => setImmediate(resolve))
  }
  // Time for 2x the bytes over time for 1x: linear framing gives about 2.
  const doubling = {}
  for (const name of Object.keys(framers)) {
    doubling[name] = {
      '64KiB_chunks': round(results['128MiB_in_64KiB'][name].ms / results['64MiB_in_64KiB'][name].ms, 2),
      '64B_chunks': round(results['2MiB_in_64B'][name].ms / results['1MiB_in_64B'][name].ms, 2),
    }
  }
  const worst = Math.max(...Object.values(doubling).flatMap((d) => Object.values(d)))
  emit({
    figure: 'FRAMING',
    what: 'one frame through each framer decoder, pushed chunk by chunk and decoded after each chunk; ratio_to_concat = Buffer.concat time / framer time on the same chunks (1.0 = as cheap as concatenating); ms = best of reps per frame',
    reps: REPS,
    ...results,
    doubling_time_ratio: doubling,
    linear: worst < 2.6,
  })
}
