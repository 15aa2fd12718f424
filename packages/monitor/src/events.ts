import { subscribe, unsubscribe } from 'node:diagnostics_channel'
/** Where {@link subscribeServerEvents} delivers the serving kernel's events, already decoded. */
export interface ServerEventSink {
  connect(server: object, peer: string): void
  close(server: object, peer: string, errorCode: string | undefined): void
  /** One finished request: called on every request, so its arguments are positional (no object per request). */
  request(server: object, command: string | undefined, durationMs: number, bytesIn: number, bytesOut: number, errorCode: string | undefined): void
  refused(server: object, reason: string): void
  access(server: object, holder: string | undefined, queued: number): void
}

/** The channel names the serving kernel publishes on (see @labwire/core's README). */
export const CHANNELS = {
  connect: 'labwire:server:connect',
  close: 'labwire:server:close',
  request: 'labwire:server:request',
  refuse: 'labwire:server:refuse',
  access: 'labwire:server:access',
} as const

type Message = Record<string, unknown>

const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined)
const num = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) ? value : undefined)
const obj = (value: unknown): object | undefined => (typeof value === 'object' && value !== null ? value : undefined)

/**
 * The object that identifies the publishing server: the serving kernel's `kernel` field (a
 * server's `ServerKernel`), else `server` when it is an object.
 */
function sourceOf(message: Message): object | undefined {
  return obj(message.kernel) ?? obj(message.server)
}

/** An error's stable code: a string `error`/`errorCode`, or the `code` of an error object. */
function errorCode(message: Message): string | undefined {
  const direct = str(message.errorCode) ?? str(message.error)
  if (direct !== undefined) return direct
  const error = obj(message.error)
  if (error === undefined) return undefined
  return str((error as { code?: unknown }).code) ?? str((error as { name?: unknown }).name) ?? 'ERR'
}

/**
 * Subscribe to the serving kernel's `diagnostics_channel` events and hand them to `sink`.
 * Returns the function that unsubscribes. Until somebody subscribes, servers pay nothing.
 */
export function subscribeServerEvents(sink: ServerEventSink): () => void {
  const handlers: [string, (message: unknown) => void][] = [
    [
      CHANNELS.connect,
      (raw) => {
        const m = raw as Message
        const server = sourceOf(m)
        if (server === undefined) return
        sink.connect(server, str(m.peer) ?? '?')
      },
    ],
    [
      CHANNELS.close,
      (raw) => {
        const m = raw as Message
        const server = sourceOf(m)
        if (server === undefined) return
        sink.close(server, str(m.peer) ?? '?', errorCode(m))
      },
    ],
    [
      CHANNELS.request,
      // The hot path: plain property reads, no object built per request.
      (raw) => {
        const m = raw as Message
        const kernel = m.kernel
        const server = typeof kernel === 'object' && kernel !== null ? kernel : obj(m.server)
        if (server === undefined) return
        const command = m.command ?? m.method
        const duration = m.duration ?? m.durationMs
        const bytesIn = m.bytesIn
        const bytesOut = m.bytesOut
        const error = m.error
        sink.request(
          server,
          typeof command === 'string' ? command : undefined,
          typeof duration === 'number' && duration >= 0 && duration < Infinity ? duration : 0,
          typeof bytesIn === 'number' && bytesIn > 0 ? bytesIn : 0,
          typeof bytesOut === 'number' && bytesOut > 0 ? bytesOut : 0,
          error === undefined && m.errorCode === undefined ? undefined : errorCode(m),
        )
      },
    ],
    [
      CHANNELS.refuse,
      (raw) => {
        const m = raw as Message
        const server = sourceOf(m)
        if (server !== undefined) sink.refused(server, str(m.reason) ?? 'refused')
      },
    ],
    [
      CHANNELS.access,
      (raw) => {
        const m = raw as Message
        const server = sourceOf(m)
        if (server !== undefined) sink.access(server, str(m.holder), num(m.queued) ?? 0)
      },
    ],
  ]
  for (const [name, handler] of handlers) subscribe(name, handler)
  return () => {
    for (const [name, handler] of handlers) unsubscribe(name, handler)
  }
}
