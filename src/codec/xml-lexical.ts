/**
 * The lexical rules of XML 1.0 (Fifth Edition) the parser applies: which characters may appear, what a name is,
 * and how entity and character references decode. Failures are raised as a `Fault` with the input offset, which
 * the parser turns into a `Decoded` failure at its boundary (see `fault.ts`).
 */
import { fault } from './fault.ts'

// XML 1.0, 2.2 Char: controls other than tab, LF and CR, U+FFFE/U+FFFF and unpaired surrogates are not characters.
export const NOT_XML_CHAR = /[\0-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

// XML 1.0 (Fifth Edition), 2.3 NameStartChar; surrogates pass as halves of a supplementary character.
export function isNameStart(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || c === 0x3a ||
    (c >= 0xc0 && c <= 0xd6) || (c >= 0xd8 && c <= 0xf6) || (c >= 0xf8 && c <= 0x2ff) ||
    (c >= 0x370 && c <= 0x37d) || (c >= 0x37f && c <= 0x1fff) || c === 0x200c || c === 0x200d ||
    (c >= 0x2070 && c <= 0x218f) || (c >= 0x2c00 && c <= 0x2fef) || (c >= 0x3001 && c <= 0xdfff) ||
    (c >= 0xf900 && c <= 0xfdcf) || (c >= 0xfdf0 && c <= 0xfffd)
  )
}

function isNameChar(c: number): boolean {
  return (
    isNameStart(c) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0xb7 ||
    (c >= 0x300 && c <= 0x36f) || c === 0x203f || c === 0x2040
  )
}

export function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x9 || c === 0xa || c === 0xd
}

export function readName(text: string, at: number): string {
  if (at >= text.length || !isNameStart(text.charCodeAt(at))) return ''
  let end = at + 1
  while (end < text.length && isNameChar(text.charCodeAt(end))) end++
  return text.slice(at, end)
}

export function skipSpace(text: string, at: number): number {
  while (at < text.length && isSpace(text.charCodeAt(at))) at++
  return at
}

/** Longest reference we accept: `&#x10FFFF;` and `&#1114111;`, with room for leading zeros. */
const MAX_REFERENCE = 16

/** Decodes the predefined entities and character references in `raw`, which starts at `offset` of the input. */
export function decodeReferences(raw: string, offset: number): string {
  let amp = raw.indexOf('&')
  if (amp < 0) return raw
  const parts: string[] = []
  let from = 0
  while (amp >= 0) {
    parts.push(raw.slice(from, amp))
    const semi = raw.indexOf(';', amp + 1)
    if (semi < 0 || semi - amp > MAX_REFERENCE) fault('"&" that does not start an entity reference', offset + amp)
    const ref = raw.slice(amp + 1, semi)
    parts.push(resolveReference(ref, offset + amp))
    from = semi + 1
    amp = raw.indexOf('&', from)
  }
  parts.push(raw.slice(from))
  return parts.join('')
}

function resolveReference(ref: string, at: number): string {
  // A switch, not an object lookup, so that `&constructor;` is no entity (XML 1.0, 4.6 predefined entities).
  switch (ref) {
    case 'lt':
      return '<'
    case 'gt':
      return '>'
    case 'amp':
      return '&'
    case 'quot':
      return '"'
    case 'apos':
      return "'"
  }
  let cp = NaN
  if (/^#x[0-9A-Fa-f]+$/.test(ref)) cp = parseInt(ref.slice(2), 16)
  else if (/^#[0-9]+$/.test(ref)) cp = parseInt(ref.slice(1), 10)
  else fault(`unknown entity &${ref};`, at)
  // Past U+10FFFF there is no character at all; below, one that NOT_XML_CHAR matches is none XML allows.
  const char = cp <= 0x10ffff ? String.fromCodePoint(cp) : ''
  if (char === '' || NOT_XML_CHAR.test(char)) fault(`character reference &${ref}; names no XML character`, at)
  return char
}
