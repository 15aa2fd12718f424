/**
 * Login mode and plain-mode edge cases against scripted devices on 127.0.0.1 (node:net servers
 * speaking Telnet through labwire's codec), and prompt stripping.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { AbortError, TimeoutError, toText } from '@labwire/core'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { TelnetClient, TelnetCodec, TelnetLoginError, TelnetServer } from '@labwire/transport-telnet'
import { PromptStripper } from '../src/prompt.js'
import { rejectionOf, within } from '../../../test/helpers/fixtures.js'

const WAIT = 5_000
const servers: Server[] = []
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise<void>((resolve) => server.close(() => resolve()))
})

/** A scripted CLI device: `onConnect` greets, `onLine` answers each line of data (codec refuses every option). */
async function device(onConnect: (send: (text: string) => void, socket: Socket) => void, onLine: (line: string, send: (text: string) => void, socket: Socket) => void = () => undefined): Promise<number> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => undefined)
    const codec = new TelnetCodec({ send: (b) => socket.write(b) })
    const send = (text: string): void => {
      if (socket.writable) socket.write(codec.encode(Buffer.from(text, 'latin1')))
    }
    let pending = ''
    socket.on('data', (chunk: Buffer) => {
      pending += Buffer.from(codec.decode(chunk)).toString('latin1')
      let index: number
      while ((index = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, index).replace(/\r$/, '')
        pending = pending.slice(index + 1)
        onLine(line, send, socket)
      }
    })
    onConnect(send, socket)
  })
  const close = server.close.bind(server)
  server.close = (callback) => {
    for (const socket of sockets) socket.destroy()
    return close(callback)
  }
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no address')
  return address.port
}

/** A device that greets with `login:`, wants admin/pw, then shows `sw1# ` and answers `show ver`. */
function cli(): Promise<number> {
  let stage: 'user' | 'password' | 'shell' = 'user'
  return device(
    (send) => send('\r\nUser Access Verification\r\n\r\nlogin: '),
    (line, send) => {
      if (stage === 'user') {
        stage = 'password'
        send(`${line}\r\nPassword: `)
      } else if (stage === 'password') {
        if (line === 'pw') {
          stage = 'shell'
          send('\r\nsw1# ')
        } else send('\r\n% Authentication failed\r\n\r\nlogin: ')
      } else if (line === 'show ver') send(`show ver\r\nVersion 1.2\r\nUptime 3 days\r\nsw1# `)
      else send(`${line}\r\n% Unknown command\r\nsw1# `)
    },
  )
}

