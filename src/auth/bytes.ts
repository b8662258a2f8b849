/**
 * Byte helpers shared by the auth primitives: UTF-8, concatenation and a base64 decoder that refuses what is
 * not base64 (Node's own decoder silently skips stray characters, which would let garbage pass as a nonce).
 */

export function utf8(text: string): Uint8Array {
  return Buffer.from(text, 'utf8')
}

export function concatBytes(...parts: (Uint8Array | string)[]): Uint8Array {
  return Buffer.concat(parts.map((part) => (typeof part === 'string' ? utf8(part) : part)))
}

export { encodeBase64 } from '../codec/bytes.ts'

// Standard alphabet (RFC 4648, 4), optional padding; whitespace is allowed because XML content may wrap it.
const BASE64_BODY = /^[A-Za-z0-9+/]*$/

/**
 * Decodes standard base64 (RFC 4648, 4). Unlike the codec's strict decoder, padding may be present or left off
 * (nonces and credentials from peers that drop it still verify), and ASCII whitespace is ignored;
 * any other character, misplaced padding or an impossible length gives `undefined`.
 */
export function decodeBase64(text: string): Uint8Array | undefined {
  const compact = text.replace(/[ \t\r\n]/g, '')
  const body = compact.replace(/={1,2}$/, '')
  if (!BASE64_BODY.test(body)) return undefined
  if (body.length % 4 === 1) return undefined
  if (body.length !== compact.length && compact.length % 4 !== 0) return undefined
  return new Uint8Array(Buffer.from(body, 'base64'))
}
