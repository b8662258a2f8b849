/**
 * DM TND 1.2 node formats (7.7.2, formats from SyncML Meta Information 1.2) and the check a value passes before
 * it is stored. Text formats keep a string, binary formats (`bin`, `b64`) keep bytes.
 */
import type { NodeFormat, SyncMLStatus } from './types.ts'

/** Every format, in the order the persisted form numbers them (never reorder: it is the file format). */
export const FORMATS: readonly NodeFormat[] = Object.freeze([
  'node', 'chr', 'int', 'bool', 'bin', 'b64', 'null', 'xml', 'date', 'time', 'float',
] as NodeFormat[])

const BY_NAME: ReadonlyMap<string, NodeFormat> = new Map(FORMATS.map((f) => [f, f]))

/** The shared constant for a format name, so that stored nodes never hold a copy of it. */
export function canonicalFormat(name: string): NodeFormat | undefined {
  return BY_NAME.get(name)
}

/** The MIME type a leaf has when none was given (DM TND 1.2, 7.7.7). */
export const DEFAULT_LEAF_TYPE = 'text/plain'

const INT = /^[+-]?\d{1,10}$/
const FLOAT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/
/** ISO 8601 date, extended or basic form. */
const DATE = /^\d{4}-?\d{2}-?\d{2}$/
/** ISO 8601 time of day, with optional fraction and zone. */
const TIME = /^\d{2}:?\d{2}(:?\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?$/
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

export type CheckedData = { ok: true; data: string | Uint8Array | undefined } | { ok: false; status: SyncMLStatus }

/**
 * Checks leaf data against its format and gives the form it is stored in. A value that does not match its
 * format is answered 415 (Unsupported media type or format, SyncML RepPro 1.2): the command's Meta Format
 * describes data the device cannot take in that format.
 */
export function checkLeafData(format: NodeFormat, data: string | Uint8Array | undefined): CheckedData {
  switch (format) {
    case 'bin':
      return { ok: true, data: data === undefined ? new Uint8Array(0) : typeof data === 'string' ? new TextEncoder().encode(data) : data.slice() }
    case 'b64': {
      if (data === undefined) return { ok: true, data: new Uint8Array(0) }
      if (typeof data !== 'string') return { ok: true, data: data.slice() }
      const compact = data.replace(/\s+/g, '')
      if (!BASE64.test(compact)) return { ok: false, status: 415 }
      return { ok: true, data: new Uint8Array(Buffer.from(compact, 'base64')) }
    }
    case 'null':
      return isEmpty(data) ? { ok: true, data: undefined } : { ok: false, status: 415 }
    case 'node':
      return { ok: false, status: 415 }
    default: {
      const text = asText(data)
      if (text === undefined) return { ok: false, status: 415 }
      return textMatches(format, text) ? { ok: true, data: format === 'bool' ? text.toLowerCase() : text } : { ok: false, status: 415 }
    }
  }
}

export function isEmpty(data: string | Uint8Array | undefined): boolean {
  return data === undefined || data.length === 0
}

function asText(data: string | Uint8Array | undefined): string | undefined {
  if (data === undefined) return ''
  if (typeof data === 'string') return data
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(data)
  } catch {
    return undefined
  }
}

function textMatches(format: NodeFormat, text: string): boolean {
  switch (format) {
    case 'chr':
    case 'xml':
      return true
    case 'int': {
      if (!INT.test(text)) return false
      const n = Number(text)
      return n >= -2147483648 && n <= 4294967295 // 32 bits, read as signed or unsigned
    }
    case 'bool':
      return /^(true|false)$/i.test(text) // stored lower-case
    case 'float':
      return FLOAT.test(text)
    case 'date':
      return DATE.test(text)
    case 'time':
      return TIME.test(text)
    default:
      return false
  }
}
