/** The reliability cases over WebSocket: every case applies. */
import { WebSocketClient, WebSocketServer } from '@labwire/transport-websocket'
import { reliabilityCases } from '../../../test/reliability/transport-cases.js'

reliabilityCases({
  name: 'websocket',
  async start(handler, logger) {
    const server = new WebSocketServer({ port: 0, path: '/labwire', callback: handler, logger })
    await server.listen()
    return { client: new WebSocketClient({ url: server.url as string }), connectionCount: () => server.connectionCount, close: () => server.close() }
  },
})
