// The client halves of the line benchmarks (P1, P2, P5): labwire and the bare node:net equivalent.
// Every response is checked against its request on both sides.
import { ApplicationClient, SentinelBytesMarshaller, TcpClient } from './labwire.mjs'
import { HOST, socketExchange, equalBytes } from './lib.mjs'

const line = new SentinelBytesMarshaller('\r\n')

/** A labwire line client for 127.0.0.1:port (ApplicationClient over TcpClient, default options unless given). */
export function labwireClient(port, options = {}) {
  return new ApplicationClient(new TcpClient({ host: HOST, port }), line.marshall, line.unmarshall, options)
}

/** Lockstep: one request on the wire at a time (maxInFlight 1 session), each response checked. */
export async function labwireLockstep(session, payloads) {
  for (let i = 0; i < payloads.length; i++) {
    const response = await session.sendReceive(payloads[i])
    if (!equalBytes(response, payloads[i])) throw new Error(`labwire lockstep: wrong response to request ${i}`)
  }
}

/**
 * Pipelined: keep `window` calls outstanding on the session (its maxInFlight caps what is on the
 * wire), responses checked in order.
 */
export function labwirePipelined(session, payloads, window) {
  const count = payloads.length
  return new Promise((resolve, reject) => {
    let next = 0
    let done = 0
    let failed = false
    const issue = () => {
      const i = next++
      session.sendReceive(payloads[i]).then((response) => {
        if (failed) return
        if (!equalBytes(response, payloads[i])) {
          failed = true
          reject(new Error(`labwire pipelined: wrong response to request ${i}`))
          return
        }
        done++
        if (next < count) issue()
        else if (done === count) resolve()
      }, (error) => {
        failed = true
        reject(error)
      })
    }
    for (let k = 0; k < Math.min(window, count); k++) issue()
  })
}

/** Pipelined, the way many users would write it: every call made at once, then awaited together. */
export async function labwireBurst(session, payloads) {
  const responses = await Promise.all(payloads.map((payload) => session.sendReceive(payload)))
  for (let i = 0; i < payloads.length; i++) {
    if (!equalBytes(responses[i], payloads[i])) throw new Error(`labwire burst: wrong response to request ${i}`)
  }
}

/**
 * Bare lockstep: write one 18-byte line, wait for its CRLF-terminated echo, check it, repeat.
 * `lines` holds the requests back to back (18 bytes each).
 */
export function bareLockstep(socket, lines, count) {
  return socketExchange(socket, 'bare lockstep', () => socket.write(lines.subarray(0, 18)), (finish) => {
    let i = 0
    let buffered = null
    return (chunk) => {
      buffered = buffered === null ? chunk : Buffer.concat([buffered, chunk])
      while (buffered !== null && buffered.length >= 18) {
        const expected = lines.subarray(i * 18, i * 18 + 18)
        if (!buffered.subarray(0, 18).equals(expected)) {
          finish(new Error(`bare lockstep: wrong response to request ${i}`))
          return
        }
        buffered = buffered.length === 18 ? null : buffered.subarray(18)
        i++
        if (i === count) {
          finish()
          return
        }
        socket.write(lines.subarray(i * 18, i * 18 + 18))
      }
    }
  })
}

/** Bare pipelined: write every line at once, count CRLF-terminated lines coming back, check the whole echo. */
export function barePipelined(socket, lines, count) {
  return socketExchange(socket, 'bare pipelined', () => socket.write(lines), (finish) => {
    const chunks = []
    let received = 0
    let newlines = 0
    return (chunk) => {
      chunks.push(chunk)
      received += chunk.length
      let at = chunk.indexOf(10)
      while (at !== -1) {
        newlines++
        at = chunk.indexOf(10, at + 1)
      }
      if (newlines < count) return
      const echoed = Buffer.concat(chunks, received)
      finish(echoed.equals(lines) ? undefined : new Error('bare pipelined: echo differs from the requests'))
    }
  })
}
