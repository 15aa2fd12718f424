/**
 * The reliability cases over stdio (see relay-setup.ts). Every case applies; fd churn runs fewer
 * cycles than over TCP because each session is a process (a node child costs ~40 ms to start).
 */
import { reliabilityCases } from '../../../test/reliability/transport-cases.js'
import { startRelayed } from './relay-setup.js'

reliabilityCases({ name: 'stdio (child process)', start: (handler, logger) => startRelayed(handler, logger) }, { churnCycles: 60, churnConcurrency: 10 })
