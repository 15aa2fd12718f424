/**
 * @labwire/rpc's error classes, in @labwire/core's style: one class per failure mode, each with
 * a stable `code` and `cause`. All are `LabwireError`s.
 *
 * @module
 */
import { LabwireError, type LabwireErrorOptions } from '@labwire/core'

/** A handler threw: the caller sees its `remoteName`, `message` and `code` (and `remoteStack` when the server sets `exposeStack`). */
export class RemoteError extends LabwireError {
  override readonly name = 'RemoteError'
  readonly code = 'ERR_RPC_REMOTE' as const
  /** The thrown error's `name` on the server (e.g. `'ValueError'`, `'RangeError'`). */
  readonly remoteName: string
  /** The thrown error's `code` on the server, if it had a string one. */
  readonly remoteCode: string | undefined
  /** The server-side stack, only when the server runs with `exposeStack: true`. */
  readonly remoteStack: string | undefined
  /** The method called. */
  readonly method: string

  constructor(message: string, options: LabwireErrorOptions & { remoteName: string; remoteCode?: string | undefined; remoteStack?: string | undefined; method: string }) {
    super(message, options)
    this.remoteName = options.remoteName
    this.remoteCode = options.remoteCode
    this.remoteStack = options.remoteStack
    this.method = options.method
  }
}

/** A service definition is invalid (duplicate id, id out of range, reserved name, a profile that cannot carry it). */
export class RpcSpecError extends LabwireError {
  override readonly name = 'RpcSpecError'
  readonly code = 'ERR_RPC_SPEC' as const
}

/** The handshake found that client and server specs differ; `mismatches` names each method (`add: client codec msgpack, server json`). */
export class RpcSpecMismatchError extends LabwireError {
  override readonly name = 'RpcSpecMismatchError'
  readonly code = 'ERR_RPC_SPEC_MISMATCH' as const
  /** One line per mismatched method. */
  readonly mismatches: readonly string[]

  constructor(mismatches: readonly string[], options?: LabwireErrorOptions) {
    super(`RPC spec mismatch: ${mismatches.join('; ')}`, options)
    this.mismatches = mismatches
  }
}

/** The server has no method with this id. */
export class RpcUnknownMethodError extends LabwireError {
  override readonly name = 'RpcUnknownMethodError'
  readonly code = 'ERR_RPC_UNKNOWN_METHOD' as const
}

/** A payload did not decode with its method's codec (either side), or a value did not encode. */
export class RpcDecodeError extends LabwireError {
  override readonly name = 'RpcDecodeError'
  readonly code = 'ERR_RPC_DECODE' as const
}

/** The session is closed: a call after `close()`, or a call still pending when it closed. */
export class RpcClosedError extends LabwireError {
  override readonly name = 'RpcClosedError'
  readonly code = 'ERR_RPC_CLOSED' as const
}

/** The peer broke the wire protocol (bad frame type, a reply to no call, a frame over the size limit). */
export class RpcProtocolError extends LabwireError {
  override readonly name = 'RpcProtocolError'
  readonly code = 'ERR_RPC_PROTOCOL' as const
}

/** A method uses an insecure codec (`codecs.v8`) over a network transport without `allowInsecureCodecs: true`. */
export class RpcInsecureCodecError extends LabwireError {
  override readonly name = 'RpcInsecureCodecError'
  readonly code = 'ERR_RPC_INSECURE_CODEC' as const
}
