/** stdio (ChildProcessClient + StdioServer, see relay-setup.ts) under the transport and application compliance suites: every case applies. */
import type { TransportSetup } from '../../../test/helpers/fixtures.js'
import { transportCompliance } from '../../../test/compliance/transport.js'
import { applicationCompliance } from '../../../test/compliance/application.js'
import { startRelayed } from './relay-setup.js'

// Each session is a child process: 10 at once instead of 50 keeps the concurrency case meaningful without
// starting 50 processes at once on a 2-core machine.
export const stdioSetup: TransportSetup = { name: 'stdio (child process)', concurrentSessions: 10, start: (handler) => startRelayed(handler) }

transportCompliance(stdioSetup)
applicationCompliance(stdioSetup)
