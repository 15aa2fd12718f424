import { existsSync } from 'node:fs'
import { bundledDevices as simulatorBundledDevices, resolveDeviceFile as simulatorResolveDeviceFile, type BundledDevice } from '@labwire/simulator'
import { DeviceFileError } from './exit-codes.js'

export type { BundledDevice }

/** The device files shipped with `@labwire/simulator` (`labwire sim --list`). */
export function bundledDevices(): BundledDevice[] {
  return simulatorBundledDevices()
}

/**
 * The device file for what the user typed: a bundled device's name gives its path, an existing
 * file is used as given (the simulator's `resolveDeviceFile`). Anything else is a
 * `DeviceFileError` (exit 8): "no such file" for what looks like a path, otherwise the list of
 * bundled devices (with a close match).
 */
export function resolveDeviceFile(nameOrPath: string): string {
  try {
    return simulatorResolveDeviceFile(nameOrPath)
  } catch (error) {
    // A directory or an unreadable entry: loading it says what is wrong (EISDIR, EACCES).
    if (nameOrPath !== '' && existsSync(nameOrPath)) return nameOrPath
    if (/[\\/]/.test(nameOrPath) || /\.(ya?ml|json)$/i.test(nameOrPath)) throw new DeviceFileError(`${nameOrPath}: no such file`, { cause: error })
    throw new DeviceFileError(`${error instanceof Error ? error.message : String(error)} (labwire sim --list)`, { cause: error })
  }
}
