// P6 — Telnet overhead: 20,000 lockstep round trips of a 16-byte line + CRLF on one session, over
// Telnet (TelnetServer / TelnetClient: TCP + labwire's IAC codec, BINARY negotiated) against the
// same over plain TCP (TcpServer / TcpClient), measured in the same run, interleaved.
// Both sides: ApplicationServer(SentinelBytesMarshaller('\r\n')) echo; ApplicationClient maxInFlight 1.
import { ApplicationClient, SentinelBytesMarshaller, TelnetClient } from './labwire.mjs'
import { HOST, compare, emit, forkChild, interleave, makeLines, measure, round } from './lib.mjs'
import { labwireClient, labwireLockstep } from './line-clients.mjs'

export const ROUND_TRIPS = 20_000

const line = new SentinelBytesMarshaller('\r\n')

export async function p6() {
  const telnetServer = await forkChild('servers/labwire-telnet-line-echo.mjs')
  const tcpServer = await forkChild('servers/labwire-line-echo.mjs')
  try {
    const { payloads } = makeLines(ROUND_TRIPS)
    const telnetClient = new ApplicationClient(new TelnetClient({ host: HOST, port: telnetServer.info.port }), line.marshall, line.unmarshall, { maxInFlight: 1 })
    const tcpClient = labwireClient(tcpServer.info.port, { maxInFlight: 1 })
    const run = (client, server) => async () => {
      const session = await client.connect()
      const result = await measure(server, () => labwireLockstep(session, payloads))
      await session.close()
      return result
    }
    const samples = await interleave({ telnet: run(telnetClient, telnetServer), tcp: run(tcpClient, tcpServer) })
    const { paired, out } = compare(samples, 'telnet', 'tcp', ROUND_TRIPS)
    emit({
      figure: 'P6',
      what: 'Telnet lockstep / TCP lockstep, 16 B + CRLF, 20,000 round trips, 1 session each',
      ratio: out.ratio,
      paired_ratio: out.paired_ratio,
      target: 'paired_ratio >= 0.85',
      pass: paired >= 0.85,
      telnet_rtt_us: round((out.telnet_ms * 1000) / ROUND_TRIPS, 2),
      tcp_rtt_us: round((out.tcp_ms * 1000) / ROUND_TRIPS, 2),
      ...out,
    })
  } finally {
    await Promise.all([telnetServer.close(), tcpServer.close()])
  }
}
