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
import { MiB, emit, round } from './lib.mjs'

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

/** CPU time (user + system) of this process, in ms. */
function cpuMs() {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}

/** Run `fn` and return its wall and CPU time in ms. */
function timed(fn) {
  const cpu = cpuMs()
  const start = performance.now()
  fn()
  return { wall: performance.now() - start, cpu: cpuMs() - cpu }
}

/** Push the chunks one by one, decoding after each, as a data event would (`times` frames, each on a fresh stream). */
function decodeRun(decoder, chunks, size, times) {
  return timed(() => {
    for (let t = 0; t < times; t++) {
      const stream = new ByteStream(undefined, { highWaterMark: MAX })
      let frame = NEED_MORE
      for (const chunk of chunks) {
        stream.push(chunk)
        frame = decoder.decode(stream)
      }
      if (frame === NEED_MORE || frame.length !== size) throw new Error(`decoder did not deliver the ${size}-byte frame`)
    }
  })
}

/** The baseline: keep the chunks, Buffer.concat them once (`times` times). */
function concatRun(chunks, size, times) {
  return timed(() => {
    for (let t = 0; t < times; t++) {
      const kept = []
      for (const chunk of chunks) kept.push(chunk)
      const out = Buffer.concat(kept)
      if (out.length < size) throw new Error('concat lost bytes')
    }
  })
}

const best = (runs, key) => Math.min(...runs.map((r) => r[key]))

/**
 * One framer at `size` and `2 * size`, all four runs (framer and concat at both sizes) interleaved
 * in each repetition so that load on a shared machine falls on all of them alike.
 */
function pair(name, size, chunkSize, times) {
  const sides = [1, 2].map((k) => {
    const m = framers[name](k * size)
    const chunks = chunksOf(m.marshall(payloadOf(k * size)), chunkSize)
    return { k, size: k * size, decoder: decoderOf(m.unmarshall), chunks, framed: [], plain: [] }
  })
  for (const s of sides) {
    decodeRun(s.decoder, s.chunks, s.size, times)
    concatRun(s.chunks, s.size, times)
  }
  for (let rep = 0; rep < REPS; rep++) {
    const order = rep % 2 === 0 ? sides : [...sides].reverse()
    for (const s of order) {
      s.framed.push(decodeRun(s.decoder, s.chunks, s.size, times))
      s.plain.push(concatRun(s.chunks, s.size, times))
    }
  }
  const row = (s) => {
    // Best of the repetitions: on a shared machine the least disturbed run.
    const ms = best(s.framed, 'wall') / times
    const concatMs = best(s.plain, 'wall') / times
    return {
      ms: round(ms, 2),
      mib_per_s: round(s.size / MiB / (ms / 1000), 0),
      concat_ms: round(concatMs, 2),
      ratio_to_concat: round(concatMs / ms),
      cpu_ms: round(best(s.framed, 'cpu') / times, 2),
    }
  }
  const [one, two] = sides
  return {
    one: row(one),
    two: row(two),
    doubling: { wall: round(best(two.framed, 'wall') / best(one.framed, 'wall'), 2), cpu: round(best(two.framed, 'cpu') / best(one.framed, 'cpu'), 2) },
  }
}

export async function framing() {
  const shapes = [
    { label: '64MiB_in_64KiB', size: 64 * MiB, chunk: 64 * 1024, times: 1 },
    // Small frames are timed over several frames per repetition (figures are per frame).
    { label: '1MiB_in_64B', size: MiB, chunk: 64, times: 8 },
  ]
  const out = {}
  const doubling = {}
  for (const s of shapes) {
    const twice = s.label.replace(/^\d+/, (n) => String(2 * Number(n)))
    out[s.label] = {}
    out[twice] = {}
    for (const name of Object.keys(framers)) {
      const result = pair(name, s.size, s.chunk, s.times)
      out[s.label][name] = result.one
      out[twice][name] = result.two
      ;(doubling[name] ??= {})[s.label.replace(/^\d+MiB_in_/, '') + '_chunks'] = result.doubling
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  const worstCpu = Math.max(...Object.values(doubling).flatMap((d) => Object.values(d).map((x) => x.cpu)))
  emit({
    figure: 'FRAMING',
    what: 'one frame through each framer decoder, pushed chunk by chunk and decoded after each chunk; ms = best of reps, per frame; ratio_to_concat = Buffer.concat time / framer time on the same chunks (1.0 = as cheap as concatenating); doubling = time for 2x the bytes / time for 1x (linear = 2)',
    reps: REPS,
    ...out,
    doubling_time_ratio: doubling,
    linear: worstCpu < 2.6,
  })
}
