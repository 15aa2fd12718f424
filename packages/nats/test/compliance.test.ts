/**
 * NATS under the transport and application compliance suites, on one real nats-server on
 * loopback: every request is a NATS request to the service subject, the replies come back in
 * request order on the session's inbox. Cases that cannot apply are skipped with the reason.
 */
import { NatsClient, NatsServer } from '@labwire/nats'
import { afterAll, beforeAll, it } from 'vitest'
import { applicationCompliance } from '../../../test/compliance/application.js'
import { transportCompliance } from '../../../test/compliance/transport.js'
import type { TransportSetup } from '../../../test/helpers/fixtures.js'
import { NATS_SERVER, startCluster, type NatsNode } from './cluster.js'

if (NATS_SERVER === undefined) {
  console.warn('SKIPPED: @labwire/nats compliance — nats-server is not installed (apt-get install nats-server)')
  it.skip('@labwire/nats compliance: SKIPPED, nats-server is missing (apt-get install nats-server)', () => undefined)
} else {
  let node: NatsNode | undefined
  beforeAll(async () => {
    node = (await startCluster(1))[0]
  }, 20_000)
  afterAll(() => node?.kill())

  let serial = 0
  const natsSetup: TransportSetup = {
    name: 'nats',
    concurrentSessions: 20,
    async start(handler) {
      const servers = (node as NatsNode).url
      const name = `compliance-${process.pid}-${++serial}`
      const server = new NatsServer({ servers, name, callback: handler })
      await server.listen()
      return { client: new NatsClient({ servers, name, timeout: 10_000 }), close: () => server.close() }
    },
  }

  transportCompliance(natsSetup)
  applicationCompliance(natsSetup, {
    skip: {
      'pipelines up to maxInFlight requests and answers them in order':
        "each NATS request is its own message and byte stream, so the probe's read-ahead within one connection cannot see pipelining (the server runs up to maxConcurrent requests at once; the cluster test pipelines 8)",
    },
  })
}
