/** The monitor's own HTTP connections kept by the serving kernel (SocketAdopter): maxConnections, idleTimeout, events. */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { connect, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import type { ServerConnectMessage } from '@labwire/core'
import { Monitor } from '../src/index.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.()
})

interface Raw {
  socket: Socket
  text: () => string
  closed: Promise<void>
}

/** A keep-alive connection on a raw socket (bounded waits below). */
function open(port: number): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port })
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    const closed = new Promise<void>((done) => socket.once('close', () => done()))
    socket.on('error', () => undefined)
    socket.once('connect', () => resolve({ socket, text: () => Buffer.concat(chunks).toString('latin1'), closed }))
    socket.once('error', reject)
    cleanups.push(() => socket.destroy())
  })
}

const within = (promise: Promise<void>, ms: number): Promise<boolean> =>
  Promise.race([promise.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms))])

async function start(options: { maxConnections?: number; idleTimeout?: number }): Promise<{ monitor: Monitor; port: number }> {
  const monitor = new Monitor({ port: 0, ...options })
  const { port } = await monitor.listen()
  cleanups.push(() => monitor.close())
  return { monitor, port }
}

const GET = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`

describe('monitor HTTP connections on the serving kernel', () => {
  it('maxConnections: one connection over the limit is closed at once, the others are answered', async () => {
    const { port } = await start({ maxConnections: 2 })
    const a = await open(port)
    const b = await open(port)
    a.socket.write(GET('/healthz'))
    b.socket.write(GET('/healthz'))
    await expect.poll(() => a.text().includes('"ok":true') && b.text().includes('"ok":true'), { timeout: 3000 }).toBe(true)
    const c = await open(port)
    c.socket.write(GET('/healthz'))
    expect(await within(c.closed, 2000)).toBe(true)
    expect(c.text()).not.toContain('"ok":true')
    a.socket.write(GET('/readyz'))
    await expect.poll(() => a.text().split('HTTP/1.1 ').length - 1, { timeout: 3000 }).toBe(2)
  })

  it('idleTimeout closes an idle keep-alive connection but not a live page stream (/events)', async () => {
    const { port } = await start({ idleTimeout: 150 })
    const idle = await open(port)
    idle.socket.write(GET('/healthz'))
    const viewer = await open(port)
    viewer.socket.write(GET('/events'))
    await expect.poll(() => viewer.text().includes('text/event-stream'), { timeout: 3000 }).toBe(true)
    expect(await within(idle.closed, 2000)).toBe(true)
    expect(await within(viewer.closed, 400)).toBe(false)
  })

  it('publishes connect events naming the monitor kernel', async () => {
    const seen: ServerConnectMessage[] = []
    const listener = (m: unknown): void => void seen.push(m as ServerConnectMessage)
    subscribe('labwire:server:connect', listener)
    cleanups.push(() => unsubscribe('labwire:server:connect', listener))
    const { monitor, port } = await start({})
    const a = await open(port)
    a.socket.write(GET('/healthz'))
    await expect.poll(() => seen.some((m) => m.kernel === monitor.kernel && m.transport === 'http'), { timeout: 3000 }).toBe(true)
  })
})
