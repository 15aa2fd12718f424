import { describe, expect, it } from 'vitest'
import { controlFixture, raw } from './control-fixture.js'
import { RawClient } from './raw-client.js'

// The control channel on hono + @hono/node-server (issue 21 item 3): what the move must keep —
// the bounded body, 405/404 answers as JSON, refused requests closing their connection — and
// what it must not do (replace the process's global Request/Response).

const { cleanups, setup } = controlFixture()

describe('control channel routing (hono)', () => {
  it('a body over maxBodyLength is 413, declared or streamed, and changes nothing', async () => {
    const { port, device } = await setup({ maxBodyLength: 64 })
    const headers = { host: `127.0.0.1:${port}`, 'content-type': 'application/json' }
    const big = JSON.stringify({ volts: 2, pad: 'x'.repeat(100) })
    const declared = await raw(port, 'PATCH', '/devices/psu/state', headers, big)
    expect(declared.status).toBe(413)
    expect(declared.json).toEqual({ error: 'body over 64 bytes' })
    // Chunked: no Content-Length, the limit is counted while reading.
    const streamed = await raw(port, 'PATCH', '/devices/psu/state', { ...headers, 'transfer-encoding': 'chunked' }, big)
    expect(streamed.status).toBe(413)
    expect(device.state.volts).toBe(1)
    const small = await raw(port, 'PATCH', '/devices/psu/state', headers, '{"volts":3}')
    expect(small).toMatchObject({ status: 200, json: { volts: 3 } })
  })

  it('405 for a method /devices does not take; 404 JSON for an unknown route or device; trailing slash accepted', async () => {
    const { port } = await setup()
    const host = `127.0.0.1:${port}`
    const post = await raw(port, 'POST', '/devices', { host, 'content-type': 'application/json' }, '{}')
    expect(post).toMatchObject({ status: 405, json: { error: 'GET only' } })
    expect(await raw(port, 'GET', '/elsewhere', { host })).toMatchObject({ status: 404, json: { error: 'no route GET /elsewhere' } })
    expect(await raw(port, 'GET', '/devices/nope/state', { host })).toMatchObject({ status: 404, json: { error: "no device 'nope'" } })
    expect(await raw(port, 'POST', '/devices/psu/state', { host, 'content-type': 'application/json' }, '{}')).toMatchObject({ status: 404 })
    expect((await raw(port, 'GET', '/devices/', { host })).status).toBe(200)
    const res = await raw(port, 'GET', '/devices/psu', { host })
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8')
  })

  it('a refused request gets its JSON answer and its connection is closed; a missing Host is 400 JSON', async () => {
    const { port } = await setup()
    const client = await RawClient.open(port)
    cleanups.push(() => client.destroy())
    client.write(`POST /devices/psu/faults HTTP/1.1\r\nHost: evil.example:${port}\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{"kind":"cable-cut"}`)
    const answer = (await client.waitForLength(Number.MAX_SAFE_INTEGER)).toString('latin1')
    expect(client.isEnded).toBe(true)
    expect(answer).toMatch(/^HTTP\/1\.1 403 /)
    expect(answer).toMatch(/\r\nconnection: close\r\n/i)
    const missing = await RawClient.open(port)
    cleanups.push(() => missing.destroy())
    missing.write('GET /devices HTTP/1.0\r\n\r\n')
    const text = (await missing.waitForLength(Number.MAX_SAFE_INTEGER)).toString('latin1')
    expect(text).toMatch(/^HTTP\/1\.1 400 /)
    expect(text.slice(text.indexOf('\r\n\r\n') + 4)).toBe('{"error":"a Host header is required"}')
  })

  it('leaves the global Request and Response alone', async () => {
    const before = [globalThis.Request, globalThis.Response]
    const { port } = await setup()
    expect((await raw(port, 'GET', '/devices', { host: `127.0.0.1:${port}` })).status).toBe(200)
    expect([globalThis.Request, globalThis.Response]).toEqual(before)
  })
})
