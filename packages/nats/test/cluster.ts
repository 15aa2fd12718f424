// A real NATS cluster for tests: nats-server processes on 127.0.0.1, routed to each other.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { connect as netConnect, createServer } from 'node:net'

export const NATS_SERVER = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'].find((path) => existsSync(path))

export interface NatsNode {
  url: string
  port: number
  process: ChildProcess
  /** SIGKILL this node (by its PID). */
  kill(): void
}

/** Free loopback ports, by binding port 0 (all held at once, so they differ). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
      const server = createServer()
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve(server))
    })),
  )
  const ports = servers.map((server) => (server.address() as { port: number }).port)
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
  return ports
}

async function waitForPort(port: number, ms: number): Promise<void> {
  const until = Date.now() + ms
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = netConnect(port, '127.0.0.1')
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > until) throw new Error(`nats-server on port ${port} did not start within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Start `count` nats-server nodes forming one cluster on loopback. */
export async function startCluster(count: number, extraArgs: string[] = []): Promise<NatsNode[]> {
  if (NATS_SERVER === undefined) throw new Error('nats-server is not installed')
  const ports = await freePorts(count * 2)
  const clientPorts = ports.slice(0, count)
  const routePorts = ports.slice(count)
  const nodes: NatsNode[] = []
  for (let i = 0; i < count; i++) {
    const routes = routePorts.filter((_, j) => j !== i).map((port) => `nats://127.0.0.1:${port}`).join(',')
    const args = ['-a', '127.0.0.1', '-p', String(clientPorts[i]), '-n', `labwire-test-${i}`, '--cluster_name', 'labwire-test', '--cluster', `nats://127.0.0.1:${routePorts[i]}`, '--routes', routes, ...extraArgs]
    const child = spawn(NATS_SERVER, args, { stdio: ['ignore', 'ignore', 'pipe'] })
    child.stderr?.resume()
    const port = clientPorts[i] as number
    nodes.push({
      url: `nats://127.0.0.1:${port}`,
      port,
      process: child,
      kill: () => {
        if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL')
      },
    })
  }
  await Promise.all(nodes.map((node) => waitForPort(node.port, 10_000)))
  return nodes
}
