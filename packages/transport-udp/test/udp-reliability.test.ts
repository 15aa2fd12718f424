/**
 * The reliability cases over UDP. All of them apply with the end-of-session signal (empty
 * datagrams) on loopback, which neither drops nor reorders: on a real network a lost datagram shows
 * only as a timeout, and a lost goodbye leaves the server's peer entry until `idleTimeout`.
 */
import { UdpClient, UdpServer } from '@labwire/transport-udp'
import { reliabilityCases } from '../../../test/reliability/transport-cases.js'

reliabilityCases({
  name: 'udp',
  async start(handler, logger) {
    const server = new UdpServer({ port: 0, callback: handler, logger })
    const { port } = await server.listen()
    return { client: new UdpClient({ host: '127.0.0.1', port }), connectionCount: () => server.connectionCount, close: () => server.close() }
  },
})
