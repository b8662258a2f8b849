/**
 * Decoding never throws at its callers: every decoder returns a `Decoded<T>`, and a failure carries a stable
 * `code` (for logs and tests) and the place it failed (a byte offset or an element path).
 */
export type DecodeErrorCode =
  | 'TOO_LARGE' // input over the configured byte limit
  | 'TOO_DEEP' // element nesting over the configured depth limit
  | 'TOO_MANY_ELEMENTS' // element count over the configured limit
  | 'XML_SYNTAX' // not well-formed XML
  | 'WBXML_SYNTAX' // not well-formed WBXML, or a token outside the SyncML code pages
  | 'SYNCML_STRUCTURE' // well-formed, but not a SyncML DM 1.2 message (missing or misplaced element)
  | 'NOTIFICATION_FORMAT' // a DM Notification (Package 0) trigger that does not follow the binary layout
  | 'PAYLOAD_FORMAT' // a GwMO or bootstrap payload that does not follow its schema

export interface DecodeError {
  code: DecodeErrorCode
  message: string
  /** Byte offset (binary input) or element path such as `SyncML/SyncBody/Alert[2]/CmdID`. */
  at?: number | string
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: DecodeError }

export function decoded<T>(value: T): Decoded<T> {
  return { ok: true, value }
}

export function failed<T>(code: DecodeErrorCode, message: string, at?: number | string): Decoded<T> {
  return { ok: false, error: at === undefined ? { code, message } : { code, message, at } }
}
