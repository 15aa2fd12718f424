/**
 * labwire's error classes: one class per failure mode, each with a stable `code`.
 *
 * Every error a labwire API rejects with is a {@link LabwireError}; no raw `Error`,
 * `DOMException` or string reaches a caller.
 *
 * @module
 */

/** Stable machine-readable codes, one per error class. */
export type LabwireErrorCode =
  | 'ERR_CONNECTION'
  | 'ERR_CONNECTION_CLOSED'
  | 'ERR_TIMEOUT'
  | 'ERR_ABORTED'
  | 'ERR_FRAMING'
  | 'ERR_FRAME_TOO_LARGE'
  | 'ERR_ACCESS_REFUSED'
  | 'ERR_ACCESS_TIMEOUT'
  | RpcErrorCode

/** Codes of @labwire/rpc's error classes (declared here so they are labwire errors too). */
export type RpcErrorCode =
  | 'ERR_RPC_REMOTE'
  | 'ERR_RPC_SPEC'
  | 'ERR_RPC_SPEC_MISMATCH'
  | 'ERR_RPC_UNKNOWN_METHOD'
  | 'ERR_RPC_DECODE'
  | 'ERR_RPC_CLOSED'
  | 'ERR_RPC_PROTOCOL'
  | 'ERR_RPC_INSECURE_CODEC'

/** Options accepted by every labwire error constructor. */
export interface LabwireErrorOptions {
  /** The underlying error or reason. */
  cause?: unknown
}

/** Options for errors that carry the bytes of an unfinished frame. */
export interface PartialErrorOptions extends LabwireErrorOptions {
  /** Bytes received for the frame that was not finished (empty if none). */
  partial?: Uint8Array
}

const EMPTY = new Uint8Array(0)

/** Base class of every labwire error. Catch this to catch them all. */
export abstract class LabwireError extends Error {
  /** Stable code identifying the failure mode. */
  abstract readonly code: LabwireErrorCode

  constructor(message: string, options?: LabwireErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
  }
}

/** Could not connect, or a write failed. The message names `host:port` where there is one; `cause` is the system error. */
export class ConnectionError extends LabwireError {
  override readonly name = 'ConnectionError'
  readonly code = 'ERR_CONNECTION' as const
}

/** The peer closed the connection. `partial` holds the bytes of the unfinished frame, if any. */
export class ConnectionClosedError extends LabwireError {
  override readonly name = 'ConnectionClosedError'
  readonly code = 'ERR_CONNECTION_CLOSED' as const
  /** Bytes of the frame that was being read when the stream ended. */
  readonly partial: Uint8Array

  constructor(message = 'connection closed by peer', options?: PartialErrorOptions) {
    super(message, options)
    this.partial = options?.partial ?? EMPTY
  }
}

/** An operation did not finish in time. `partial` holds the bytes of the unfinished frame, if any. */
export class TimeoutError extends LabwireError {
  override readonly name = 'TimeoutError'
  readonly code = 'ERR_TIMEOUT' as const
  /** Bytes of the frame that was being read when time ran out. */
  readonly partial: Uint8Array

  constructor(message = 'operation timed out', options?: PartialErrorOptions) {
    super(message, options)
    this.partial = options?.partial ?? EMPTY
  }
}

/** The operation was aborted through an `AbortSignal`; `cause` is the signal's reason. */
export class AbortError extends LabwireError {
  override readonly name = 'AbortError'
  readonly code = 'ERR_ABORTED' as const

  constructor(message = 'operation aborted', options?: LabwireErrorOptions) {
    super(message, options)
  }
}

/** Options for {@link FramingError}. */
export interface FramingErrorOptions extends LabwireErrorOptions {
  /** See {@link FramingError.recoverable}. Default false. */
  recoverable?: boolean
}

/** The bytes do not form a valid frame: wrong length, bad checksum, malformed header. */
export class FramingError extends LabwireError {
  override readonly name: string = 'FramingError'
  readonly code: 'ERR_FRAMING' | 'ERR_FRAME_TOO_LARGE' = 'ERR_FRAMING'
  /**
   * True when the framer consumed the whole bad frame (it was read whole and then failed its
   * checksum or its codec, or an oversized frame was skipped through its end), so the stream is
   * at the next frame: a server can log it and go on, a client fails only that call. False (the
   * default): the frame boundary is lost and the connection cannot go on.
   */
  readonly recoverable: boolean

  constructor(message?: string, options?: FramingErrorOptions) {
    super(message ?? 'malformed frame', options)
    this.recoverable = options?.recoverable ?? false
  }
}

/** A frame grew past the framer's maximum length. Memory stays bounded: reading stops at the limit. */
export class FrameTooLargeError extends FramingError {
  override readonly name = 'FrameTooLargeError'
  override readonly code = 'ERR_FRAME_TOO_LARGE' as const
  /** The limit that was exceeded, in bytes. */
  readonly maxLength: number
  /**
   * True when the framer skipped the oversized frame up to and including its terminator, so the
   * stream is positioned at the next frame and the connection can go on (discard-and-resynchronise).
   * False (the default, fail fast): the stream's position is unknown.
   */
  readonly resynchronised: boolean

  constructor(maxLength: number, message?: string, options?: LabwireErrorOptions & { resynchronised?: boolean }) {
    super(message ?? `frame exceeds the maximum length of ${maxLength} bytes`, { ...options, recoverable: options?.resynchronised ?? false })
    this.maxLength = maxLength
    this.resynchronised = options?.resynchronised ?? false
  }
}

/**
 * A server's access policy (`exclusive: 'refuse'`, or `maxSessions` reached) turned this session
 * away. `holder` names the peer that holds the device (`host:port`), when known.
 */
export class AccessRefusedError extends LabwireError {
  override readonly name = 'AccessRefusedError'
  readonly code = 'ERR_ACCESS_REFUSED' as const
  /** Who holds the device (the peer address of the session using it), or `''` when unknown. */
  readonly holder: string

  constructor(message?: string, options?: LabwireErrorOptions & { holder?: string }) {
    super(message ?? `refused: the device is in exclusive use${options?.holder ? ` by ${options.holder}` : ''}`, options)
    this.holder = options?.holder ?? ''
  }
}

/** A session queued for exclusive access (`exclusive: 'queue'`) waited `queueTimeout` ms without getting it. */
export class AccessTimeoutError extends LabwireError {
  override readonly name = 'AccessTimeoutError'
  readonly code = 'ERR_ACCESS_TIMEOUT' as const
  /** How long the session waited, in milliseconds. */
  readonly waited: number

  constructor(message?: string, options?: LabwireErrorOptions & { waited?: number }) {
    super(message ?? `waited ${options?.waited ?? 0} ms for exclusive access to the device without getting it`, options)
    this.waited = options?.waited ?? 0
  }
}

/** True when `value` is a labwire error (of any class). */
export function isLabwireError(value: unknown): value is LabwireError {
  return value instanceof LabwireError
}
