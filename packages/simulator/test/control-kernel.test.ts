import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { connect } from 'node:net'
import { describe, expect, it } from 'vitest'
import type { ServerCloseMessage, ServerConnectMessage } from '@labwire/core'
import { ControlServer, Device, SimulatorServer, type ControlServerOptions } from '../src/index.js'
import { controlFixture } from './control-fixture.js'
import { RawClient } from './raw-client.js'

// The control channel's HTTP connections kept by the serving kernel (issue 15 item 3): live set,
// maxConnections, idleTimeout, close({ drain }) with a slow request in flight, connect/close events.

const { cleanups } = controlFixture()

/** A device whose `wait` method takes `ms` milliseconds. */
async function start(options: Omit<ControlServerOptions, 'servers'> = {}): Promise<{ port: number; control: ControlServer }> {
  const device = new Device({ name: 'psu', state: { volts: 1 } }).method('wait', async (_d, ms) => {
    await new Promise((resolve) => setTimeout(resolve, Number(ms)).unref())
    return 'waited'
  })
  const sim = new SimulatorServer({ device })
  await sim.listen()
  const control = new ControlServer({ servers: [sim], ...options })
  const { port } = await control.listen()
  cleanups.push(() => sim.close(), () => control.close())
  return { port, control }
}

/** A keep-alive HTTP connection on a raw socket. */
async function open(port: number): Promise<RawClient> {
  const client = await RawClient.open(port)
  cleanups.push(() => client.destroy())
  return client
}

const GET_STATE = 'GET /devices/psu/state HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'
const wait = (ms: number): string => {
  const body = JSON.stringify({ args: [ms] })
  return `POST /devices/psu/methods/wait HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`
}

/** Resolves when the server has closed the connection (or after `ms`). */
async function closedWithin(client: RawClient, ms: number): Promise<boolean> {
  await client.waitForLength(Number.MAX_SAFE_INTEGER, ms).catch(() => undefined)
  return client.isEnded
}

/** Connections with a request in progress. */
function busyCount(control: ControlServer): number {
  return [...control.kernel.connections].filter((conn) => conn.busy).length
}

function refusedConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve('connected')
    })
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'))
  })
}

