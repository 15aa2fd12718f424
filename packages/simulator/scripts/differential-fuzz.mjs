#!/usr/bin/env node
// Differential fuzz against pyvisa-sim: generate random device files (properties with random
// format specs, setter patterns and specs; channel groups, selectable or not; error handlers) and
// random command sequences, run them through pyvisa-sim in process and through labwire's engine
// (the built package: run `pnpm build` first), and report every reply that differs.
//
//   PYTHONPATH=/tmp/pyvisa-sim node packages/simulator/scripts/differential-fuzz.mjs [seeds=10] [compat=0.5]
//
// pyvisa-sim and stringparser are not part of labwire; see pyvisa-sim-transcripts.py for where to get them.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadDevice } from '../dist/index.js'

const seeds = Number(process.argv[2] ?? 10)
const compat = process.argv[3] ?? '0.5'
const python = process.env.PYTHON ?? '/usr/bin/python3'
const dir = mkdtempSync(join(tmpdir(), 'labwire-fuzz-'))

const RUNNER = String.raw`
import json, sys
from pyvisa_sim.parser import get_devices
out = []
for c in json.load(sys.stdin):
    try:
        devs = get_devices(c['file'], False)
        dev = devs[devs.list_resources()[0]]
    except Exception as e:
        out.append({'load_error': type(e).__name__}); continue
    steps = []
    for m in c['messages']:
        err = None
        try:
            for b in m.encode() + b'\n':
                dev.write(bytes([b]))
        except Exception as e:
            err = type(e).__name__; dev._input_buffer = bytearray()
        r = bytearray()
        while True:
            g = dev.read()
            if isinstance(g, tuple): g = g[0]
            if not g: break
            r.extend(g)
        steps.append([m, r.decode('latin-1'), err])
    out.append({'steps': steps})
print(json.dumps(out))
`
let seed = 1
const rnd = () => { seed = (seed * 16807) % 2147483647; return seed / 2147483647 }
const pick = (a) => a[Math.floor(rnd() * a.length)]
const GET = ['{}', '{:d}', '{:.2f}', '{:+.8E}', '{:s}', '{:e}', '{:g}', '{:.3g}', '{:>8}', '{:08.3f}', '{:,}', '{!r}', '{:x}', '{:%}', '{:.0f}', '{:5}', '{:^7}', 'V={0}', '{0:.1f}V', '{:n}', '{:.10g}']
const SET = ['{}', '{:d}', '{:f}', '{:.3f}', '{:e}', '{:g}', '{:s}', '{:x}', '{:+d}', '{:%}', '{:E}', '{:G}', '{:o}', '{:b}', '{: d}', '{:#x}']
const VALS = ['5', '5.0', '-1.5', '1e3', '1.5e-3', '+2', ' 3', '0x1f', 'abc', '12.345', '007', '-0', '1,5', '10%', '2.50%', '1.5E+02', '3.', '.5', '1_000', 'inf', 'nan', '255', 'ff', '101', '-7', '99999999999', '0.1', '1e-7', '']
const ERRORS = ['    error: ERR\n', '', '    error:\n      response:\n        command_error: CE\n      error_queue:\n        - q: "E?"\n          default: "0"\n          command_error: "-1"\n      status_register:\n        - q: "ESR?"\n          command_error: 32\n']
const EOM = '    eom:\n      TCPIP SOCKET:\n        q: "\\n"\n        r: "\\n"\n'

function propertiesFile(n) {
  const props = []
  const msgs = []
  for (let p = 0; p < 4; p++) {
    const type = pick(['int', 'float', 'str', null])
    let specs = ''
    if (type !== null) {
      specs = `        specs:\n          type: ${type}\n`
      if (type !== 'str' && rnd() < 0.5) specs += `          min: ${pick(['0', '1', '-5'])}\n          max: ${pick(type === 'float' ? ['10', '100', '1e6'] : ['10', '100'])}\n`
      if (type === 'str' && rnd() < 0.4) specs += '          valid: [a, b, abc]\n'
      if (type === 'int' && rnd() < 0.3) specs += '          valid: [0, 1, 5]\n'
    }
    const def = type === 'int' ? pick(['0', '1', '5']) : type === 'float' ? pick(['1.0', '0', '2.5', '5']) : pick(['a', 'x', '1'])
    props.push(
      `      p${p}:\n        default: "${def}"\n        getter:\n          q: "G${p}?"\n          r: "${pick(GET)}"\n        setter:\n          q: "S${p} ${pick(SET)}"\n` +
        `${rnd() < 0.5 ? '          r: OK\n' : ''}${rnd() < 0.3 ? '          e: BAD\n' : ''}${specs}`,
    )
    for (let k = 0; k < 6; k++) msgs.push(`G${p}?`, `S${p} ${pick(VALS)}`)
    msgs.push(`G${p}?`)
  }
  msgs.push('E?', 'ESR?', 'NOPE', 'E?', 'ESR?', 'G0?;G1?', 'S0 1;G0?')
  const yaml = `spec: "1.1"\ndevices:\n  d:\n${EOM}${pick(ERRORS)}    properties:\n${props.join('')}resources:\n  TCPIP::localhost::1::SOCKET:\n    device: d\n`
  return write(`p${n}`, yaml, msgs)
}

