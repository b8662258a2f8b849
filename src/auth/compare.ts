import { timingSafeEqual } from 'node:crypto'
import { decodeBase64, utf8 } from './bytes.ts'

/**
 * Compares two secret-derived values (digests, MACs, credentials) in time that depends only on their lengths,
 * so an attacker cannot learn a correct prefix by timing the answers. Strings are compared as UTF-8 bytes.
 */
export function constantTimeEqual(a: Uint8Array | string, b: Uint8Array | string): boolean {
  const left = typeof a === 'string' ? utf8(a) : a
  const right = typeof b === 'string' ? utf8(b) : b
  if (left.length !== right.length) return false
  return timingSafeEqual(left, right)
}

/** Whether base64 text (as `decodeBase64` reads it) decodes to `expected`, compared in constant time. */
export function base64Equal(text: string, expected: Uint8Array): boolean {
  const received = decodeBase64(text)
  return received !== undefined && constantTimeEqual(received, expected)
}
