/**
 * @packageDocumentation
 * labwire device simulators. One device engine ({@link Device}: state, a command table, error
 * handling, faults, a tick loop, unsolicited messages) built either from pyvisa-sim device files
 * ({@link loadDevice}, answers byte for byte as pyvisa-sim 0.5) or in TypeScript; served on TCP by
 * {@link SimulatorServer} (or on any transport server through {@link Device.handler}); driven at run
 * time through an HTTP {@link ControlServer}.
 *
 * @example
 * ```ts
 * import { Device, serveDevice } from '@labwire/simulator'
 *
 * const psu = new Device({ name: 'psu', state: { volts: 0 } })
 *   .command('*IDN?', () => 'ACME,PSU,1,1.0')
 *   .command('VOLT {v:f}', ({ v }, d) => { d.state.volts = v })
 *   .command('VOLT?', (_, d) => d.state.volts.toFixed(3))
 * const server = await serveDevice(psu, { port: 0 })
 * console.log(server.address)
 * await server.close()
 * ```
 */
export * from './device.js'
export * from './faults.js'
export * from './bytes.js'
export * from './server.js'
export * from './control.js'
export {
  loadDevices,
  loadDevice,
  parseDevices,
  pickEom,
  DeviceFileError,
  DeviceFileAliasError,
  DeviceFileTooLargeError,
  DEFAULT_MAX_FILE_SIZE,
  DEFAULT_MAX_ALIAS_EXPANSION,
  DEFAULT_MAX_YAML_TOKENS,
  DEFAULT_MAX_ERROR_QUEUE,
} from './pyvisa/loader.js'
export type {
  DeviceDefinition,
  CreateDeviceOptions,
  Eom,
  LoadedDevices,
  LoadDeviceOptions,
  LoadDevicesOptions,
  PyvisaSimCompat,
  PyvisaState,
  ReadOptions,
  ResourceEntry,
} from './pyvisa/loader.js'
export { pyFormat, formatValue, FormatLimitError, DEFAULT_MAX_FORMAT_WIDTH, type FormatOptions } from './python/format.js'
export { Parser as StringParser } from './python/stringparser.js'
export type { PyValue } from './python/values.js'
export { bundledDevice, bundledDevices, resolveDeviceFile, UnknownDeviceError, BUNDLED_DEVICES, type BundledDevice, type BundledDeviceName } from './bundled.js'
