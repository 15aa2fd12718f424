// P-TLS — bulk over TLS: one 8 MiB FixedLengthBytesMarshaller payload echoed through labwire
// (TcpServer({ tls }) + ApplicationServer, ApplicationClient over TcpClient({ tls })) vs a bare
// node:tls byte echo of 8 MiB, in the same run. Each repetition echoes the payload ECHOES times on one connection
// (the handshake is outside the timing). Certificate: made by openssl at run time (bench/certs.mjs).
import { connect as tlsConnect } from 'node:tls'
import { ApplicationClient, FixedLengthBytesMarshaller, TcpClient } from './labwire.mjs'
import { HOST, MiB, bounded, bareClose, compare, emit, forkChild, interleave, measure, median, round } from './lib.mjs'
import { bareEcho, labwireEcho, makePayload } from './bulk-clients.mjs'
import { makeBenchCertificate } from './certs.mjs'

const LENGTH = 8 * MiB
const ECHOES = 4

function bareTlsConnect(port, ca) {
  return bounded(
    new Promise((resolve, reject) => {
      const socket = tlsConnect({ host: HOST, port, ca, servername: 'localhost' }, () => {
        socket.setNoDelay(true)
        socket.off('error', reject)
        resolve(socket)
      })
      socket.once('error', reject)
    }),
    10_000,
    `TLS connect to ${port}`,
  )
}

export async function pTls() {
  const certificate = makeBenchCertificate()
  const labwireServer = await forkChild('servers/labwire-tls-fixed-echo.mjs', [LENGTH, certificate.certFile, certificate.keyFile])
  const bareServer = await forkChild('servers/bare-tls-echo.mjs', [certificate.certFile, certificate.keyFile])
  try {
    const payload = makePayload(LENGTH)
    const fixed = new FixedLengthBytesMarshaller(LENGTH)
    const client = new ApplicationClient(
      new TcpClient({ host: HOST, port: labwireServer.info.port, tls: { ca: certificate.cert, servername: 'localhost' } }),
      fixed.marshall,
      fixed.unmarshall,
      { timeout: 0 },
    )
    const samples = await interleave({
      labwire: async () => {
        const session = await client.connect()
        const result = await measure(labwireServer, async () => {
          for (let i = 0; i < ECHOES; i++) await labwireEcho(session, payload)
        })
        await session.close()
        return result
      },
      bare: async () => {
        const socket = await bareTlsConnect(bareServer.info.port, certificate.cert)
        const result = await measure(bareServer, async () => {
          for (let i = 0; i < ECHOES; i++) await bareEcho(socket, payload)
        })
        await bareClose(socket)
        return result
      },
    })
    const { ratio, paired, out } = compare(samples, 'labwire', 'bare', (ECHOES * LENGTH) / MiB)
    const mibPerS = (side) => (ECHOES * LENGTH) / MiB / (median(samples[side].map((s) => s.ms)) / 1000)
    emit({
      figure: 'P-TLS',
      what: 'TLS bulk echo of one 8 MiB fixed-length payload (x4 per repetition, 1 session) vs bare node:tls echo',
      ratio: round(ratio),
      paired_ratio: round(paired),
      target: 'paired_ratio >= 0.7',
      pass: paired >= 0.7,
      labwire_mib_per_s: round(mibPerS('labwire'), 1),
      bare_mib_per_s: round(mibPerS('bare'), 1),
      cpu_note: 'cpu_us_per_op figures are per MiB echoed',
      ...out,
    })
  } finally {
    await Promise.all([labwireServer.close(), bareServer.close()])
    certificate.remove()
  }
}
