/**
 * UDP under the transport and application compliance suites. Every case applies: the
 * end-of-session signal (an empty datagram) gives UDP the "peer closed" event the suites check,
 * and loopback neither drops nor reorders datagrams. On a real network a lost datagram (the
 * goodbye included) shows only as a timeout; see the package README.
 */
import { UdpClient, UdpServer } from '@labwire/transport-udp'
import type { TransportSetup } from '../../../test/helpers/fixtures.js'
import { transportCompliance } from '../../../test/compliance/transport.js'
import { applicationCompliance } from '../../../test/compliance/application.js'

export const udpSetup: TransportSetup = {
  name: 'udp',
  async start(handler) {
    const server = new UdpServer({ port: 0, callback: handler })
    const { port } = await server.listen()
    return { client: new UdpClient({ host: '127.0.0.1', port }), close: () => server.close() }
  },
}

transportCompliance(udpSetup)
applicationCompliance(udpSetup)
