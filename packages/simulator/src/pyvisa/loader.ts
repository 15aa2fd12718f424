/**
 * pyvisa-sim device files (spec 1.0 and 1.1): the public entry points. Reading (YAML → the plain
 * model, validated, every error at `file:line:column`) is `read.ts`; building (model → a
 * {@link Device} that answers byte for byte as pyvisa-sim) is `build.ts`.
 *
 * @module
 */
import type { AbortOptions, Logger } from '@labwire/core'
import type { Device } from '../device.js'
import { buildDevice, type CreateDeviceOptions, type PyvisaState } from './build.js'
import type { DeviceModel, Eom, FileModel, PyvisaSimCompat, ResourceEntry } from './model.js'
import { parseDeviceText, readDeviceFile, type ReadOptions } from './read.js'

export { buildDevice, DEFAULT_MAX_ERROR_QUEUE, type CreateDeviceOptions, type PyvisaState } from './build.js'
export { pickEom, type Eom, type PyvisaSimCompat, type ResourceEntry } from './model.js'
export {
  DEFAULT_MAX_ALIAS_EXPANSION,
  DEFAULT_MAX_FILE_SIZE,
  DEFAULT_MAX_YAML_TOKENS,
  DeviceFileAliasError,
  DeviceFileError,
  DeviceFileTooLargeError,
  type ReadOptions,
} from './read.js'

/** A device definition from a file; {@link DeviceDefinition.create} builds a fresh {@link Device}. */
export interface DeviceDefinition {
  readonly name: string
  /** The `eom` map as written, e.g. `{ 'TCPIP SOCKET': { q: '\n', r: '\n' } }` (escapes resolved by YAML). */
  readonly eom: Readonly<Record<string, Eom>>
  /** A new device (fresh state). `eom` picks the terminators by key (see {@link pickEom}). */
  create(options?: CreateDeviceOptions): Device<PyvisaState>
}

/** A loaded file: its devices by name and its resources. */
export interface LoadedDevices {
  file: string
  spec: string
  devices: Map<string, DeviceDefinition>
  resources: ResourceEntry[]
}

/** Options for {@link loadDevices} and {@link parseDevices}: the pyvisa-sim release and the reading limits. */
export interface LoadDevicesOptions extends AbortOptions, ReadOptions {
  compat?: PyvisaSimCompat
}

/** Options for {@link loadDevice}. */
export interface LoadDeviceOptions extends LoadDevicesOptions {
  /** A device name or a resource name. Default: the first resource's device, else the first device. */
  device?: string
  /** `eom` key. Default: `'TCPIP SOCKET'`, then `'TCPIP INSTR'`, then the first entry. */
  eom?: string
  logger?: Logger
  /** See {@link CreateDeviceOptions.maxFormatWidth}. */
  maxFormatWidth?: number
  /** See {@link CreateDeviceOptions.maxErrorQueue}. */
  maxErrorQueue?: number
}

function definitions(model: FileModel, compat: PyvisaSimCompat): LoadedDevices {
  const devices = new Map<string, DeviceDefinition>()
  const define = (device: DeviceModel): DeviceDefinition => ({
    name: device.name,
    eom: device.eom,
    create: (options = {}) => buildDevice(device, { ...options, compat: options.compat ?? compat }),
  })
  for (const device of model.devices) devices.set(device.name, define(device))
  return { file: model.file, spec: model.spec, devices, resources: model.resources }
}

/**
 * Read a device file: every device definition and the resources. The file is read up to
 * `maxFileSize` bytes and its aliases may expand to `maxAliasExpansion` nodes; errors are
 * {@link DeviceFileError}s (`file:line:column: field: reason`).
 */
export async function loadDevices(file: string, options: LoadDevicesOptions = {}): Promise<LoadedDevices> {
  return definitions(await readDeviceFile(file, options), options.compat ?? '0.5')
}

/** Parse device-file text (exported for tests and for in-memory files). */
export function parseDevices(text: string, file: string, options: Omit<LoadDevicesOptions, 'signal'> = {}): LoadedDevices {
  return definitions(parseDeviceText(text, file, options), options.compat ?? '0.5')
}

/** Load one device from a file and build it, ready to serve. */
export async function loadDevice(file: string, options: LoadDeviceOptions = {}): Promise<Device<PyvisaState>> {
  const loaded = await loadDevices(file, options)
  let name = options.device
  let resource: ResourceEntry | undefined
  if (name !== undefined && !loaded.devices.has(name)) {
    const wanted = resourceKey(name)
    resource = loaded.resources.find((r) => r.name === name) ?? loaded.resources.find((r) => resourceKey(r.name) === wanted)
    if (resource === undefined) throw new RangeError(`${file}: no device or resource named '${name}'; devices: ${[...loaded.devices.keys()].join(', ')}`)
    name = resource.device
  }
  if (name === undefined) {
    resource = loaded.resources[0]
    name = resource?.device ?? [...loaded.devices.keys()][0]
  }
  const definition = name === undefined ? undefined : loaded.devices.get(name)
  if (definition === undefined) throw new RangeError(`${file}: no devices`)
  return definition.create({
    ...(options.eom === undefined ? {} : { eom: options.eom }),
    ...(resource === undefined ? {} : { resource }),
    ...(options.compat === undefined ? {} : { compat: options.compat }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.maxFormatWidth === undefined ? {} : { maxFormatWidth: options.maxFormatWidth }),
    ...(options.maxErrorQueue === undefined ? {} : { maxErrorQueue: options.maxErrorQueue }),
  })
}

/** A loose canonical form of a VISA resource name: case, board 0 and `inst0` do not matter. */
function resourceKey(name: string): string {
  return name
    .trim()
    .toUpperCase()
    .replace(/^([A-Z]+)0?::/, '$1::')
    .replace(/::INST0::INSTR$/, '::INSTR')
}
