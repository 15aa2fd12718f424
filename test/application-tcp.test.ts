import { applicationCompliance } from './compliance/application.js'
import { tcpSetup } from './helpers/fixtures.js'

applicationCompliance(tcpSetup)