describe('control channel on the serving kernel', () => {
  it('maxConnections: the connection over the limit is closed at once; the others keep working', async () => {
    const { port, control } = await start({ maxConnections: 2 })
    const a = await open(port)
    const b = await open(port)
    a.write(GET_STATE)
    b.write(GET_STATE)
    await a.waitFor('{"volts":1}')
    await b.waitFor('{"volts":1}')
    expect(control.connectionCount).toBe(2)
    const c = await open(port)
    c.write(GET_STATE)
    expect(await closedWithin(c, 2_000)).toBe(true)
    expect(c.received.toString('latin1')).not.toContain('volts')
    a.write(GET_STATE)
    await expect.poll(() => a.received.toString('latin1').split('{"volts":1}').length - 1, { timeout: 2_000 }).toBe(2)
    expect(control.connectionCount).toBe(2)
    b.destroy()
    await expect.poll(() => control.connectionCount, { timeout: 2_000 }).toBe(1)
    const d = await open(port)
    d.write(GET_STATE)
    await d.waitFor('{"volts":1}')
  })

  it('idleTimeout: an idle keep-alive connection is closed; one with a slow request in progress is not', async () => {
    const { port } = await start({ idleTimeout: 150 })
    const idle = await open(port)
    idle.write(GET_STATE)
    await idle.waitFor('{"volts":1}')
    const busy = await open(port)
    busy.write(wait(400))
    const t0 = performance.now()
    expect(await closedWithin(idle, 2_000)).toBe(true)
    const idleFor = performance.now() - t0
    expect(idleFor).toBeGreaterThanOrEqual(100)
    expect(idleFor).toBeLessThan(1_500)
    expect(await busy.waitFor('"result":"waited"')).toContain('200 OK')
    expect(busy.isEnded).toBe(false)
  })

  it('close({ drain }): idle connections close at once, the slow request in flight is answered, then close resolves; new connections are refused', async () => {
    const { port, control } = await start()
    const idle = await open(port)
    idle.write(GET_STATE)
    await idle.waitFor('{"volts":1}')
    const busy = await open(port)
    busy.write(wait(300))
    await expect.poll(() => busyCount(control), { timeout: 2_000 }).toBe(1) // the slow request is being handled
    const t0 = performance.now()
    const closing = control.close({ drain: 5_000 })
    expect(await closedWithin(idle, 1_000)).toBe(true)
    expect(await refusedConnect(port)).toBe('ECONNREFUSED')
    await closing
    const took = performance.now() - t0
    expect(took).toBeGreaterThanOrEqual(150)
    expect(took).toBeLessThan(3_000)
    expect(busy.received.toString('latin1')).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*"result":"waited"/)
    expect(await closedWithin(busy, 1_000)).toBe(true)
    expect(control.connectionCount).toBe(0)
  })

  it('close({ drain }) past its deadline closes the request still running', async () => {
    const { port, control } = await start()
    const stuck = await open(port)
    stuck.write(wait(10_000))
    await expect.poll(() => busyCount(control), { timeout: 2_000 }).toBe(1)
    const t0 = performance.now()
    await control.close({ drain: 150 })
    const took = performance.now() - t0
    expect(took).toBeGreaterThanOrEqual(100)
    expect(took).toBeLessThan(2_000)
    expect(await closedWithin(stuck, 1_000)).toBe(true)
    expect(stuck.received.length).toBe(0)
  })

  it('close() without drain closes every connection now', async () => {
    const { port, control } = await start()
    const busy = await open(port)
    busy.write(wait(10_000))
    await expect.poll(() => busyCount(control), { timeout: 2_000 }).toBe(1)
    const t0 = performance.now()
    await control.close()
    expect(performance.now() - t0).toBeLessThan(1_000)
    expect(await closedWithin(busy, 1_000)).toBe(true)
  })

  it('publishes labwire:server:connect and :close for its HTTP connections (transport http, bytes, requests)', async () => {
    const { port, control } = await start()
    const connects: ServerConnectMessage[] = []
    const closes: ServerCloseMessage[] = []
    const onConnect = (message: unknown): void => {
      if ((message as ServerConnectMessage).kernel === control.kernel) connects.push(message as ServerConnectMessage)
    }
    const onClose = (message: unknown): void => {
      if ((message as ServerCloseMessage).kernel === control.kernel) closes.push(message as ServerCloseMessage)
    }
    subscribe('labwire:server:connect', onConnect)
    subscribe('labwire:server:close', onClose)
    try {
      const client = await open(port)
      client.write(GET_STATE)
      await client.waitFor('{"volts":1}')
      client.write(GET_STATE)
      await client.waitFor('{"volts":1}', 5_000)
      await expect.poll(() => client.received.toString('latin1').split('{"volts":1}').length - 1, { timeout: 2_000 }).toBe(2)
      client.destroy()
      await expect.poll(() => closes.length, { timeout: 2_000 }).toBe(1)
      expect(connects).toHaveLength(1)
      expect(connects[0]).toMatchObject({ server: 'ControlServer', transport: 'http', connections: 1 })
      expect(connects[0]?.peer).toMatch(/^127\.0\.0\.1:\d+$/)
      expect(closes[0]).toMatchObject({ server: 'ControlServer', transport: 'http', requests: 2, bytesIn: GET_STATE.length * 2, connections: 0 })
      expect(closes[0]?.bytesOut).toBe(client.received.length)
    } finally {
      unsubscribe('labwire:server:connect', onConnect)
      unsubscribe('labwire:server:close', onClose)
    }
  })
})
