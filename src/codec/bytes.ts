/**
 * Byte and text conversions the codec needs to be exact about: base64 that refuses what is not base64 (Node's
 * decoder silently skips bad characters), and UTF-8 that refuses invalid sequences instead of replacing them,
 * naming the offset where it went wrong.
 */

/** V8's limit for typed arrays kept inside the object (`typed_array_max_size_in_heap`). */
const SMALL_ARRAY = 64

/** RFC 4648 base64, padded, as SyncML carries `b64` data and nonces. */
export function encodeBase64(bytes: Uint8Array): string {
  // V8 keeps a small array's bytes inside the object; asking for its `.buffer` moves them out into an
  // ArrayBuffer of its own for good (some 200 bytes for a 16-byte nonce kept in the tree). A copy does not.
  const view = bytes.byteLength <= SMALL_ARRAY ? Buffer.from(bytes) : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return view.toString('base64')
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const WHITESPACE = /[ \t\r\n]+/g

/**
 * Strict RFC 4648 base64 (padding required); line breaks and blanks between groups are allowed, as MIME-style
 * writers wrap long values. Undefined when the text is not base64.
 */
export function decodeBase64(text: string): Uint8Array | undefined {
  const compact = text.replace(WHITESPACE, '')
  if (!BASE64.test(compact)) return undefined
  return new Uint8Array(Buffer.from(compact, 'base64'))
}

/** Whether the text is strict base64 (see `decodeBase64`) without decoding it. */
export function isBase64(text: string): boolean {
  return BASE64.test(text.replace(WHITESPACE, ''))
}

/** UTF-8 bytes to text, or the offset of the first byte that does not belong to a valid UTF-8 sequence. */
export function decodeUtf8(bytes: Uint8Array): { ok: true; text: string } | { ok: false; at: number } {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')
  // Node decodes what is not UTF-8 (overlong forms, surrogates, code points past U+10FFFF, cut sequences; RFC 3629,
  // 3) as U+FFFD, so the first U+FFFD that the input does not spell as EF BF BD starts the first invalid sequence.
  // Each stretch of text is measured once: a text full of genuine U+FFFD stays linear.
  let at = 0
  let from = 0
  for (let k = text.indexOf('\uFFFD'); k >= 0; k = text.indexOf('\uFFFD', k + 1)) {
    at += Buffer.byteLength(text.slice(from, k))
    from = k
    if (bytes[at] !== 0xef || bytes[at + 1] !== 0xbf || bytes[at + 2] !== 0xbd) return { ok: false, at }
  }
  return { ok: true, text }
}

export function encodeUtf8(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'utf8'))
}

/** The parts one after another, as one array (WBXML output, item data made of several pieces). */
export function concatBytes(parts: readonly ArrayLike<number>[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}
