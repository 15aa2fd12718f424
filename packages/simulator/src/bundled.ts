import { fileURLToPath } from 'node:url'

/** The example device files shipped in the package's `devices/` folder. */
export const BUNDLED_DEVICES = ['scpi-psu', 'dmm', 'cli-switch'] as const

/** Name of a shipped example device. */
export type BundledDeviceName = (typeof BUNDLED_DEVICES)[number]

/**
 * Path of a shipped example device file, e.g. `await loadDevice(bundledDevice('scpi-psu'))`:
 * `scpi-psu` (SCPI power supply), `dmm` (multimeter whose `WAV:DATA?` answers an IEEE 488.2
 * block), `cli-switch` (CLI device with a login and a prompt).
 */
export function bundledDevice(name: BundledDeviceName): string {
  if (!BUNDLED_DEVICES.includes(name)) throw new RangeError(`no bundled device '${name as string}'; there are: ${BUNDLED_DEVICES.join(', ')}`)
  // dist/index.js and src/bundled.ts both sit one level below the package root.
  return fileURLToPath(new URL(`../devices/${name}.yaml`, import.meta.url))
}
