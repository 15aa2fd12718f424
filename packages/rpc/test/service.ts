/** The services the RPC tests serve. */
import { codecs, defineService, type Handlers, type RpcContext } from '../src/index.js'

export const svc = defineService({
  name: 'test',
  methods: {
    hello: { id: 0, request: codecs.string, response: codecs.string },
    add: { id: 2, request: codecs.tuple(codecs.int32le, codecs.int32le), response: codecs.int32le },
    ramp: { id: 5, request: codecs.json<{ n: number }>(), response: codecs.raw, stream: true },
    note: { id: 6, request: codecs.json<{ text: string }>(), oneWay: true },
    sleep: { id: 7, request: codecs.uint32le, response: codecs.string },
    fail: { id: 8, request: codecs.tuple(codecs.string, codecs.string), response: codecs.none },
    echo: { id: 9, request: codecs.raw, response: codecs.raw },
    forever: { id: 10, request: codecs.none, response: codecs.uint32le, stream: true },
  },
})

/** What the handlers saw, for assertions. */
export interface Probe {
  notes: string[]
  /** Resolved with the abort reason when a sleeping or streaming handler stops. */
  stopped: Array<{ method: string; reason: unknown; at: number }>
  onStop?: (reason: unknown) => void
  onNote?: (text: string) => void
}

export function handlers(probe: Probe): Handlers<typeof svc> {
  const watch = (ctx: RpcContext): void => {
    ctx.signal.addEventListener('abort', () => {
      probe.stopped.push({ method: ctx.method, reason: ctx.signal.reason, at: Date.now() })
      probe.onStop?.(ctx.signal.reason)
    }, { once: true })
  }
  return {
    hello: (name) => `hello ${name}`,
    add: ([a, b]) => a + b,
    async *ramp({ n }) {
      for (let i = 0; i < n; i++) yield new Uint8Array([i & 0xff])
    },
    note: ({ text }) => {
      probe.notes.push(text)
      probe.onNote?.(text)
    },
    sleep: (ms, ctx) => {
      watch(ctx)
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => resolve(`slept ${ms}`), ms)
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(timer)
          reject(ctx.signal.reason as Error)
        }, { once: true })
      })
    },
    fail: ([name, message]) => {
      const error = Object.assign(new Error(message), { code: 'E_DEVICE' })
      error.name = name
      throw error
    },
    echo: (bytes) => bytes,
    async *forever(_none, ctx) {
      watch(ctx)
      for (let i = 0; ; i++) {
        if (ctx.signal.aborted) return
        yield i
        await new Promise((resolve) => setTimeout(resolve, 1))
      }
    },
  }
}
