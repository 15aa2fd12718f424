// An RPC service for `labwire serve`: export { service, handlers } (and optionally protocol:
// 'basic-socket-rpc'); the host serves it with an RpcServer on the section's transport.
// Client: new RpcClient(greet, new TcpClient({ host: '127.0.0.1', port: 5030 })).connect()
import { codecs, defineService } from '@labwire/rpc'

export const greet = defineService({
  name: 'greet',
  methods: {
    hello: { id: 0, request: codecs.string, response: codecs.string },
    add: { id: 2, request: codecs.tuple(codecs.int32le, codecs.int32le), response: codecs.int32le },
  },
})

export const Greet = {
  service: greet,
  handlers: {
    hello: (name) => `hello ${name}`,
    add: ([a, b]) => a + b,
  },
}
