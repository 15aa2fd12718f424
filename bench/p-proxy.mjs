// P-PROXY — labwire's recording proxy (@labwire/simulator's Proxy, as `labwire proxy` runs it) in
// front of an instrument, against the same instrument reached directly, lockstep, same run.
// instrument: bench/servers/bare-line-echo.mjs (bare node:net, echoes each CRLF line).
// proxy: a child process running Proxy (requests framed by \n, replies by the scpi framer), the
//        one extra hop; the client writes '*IDN?\r\n' and waits for the echo, 20,000 times.
// Ratio = direct time / proxied time (target >= 0.45: one extra hop, two more socket syscalls per
// direction). A bare node:net relay (socket.pipe both ways) is measured in the same run: the ceiling. Run alone: `node bench/p-proxy.mjs` (after `pnpm build`), or `node bench/run.mjs proxy`.
import process from 'node:process'
import { fileURLToPath } from 'node:url'
import { bareClose, bareConnect, compare, emit, forkChild, interleave, measure, round, serveIpc, socketExchange } from './lib.mjs'

export const ROUND_TRIPS = 20_000

/** Lockstep: write `request`, wait for it echoed, `count` times. */
function lockstep(socket, request, count, label) {
  return socketExchange(socket, label, () => socket.write(request), (finish) => {
    let i = 0
    let buffered = null
    return (chunk) => {
      buffered = buffered === null ? chunk : Buffer.concat([buffered, chunk])
      while (buffered !== null && buffered.length >= request.length) {
        if (!buffered.subarray(0, request.length).equals(request)) {
          finish(new Error(`${label}: wrong response to request ${i}: ${JSON.stringify(buffered.toString('latin1'))}`))
          return
        }
        buffered = buffered.length === request.length ? null : buffered.subarray(request.length)
        i++
        if (i === count) {
          finish()
          return
        }
        socket.write(request)
      }
    }
  })
}

/** The ceiling: a bare node:net relay (pipe both ways, no framing) in front of 127.0.0.1:<port>. */
async function bareRelay(upstreamPort) {
  const { createServer, connect } = await import('node:net')
  const server = createServer({ noDelay: true }, (client) => {
    const upstream = connect({ host: '127.0.0.1', port: upstreamPort, noDelay: true })
    client.pipe(upstream)
    upstream.pipe(client)
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  serveIpc({ close: () => new Promise((resolve) => server.close(resolve)) })
  process.send({ type: 'ready', port: server.address().port })
}

/** The child: a Proxy in front of 127.0.0.1:<port>. */
async function child(upstreamPort) {
  const { Proxy } = await import('@labwire/simulator')
  const { TcpClient } = await import('@labwire/transport-tcp')
  const proxy = new Proxy({ upstream: new TcpClient({ host: '127.0.0.1', port: upstreamPort }), port: 0, requestFramer: 'lf', responseFramer: 'scpi' })
  const { port } = await proxy.listen()
  serveIpc({ close: () => proxy.close(), stats: () => ({ requests: proxy.device.state.requests }) })
  process.send({ type: 'ready', port })
}

export async function pProxy() {
  const instrument = await forkChild('servers/bare-line-echo.mjs')
  const proxy = await forkChild('p-proxy.mjs', ['--child', instrument.info.port])
  const relay = await forkChild('p-proxy.mjs', ['--bare-relay', instrument.info.port])
  try {
    const request = Buffer.from('*IDN?\r\n')
    const samples = await interleave({
      proxy: async () => {
        const socket = await bareConnect(proxy.info.port)
        const result = await measure(proxy, () => lockstep(socket, request, ROUND_TRIPS, 'through the proxy'))
        await bareClose(socket)
        return result
      },
      relay: async () => {
        const socket = await bareConnect(relay.info.port)
        const result = await measure(relay, () => lockstep(socket, request, ROUND_TRIPS, 'through a bare relay'))
        await bareClose(socket)
        return result
      },
      direct: async () => {
        const socket = await bareConnect(instrument.info.port)
        const result = await measure(instrument, () => lockstep(socket, request, ROUND_TRIPS, 'direct'))
        await bareClose(socket)
        return result
      },
    })
    const { paired, out } = compare(samples, 'proxy', 'direct', ROUND_TRIPS)
    // The same hop without labwire: what any proxy on this machine can reach.
    const ceiling = compare(samples, 'relay', 'direct', ROUND_TRIPS)
    const versusRelay = compare(samples, 'proxy', 'relay', ROUND_TRIPS)
    emit({
      figure: 'P-PROXY',
      what: 'labwire proxy pass-through (lf / scpi framers, transcript off) vs the same bare node:net echo reached directly, lockstep, 20,000 round trips, 1 connection',
      ratio: out.ratio,
      paired_ratio: out.paired_ratio,
      target: 'paired_ratio >= 0.45',
      pass: paired >= 0.45,
      proxy_rtt_us: round((out.proxy_ms * 1000) / ROUND_TRIPS, 2),
      direct_rtt_us: round((out.direct_ms * 1000) / ROUND_TRIPS, 2),
      bare_relay_paired_ratio: ceiling.out.paired_ratio,
      proxy_vs_bare_relay_paired_ratio: versusRelay.out.paired_ratio,
      relay_rtt_us: round((ceiling.out.relay_ms * 1000) / ROUND_TRIPS, 2),
      ...out,
    })
  } finally {
    await Promise.all([proxy.close(), relay.close(), instrument.close()])
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === '--child') await child(Number(process.argv[3]))
  else if (process.argv[2] === '--bare-relay') await bareRelay(Number(process.argv[3]))
  else await pProxy()
}
