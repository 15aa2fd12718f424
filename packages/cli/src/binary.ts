import { UsageError } from './exit-codes.js'

/** The value types `--datatype` understands (pyvisa's `query_binary_values` formats by name). */
export type DataType = 'hex' | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64' | 'float32' | 'float64'

export const DATA_TYPES: readonly DataType[] = ['hex', 'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'float32', 'float64']

const SIZE: Record<Exclude<DataType, 'hex'>, number> = { int8: 1, uint8: 1, int16: 2, uint16: 2, int32: 4, uint32: 4, int64: 8, uint64: 8, float32: 4, float64: 8 }

/** Parse a `--datatype` value (also accepts `float`/`double`/`f`/`d` and the like). Throws `UsageError`. */
export function parseDataType(value: string): DataType {
  const aliases: Record<string, DataType> = { float: 'float32', single: 'float32', f: 'float32', double: 'float64', d: 'float64', b: 'int8', B: 'uint8', h: 'int16', H: 'uint16', i: 'int32', I: 'uint32', q: 'int64', Q: 'uint64' }
  const type = aliases[value] ?? value.toLowerCase()
  if (!(DATA_TYPES as readonly string[]).includes(type)) throw new UsageError(`unknown datatype "${value}" (known: ${DATA_TYPES.join(', ')})`)
  return type as DataType
}

/**
 * The values in `bytes` (little-endian unless `bigEndian`). Throws `UsageError` when the length is
 * not a multiple of the value size.
 */
export function decodeValues(bytes: Uint8Array, type: Exclude<DataType, 'hex'>, bigEndian = false): (number | bigint)[] {
  const size = SIZE[type]
  if (bytes.length % size !== 0) throw new UsageError(`a block of ${bytes.length} bytes is not a whole number of ${type} values (${size} bytes each)`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const le = !bigEndian
  const out: (number | bigint)[] = []
  for (let offset = 0; offset < bytes.length; offset += size) {
    switch (type) {
      case 'int8': out.push(view.getInt8(offset)); break
      case 'uint8': out.push(view.getUint8(offset)); break
      case 'int16': out.push(view.getInt16(offset, le)); break
      case 'uint16': out.push(view.getUint16(offset, le)); break
      case 'int32': out.push(view.getInt32(offset, le)); break
      case 'uint32': out.push(view.getUint32(offset, le)); break
      case 'int64': out.push(view.getBigInt64(offset, le)); break
      case 'uint64': out.push(view.getBigUint64(offset, le)); break
      case 'float32': out.push(view.getFloat32(offset, le)); break
      case 'float64': out.push(view.getFloat64(offset, le)); break
    }
  }
  return out
}

/** A value as printed: bigints without the `n`, floats as JavaScript prints them. */
export function formatValue(value: number | bigint): string {
  return typeof value === 'bigint' ? value.toString() : String(value)
}
