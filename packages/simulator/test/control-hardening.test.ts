import { execFile, spawnSync } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { ControlServer, isLoopbackHost } from '../src/index.js'
import { controlFixture, raw } from './control-fixture.js'
import { RawClient } from './raw-client.js'

// Issue 16 #6 and #18: the control channel against what a web page (or a rebinding DNS name) can send.

const { cleanups, setup } = controlFixture()

describe('control channel hardening (hardening #6, #18)', () => {
  it('control channel refuses a DNS-rebinding Host header: reading and deleting state (hardening #6)', async () => {
    const { port, device } = await setup()
    device.fault({ kind: 'latency', latency: 1 })
    const json = { 'content-type': 'application/json' }
    expect((await raw(port, 'GET', '/devices/psu', { host: `evil.example:${port}` })).status).toBe(403)
    expect((await raw(port, 'DELETE', '/devices/psu/faults', { host: `evil.example:${port}`, ...json })).status).toBe(403)
    expect((await raw(port, 'PATCH', '/devices/psu/state', { host: 'evil.example', ...json }, '{"volts":9}')).status).toBe(403)
    expect(device.faults.list()).toHaveLength(1)
    expect(device.state.volts).toBe(1)
    // The names of this machine's loopback are fine, with or without the port.
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, 'localhost', 'LOCALHOST.']) {
      expect((await raw(port, 'GET', '/devices', { host })).status, host).toBe(200)
    }
    expect((await raw(port, 'GET', '/devices', {})).status).toBe(400) // no Host at all
  })

  it('control channel refuses cross-origin requests, accepts its own origin (hardening #6)', async () => {
    const { port, device } = await setup()
    const host = `127.0.0.1:${port}`
    const json = { host, 'content-type': 'application/json' }
    const evil = await raw(port, 'POST', '/devices/psu/faults', { ...json, origin: 'http://evil.example' }, '{"kind":"cable-cut"}')
    expect(evil.status).toBe(403)
    expect(evil.json).toEqual({ error: "cross-origin request from 'http://evil.example' refused" })
    expect((await raw(port, 'POST', '/devices/psu/faults', { ...json, origin: 'null' }, '{"kind":"quiet"}')).status).toBe(403)
    expect((await raw(port, 'POST', '/devices/psu/faults', { ...json, origin: `http://localhost:${port + 1}` }, '{"kind":"quiet"}')).status).toBe(403)
    expect((await raw(port, 'GET', '/devices', { host, origin: 'https://evil.example' })).status).toBe(403)
    expect(device.faults.list()).toEqual([])
    const same = await raw(port, 'POST', '/devices/psu/faults', { ...json, origin: `http://localhost:${port}` }, '{"kind":"latency","latency":1}')
    expect(same.status).toBe(201)
  })

  it('a cross-site "simple" text/plain POST to /broadcast or /faults is refused: no fake reading, no cut cable (hardening #6)', async () => {
    const { port, sim, device } = await setup()
    const client = await RawClient.open(sim.address?.port ?? 0)
    cleanups.push(() => client.destroy())
    const plain = { host: `127.0.0.1:${port}`, 'content-type': 'text/plain;charset=UTF-8' }
    const broadcast = await raw(port, 'POST', '/devices/psu/broadcast', plain, '{"message":"VOLT 999"}')
    expect(broadcast.status).toBe(415)
    expect((await raw(port, 'POST', '/devices/psu/faults', plain, '{"kind":"cable-cut"}')).status).toBe(415)
    expect((await raw(port, 'POST', '/devices/psu/reset', { host: `127.0.0.1:${port}` })).status).toBe(415) // no Content-Type at all
    expect((await raw(port, 'PUT', '/devices/psu/cable', { ...plain, 'content-type': 'application/x-www-form-urlencoded' }, 'connected=false')).status).toBe(415)
    expect(device.faults.list()).toEqual([])
    expect(sim.cableConnected).toBe(true)
    // The client still gets exactly its own answer: nothing was injected.
    client.write('VOLT?\n')
    await client.waitFor('1\n')
    expect(client.received.toString('latin1')).toBe('1\n')
  })

  it('a control channel off loopback refuses to start without a token, naming the option (hardening #6)', () => {
    expect(() => new ControlServer({ servers: [], host: '0.0.0.0' })).toThrow(/host '0\.0\.0\.0' is not loopback.*set the token option/)
    expect(() => new ControlServer({ servers: [], host: '192.168.1.20' })).toThrow(RangeError)
    expect(() => new ControlServer({ servers: [], host: '::', token: '' })).toThrow(/token must not be empty/)
    expect(() => new ControlServer({ servers: [], host: '0.0.0.0', token: 'secret' })).not.toThrow()
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']) expect(isLoopbackHost(host), host).toBe(true)
    for (const host of ['0.0.0.0', '::', '10.0.0.1', 'example.com', '::ffff:10.0.0.1']) expect(isLoopbackHost(host), host).toBe(false)
  })

  it('with a token, every request must carry Authorization: Bearer <token> (hardening #6)', async () => {
    const { port } = await setup({ token: 's3cret' })
    const host = `127.0.0.1:${port}`
    const none = await raw(port, 'GET', '/devices', { host })
    expect(none.status).toBe(401)
    expect(none.headers['www-authenticate']).toBe('Bearer')
    expect((await raw(port, 'GET', '/devices', { host, authorization: 'Bearer wrong!' })).status).toBe(401)
    expect((await raw(port, 'GET', '/devices', { host, authorization: 'Basic czNjcmV0' })).status).toBe(401)
    expect((await raw(port, 'GET', '/devices', { host, authorization: 'Bearer s3cret' })).status).toBe(200)
    const post = await raw(port, 'POST', '/devices/psu/faults', { host, authorization: 'Bearer s3cret', 'content-type': 'application/json' }, '{"kind":"latency"}')
    expect(post.status).toBe(201)
  })

  it('/devices/%E0%A4%A answers 400, not 500 (hardening #18)', async () => {
    const { port } = await setup()
    const res = await raw(port, 'GET', '/devices/%E0%A4%A', { host: `127.0.0.1:${port}` })
    expect(res.status).toBe(400)
    expect(res.json).toEqual({ error: 'malformed percent-encoding in /devices/%E0%A4%A' })
  })
})

