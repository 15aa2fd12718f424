// PWS — WebSocket lockstep ping-pong: 20,000 round trips of a 16-byte line + CRLF on one connection.
// labwire: WebSocketServer + ApplicationServer(SentinelBytesMarshaller('\r\n')) echo; ApplicationClient
//          (maxInFlight 1) over WebSocketClient, each request one binary message.
// bare:    `ws` server that sends every message straight back; a `ws` client sends the 18-byte line,
//          waits for the echo, checks it, repeats.
// diagnostic: the bare client against labwire's server (server_only_paired_ratio), which separates
//          the transport's server from the application layer's client-side cost.
import WebSocket from 'ws'
import { ApplicationClient, SentinelBytesMarshaller } from './labwire.mjs'
import { WebSocketClient } from '@labwire/transport-websocket'
import { bounded, compare, emit, equalBytes, forkChild, interleave, makeLines, measure, round } from './lib.mjs'

export const ROUND_TRIPS = 20_000
const line = new SentinelBytesMarshaller('\r\n')

function bareConnectWs(url) {
  return bounded(
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false })
      ws.once('open', () => {
        ws.off('error', reject)
        resolve(ws)
      })
      ws.once('error', reject)
    }),
    10_000,
    `connect to ${url}`,
  )
}

function bareCloseWs(ws) {
  return bounded(
    new Promise((resolve) => {
      ws.once('close', resolve)
      ws.close()
    }),
    5_000,
    'bare ws close',
  ).catch(() => ws.terminate())
}

/** Send one 18-byte line, wait for its echo, check it, repeat. */
function bareLockstepWs(ws, lines, count) {
  return new Promise((resolve, reject) => {
    let i = 0
    const onMessage = (data) => {
      if (!equalBytes(data, lines.subarray(i * 18, i * 18 + 18))) {
        finish(new Error(`bare ws lockstep: wrong response to request ${i}`))
        return
      }
      i++
      if (i === count) finish()
      else ws.send(lines.subarray(i * 18, i * 18 + 18))
    }
    const onClose = () => finish(new Error('bare ws lockstep: connection closed'))
    const finish = (error) => {
      ws.off('message', onMessage)
      ws.off('close', onClose)
      if (error === undefined) resolve()
      else reject(error)
    }
    ws.on('message', onMessage)
    ws.on('close', onClose)
    ws.send(lines.subarray(0, 18))
  })
}

async function labwireLockstep(session, payloads) {
  for (let i = 0; i < payloads.length; i++) {
    const response = await session.sendReceive(payloads[i])
    if (!equalBytes(response, payloads[i])) throw new Error(`labwire ws lockstep: wrong response to request ${i}`)
  }
}

export async function pws() {
  const labwireServer = await forkChild('servers/labwire-ws-line-echo.mjs')
  const bareServer = await forkChild('servers/bare-ws-echo.mjs')
  try {
    const { lines, payloads } = makeLines(ROUND_TRIPS)
    const client = new ApplicationClient(new WebSocketClient({ url: labwireServer.info.url }), line.marshall, line.unmarshall, { maxInFlight: 1 })
    const samples = await interleave({
      labwire: async () => {
        const session = await client.connect()
        const result = await measure(labwireServer, () => labwireLockstep(session, payloads))
        await session.close()
        return result
      },
      bare: async () => {
        const ws = await bareConnectWs(bareServer.info.url)
        const result = await measure(bareServer, () => bareLockstepWs(ws, lines, ROUND_TRIPS))
        await bareCloseWs(ws)
        return result
      },
      // Diagnostic: the bare ws client against labwire's server isolates the server side.
      bareClientLabwireServer: async () => {
        const ws = await bareConnectWs(labwireServer.info.url)
        const result = await measure(labwireServer, () => bareLockstepWs(ws, lines, ROUND_TRIPS))
        await bareCloseWs(ws)
        return result
      },
    })
    const { paired, out } = compare(samples, 'labwire', 'bare', ROUND_TRIPS)
    const serverOnly = compare({ labwire_server: samples.bareClientLabwireServer, bare: samples.bare }, 'labwire_server', 'bare', ROUND_TRIPS)
    emit({
      figure: 'PWS',
      what: 'WebSocket lockstep ping-pong, 16 B + CRLF per binary message, 20,000 round trips, 1 connection',
      ratio: out.ratio,
      paired_ratio: out.paired_ratio,
      target: 'paired_ratio >= 0.8 (vs bare ws)',
      pass: paired >= 0.8,
      labwire_rtt_us: round((out.labwire_ms * 1000) / ROUND_TRIPS, 2),
      bare_rtt_us: round((out.bare_ms * 1000) / ROUND_TRIPS, 2),
      // labwire's WebSocketServer alone (bare ws client on both): bare server time / labwire server time.
      server_only_paired_ratio: serverOnly.out.paired_ratio,
      bare_client_labwire_server_rtt_us: round((serverOnly.out.labwire_server_ms * 1000) / ROUND_TRIPS, 2),
      ...out,
    })
  } finally {
    await Promise.all([labwireServer.close(), bareServer.close()])
  }
}