function channelsFile(n) {
  const canSelect = rnd() < 0.6
  const chq = canSelect ? `CH${pick(['{ch_id}', '{ch_id:d}', '{ch_id:s}'])}:` : ''
  const getq = canSelect ? 'CH{ch_id}:' : ''
  const ids = pick(['[1, 2, 3]', '[A, B]', '[1, 2]'])
  const idList = ids.slice(1, -1).split(', ')
  const yaml = `spec: "1.1"
devices:
  d:
${EOM}${pick(ERRORS)}    dialogues:
      - q: "*IDN?"
        r: "ID"
    properties:
      selected_channel:
        default: ${idList[0]}
        getter:
          q: "SEL?"
          r: "{}"
        setter:
          q: "SEL {}"
${pick(['', '        specs:\n          type: int\n', '        specs:\n          type: str\n'])}    channels:
      grp:
        ids: ${ids}
        can_select: ${canSelect ? 'True' : 'False'}
        dialogues:
          - q: "${getq}NAME?"
            r: "ch"
          - q: "${getq}EMPTY?"
            r: ""
        properties:
          volt:
            default: 1.0
            getter:
              q: "${getq}VOLT?"
              r: "${pick(['{:+.3f}', '{}', '{:.2e}'])}"
            setter:
              q: "${chq}VOLT ${pick(['{:f}', '{}', '{:.2f}', '{:g}'])}"
${rnd() < 0.5 ? '              r: OK\n' : ''}${rnd() < 0.4 ? '              e: BAD\n' : ''}            specs:
              type: ${pick(['float', 'int', 'str'])}
${rnd() < 0.5 ? '              min: 0\n              max: 5\n' : ''}          mode:
            default: a
            getter:
              q: "${getq}MODE?"
              r: "{}"
            setter:
              q: "${chq}MODE {}"
resources:
  TCPIP::localhost::1::SOCKET:
    device: d
`
  const msgs = []
  const chans = [...idList, '9', 'X']
  for (let k = 0; k < 30; k++) {
    const pre = canSelect ? `CH${pick(chans)}:` : ''
    msgs.push(pick([`${pre}VOLT?`, `${pre}VOLT ${pick(['1.5', '2', '7.0', '3.25', 'x', '4'])}`, `${pre}MODE?`, `${pre}MODE ${pick(['b', 'zz'])}`, `${pre}NAME?`, `${pre}EMPTY?`, `SEL ${pick(chans)}`, 'SEL?', 'E?', 'ESR?', '*IDN?', 'NOPE']))
  }
  return write(`c${n}`, yaml, msgs)
}

function write(name, yaml, messages) {
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, yaml)
  return { file, messages }
}

let mismatches = 0
let replies = 0
let loaded = 0
let files = 0
try {
  for (let s = 1; s <= seeds; s++) {
    seed = s
    const cases = []
    for (let f = 0; f < 20; f++) cases.push(propertiesFile(`${s}-${f}`), channelsFile(`${s}-${f}`))
    const run = spawnSync(python, ['-c', RUNNER], { input: JSON.stringify(cases), encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 })
    if (run.status !== 0) throw new Error(`pyvisa-sim run failed (is it on PYTHONPATH?): ${run.stderr}`)
    const reference = JSON.parse(run.stdout)
    for (let i = 0; i < cases.length; i++) {
      files++
      const ref = reference[i]
      let device
      try {
        device = await loadDevice(cases[i].file, { compat })
      } catch (error) {
        if (ref.load_error === undefined) {
          mismatches++
          console.log(`${cases[i].file}: labwire refuses it, pyvisa-sim loads it: ${error.message}`)
        }
        continue
      }
      if (ref.load_error !== undefined) {
        mismatches++
        console.log(`${cases[i].file}: pyvisa-sim refuses it (${ref.load_error}), labwire loads it`)
        continue
      }
      loaded++
      for (const [message, expected, error] of ref.steps) {
        replies++
        const out = await device.respond(new TextEncoder().encode(message), { connection: undefined, session: {} })
        const got = out === undefined ? '' : Buffer.from(out).toString('latin1')
        if (got !== expected) {
          mismatches++
          console.log(`${cases[i].file} ${JSON.stringify(message)}: pyvisa-sim ${JSON.stringify(expected)}${error ? ` (${error})` : ''}, labwire ${JSON.stringify(got)}`)
        }
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
console.log(JSON.stringify({ compat, files, loaded, replies, mismatches }))
process.exitCode = mismatches === 0 ? 0 : 1
