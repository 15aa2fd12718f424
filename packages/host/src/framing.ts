import {
  CobsBytesMarshaller,
  compose,
  jsonCodec,
  LengthFieldBytesMarshaller,
  msgpackCodec,
  SentinelBytesMarshaller,
  SlipBytesMarshaller,
  textCodec,
  type BytesMarshaller,
  type Marshaller,
} from '@labwire/marshallers'
import type { CodecName, FramerName } from './config.js'

/** A framer by its config name: `line` (`\n`), `crlf`, `cr`, `length16`/`length32` (big-endian length prefix), `slip`, `cobs`. */
export function framerByName(name: FramerName): BytesMarshaller {
  switch (name) {
    case 'line':
      return new SentinelBytesMarshaller('\n')
    case 'crlf':
      return new SentinelBytesMarshaller('\r\n')
    case 'cr':
      return new SentinelBytesMarshaller('\r')
    case 'length16':
      return new LengthFieldBytesMarshaller({ lengthFieldLength: 2, initialBytesToStrip: 2 })
    case 'length32':
      return new LengthFieldBytesMarshaller({ lengthFieldLength: 4, initialBytesToStrip: 4 })
    case 'slip':
      return new SlipBytesMarshaller()
    case 'cobs':
      return new CobsBytesMarshaller()
  }
}

/** A framer plus a codec by config names: `bytes` (none), `text` (UTF-8), `json`, `msgpack`. */
export function marshallerByName(framer: FramerName, codec: CodecName | undefined): Marshaller<unknown> {
  const f = framerByName(framer)
  switch (codec ?? 'text') {
    case 'bytes':
      return compose(f) as Marshaller<unknown>
    case 'text':
      return compose(f, textCodec()) as Marshaller<unknown>
    case 'json':
      return compose(f, jsonCodec())
    case 'msgpack':
      return compose(f, msgpackCodec())
  }
}
