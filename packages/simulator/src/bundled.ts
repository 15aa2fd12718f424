import { existsSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** The example device files shipped in the package's `devices/` folder. */
export const BUNDLED_DEVICES = ['scpi-psu', 'dmm', 'cli-switch'] as const

/** Name of a shipped example device. */
export type BundledDeviceName = (typeof BUNDLED_DEVICES)[number]

const DESCRIPTIONS: Readonly<Record<BundledDeviceName, string>> = {
  'scpi-psu': 'SCPI power supply: *IDN?, VOLT/CURR setpoints with limits, OUTP, SYST:ERR? queue, *ESR? register',
  dmm: 'multimeter: READ? drifts, WAV:DATA? answers an IEEE 488.2 block of float32 sine samples',
  'cli-switch': 'CLI-style switch: banner, login:/Password:, a prompt after every command',
}

/** A shipped example device: its name, the path of its file, what it is. */
export interface BundledDevice {
  name: string
  path: string
  description?: string
}

/** No bundled device and no file by that name. `names` lists the bundled devices. */
export class UnknownDeviceError extends Error {
  override readonly name = 'UnknownDeviceError'
  readonly code = 'ERR_UNKNOWN_DEVICE'
  constructor(
    /** What was asked for. */
    readonly device: string,
    /** The bundled device names. */
    readonly names: readonly string[],
  ) {
    const close = names.filter((name) => editDistance(name, device.toLowerCase()) <= 2)
    super(
      `no bundled device or file '${device}'${close.length > 0 ? ` (did you mean ${close.map((n) => `'${n}'`).join(' or ')}?)` : ''}; bundled devices: ${names.join(', ')}`,
    )
  }
}

function devicePath(name: BundledDeviceName): string {
  // dist/index.js and src/bundled.ts both sit one level below the package root.
  return fileURLToPath(new URL(`../devices/${name}.yaml`, import.meta.url))
}

/**
 * Path of a shipped example device file, e.g. `await loadDevice(bundledDevice('scpi-psu'))`:
 * `scpi-psu` (SCPI power supply), `dmm` (multimeter whose `WAV:DATA?` answers an IEEE 488.2
 * block), `cli-switch` (CLI device with a login and a prompt).
 */
export function bundledDevice(name: BundledDeviceName): string {
  if (!BUNDLED_DEVICES.includes(name)) throw new UnknownDeviceError(name, BUNDLED_DEVICES)
  return devicePath(name)
}

/** Every shipped example device: `[{ name, path, description }]`, in a stable order. */
export function bundledDevices(): BundledDevice[] {
  return BUNDLED_DEVICES.map((name) => ({ name, path: devicePath(name), description: DESCRIPTIONS[name] }))
}

/**
 * A device file from what a user typed: a bundled device's name (`scpi-psu`) gives its path; an
 * existing file is returned as given. Anything else throws {@link UnknownDeviceError}, whose
 * message lists the bundled names (and a close match). A bundled name wins over a file of the
 * same name in the working directory; write `./scpi-psu` for the file.
 */
export function resolveDeviceFile(nameOrPath: string): string {
  if ((BUNDLED_DEVICES as readonly string[]).includes(nameOrPath)) return devicePath(nameOrPath as BundledDeviceName)
  if (nameOrPath !== '' && existsSync(nameOrPath) && statSync(nameOrPath).isFile()) return nameOrPath
  throw new UnknownDeviceError(nameOrPath, BUNDLED_DEVICES)
}

/** Levenshtein distance (short names only). */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2 || b.length > 64) return Infinity
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.length] ?? Infinity
}
