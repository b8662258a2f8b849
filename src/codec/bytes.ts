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

/** Offset of the first byte that does not belong to a valid UTF-8 sequence, or -1 when all of it is valid. */
export function invalidUtf8At(bytes: Uint8Array): number {
  const n = bytes.length
  let i = 0
  while (i < n) {
    const b = bytes[i]!
    if (b < 0x80) {
      i++
      continue
    }
    let need: number
    let min: number
    if (b >= 0xc2 && b <= 0xdf) {
      need = 1
      min = 0x80
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2
      min = 0x800
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3
      min = 0x10000
    } else return i
    if (i + need > n - 1) return i
    let cp = b & (0x3f >> need)
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k]!
      if ((c & 0xc0) !== 0x80) return i
      cp = (cp << 6) | (c & 0x3f)
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8 (RFC 3629, 3).
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return i
    i += need + 1
  }
  return -1
}

/** UTF-8 bytes to text, or the offset of the first invalid byte. */
export function decodeUtf8(bytes: Uint8Array): { ok: true; text: string } | { ok: false; at: number } {
  const at = invalidUtf8At(bytes)
  if (at >= 0) return { ok: false, at }
  return { ok: true, text: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8') }
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
