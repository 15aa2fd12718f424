import { blockToValues, type BlockValueType } from '@labwire/marshallers'
import { UsageError } from './exit-codes.js'

/** The value types `--datatype` understands: `hex` (the bytes) or an element type of the block. */
export type DataType = 'hex' | BlockValueType

export const DATA_TYPES: readonly DataType[] = ['hex', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'float32', 'float64']

/** Parse a `--datatype` value (also pyvisa's struct letters `b B h H i I f d` and `float`/`double`). Throws `UsageError`. */
export function parseDataType(value: string): DataType {
  const aliases: Record<string, DataType> = { float: 'float32', single: 'float32', f: 'float32', double: 'float64', d: 'float64', b: 'int8', B: 'uint8', h: 'int16', H: 'uint16', i: 'int32', I: 'uint32', l: 'int32', L: 'uint32' }
  const type = aliases[value] ?? value.toLowerCase()
  if (!(DATA_TYPES as readonly string[]).includes(type)) throw new UsageError(`unknown datatype "${value}" (known: ${DATA_TYPES.join(', ')})`)
  return type as DataType
}

/**
 * The values in block data (little-endian unless `bigEndian`), through `blockToValues` of
 * `@labwire/marshallers`. Throws `FramingError` when the length is not a whole number of values.
 */
export function decodeValues(bytes: Uint8Array, type: BlockValueType, bigEndian = false): number[] {
  return Array.from(blockToValues(bytes, type, { byteOrder: bigEndian ? 'big' : 'little' }))
}
