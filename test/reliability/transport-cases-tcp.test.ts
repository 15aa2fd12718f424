/**
 * The transport-agnostic reliability cases (transport-cases.ts) over TCP, the reference transport:
 * proves the cases themselves against the transport that faults.test.ts / fds.test.ts already
 * cover with raw sockets, so a failure over UDP, stdio or WebSocket points at that transport.
 */
import { TcpClient, TcpServer } from '@labwire/transport-tcp'
import { reliabilityCases } from './transport-cases.js'

reliabilityCases({
  name: 'tcp',
  async start(handler, logger) {
    const server = new TcpServer({ port: 0, callback: handler, logger })
    const { port } = await server.listen()
    return { client: new TcpClient({ host: '127.0.0.1', port }), connectionCount: () => server.connectionCount, close: () => server.close() }
  },
})
