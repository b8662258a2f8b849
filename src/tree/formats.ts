/**
 * DM TND 1.2 node formats (7.7.2, formats from SyncML Meta Information 1.2) and the check a value passes before
 * it is stored. Text formats keep a string, binary formats (`bin`, `b64`) keep bytes.
 */
import { decodeBase64 } from '../codec/bytes.ts'
import type { NodeFormat } from './types.ts'

/** Every format, in the order the persisted form numbers them (never reorder: it is the file format). */
export const FORMATS = 'node chr int bool bin b64 null xml date time float'.split(' ') as readonly NodeFormat[]

/** The shared constant for a format name, so that stored nodes never hold a copy of it. */
export function canonicalFormat(name: string): NodeFormat | undefined {
  return FORMATS[FORMATS.indexOf(name as NodeFormat)]
}

/** The MIME type a leaf has when none was given (DM TND 1.2, 7.7.7). */
export const DEFAULT_LEAF_TYPE = 'text/plain'

/** What the text of each text format must match; `chr` and `xml` take any text. */
const TEXT_PATTERNS: Partial<Record<NodeFormat, RegExp>> = {
  int: /^[+-]?\d{1,10}$/,
  bool: /^(true|false)$/i, // stored lower-case
  float: /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/,
  /** ISO 8601 date, extended or basic form. */
  date: /^\d{4}-?\d{2}-?\d{2}$/,
  /** ISO 8601 time of day, with optional fraction and zone. */
  time: /^\d{2}:?\d{2}(:?\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?$/,
}

/**
 * Checks data against its format and gives the form it is stored in (`node` and `null` take no data), or
 * undefined when the data does not match its format. Such a value is answered 415 (Unsupported media type or
 * format, SyncML RepPro 1.2): the command's Meta Format describes data the device cannot take in that format.
 */
export function checkLeafData(format: NodeFormat, data: string | Uint8Array | undefined): { data: string | Uint8Array | undefined } | undefined {
  if (format === 'bin' || format === 'b64') {
    if (typeof data !== 'string') return { data: data === undefined ? new Uint8Array(0) : data.slice() }
    if (format === 'bin') return { data: new TextEncoder().encode(data) }
    // The codec's reading of base64, so a value means the same in an Item and in the tree: wrapped lines pass.
    const bytes = decodeBase64(data)
    return bytes && { data: bytes }
  }
  if (format === 'node' || format === 'null') return data === undefined || data.length === 0 ? { data: undefined } : undefined
  const text = strictText(data)
  if (text === undefined || TEXT_PATTERNS[format]?.test(text) === false) return undefined
  // 32 bits, read as signed or unsigned
  if (format === 'int' && (Number(text) < -2147483648 || Number(text) > 4294967295)) return undefined
  return { data: format === 'bool' ? text.toLowerCase() : text }
}

/**
 * Leaf data as text, bytes read as UTF-8 (malformed sequences replaced, a leading byte-order mark kept: a
 * secret's bytes are all of it); no data stays undefined.
 */
export function textOf(data: string | Uint8Array | undefined): string | undefined {
  return data === undefined || typeof data === 'string' ? data : Buffer.from(data).toString('utf8')
}

/** Data as text for a text format: no data is empty text, bytes must be well-formed UTF-8. */
function strictText(data: string | Uint8Array | undefined): string | undefined {
  if (data === undefined || typeof data === 'string') return data ?? ''
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(data)
  } catch {
    return undefined
  }
}
