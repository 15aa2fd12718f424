/**
 * @labwire/rpc's error classes, in @labwire/core's style: one class per failure mode, each with
 * a stable `code` and `cause`. All are `LabwireError`s.
 *
 * @module
 */
import { LabwireError, type LabwireErrorOptions, type RpcErrorCode } from '@labwire/core'

/**
 * The shape every RPC error shares (a fixed `name` and stable `code`), made once: each exported
 * class below extends one of these and adds only what its failure mode carries.
 */
function rpcError<N extends string, C extends RpcErrorCode>(name: N, code: C) {
  abstract class RpcError extends LabwireError {
    override readonly name: N = name
    readonly code: C = code
  }
  return RpcError
}

/** A handler threw: the caller sees its `remoteName`, `message` and `code` (and `remoteStack` when the server sets `exposeStack`). */
export class RemoteError extends rpcError('RemoteError', 'ERR_RPC_REMOTE') {
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
export class RpcSpecError extends rpcError('RpcSpecError', 'ERR_RPC_SPEC') {}

/** The handshake found that client and server specs differ; `mismatches` names each method (`add: client codec msgpack, server json`). */
export class RpcSpecMismatchError extends rpcError('RpcSpecMismatchError', 'ERR_RPC_SPEC_MISMATCH') {
  /** One line per mismatched method. */
  readonly mismatches: readonly string[]

  constructor(mismatches: readonly string[], options?: LabwireErrorOptions) {
    super(`RPC spec mismatch: ${mismatches.join('; ')}`, options)
    this.mismatches = mismatches
  }
}

/** The server has no method with this id. */
export class RpcUnknownMethodError extends rpcError('RpcUnknownMethodError', 'ERR_RPC_UNKNOWN_METHOD') {}

/** A payload did not decode with its method's codec (either side), or a value did not encode. */
export class RpcDecodeError extends rpcError('RpcDecodeError', 'ERR_RPC_DECODE') {}

/** The session is closed: a call after `close()`, or a call still pending when it closed. */
export class RpcClosedError extends rpcError('RpcClosedError', 'ERR_RPC_CLOSED') {}

/** The peer broke the wire protocol (bad frame type, a reply to no call, a frame over the size limit). */
export class RpcProtocolError extends rpcError('RpcProtocolError', 'ERR_RPC_PROTOCOL') {}

/** A method uses an insecure codec (`codecs.v8`) over a network transport without `allowInsecureCodecs: true`. */
export class RpcInsecureCodecError extends rpcError('RpcInsecureCodecError', 'ERR_RPC_INSECURE_CODEC') {}
