import { ConnectionError, throwIfAborted, type AbortOptions, type TransportClient, type TransportClientSession } from '@labwire/core'
import type { RegistryClient } from './client.js'
import type { ServiceAddress } from './protocol.js'

/** Options for {@link DiscoveredClient}. */
export interface DiscoveredClientOptions {
  /** Where to look the name up. */
  registry: RegistryClient
  /** The service name (case-insensitive). */
  name: string
  /** Build the transport client for one server, e.g. `({ host, port }) => new TcpClient({ host, port })`. */
  connect: (server: ServiceAddress) => TransportClient
  /** `'ordered'` (default): servers in the registry's order (oldest first); `'random'`: shuffled, to spread clients. */
  order?: 'ordered' | 'random'
}

/**
 * A `TransportClient` that finds its server by name: each `connect()` asks the registry for the
 * servers of `name` and connects to the first that accepts, trying the next when one refuses or
 * times out — the failover RPyC's `connect_by_service` lacks. Rejects with the last server's error,
 * or a `ConnectionError` when the registry knows no server of that name.
 */
export class DiscoveredClient implements TransportClient {
  private readonly options: DiscoveredClientOptions

  constructor(options: DiscoveredClientOptions) {
    this.options = { ...options }
  }

  async connect(options: AbortOptions = {}): Promise<TransportClientSession> {
    throwIfAborted(options)
    const servers = await this.options.registry.discover(this.options.name, options)
    if (this.options.order === 'random') {
      for (let i = servers.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1))
        ;[servers[i], servers[j]] = [servers[j] as ServiceAddress, servers[i] as ServiceAddress]
      }
    }
    if (servers.length === 0) throw new ConnectionError(`no server of service "${this.options.name}" is registered`)
    let last: unknown
    for (const server of servers) {
      throwIfAborted(options)
      try {
        return await this.options.connect(server).connect(options)
      } catch (error) {
        if ((error as { name?: unknown } | null)?.name === 'AbortError') throw error
        last = error
      }
    }
    throw last instanceof ConnectionError ? last : new ConnectionError(`no server of service "${this.options.name}" accepted a connection (${servers.length} tried)`, { cause: last })
  }
}
