/** The slow handler the drain tests share: `slow` takes 300 ms, `stuck` 10 s; anything else is answered at once, upper-cased. */
import type { ByteHandler } from '@labwire/core'
import { SentinelBytesMarshaller } from '@labwire/marshallers'
import { bytes, text } from './fixtures.js'

export const line = new SentinelBytesMarshaller('\n')
export const WAIT = 5_000
export const SLOW = 300

export const slowHandler: ByteHandler = async (stream) => {
  const request = text(await line.unmarshall(stream))
  if (request === 'slow') await new Promise((resolve) => setTimeout(resolve, SLOW))
  if (request === 'stuck') await new Promise((resolve) => setTimeout(resolve, 10_000).unref())
  return bytes(`${request.toUpperCase()}\n`)
}
