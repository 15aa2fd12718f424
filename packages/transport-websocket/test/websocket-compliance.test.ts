/** WebSocket under the transport and application compliance suites: every case applies. */
import { WebSocketClient, WebSocketServer } from '@labwire/transport-websocket'
import type { TransportSetup } from '../../../test/helpers/fixtures.js'
import { transportCompliance } from '../../../test/compliance/transport.js'
import { applicationCompliance } from '../../../test/compliance/application.js'

export const webSocketSetup: TransportSetup = {
  name: 'websocket',
  async start(handler) {
    const server = new WebSocketServer({ port: 0, path: '/labwire', callback: handler })
    await server.listen()
    return { client: new WebSocketClient({ url: server.url as string }), close: () => server.close() }
  },
}

transportCompliance(webSocketSetup)
applicationCompliance(webSocketSetup)
