/** stdio (ChildProcessClient + StdioServer, see relay-setup.ts) under the transport and application compliance suites: every case applies. */
import type { TransportSetup } from '../../../test/helpers/fixtures.js'
import { transportCompliance } from '../../../test/compliance/transport.js'
import { applicationCompliance } from '../../../test/compliance/application.js'
import { startRelayed } from './relay-setup.js'

export const stdioSetup: TransportSetup = { name: 'stdio (child process)', start: (handler) => startRelayed(handler) }

transportCompliance(stdioSetup)
applicationCompliance(stdioSetup)
