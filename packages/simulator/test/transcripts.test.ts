import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { loadDevice, SimulatorServer } from '../src/index.js'
import { findPython } from './python.js'
import { RawClient } from './raw-client.js'

// Transcripts recorded from pyvisa-sim itself (scripts/pyvisa-sim-transcripts.py) replayed against
// labwire over real TCP sockets, byte for byte.
const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url))

interface Transcript {
  pyvisaSim: string
  file: string
  resource: string
  eom: string
  queryTerminator: string
  responseTerminator: string
  steps: { send: string; reply: string; error?: string }[]
}

function read(dir: string): { name: string; transcript: Transcript }[] {
  return readdirSync(`${fixtures}${dir}`)
    .filter((name) => name.endsWith('.json'))
    .map((name) => ({ name: name.replace(/\.json$/, ''), transcript: JSON.parse(readFileSync(`${fixtures}${dir}/${name}`, 'utf8')) as Transcript }))
}
// pyvisa-sim 0.5.1 (the default behaviour) and a later release (compat: '0.7')
const transcripts = read('transcripts')
const transcripts07 = read('transcripts-0.7')

const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1')
const utf8Send = (text: string): Buffer => Buffer.from(text, 'utf8')

const servers: SimulatorServer[] = []
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()))
})

async function serve(t: Transcript, compat: '0.5' | '0.7' = '0.5'): Promise<SimulatorServer> {
  const device = await loadDevice(`${fixtures}${t.file}`, { device: t.resource, eom: t.eom, compat })
  const server = new SimulatorServer({ device })
  servers.push(server)
  await server.listen()
  return server
}

describe('pyvisa-sim transcripts replayed over TCP (byte for byte)', () => {
  it('has transcripts', () => {
    expect(transcripts.length).toBeGreaterThanOrEqual(8)
  })
  const all = [...transcripts.map((t) => ({ ...t, compat: '0.5' as const })), ...transcripts07.map((t) => ({ ...t, compat: '0.7' as const }))]
  for (const { name, transcript, compat } of all) {
    it(`${name} (${transcript.file}, ${transcript.resource}, ${transcript.steps.length} messages, pyvisa-sim ${transcript.pyvisaSim}, compat ${compat})`, async () => {
      const server = await serve(transcript, compat)
      const client = await RawClient.open(server.address?.port ?? 0)
      let expected = Buffer.alloc(0)
      for (const step of transcript.steps) {
        client.write(Buffer.concat([utf8Send(step.send), latin1(transcript.queryTerminator)]))
        expected = Buffer.concat([expected, latin1(step.reply)])
        // lockstep: wait for this message's reply before the next
        const got = await client.waitForLength(expected.length)
        expect({ after: step.send, got: got.subarray(0, expected.length).toString('latin1') }).toEqual({ after: step.send, got: expected.toString('latin1') })
      }
      const all = await client.endAndDrain()
      expect(all.toString('latin1')).toBe(expected.toString('latin1'))
    })
  }
})

const python = findPython(true)
if (python === undefined) console.warn('python3 with pyvisa/pyvisa-py not found: the pyvisa-py client tests are SKIPPED')

const PYVISA_CLIENT = String.raw`
import json, sys, pyvisa
job = json.load(sys.stdin)
rm = pyvisa.ResourceManager('@py')
inst = rm.open_resource('TCPIP::127.0.0.1::%d::SOCKET' % job['port'])
inst.read_termination = job['read']
inst.write_termination = job['write']
inst.timeout = 3000
out = []
for step in job['steps']:
    inst.write(step['send'])
    out.append([inst.read() for _ in range(step['reads'])])
inst.close()
print(json.dumps(out))
`

describe.skipIf(python === undefined)('pyvisa-py talks to the served devices as to pyvisa-sim', () => {
  for (const name of ['siggen', 'scpi-register', 'scpi-queue', 'qcodes-dac']) {
    it(`${name} through pyvisa-py (TCPIP::127.0.0.1::<port>::SOCKET)`, async () => {
      const transcript = transcripts.find((t) => t.name === name)?.transcript
      if (transcript === undefined) throw new Error(`no transcript ${name}`)
      const server = await serve(transcript)
      // pyvisa-py reads message by message; steps whose reply pyvisa-sim would not terminate are left out.
      const steps = transcript.steps
        .filter((s) => s.error === undefined && !s.send.includes('\n'))
        .map((s) => ({ send: s.send, expected: s.reply.split(transcript.responseTerminator).slice(0, -1), reads: s.reply.split(transcript.responseTerminator).length - 1 }))
      const job = { port: server.address?.port, read: transcript.responseTerminator, write: transcript.queryTerminator, steps }
      const replies = await new Promise<unknown>((resolve, reject) => {
        // run off the event loop's critical path: the server must keep answering meanwhile
        setImmediate(() => {
          import('node:child_process')
            .then(({ spawn }) => {
              const child = spawn(python as string, ['-c', PYVISA_CLIENT], { stdio: ['pipe', 'pipe', 'pipe'] })
              let out = ''
              let err = ''
              child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c))
              child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c))
              const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
              child.on('close', (code) => {
                clearTimeout(timer)
                if (code === 0) resolve(JSON.parse(out))
                else reject(new Error(`pyvisa-py client failed (${String(code)}): ${err}`))
              })
              child.stdin.end(JSON.stringify(job))
            })
            .catch(reject)
        })
      })
      expect(replies).toEqual(steps.map((s) => s.expected))
    })
  }
})
