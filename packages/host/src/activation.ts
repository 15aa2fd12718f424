/**
 * systemd socket activation: the listening sockets a service manager passes to `labwire serve`
 * (`LISTEN_FDS`, `LISTEN_FDNAMES`, `LISTEN_PID`; sockets start at fd 3, `sd_listen_fds(3)`).
 *
 * @module
 */

/** One inherited listening socket. */
export interface ActivatedSocket {
  fd: number
  /** Its `LISTEN_FDNAMES` entry (systemd's `FileDescriptorName=`; `unknown` when none was set). */
  name: string
}

/** The first inherited descriptor, as in `SD_LISTEN_FDS_START`. */
export const LISTEN_FDS_START = 3

/**
 * The sockets passed to this process, or `[]` when none were (or they were meant for another
 * process: `LISTEN_PID` must be this one's). With `unset` (default true) the variables are removed
 * from `env`, so child processes do not take them for their own.
 */
export function activatedSockets(env: NodeJS.ProcessEnv = process.env, pid: number = process.pid, unset = true): ActivatedSocket[] {
  const count = Number(env.LISTEN_FDS)
  const forUs = env.LISTEN_PID === undefined || env.LISTEN_PID === String(pid)
  const names = (env.LISTEN_FDNAMES ?? '').split(':')
  if (unset) {
    delete env.LISTEN_FDS
    delete env.LISTEN_PID
    delete env.LISTEN_FDNAMES
  }
  if (!forUs || !Number.isInteger(count) || count <= 0) return []
  return Array.from({ length: Math.min(count, 1024) }, (_, i) => ({ fd: LISTEN_FDS_START + i, name: names[i] !== undefined && names[i] !== '' ? names[i] : 'unknown' }))
}

/**
 * Which service serves which socket: a socket named like a service (`FileDescriptorName=psu`) goes
 * to it; the others go, in order, to the remaining `eligible` services in file order.
 */
export function assignSockets(sockets: readonly ActivatedSocket[], services: readonly { name: string; eligible: boolean }[]): Map<string, number> {
  const out = new Map<string, number>()
  const left: ActivatedSocket[] = []
  for (const socket of sockets) {
    const service = services.find((s) => s.name === socket.name)
    if (service !== undefined && !out.has(service.name)) out.set(service.name, socket.fd)
    else left.push(socket)
  }
  for (const service of services) {
    if (left.length === 0) break
    if (!service.eligible || out.has(service.name)) continue
    out.set(service.name, (left.shift() as ActivatedSocket).fd)
  }
  return out
}
