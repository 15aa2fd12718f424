import { applicationCompliance } from './compliance/application.js'
import { memorySetup } from './helpers/fixtures.js'

applicationCompliance(memorySetup)
