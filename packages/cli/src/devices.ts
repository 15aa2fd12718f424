import { existsSync, readFileSync, statSync } from 'node:fs'
import * as simulator from '@labwire/simulator'
import { DeviceFileError } from './exit-codes.js'

/** A device file shipped with `@labwire/simulator`, servable by name (`labwire sim scpi-psu`). */
export interface BundledDevice {
  name: string
  path: string
  description?: string
}

type SimulatorApi = {
  bundledDevices?: () => BundledDevice[]
  resolveDeviceFile?: (nameOrPath: string) => string
}

/** The simulator's own `bundledDevices()` / `resolveDeviceFile()` when it has them (newer builds). */
const api = simulator as unknown as SimulatorApi

/** The device files shipped with `@labwire/simulator`. */
export function bundledDevices(): BundledDevice[] {
  if (typeof api.bundledDevices === 'function') return api.bundledDevices()
  // Fallback for simulator builds without bundledDevices(): the names it exports, described by
  // the first comment line of each file.
  return simulator.BUNDLED_DEVICES.map((name) => {
    const path = simulator.bundledDevice(name)
    const description = firstComment(path)
    return { name, path, ...(description === undefined ? {} : { description }) }
  })
}

/** A path as given when such a file exists; otherwise the path of the bundled device of that name. Throws `DeviceFileError` naming the bundled devices. */
export function resolveDeviceFile(nameOrPath: string): string {
  if (existsSync(nameOrPath)) return nameOrPath
  if (typeof api.resolveDeviceFile === 'function') {
    try {
      return api.resolveDeviceFile(nameOrPath)
    } catch (error) {
      throw new DeviceFileError(error instanceof Error ? error.message : String(error), { cause: error })
    }
  }
  const bundled = bundledDevices()
  const found = bundled.find((device) => device.name === nameOrPath || device.name === nameOrPath.replace(/\.ya?ml$/i, ''))
  if (found !== undefined) return found.path
  if (/[\\/]/.test(nameOrPath) || /\.(ya?ml|m?js|cjs)$/i.test(nameOrPath)) throw new DeviceFileError(`${nameOrPath}: no such file`)
  throw new DeviceFileError(`${nameOrPath}: no such file, and no bundled device of that name (bundled: ${bundled.map((device) => device.name).join(', ')}; labwire sim --list)`)
}

function firstComment(path: string): string | undefined {
  try {
    if (statSync(path).size > 1024 * 1024) return undefined
    const line = readFileSync(path, 'utf8')
      .split('\n')
      .find((text) => text.startsWith('#'))
    return line?.replace(/^#\s*/, '').split(/[:.](?:\s|$)/)[0]?.trim() || undefined
  } catch {
    return undefined
  }
}
