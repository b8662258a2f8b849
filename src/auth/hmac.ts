import { type Decoded, decoded, failed } from '../codec/errors.ts'
import { decodeBase64, encodeBase64 } from './bytes.ts'
import { base64Equal } from './compare.ts'
import { dmDigest } from './md5.ts'

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

/**
 * mac = B64(H(B64(H(username:password)):nonce:B64(H(body)))), H = MD5, over the message body exactly as sent
 * (XML or WBXML bytes). The nonce is raw octets, a decoded NextNonce.
 */
export function computeHmacMac(username: string, password: string, nonce: Uint8Array, body: Uint8Array): string {
  return encodeBase64(dmDigest(username, password, nonce, body))
}

/** Writes the header value: `algorithm=MD5, username="Robert Jordan", mac=…` (quoted-string escapes applied). */
export function formatHmacHeader(header: { algorithm?: HmacAlgorithm; username: string; mac: string }): string {
  const quoted = header.username.replace(/[\\"]/g, (c) => `\\${c}`)
  return `algorithm=${header.algorithm ?? 'MD5'}, username="${quoted}", mac=${header.mac}`
}

// Sticky pieces of the grammar, each tried at the current offset. Whitespace is SP, HTAB, CR and LF only.
const SEPARATORS = /[ \t\r\n,]*/y
const SPACES = /[ \t\r\n]*/y
const TOKEN = /[A-Za-z0-9!#$%&'*+.^_`|~-]+/y
/** quoted-string with quoted-pair = "\" CHAR (RFC 2616, 2.2). */
const QUOTED = /"((?:\\[^]|[^"\\])*)"/y
const BARE = /[^ \t\r\n,"]+/y

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
  const fail = (problem: string, at?: number) => failed<HmacHeader>('PAYLOAD_FORMAT', `x-syncml-hmac: ${problem}`, at)
  const params = new Map<string, string>()
  let i = 0
  /** Matches `pattern` at the offset and moves past what it matched. */
  const take = (pattern: RegExp): RegExpExecArray | null => {
    pattern.lastIndex = i
    const match = pattern.exec(value)
    if (match) i = pattern.lastIndex
    return match
  }
  for (;;) {
    take(SEPARATORS)
    if (i >= value.length) break
    const nameStart = i
    const name = take(TOKEN)?.[0].toLowerCase()
    if (name === undefined) return fail('expected a parameter name', i)
    take(SPACES)
    if (value[i] !== '=') return fail(`expected "=" after ${name}`, i)
    i++
    take(SPACES)
    const open = i
    let paramValue: string
    if (value[i] === '"') {
      const quoted = take(QUOTED)
      if (!quoted) return fail(`unterminated quoted ${name}`, open)
      paramValue = quoted[1]!.replace(/\\([^])/g, '$1')
    } else {
      const bare = take(BARE)
      if (!bare) return fail(`${name} has no value`, i)
      paramValue = bare[0]
    }
    if (params.has(name)) return fail(`${name} given twice`, nameStart)
    params.set(name, paramValue)
    take(SPACES)
    if (i < value.length && value[i] !== ',') return fail('expected "," between parameters', i)
  }

  const algorithm = params.get('algorithm') ?? 'MD5'
  if (algorithm.toUpperCase() !== 'MD5') return fail(`unsupported algorithm ${JSON.stringify(algorithm)}`)
  const username = params.get('username')
  if (!username) return fail('username missing')
  const mac = params.get('mac')
  if (!mac) return fail('mac missing')
  if (!decodeBase64(mac)?.length) return fail('mac is not base64')
  return decoded({ algorithm: 'MD5', username, mac })
}

/** Checks an already parsed header against the body as received; the mac is compared as decoded bytes. */
export function verifyHmacMac(header: HmacHeader, password: string, nonce: Uint8Array, body: Uint8Array): boolean {
  return base64Equal(header.mac, dmDigest(header.username, password, nonce, body))
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
