import { IeeeBlockMarshaller } from '@labwire/marshallers'
import { formatTerminator } from './resource.js'

const blocks = new Map<string, IeeeBlockMarshaller>()

/** Read one IEEE 488.2 block (`#<n><len><data>` or `#0<data>`) followed by `terminator`. */
export function readBlock(bytes: AsyncIterator<Uint8Array>, terminator: Uint8Array, maxLength: number): Promise<Uint8Array> {
  const key = `${formatTerminator(terminator)} ${maxLength}`
  let block = blocks.get(key)
  if (block === undefined) {
    block = new IeeeBlockMarshaller({ terminator, maxLength })
    blocks.set(key, block)
  }
  return block.unmarshall(bytes)
}
