import type { Marshaller } from '@labwire/marshallers'
import { UnavailableError } from './exit-codes.js'

/** The IEEE 488.2 block reader, when this build has one. */
const blockMarshaller: Pick<Marshaller<Uint8Array>, 'unmarshall'> | undefined = undefined

/** Throw `UnavailableError` unless IEEE block support is in this build. */
export function requireBinary(): void {
  if (blockMarshaller === undefined) throw new UnavailableError('--binary needs IeeeBlockMarshaller from @labwire/marshallers, which is not in this build yet')
}

/** Read one IEEE 488.2 block. */
export function readBlock(bytes: AsyncIterator<Uint8Array>): Promise<Uint8Array> {
  if (blockMarshaller === undefined) return Promise.reject(new UnavailableError('IEEE block support is not in this build'))
  return blockMarshaller.unmarshall(bytes)
}
