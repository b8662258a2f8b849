/**
 * The agent's errors, each with a stable `code` for logs and tests and a default message (undici's
 * `lib/core/errors.js` is the model). Decoders return their own stable codes (`codec/errors.ts`); what is thrown
 * or refused elsewhere is named here. Nothing here imports anything: every layer may use it.
 */

export class GwmoError extends Error {
  readonly code: string

  constructor(message: string, code = 'GWMO_ERROR') {
    super(message)
    this.name = new.target.name
    this.code = code
  }
}

/** A configuration the agent refuses, named by its key; it never starts half-configured (binding.md §7). */
export class ConfigError extends GwmoError {
  constructor(message: string) {
    super(message, 'GWMO_CONFIG')
  }
}

/** An option or argument rejected before any I/O. */
export class InvalidArgumentError extends GwmoError {
  constructor(message: string) {
    super(message, 'GWMO_INVALID_ARGUMENT')
  }
}

/**
 * An error a DM command answers with a SyncML status code (OMA DM RepPro 1.2, 10): thrown by code that works
 * for a command, it becomes that command's `Status`; any other thrown error there is `500`, never a crash.
 */
export class SyncMLStatusError extends GwmoError {
  readonly status: number

  constructor(status: number, message: string, code = 'GWMO_SYNCML_STATUS') {
    super(message, code)
    this.status = status
  }
}

/** The SyncML status a command answers when `error` was thrown while it ran. */
export function statusOfError(error: unknown): number {
  return error instanceof SyncMLStatusError ? error.status : 500
}

/**
 * Why a party's message did not authenticate (binding.md §6), with the status its refusal carries: `407` when it
 * brought no credentials, `401` when they are wrong or cannot be checked. Stable: logs and tests name them.
 */
export const AUTH_FAILURE = Object.freeze({
  /** No `Cred` (md5, basic) or no `x-syncml-hmac` (HMAC) where the account wants one. */
  MISSING: { code: 'AUTH_MISSING', status: 407 },
  /** The account holds no SRVCRED with a secret: nothing the party sends could authenticate it. */
  NO_CREDENTIAL: { code: 'AUTH_NO_CREDENTIAL', status: 401 },
  /** A `Cred` of another type than the account's SRVCRED. */
  OTHER_SCHEME: { code: 'AUTH_OTHER_SCHEME', status: 401 },
  /** Credentials that match no nonce the device accepts now: wrong, or made with a spent or stale nonce. */
  MISMATCH: { code: 'AUTH_MISMATCH', status: 401 },
} as const)

export type AuthFailure = (typeof AUTH_FAILURE)[keyof typeof AUTH_FAILURE]

/**
 * A message a binding could not hand over (binding.md §10). `lost` (a connection error, a timeout, a 5xx answer) is
 * sent again like a message that got no answer, after a backoff; `refused` (a redirect, a 4xx, a response larger
 * than the device's MaxMsgSize, a TLS server it does not trust) would be refused again, so the session fails and
 * is retried later as a failed session is.
 */
export class TransportError extends GwmoError {
  readonly kind: 'lost' | 'refused'

  constructor(kind: 'lost' | 'refused', message: string) {
    super(message, kind === 'lost' ? 'GWMO_TRANSPORT_LOST' : 'GWMO_TRANSPORT_REFUSED')
    this.kind = kind
  }
}
