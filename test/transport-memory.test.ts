import { transportCompliance } from './compliance/transport.js'
import { memorySetup } from './helpers/fixtures.js'

transportCompliance(memorySetup)
