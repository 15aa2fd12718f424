import { parseNatsResource } from '@labwire/nats'
import { expect, it } from 'vitest'

it('parses nats://host:port/NAME resources', () => {
  expect(parseNatsResource('nats://lab3:4222/psu')).toEqual({ servers: ['nats://lab3:4222'], name: 'psu' })
  expect(parseNatsResource('nats://lab3/psu')).toEqual({ servers: ['nats://lab3:4222'], name: 'psu' })
  expect(parseNatsResource('tls://10.0.0.1:4443,10.0.0.2/scope/raw')).toEqual({ servers: ['tls://10.0.0.1:4443', 'tls://10.0.0.2:4222'], name: 'scope', endpoint: 'raw' })
  expect(parseNatsResource('nats://[::1]:4222/psu')).toEqual({ servers: ['nats://[::1]:4222'], name: 'psu' })
  for (const bad of ['tcp://h:1/psu', 'nats://h:1', 'nats://h:1/bad name', 'nats://h:99999/psu', 'nats:///psu']) expect(() => parseNatsResource(bad)).toThrow(RangeError)
})
