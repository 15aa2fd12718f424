/**
 * Servers and clients the reliability tests are built from: labwire's own (TcpServer +
 * ApplicationServer + SentinelBytesMarshaller, ApplicationClient + TcpClient) and a raw
 * `node:net` line peer that can misbehave in ways a TcpServer never would (endless frames,
 * half a frame then close).
 */
import { createServer, type Server, type Socket } from 'node:net'
import { ApplicationClient, ApplicationServer, type ApplicationClientOptions, type ApplicationServerOptions, type ServerCallback } from '@labwire/application'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpClient, TcpServer, type TcpServerOptions } from '@labwire/transport-tcp'
import { RecordingLogger, within } from './helpers.js'

export interface LineServerOptions {
  /** SentinelBytesMarshaller maxLength of the server's request framer. */
  maxLength?: number
  errorResponse?: ApplicationServerOptions<string, string>['errorResponse']
  tcp?: Omit<TcpServerOptions, 'callback' | 'logger'>
}

export interface LineServer {
  server: TcpServer
  port: number
  logger: RecordingLogger
}

/** A TcpServer speaking '\n'-terminated text lines through an ApplicationServer; one RecordingLogger for both. */
export async function startLineServer(callback: ServerCallback<string, string>, options: LineServerOptions = {}): Promise<LineServer> {
  const logger = new RecordingLogger()
  const line = textMarshaller(new SentinelBytesMarshaller('\n', options.maxLength === undefined ? {} : { maxLength: options.maxLength }))
  const appOptions: ApplicationServerOptions<string, string> = { logger }
  if (options.errorResponse !== undefined) appOptions.errorResponse = options.errorResponse
  const app = new ApplicationServer(line.unmarshall, line.marshall, callback, appOptions)
  const server = new TcpServer({ port: 0, ...options.tcp, callback: app, logger })
  const { port } = await server.listen()
  return { server, port, logger }
}

export interface LineClientOptions extends ApplicationClientOptions {
  maxLength?: number
  connectTimeout?: number
}

/** An ApplicationClient speaking '\n'-terminated text lines over TcpClient to 127.0.0.1:port. */
export function lineClient(port: number, options: LineClientOptions = {}): ApplicationClient<string, string> {
  const { maxLength, connectTimeout, ...clientOptions } = options
  const line = textMarshaller(new SentinelBytesMarshaller('\n', maxLength === undefined ? {} : { maxLength }))
  const transport = new TcpClient(connectTimeout === undefined ? { host: '127.0.0.1', port } : { host: '127.0.0.1', port, connectTimeout })
  return new ApplicationClient(transport, line.marshall, line.unmarshall, clientOptions)
}

/** True when a fresh client of the line server at `port` gets `expected` in reply to `request` (default: an upper-casing device). */
export async function servesFreshClient(port: number, request = 'fresh', expected = request.toUpperCase()): Promise<boolean> {
  const session = await lineClient(port, { timeout: 5_000 }).connect({ signal: AbortSignal.timeout(5_000) })
  try {
    return (await session.sendReceive(request)) === expected
  } finally {
    await session.close()
  }
}

export interface RawPeer {
  port: number
  /** Sockets accepted so far. */
  sockets: Socket[]
  close(): Promise<void>
}

/** A raw node:net server that calls `onLine` for each '\n'-terminated line of each connection. */
export async function startRawLinePeer(onLine: (line: string, socket: Socket) => void): Promise<RawPeer> {
  const sockets: Socket[] = []
  const server: Server = createServer((socket) => {
    sockets.push(socket)
    socket.on('error', () => undefined) // resets are expected here; the test asserts on the client side
    let pending = ''
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1')
      let index: number
      while ((index = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, index)
        pending = pending.slice(index + 1)
        onLine(line, socket)
      }
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no address')
  return {
    port: address.port,
    sockets,
    close: () =>
      within(
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy()
          server.close(() => resolve())
        }),
        5_000,
        'raw peer close',
      ),
  }
}
