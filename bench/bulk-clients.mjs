// The client halves of the bulk benchmarks (P3, P4): one fixed-length payload echoed, checked byte for byte.
import { ApplicationClient, FixedLengthBytesMarshaller, TcpClient } from './labwire.mjs'
import { HOST, socketExchange } from './lib.mjs'

/** `length` bytes of a non-constant pattern (every page touched, so it is resident). */
export function makePayload(length) {
  const payload = new Uint8Array(length)
  for (let i = 0; i < length; i += 4096) payload[i] = (i >>> 12) & 0xff
  for (let i = 1; i < Math.min(length, 4096); i++) payload[i] = i & 0xff
  return payload
}

export function sameBytes(a, b) {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

/** A labwire fixed-length client for 127.0.0.1:port (no per-call limit: the runner bounds the whole figure). */
export function labwireBulkClient(port, length) {
  const fixed = new FixedLengthBytesMarshaller(length)
  return new ApplicationClient(new TcpClient({ host: HOST, port }), fixed.marshall, fixed.unmarshall, { timeout: 0 })
}

export async function labwireEcho(session, payload) {
  const response = await session.sendReceive(payload)
  if (!sameBytes(response, payload)) throw new Error('labwire bulk: echo differs from the payload')
}

/** Bare: write the payload, collect the echo until `payload.length` bytes are back, check them. */
export function bareEcho(socket, payload) {
  return socketExchange(socket, 'bare bulk', () => socket.write(payload), (finish) => {
    const chunks = []
    let received = 0
    return (chunk) => {
      chunks.push(chunk)
      received += chunk.length
      if (received < payload.length) return
      const echoed = Buffer.concat(chunks, received)
      finish(sameBytes(echoed, payload) ? undefined : new Error('bare bulk: echo differs from the payload'))
    }
  })
}
