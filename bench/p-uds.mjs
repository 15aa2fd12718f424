// P-UDS — lockstep ping-pong over a Unix domain socket vs over TCP loopback, labwire on both sides
// of both (TcpServer + ApplicationServer(SentinelBytesMarshaller('\r\n')) echo, ApplicationClient
// maxInFlight 1): 20,000 round trips of a 16-byte line + CRLF on one session, in the same run.
// ratio = TCP time / UDS time (above 1: the Unix socket is faster). No target: a measurement.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ApplicationClient, SentinelBytesMarshaller, TcpClient } from './labwire.mjs'
import { HOST, compare, emit, forkChild, interleave, makeLines, measure, round } from './lib.mjs'
import { labwireLockstep } from './line-clients.mjs'

const ROUND_TRIPS = 20_000

export async function pUds() {
  const dir = mkdtempSync(join(tmpdir(), 'labwire-bench-uds-'))
  const path = join(dir, 'echo.sock')
  const udsServer = await forkChild('servers/labwire-line-echo-any.mjs', [path])
  const tcpServer = await forkChild('servers/labwire-line-echo-any.mjs')
  try {
    const { payloads } = makeLines(ROUND_TRIPS)
    const line = new SentinelBytesMarshaller('\r\n')
    const clientFor = (options) => new ApplicationClient(new TcpClient(options), line.marshall, line.unmarshall, { maxInFlight: 1 })
    const uds = clientFor({ path })
    const tcp = clientFor({ host: HOST, port: tcpServer.info.port })
    const side = (client, server) => async () => {
      const session = await client.connect()
      const result = await measure(server, () => labwireLockstep(session, payloads))
      await session.close()
      return result
    }
    const samples = await interleave({ uds: side(uds, udsServer), tcp: side(tcp, tcpServer) })
    const { out } = compare(samples, 'uds', 'tcp', ROUND_TRIPS)
    emit({
      figure: 'P-UDS',
      what: 'labwire lockstep ping-pong, 16 B + CRLF, 20,000 round trips, 1 session: Unix socket vs TCP loopback',
      ratio_tcp_over_uds: out.ratio,
      paired_ratio_tcp_over_uds: out.paired_ratio,
      uds_rtt_us: round((out.uds_ms * 1000) / ROUND_TRIPS, 2),
      tcp_rtt_us: round((out.tcp_ms * 1000) / ROUND_TRIPS, 2),
      uds_ops_per_s: Math.round((ROUND_TRIPS * 1000) / out.uds_ms),
      tcp_ops_per_s: Math.round((ROUND_TRIPS * 1000) / out.tcp_ms),
      ...out,
    })
  } finally {
    await Promise.all([udsServer.close(), tcpServer.close()])
    rmSync(dir, { recursive: true, force: true })
  }
}
