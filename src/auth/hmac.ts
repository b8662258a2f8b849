import { type Decoded, decoded, failed } from '../codec/errors.ts'
import { concatBytes, decodeBase64, encodeBase64 } from './bytes.ts'
import { constantTimeEqual } from './compare.ts'
import { credentialHash, md5 } from './md5.ts'

/**
 * syncml:auth-MAC, the HMAC integrity scheme of OMA DM Security 1.2 (5.1.3). Its value travels in a transport
 * header, `x-syncml-hmac`, which our MQTT binding carries as an MQTT 5 user property of the same name.
 */

/** The only algorithm OMA DM defines for syncml:auth-MAC; the header may omit it (MD5 is then assumed). */
export type HmacAlgorithm = 'MD5'

export interface HmacHeader {
  algorithm: HmacAlgorithm
  /** The LocName of SyncHdr/Source of the message the header comes with. */
  username: string
  /** B64 of the 16-byte digest, as sent. */
  mac: string
}

function rawMac(username: string, password: string, nonce: Uint8Array, body: Uint8Array): Uint8Array {
  return md5(concatBytes(credentialHash(username, password), ':', nonce, ':', encodeBase64(md5(body))))
}

/**
 * mac = B64(H(B64(H(username:password)):nonce:B64(H(body)))), H = MD5, over the message body exactly as sent
 * (XML or WBXML bytes). The nonce is raw octets, a decoded NextNonce.
 */
export function computeHmacMac(username: string, password: string, nonce: Uint8Array, body: Uint8Array): string {
  return encodeBase64(rawMac(username, password, nonce, body))
}

/** Writes the header value: `algorithm=MD5, username="Robert Jordan", mac=…` (quoted-string escapes applied). */
export function formatHmacHeader(header: { algorithm?: HmacAlgorithm; username: string; mac: string }): string {
  const quoted = header.username.replace(/[\\"]/g, (c) => `\\${c}`)
  return `algorithm=${header.algorithm ?? 'MD5'}, username="${quoted}", mac=${header.mac}`
}

const TOKEN_CHAR = /[A-Za-z0-9!#$%&'*+.^_`|~-]/
const SPACE = new Set([' ', '\t', '\r', '\n'])

/**
 * Reads an `x-syncml-hmac` value. OMA DM Security 1.2, 5.1.3 gives the ABNF:
 * `syncml-hmac = #syncml-hmac-param`, `algorithm = "algorithm" "=" ("MD5" | token)` (optional, MD5 assumed),
 * `username = "username" "=" quoted-string` (required), `mac = "mac" "=" base64-string` (required).
 * Parameters come in any order, names in any case, with optional whitespace around `=` and `,`; a value may be
 * a quoted-string or a bare run of characters (a base64 mac holds `/` and `=`, which are not token characters).
 * Unknown parameters are skipped, as HTTP parameter lists allow; a repeated one, an algorithm other than MD5,
 * a missing username or mac, or a mac that is not base64 is refused. `at` is a character offset.
 */
export function parseHmacHeader(value: string): Decoded<HmacHeader> {
  const params = new Map<string, string>()
  const n = value.length
  let i = 0
  const skipSpace = () => {
    while (i < n && SPACE.has(value[i]!)) i++
  }
  for (;;) {
    while (i < n && (SPACE.has(value[i]!) || value[i] === ',')) i++
    if (i >= n) break
    const nameStart = i
    while (i < n && TOKEN_CHAR.test(value[i]!)) i++
    if (i === nameStart) return failed('PAYLOAD_FORMAT', 'x-syncml-hmac: expected a parameter name', i)
    const name = value.slice(nameStart, i).toLowerCase()
    skipSpace()
    if (value[i] !== '=') return failed('PAYLOAD_FORMAT', `x-syncml-hmac: expected "=" after ${name}`, i)
    i++
    skipSpace()
    let paramValue = ''
    if (value[i] === '"') {
      const open = i++
      let closed = false
      while (i < n) {
        const c = value[i]!
        if (c === '"') {
          closed = true
          i++
          break
        }
        // quoted-pair = "\" CHAR (RFC 2616, 2.2)
        if (c === '\\' && i + 1 < n) {
          paramValue += value[i + 1]
          i += 2
        } else {
          paramValue += c
          i++
        }
      }
      if (!closed) return failed('PAYLOAD_FORMAT', `x-syncml-hmac: unterminated quoted ${name}`, open)
    } else {
      const start = i
      while (i < n && value[i] !== ',' && value[i] !== '"' && !SPACE.has(value[i]!)) i++
      if (i === start) return failed('PAYLOAD_FORMAT', `x-syncml-hmac: ${name} has no value`, i)
      paramValue = value.slice(start, i)
    }
    if (params.has(name)) return failed('PAYLOAD_FORMAT', `x-syncml-hmac: ${name} given twice`, nameStart)
    params.set(name, paramValue)
    skipSpace()
    if (i < n && value[i] !== ',') return failed('PAYLOAD_FORMAT', 'x-syncml-hmac: expected "," between parameters', i)
  }

  const algorithm = params.get('algorithm') ?? 'MD5'
  if (algorithm.toUpperCase() !== 'MD5') {
    return failed('PAYLOAD_FORMAT', `x-syncml-hmac: unsupported algorithm ${JSON.stringify(algorithm)}`)
  }
  const username = params.get('username')
  if (username === undefined || username === '') return failed('PAYLOAD_FORMAT', 'x-syncml-hmac: username missing')
  const mac = params.get('mac')
  if (mac === undefined || mac === '') return failed('PAYLOAD_FORMAT', 'x-syncml-hmac: mac missing')
  const macBytes = decodeBase64(mac)
  if (macBytes === undefined || macBytes.length === 0) {
    return failed('PAYLOAD_FORMAT', 'x-syncml-hmac: mac is not base64')
  }
  return decoded({ algorithm: 'MD5', username, mac })
}

/** Checks an already parsed header against the body as received; the mac is compared as decoded bytes. */
export function verifyHmacMac(header: HmacHeader, password: string, nonce: Uint8Array, body: Uint8Array): boolean {
  const received = decodeBase64(header.mac)
  if (received === undefined) return false
  return constantTimeEqual(received, rawMac(header.username, password, nonce, body))
}

/**
 * Parses and checks an `x-syncml-hmac` value. When `expectedUsername` is given (the account's AAuthName, or the
 * message's SyncHdr/Source/LocName), a header naming anyone else fails too.
 */
export function verifyHmac(
  headerValue: string,
  password: string,
  nonce: Uint8Array,
  body: Uint8Array,
  expectedUsername?: string,
): boolean {
  const parsed = parseHmacHeader(headerValue)
  if (!parsed.ok) return false
  if (expectedUsername !== undefined && parsed.value.username !== expectedUsername) return false
  return verifyHmacMac(parsed.value, password, nonce, body)
}
