// P4's client child: connect to a labwire fixed-length echo server, echo one payload of `length` bytes on command,
// report the elapsed time and this process's peak RSS (process.resourceUsage().maxRSS).
import { performance } from 'node:perf_hooks'
import { serveIpc } from '../lib.mjs'
import { labwireBulkClient, labwireEcho, makePayload } from '../bulk-clients.mjs'

const port = Number(process.argv[2])
const length = Number(process.argv[3])
const baselineRss = process.memoryUsage().rss
const session = await labwireBulkClient(port, length).connect()
serveIpc({
  close: () => session.close(),
  handlers: {
    async echo() {
      const payload = makePayload(length)
      const start = performance.now()
      await labwireEcho(session, payload)
      return { ms: performance.now() - start, baselineRss }
    },
  },
})
process.send({ type: 'ready' })
