/** `host:port`, with brackets around IPv6 hosts. @internal */
export function formatTarget(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}