const curl = spawnSync('curl', ['--version'], { encoding: 'utf8', timeout: 5_000 }).status === 0
if (!curl) console.warn('curl not found: skipping the curl peer test of the control channel')

describe('control channel with curl as the peer', () => {
  it.skipIf(!curl)('the README curl command is accepted; curl -d without a JSON content type is refused (hardening #6)', async () => {
    const { port, device } = await setup()
    // curl runs as a child while this process serves (execFile, not spawnSync, which would block the server).
    const run = async (...args: string[]): Promise<{ status: string; body: string }> => {
      const out = await promisify(execFile)('curl', ['-s', '--max-time', '5', '-w', '\n%{http_code}', ...args], { encoding: 'utf8', timeout: 10_000 })
      const lines = out.stdout.split('\n')
      return { status: lines.pop() ?? '', body: lines.join('\n') }
    }
    const form = await run('-X', 'POST', `127.0.0.1:${port}/devices/psu/faults`, '-d', '{"kind":"latency","latency":200}')
    expect(form.status).toBe('415')
    expect(device.faults.list()).toEqual([])
    const json = await run('-X', 'POST', `127.0.0.1:${port}/devices/psu/faults`, '-H', 'content-type: application/json', '-d', '{"kind":"latency","latency":200}')
    expect(json.status).toBe('201')
    expect(JSON.parse(json.body)).toMatchObject({ kind: 'latency', latency: 200 })
    expect((await run(`http://localhost:${port}/devices`)).status).toBe('200')
  })
})
