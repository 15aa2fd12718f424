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

/**
 * Bare lockstep with one promise per call: the shape of any promise-based client API over a raw
 * socket (write, `await` a promise the data handler resolves with the CRLF-terminated reply, check
 * it). A second reference for P1/P5: what a promise per request costs by itself.
 */
export async function bareLockstepPromise(socket, lines, count) {
  let buffered = null
  let waiting = null
  const onData = (chunk) => {
    buffered = buffered === null ? chunk : Buffer.concat([buffered, chunk])
    const end = buffered.indexOf(10)
    if (end === -1 || waiting === null) return
    const reply = buffered.subarray(0, end + 1)
    buffered = end + 1 === buffered.length ? null : buffered.subarray(end + 1)
    const resolve = waiting
    waiting = null
    resolve(reply)
  }
  socket.on('data', onData)
  try {
    for (let i = 0; i < count; i++) {
      const request = lines.subarray(i * 18, i * 18 + 18)
      const reply = await new Promise((resolve) => {
        waiting = resolve
        socket.write(request)
      })
      if (!reply.equals(request)) throw new Error(`bare promise lockstep: wrong response to request ${i}`)
    }
  } finally {
    socket.off('data', onData)
  }
}

/**
 * Bare pipelined that matches each reply to its request, as labwire does: writes every line at
 * once, then splits the echo into CRLF-terminated lines and checks each against its request.
 * The ratio against it measures labwire's overhead, not per-reply work the plain count skips.
 */
export function barePipelinedMatched(socket, lines, count) {
  return socketExchange(socket, 'bare pipelined (matched)', () => socket.write(lines), (finish) => {
    let i = 0
    let buffered = null
    return (chunk) => {
      buffered = buffered === null ? chunk : Buffer.concat([buffered, chunk])
      let start = 0
      let end = buffered.indexOf(10, start)
      while (end !== -1) {
        const reply = buffered.subarray(start, end + 1)
        if (!reply.equals(lines.subarray(i * 18, i * 18 + 18))) {
          finish(new Error(`bare pipelined (matched): wrong response to request ${i}`))
          return
        }
        i++
        start = end + 1
        end = buffered.indexOf(10, start)
      }
      buffered = start === buffered.length ? null : buffered.subarray(start)
      if (i === count) finish()
    }
  })
}