describe('TelnetClient login mode', () => {
  it('logs in through login / password prompts and serves requests; without stripPrompt the prompt stays in the stream', async () => {
    const port = await cli()
    await using session = await new TelnetClient({ host: '127.0.0.1', port, mode: 'login', username: 'admin', password: 'pw' }).connect({ signal: AbortSignal.timeout(WAIT) })
    const prompt = new SentinelBytesMarshaller('sw1# ')
    const reply = await within(prompt.unmarshall(session.request(Buffer.from('show ver\r\n'))), WAIT, 'reply')
    expect(toText(reply)).toBe('show ver\r\nVersion 1.2\r\nUptime 3 days\r\n')
  })

  it('stripPrompt removes the prompt line, so a line framer reads clean replies', async () => {
    const port = await cli()
    await using session = await new TelnetClient({ host: '127.0.0.1', port, mode: 'login', username: 'admin', password: 'pw', stripPrompt: true, shellPrompt: /sw1# $/ }).connect()
    const line = new SentinelBytesMarshaller('\r\n')
    const stream = session.request(Buffer.from('show ver\r\n'))
    const lines = [await line.unmarshall(stream), await line.unmarshall(stream), await line.unmarshall(stream)].map(toText)
    expect(lines).toEqual(['show ver', 'Version 1.2', 'Uptime 3 days'])
    expect(toText(await within(line.unmarshall(session.request(Buffer.from('foo\r\n'))), WAIT, 'next'))).toBe('foo')
    expect(toText(await within(line.unmarshall(stream), WAIT, 'next'))).toBe('% Unknown command')
  })

  it('a wrong password is a TelnetLoginError (rejected) quoting the device', async () => {
    const port = await cli()
    const error = await rejectionOf(new TelnetClient({ host: '127.0.0.1', port, mode: 'login', username: 'admin', password: 'nope' }).connect())
    expect(error).toBeInstanceOf(TelnetLoginError)
    expect((error as TelnetLoginError).failure).toBe('rejected')
    expect((error as TelnetLoginError).message).toContain('Authentication failed')
  })

  it('a password prompt with no password configured is a TelnetLoginError (missing-credential)', async () => {
    const port = await cli()
    const error = await rejectionOf(new TelnetClient({ host: '127.0.0.1', port, mode: 'login', username: 'admin' }).connect())
    expect(error).toBeInstanceOf(TelnetLoginError)
    expect((error as TelnetLoginError).failure).toBe('missing-credential')
  })

  it('no shell prompt within loginTimeout is a TimeoutError quoting what was seen; abort is an AbortError with the reason', async () => {
    const port = await device((send) => send('Welcome, please wait'))
    const started = performance.now()
    const error = await rejectionOf(new TelnetClient({ host: '127.0.0.1', port, mode: 'login', username: 'a', password: 'b', loginTimeout: 200 }).connect())
    expect(error).toBeInstanceOf(TimeoutError)
    expect((error as TimeoutError).message).toContain('please wait')
    expect(performance.now() - started).toBeGreaterThanOrEqual(190)
    const reason = new Error('operator cancelled')
    const controller = new AbortController()
    const connecting = rejectionOf(new TelnetClient({ host: '127.0.0.1', port, mode: 'login', username: 'a', password: 'b' }).connect({ signal: controller.signal }))
    setTimeout(() => controller.abort(reason), 50)
    const aborted = await connecting
    expect(aborted).toBeInstanceOf(AbortError)
    expect((aborted as AbortError).cause).toBe(reason)
  })

  it('the device closing during the dialogue is a TelnetLoginError (closed)', async () => {
    const port = await device((send, socket) => {
      send('login: ')
      socket.end()
    })
    const error = await rejectionOf(new TelnetClient({ host: '127.0.0.1', port, mode: 'login', username: 'a', password: 'b' }).connect({ signal: AbortSignal.timeout(WAIT) }))
    expect(error, String(error)).toBeInstanceOf(TelnetLoginError)
    expect((error as TelnetLoginError).failure).toBe('closed')
  })

  it('rejects bad options at construction', () => {
    expect(() => new TelnetClient({ host: '127.0.0.1', port: 23, mode: 'ssh' as 'plain' })).toThrow(RangeError)
    expect(() => new TelnetClient({ host: '127.0.0.1', port: 23, stripPrompt: true })).toThrow(RangeError)
    expect(() => new TelnetClient({ host: '127.0.0.1', port: 23, negotiationTimeout: -1 })).toThrow(RangeError)
    expect(() => new TelnetClient({ host: '127.0.0.1', port: 23, mode: 'login', loginTimeout: Number.NaN })).toThrow(RangeError)
    expect(() => new TelnetClient({ host: '127.0.0.1', port: 23, windowSize: { columns: 70_000, rows: 24 } })).toThrow(RangeError)
    expect(() => new TelnetClient({ host: '127.0.0.1', port: 23, terminalType: 'VT 100' })).toThrow(RangeError)
    expect(() => new TelnetClient({ host: '127.0.0.1', port: 23, maxSubnegotiation: 1 })).toThrow(RangeError)
    expect(() => new TelnetServer({ callback: () => undefined, maxSubnegotiation: 0 })).toThrow(RangeError)
    expect(() => new TelnetServer({ callback: () => undefined, banner: 42 as unknown as string })).toThrow(TypeError)
  })
})

describe('TelnetClient plain mode against a peer that ignores negotiation', () => {
  it('goes on in NVT mode after negotiationTimeout', async () => {
    // A raw TCP echo that never answers IAC: it echoes our WILL/DO BINARY too, which we then refuse.
    const sockets: Socket[] = []
    const server = createServer((socket) => {
      sockets.push(socket)
      socket.pipe(socket)
    })
    servers.push(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
    const { port } = server.address() as { port: number }
    try {
      await using session = await new TelnetClient({ host: '127.0.0.1', port, negotiationTimeout: 100 }).connect({ signal: AbortSignal.timeout(WAIT) })
      const line = new SentinelBytesMarshaller('\n')
      expect(toText(await within(line.unmarshall(session.request(Buffer.from('ping\n'))), WAIT, 'echo'))).toBe('ping')
    } finally {
      for (const socket of sockets) socket.destroy()
    }
  })
})

describe('TelnetServer', () => {
  it('echoes input only after the client asks (DO ECHO), and sends banner and prompt', async () => {
    const cr = new SentinelBytesMarshaller('\r')
    await using server = new TelnetServer({ port: 0, callback: async (bytes) => (await cr.unmarshall(bytes), undefined), banner: 'hi\r\n', prompt: '> ' })
    const { port } = await server.listen()
    const socket = await new Promise<Socket>((resolve) => {
      const s = netConnect({ host: '127.0.0.1', port }, () => resolve(s))
    })
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    const until = (predicate: (all: Buffer) => boolean, what: string): Promise<void> =>
      within(
        new Promise<void>((resolve) => {
          const check = (): void => {
            if (predicate(Buffer.concat(chunks))) resolve()
            else socket.once('data', check)
          }
          check()
        }),
        WAIT,
        what,
      )
    await until((all) => all.toString('latin1').endsWith('hi\r\n> '), 'banner')
    expect([...Buffer.concat(chunks)]).toEqual([255, 251, 3, ...Buffer.from('hi\r\n> ')])
    chunks.length = 0
    socket.write(Buffer.from([255, 253, 1])) // DO ECHO
    await until((all) => all.length >= 3, 'WILL ECHO')
    expect([...Buffer.concat(chunks)]).toEqual([255, 251, 1])
    chunks.length = 0
    socket.write('abc\r')
    await until((all) => all.toString('latin1').includes('> '), 'echo and prompt')
    expect(Buffer.concat(chunks).toString('latin1')).toBe('abc\r\0> ')
    socket.destroy()
  })
})

describe('TelnetServer passes TcpServer options through', () => {
  it('maxConnections refuses the extra connection; idleTimeout closes an idle one', async () => {
    const line = new SentinelBytesMarshaller('\n')
    await using server = new TelnetServer({ port: 0, maxConnections: 1, idleTimeout: 150, callback: async (bytes) => line.marshall(await line.unmarshall(bytes)) })
    const { port } = await server.listen()
    const client = new TelnetClient({ host: '127.0.0.1', port, negotiationTimeout: 100 })
    await using first = await client.connect()
    expect(toText(await within(line.unmarshall(first.request(Buffer.from('a\n'))), WAIT, 'echo'))).toBe('a')
    await using extra = await client.connect()
    expect(await within(extra.stream.waitForData(), WAIT, 'extra connection closed')).toBe(false)
    // Left idle, the first connection is closed by the server.
    expect(await within(first.stream.waitForData(), WAIT, 'idle connection closed')).toBe(false)
  })
})

describe('PromptStripper', () => {
  it('drops the prompt line, split anywhere, and keeps complete lines and a held tail that turns out to be data', () => {
    const s = new PromptStripper('sw1# ')
    const out: string[] = []
    const feed = (text: string): void => {
      out.push(Buffer.from(s.strip(Buffer.from(text, 'latin1'))).toString('latin1'))
    }
    feed('Version 1.2\r\nsw')
    feed('1# ')
    feed('42')
    feed('\r\nsw1# ')
    expect(out.join('')).toBe('Version 1.2\r\n42\r\n')
  })
})

describe('examples/transport-telnet.ts', () => {
  const root = fileURLToPath(new URL('../../../', import.meta.url))
  it('is the README block verbatim', () => {
    const readme = readFileSync(`${root}packages/transport-telnet/README.md`, 'utf8')
    const block = /<!-- example: examples\/transport-telnet\.ts -->\r?\n```ts\r?\n([\s\S]*?)```/.exec(readme)?.[1]
    expect(block).toBe(readFileSync(`${root}examples/transport-telnet.ts`, 'utf8'))
  })

  const built = `${root}examples/dist/transport-telnet.js`
  it.skipIf(!existsSync(built))('runs (built by pnpm build) and prints the answers', async () => {
    const child = spawn(process.execPath, [built], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')))
    const code = await within(new Promise<number | null>((resolve) => child.once('exit', resolve)), 15_000, 'example exit')
    expect(code).toBe(0)
    expect(out).toBe('labwire,SIM-DMM,0001,0.1.0\nERR VOLT?\n')
  })
})
