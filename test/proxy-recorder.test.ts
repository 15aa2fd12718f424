import { framerByName, frameEntry, parseDevices, parseTranscript, recordDevice, TranscriptError, UnknownFramerError, type TranscriptEntry } from '@labwire/simulator'
import { describe, expect, it } from 'vitest'

const enc = new TextEncoder()

/** A transcript of one connection: [request, reply | null] pairs, lines ending in \n. */
function transcript(pairs: readonly (readonly [string, string | null])[], connection = 1): TranscriptEntry[] {
  const out: TranscriptEntry[] = [{ time: '', connection, event: 'connect' }]
  for (const [q, r] of pairs) {
    out.push(frameEntry(connection, 'request', enc.encode(`${q}\n`)))
    if (r !== null) out.push(frameEntry(connection, 'response', enc.encode(`${r}\n`)))
  }
  return out
}

function replay(yaml: string, requests: readonly string[]): string[] {
  const device = [...parseDevices(yaml, 'rec.yaml').devices.values()][0]?.create({})
  if (device === undefined) throw new Error('no device')
  return requests.map((q) => {
    const replies = device.execute(enc.encode(q))
    if (replies instanceof Promise) throw new Error('async')
    return Buffer.concat(replies).toString('latin1')
  })
}

describe('recordDevice', () => {
  it('a reply that varied without a setter to explain it is reported, and the file keeps the last one', () => {
    const r = recordDevice(transcript([['MEAS?', '1.01'], ['MEAS?', '1.02']]))
    expect(r.varying).toEqual(['MEAS?'])
    expect(r.verified).toEqual({ matching: 1, total: 2 })
    expect(replay(r.yaml, ['MEAS?'])).toEqual(['1.02\n'])
  })

  it('a setter/getter pair no single format explains stays dialogues', () => {
    // The getter answers something unrelated to the value set.
    const r = recordDevice(transcript([['MODE?', 'A'], ['MODE 7', null], ['MODE?', 'Z']]))
    expect(r.properties).toEqual([])
    expect(r.yaml).not.toContain('properties:')
  })

  it('int, float and quoted string formats are inferred; a rejected value stays a dialogue', () => {
    const r = recordDevice(
      transcript([
        ['COUN?', '0'],
        ['COUN 3', null],
        ['COUN?', '3'],
        ['FREQ 1000', null],
        ['FREQ?', '+1.00000E+03'],
        ['NAME bob', null],
        ['NAME?', '"bob"'],
        ['COUN 99999', null],
        ['COUN?', '3'],
      ]),
    )
    expect(r.properties).toEqual(['coun: COUN {} / COUN? → {:d}', 'freq: FREQ {} / FREQ? → {:+.5E}', 'name: NAME {} / NAME? → "{}"'])
    expect(r.varying).toEqual([])
    expect(replay(r.yaml, ['COUN 5', 'COUN?', 'COUN 99999', 'COUN?', 'FREQ 5', 'FREQ?'])).toEqual(['', '5\n', '', '5\n', '', '+5.00000E+00\n'])
  })

  it('an error reply seen for several unknown commands becomes the device error; edge spaces and bytes are kept exactly', () => {
    const entries = [
      ...transcript([['FOO', 'ERROR: undefined header'], ['BAR', 'ERROR: undefined header'], [' PAD?', '  spaced  ']]),
      frameEntry(1, 'request', enc.encode('RAW?\n')),
      frameEntry(1, 'response', Uint8Array.of(0x23, 0x31, 0x32, 0xff, 0x0a, 0x0a)),
    ]
    const r = recordDevice(entries)
    expect(r.yaml).toContain('error: "ERROR: undefined header"')
    expect(replay(r.yaml, ['NEVER-SEEN', ' PAD?', 'RAW?'])).toEqual(['ERROR: undefined header\n', '  spaced  \n', '#12\xff\n\n'])
  })

  it('the transcript format: parse errors name the line', () => {
    expect(() => parseTranscript('{"connection":1,"direction":"sideways","hex":""}', 's.jsonl')).toThrow(TranscriptError)
    expect(() => parseTranscript('not json', 's.jsonl')).toThrow('s.jsonl:1: not JSON')
    expect(() => parseTranscript('\n{"connection":1,"direction":"request","hex":"zz"}', 's.jsonl')).toThrow('s.jsonl:2: "hex" is not hex')
    expect(parseTranscript(transcript([['*IDN?', 'X']]).map((e) => JSON.stringify(e)).join('\n'))).toHaveLength(3)
  })

  it('framers by name', () => {
    expect(framerByName('crlf').terminator).toEqual(Uint8Array.of(13, 10))
    expect(framerByName('sentinel:sw1> ').terminator).toEqual(enc.encode('sw1> '))
    expect(framerByName('sentinel:\\x03').terminator).toEqual(Uint8Array.of(3))
    expect(framerByName('u32le').terminator).toBeUndefined()
    expect(() => framerByName('morse')).toThrow(UnknownFramerError)
    expect(() => framerByName('sentinel:')).toThrow(UnknownFramerError)
  })
})
