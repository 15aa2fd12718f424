/**
 * @packageDocumentation
 * labwire's stdio transport: {@link StdioServer} serves one connection on the process's own
 * stdin/stdout (inetd style), and {@link ChildProcessClient} spawns a command and talks to it over
 * its pipes — a simulator per test, no ports. The child's stderr goes to the logger; its exit is a
 * {@link ChildProcessExitError} (a `ConnectionClosedError` carrying the exit code).
 *
 * @example
 * ```ts
 * // device.mjs — a line echo served on stdio
 * import { StdioServer } from '@labwire/transport-stdio'
 * import { SentinelBytesMarshaller } from '@labwire/marshallers'
 * const line = new SentinelBytesMarshaller('\n')
 * await new StdioServer({ callback: async (bytes) => line.marshall(await line.unmarshall(bytes)) }).serve()
 *
 * // test.mjs — talk to it
 * import { ChildProcessClient } from '@labwire/transport-stdio'
 * await using session = await new ChildProcessClient({ command: process.execPath, args: ['device.mjs'] }).connect()
 * console.log(await line.unmarshall(session.request(line.marshall(new TextEncoder().encode('hello')))))
 * ```
 */
export * from './client.js'
export * from './server.js'
