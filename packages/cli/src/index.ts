/**
 * @packageDocumentation
 * The `labwire` command (`sim`, `query`, `shell`) and the pieces it is made of, for programs that
 * want the same resource strings, exit codes and output.
 *
 * @example
 * ```ts
 * import { main, parseResource } from '@labwire/cli'
 *
 * parseResource('TCPIP0::127.0.0.1::5025::SOCKET') // { scheme: 'tcp', host: '127.0.0.1', port: 5025, … }
 * process.exitCode = await main(['query', 'tcp://127.0.0.1:5025', '*IDN?'])
 * ```
 */
export { main, version } from './main.js'
export { ExitCode, UsageError, UnavailableError, DeviceFileError, exitCodeOf, exitCodeName, type ExitCodeValue } from './exit-codes.js'
export { parseResource, parseTerminator, formatTerminator, ResourceError, RESOURCE_FORMS, type Resource, type ResourceScheme } from './resource.js'
export { Instrument, isQuery, transportFor, type InstrumentSettings } from './instrument.js'
export { decodeValues, parseDataType, DATA_TYPES, type DataType } from './binary.js'
export { processIo, type Io } from './style.js'
