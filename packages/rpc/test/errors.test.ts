/** The folded error classes keep their names, codes, cause and LabwireError identity. */
import { isLabwireError, LabwireError } from '@labwire/core'
import { describe, expect, it } from 'vitest'
import { RemoteError, RpcClosedError, RpcDecodeError, RpcInsecureCodecError, RpcProtocolError, RpcSpecError, RpcSpecMismatchError, RpcUnknownMethodError } from '../src/index.js'

describe('RPC error classes', () => {
  it.each([
    [RpcSpecError, 'RpcSpecError', 'ERR_RPC_SPEC'],
    [RpcUnknownMethodError, 'RpcUnknownMethodError', 'ERR_RPC_UNKNOWN_METHOD'],
    [RpcDecodeError, 'RpcDecodeError', 'ERR_RPC_DECODE'],
    [RpcClosedError, 'RpcClosedError', 'ERR_RPC_CLOSED'],
    [RpcProtocolError, 'RpcProtocolError', 'ERR_RPC_PROTOCOL'],
    [RpcInsecureCodecError, 'RpcInsecureCodecError', 'ERR_RPC_INSECURE_CODEC'],
  ] as const)('%o has its own name, code and cause', (Class, name, code) => {
    const cause = new Error('under')
    const error = new Class('boom', { cause })
    expect(error).toBeInstanceOf(Class)
    expect(error).toBeInstanceOf(LabwireError)
    expect(isLabwireError(error)).toBe(true)
    expect([error.name, error.code, error.message, error.cause]).toEqual([name, code, 'boom', cause])
    expect(String(error)).toBe(`${name}: boom`)
  })

  it('the classes with extra fields keep them', () => {
    const remote = new RemoteError('bad', { remoteName: 'ValueError', remoteCode: 'E_X', method: 'add' })
    expect([remote.name, remote.code, remote.remoteName, remote.remoteCode, remote.remoteStack, remote.method]).toEqual(['RemoteError', 'ERR_RPC_REMOTE', 'ValueError', 'E_X', undefined, 'add'])
    const mismatch = new RpcSpecMismatchError(['add: client codec msgpack, server json'])
    expect([mismatch.name, mismatch.code, mismatch.mismatches, mismatch.message]).toEqual(['RpcSpecMismatchError', 'ERR_RPC_SPEC_MISMATCH', ['add: client codec msgpack, server json'], 'RPC spec mismatch: add: client codec msgpack, server json'])
    expect(new RpcSpecError('x')).not.toBeInstanceOf(RpcDecodeError)
  })
})
