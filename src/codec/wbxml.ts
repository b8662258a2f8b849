/**
 * WBXML 1.2 (WAP-192-WBXML) for SyncML DM 1.2: bytes to the neutral document form and back. Namespaces are code
 * pages here (page 0 SyncML, page 1 MetInf), so no attributes occur; opaque data (binary items, embedded DevInf
 * or TNDS documents) stays as bytes for the layers above to interpret.
 */
import type { DecodeLimits, XmlElement } from './element.ts'
import { isElement, isText, resolveLimits } from './element.ts'
import type { Decoded } from './errors.ts'
import { failed } from './errors.ts'
import { catchFault, fault } from './fault.ts'
import { concatBytes, decodeUtf8, encodeUtf8 } from './bytes.ts'
import { METINF_NAMESPACE } from './gwmo.ts'
import {
  CHARSET_UTF8,
  END,
  ENTITY,
  FIRST_TAG,
  isCodePage,
  LITERAL,
  NUMERIC_PUBLIC_IDS,
  OPAQUE,
  PAGE_METINF,
  PAGE_NAMES,
  PAGE_SYNCML,
  PUBLIC_ID_IN_STRING_TABLE,
  STR_I,
  STR_T,
  STRING_PUBLIC_IDS,
  SUPPORTED_VERSIONS,
  SWITCH_PAGE,
  SYNCML_12_PUBLIC_ID,
  SYNCML_NAMESPACES_LOWER,
  TAG_HAS_ATTRIBUTES,
  TAG_HAS_CONTENT,
  TAG_ID_MASK,
  tagId,
  tagName,
  WBXML_VERSION_1_2,
} from './wbxml-tokens.ts'

function hex(n: number): string {
  return `0x${n.toString(16).toUpperCase().padStart(2, '0')}`
}

/** Reads the primitive fields of WBXML 1.2, 5.1; every failure names the offset of what was being read. */
class Cursor {
  pos = 0
  constructor(readonly bytes: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.bytes.length
  }

  byte(what: string, at: number): number {
    if (this.pos >= this.bytes.length) fault(`input ends where ${what} was expected`, at)
    return this.bytes[this.pos++]!
  }

  /** WBXML 1.2, 5.1: big-endian base-128 with a continuation bit; 32 bits need at most 5 bytes. */
  mbUint32(what: string, at: number): number {
    let value = 0
    for (let length = 1; length <= 5; length++) {
      const b = this.byte(what, at)
      value = value * 128 + (b & 0x7f)
      if ((b & 0x80) === 0) {
        if (value > 0xffffffff) fault(`${what} does not fit in 32 bits`, at)
        return value
      }
    }
    return fault(`${what} is longer than the 5 bytes an mb_u_int32 may take`, at)
  }

  take(length: number, what: string, at: number): Uint8Array {
    if (length > this.bytes.length - this.pos) fault(`${what} of ${length} bytes runs past the end of input`, at)
    const slice = this.bytes.subarray(this.pos, this.pos + length)
    this.pos += length
    return slice
  }

  /** STR_I: UTF-8 up to a NUL (WBXML 1.2, 5.8.4.1). */
  inlineString(at: number): string {
    const end = this.bytes.indexOf(0, this.pos)
    if (end < 0) fault('inline string has no terminating NUL', at)
    const text = utf8Text(this.bytes.subarray(this.pos, end), at)
    this.pos = end + 1
    return text
  }
}

function utf8Text(bytes: Uint8Array, at: number): string {
  const utf8 = decodeUtf8(bytes)
  return utf8.ok ? utf8.text : fault('string is not valid UTF-8', at)
}

/** WBXML 1.2, 5.7: a reference is a byte offset into the table; the string runs to the next NUL. */
function tableString(table: Uint8Array, offset: number, at: number): string {
  if (offset >= table.length) fault(`string table offset ${offset} is outside the ${table.length}-byte table`, at)
  const end = table.indexOf(0, offset)
  if (end < 0) fault(`string table entry at ${offset} has no terminating NUL`, at)
  return utf8Text(table.subarray(offset, end), at)
}

interface Header {
  /** The root namespace the public id implies (`SYNCML:SYNCML1.2`…). */
  namespace: string
  table: Uint8Array
}

/** WBXML 1.2, 5.3 to 5.7: version, public id, charset, string table. */
function readHeader(cur: Cursor): Header {
  const version = cur.byte('the version byte', 0)
  if (!SUPPORTED_VERSIONS.includes(version)) {
    fault(`WBXML version ${(version >> 4) + 1}.${version & 0x0f} is not supported (1.1 to 1.3 are)`, 0)
  }
  const publicIdAt = cur.pos
  const publicId = cur.mbUint32('the public identifier', publicIdAt)
  const indexAt = cur.pos
  const publicIdIndex = publicId === PUBLIC_ID_IN_STRING_TABLE ? cur.mbUint32('the public id index', indexAt) : 0
  const charsetAt = cur.pos
  const charset = cur.mbUint32('the charset', charsetAt)
  if (charset !== CHARSET_UTF8) fault(`charset MIBenum ${charset} is not supported; only UTF-8 (106) is`, charsetAt)
  const tableAt = cur.pos
  const table = cur.take(cur.mbUint32('the string table length', tableAt), 'the string table', tableAt)

  if (publicId === PUBLIC_ID_IN_STRING_TABLE) {
    const name = tableString(table, publicIdIndex, indexAt)
    const namespace = STRING_PUBLIC_IDS.get(name)
    if (namespace === undefined) fault(`public identifier "${name}" is not a SyncML DTD`, publicIdAt)
    return { namespace, table }
  }
  const namespace = NUMERIC_PUBLIC_IDS.get(publicId)
  if (namespace === undefined) fault(`public identifier ${hex(publicId)} is not a SyncML DTD`, publicIdAt)
  return { namespace, table }
}

function appendText(parent: XmlElement, text: string): void {
  if (text === '') return
  const last = parent.children.at(-1)
  // Adjacent STR_I, STR_T and ENTITY pieces are one run of character data in the document.
  if (last !== undefined && isText(last)) last.text += text
  else parent.children.push({ text, cdata: false })
}

/** The element character data or opaque data goes into; there is none before the root or after it. */
function openParent(stack: XmlElement[], at: number): XmlElement {
  const parent = stack.at(-1)
  if (parent === undefined) fault('content outside the root element', at)
  return parent
}

function readEntity(cur: Cursor, at: number): string {
  const codePoint = cur.mbUint32('the entity code point', at)
  if (codePoint === 0 || codePoint > 0x10ffff || (codePoint >= 0xd800 && codePoint <= 0xdfff)) {
    fault(`entity ${hex(codePoint)} is not a character`, at)
  }
  return String.fromCodePoint(codePoint)
}

/**
 * Reads the body (WBXML 1.2, 5.8) with an explicit stack, so hostile nesting costs memory bounded by
 * `maxDepth`, never the call stack.
 */
function readBody(cur: Cursor, header: Header, limits: DecodeLimits): XmlElement {
  const stack: XmlElement[] = []
  let root: XmlElement | undefined
  let page = PAGE_SYNCML
  let elements = 0

  while (!cur.done) {
    const at = cur.pos
    const token = cur.byte('a token', at)
    switch (token) {
      case SWITCH_PAGE: {
        const next = cur.byte('a code page', at)
        if (!isCodePage(next)) fault(`code page ${next} is not a SyncML code page`, at)
        page = next
        continue
      }
      case END:
        if (stack.pop() === undefined) fault('END with no open element', at)
        break
      case STR_I:
        appendText(openParent(stack, at), cur.inlineString(at))
        continue
      case STR_T: {
        const parent = openParent(stack, at)
        appendText(parent, tableString(header.table, cur.mbUint32('a string table offset', at), at))
        continue
      }
      case ENTITY:
        appendText(openParent(stack, at), readEntity(cur, at))
        continue
      case OPAQUE: {
        const parent = openParent(stack, at)
        const data = cur.take(cur.mbUint32('the opaque length', at), 'opaque data', at)
        parent.children.push({ opaque: data.slice() })
        continue
      }
      default: {
        const id = token & TAG_ID_MASK
        // The global tokens left (see wbxml-tokens.ts) are the ones below FIRST_TAG.
        if (id === LITERAL) fault('LITERAL tags (element names outside the code pages) do not occur in SyncML', at)
        if (id < FIRST_TAG) fault(`token ${hex(token)} (extension or processing instruction) does not occur in SyncML`, at)
        if (token & TAG_HAS_ATTRIBUTES) fault(`tag ${hex(token)} has attributes, which SyncML WBXML never uses`, at)
        const name = tagName(page, id)
        if (name === undefined) fault(`unknown tag ${hex(id)} on code page ${page} (${PAGE_NAMES[page]})`, at)
        if (stack.length >= limits.maxDepth) fault(`nesting deeper than ${limits.maxDepth}`, at, 'TOO_DEEP')
        if (++elements > limits.maxElements) {
          fault(`more than ${limits.maxElements} elements`, at, 'TOO_MANY_ELEMENTS')
        }
        const element: XmlElement = { name, attrs: {}, children: [] }
        if (page === PAGE_METINF) element.attrs.xmlns = METINF_NAMESPACE
        else if (root === undefined && name === 'SyncML') element.attrs.xmlns = header.namespace
        if (root === undefined) root = element
        else openParent(stack, at).children.push(element)
        if (token & TAG_HAS_CONTENT) stack.push(element)
      }
    }
    // An element just ended or an empty one was read: when nothing is open, the root is complete.
    if (stack.length === 0 && root !== undefined) {
      if (!cur.done) fault('data after the end of the root element', cur.pos)
      return root
    }
  }
  if (root === undefined) fault('the document has no root element', cur.pos)
  return fault(`input ends inside <${stack.at(-1)!.name}>`, cur.pos)
}

/**
 * Decodes one SyncML WBXML document; bounded by `limits` and never throws. A failure's `at` is the byte offset of
 * the token or header field being read (for `TOO_LARGE`, the first byte past `maxBytes`).
 */
export function decodeWbxml(bytes: Uint8Array, limits?: Partial<DecodeLimits>): Decoded<XmlElement> {
  const bounds = resolveLimits(limits)
  if (bytes.length > bounds.maxBytes) {
    return failed('TOO_LARGE', `${bytes.length} bytes is over the ${bounds.maxBytes}-byte limit`, bounds.maxBytes)
  }
  return catchFault('WBXML_SYNTAX', () => {
    const cur = new Cursor(bytes)
    return readBody(cur, readHeader(cur), bounds)
  })
}

// ---------------------------------------------------------------------------------------------------------------

/** The output so far, as chunks joined once at the end, and the code page in force. */
interface Output {
  chunks: ArrayLike<number>[]
  page: number
}

/** WBXML 1.2, 5.1: mb_u_int32, most significant group first. */
function mbUint32(value: number): number[] {
  const groups = [value & 0x7f]
  for (let rest = Math.floor(value / 128); rest > 0; rest = Math.floor(rest / 128)) {
    groups.unshift((rest & 0x7f) | 0x80)
  }
  return groups
}

/**
 * The code page an element goes on. `xmlns`, where given, names it and is inherited as in XML; without one, a
 * name the inherited page lacks goes on the page that has it: the two pages share no names, so MetInf elements
 * under `Meta` or `Chal` need no `xmlns`, and any tree the decoder returns encodes again.
 */
function pageOf(element: XmlElement, inherited: number): number {
  for (const key of Object.keys(element.attrs)) {
    if (key !== 'xmlns') throw new Error(`WBXML: attribute ${key} of <${element.name}> has no SyncML WBXML form`)
  }
  const namespace = element.attrs.xmlns
  if (namespace !== undefined) {
    const lower = namespace.toLowerCase()
    if (lower === METINF_NAMESPACE) return PAGE_METINF
    if (SYNCML_NAMESPACES_LOWER.includes(lower)) return PAGE_SYNCML
    throw new Error(`WBXML: namespace ${namespace} of <${element.name}> is not a SyncML code page`)
  }
  if (tagId(inherited, element.name) >= 0) return inherited
  return [PAGE_SYNCML, PAGE_METINF].find((page) => tagId(page, element.name) >= 0) ?? -1
}

function encodeElement(out: Output, element: XmlElement, inherited: number): void {
  const page = pageOf(element, inherited)
  const token = page < 0 ? -1 : tagId(page, element.name)
  if (token < 0) {
    const where = page < 0 ? 'no SyncML or MetInf token' : `no token on code page ${page} (${PAGE_NAMES[page]})`
    throw new Error(`WBXML: element <${element.name}> has ${where}`)
  }
  if (out.page !== page) {
    out.chunks.push([SWITCH_PAGE, page])
    out.page = page
  }
  const content = element.children.some((c) => !isText(c) || c.text !== '')
  out.chunks.push([content ? token | TAG_HAS_CONTENT : token])
  if (!content) return
  for (const child of element.children) {
    if (isElement(child)) encodeElement(out, child, page)
    else if (isText(child)) {
      if (child.text === '') continue
      // STR_I ends at NUL, and XML cannot carry NUL either: such text can only come from a bug.
      if (child.text.includes('\0')) throw new Error(`WBXML: text in <${element.name}> contains NUL`)
      // CDATA is an XML spelling only: WBXML has no such construct, so the same characters go inline.
      out.chunks.push([STR_I], encodeUtf8(child.text), [0])
    } else out.chunks.push([OPAQUE], mbUint32(child.opaque.length), child.opaque)
  }
  out.chunks.push([END])
}

/**
 * Encodes a SyncML document built by our own model as WBXML 1.2, UTF-8. The public id travels as the string
 * `-//SYNCML//DTD SyncML 1.2//EN` in the string table (WBXML 1.2, 5.5), which any WBXML reader resolves without
 * knowing a number for it. An element, attribute or namespace without a WBXML form is a programming error and
 * throws.
 */
export function encodeWbxml(root: XmlElement): Uint8Array {
  const table = encodeUtf8(`${SYNCML_12_PUBLIC_ID}\0`)
  const out: Output = {
    chunks: [[WBXML_VERSION_1_2, PUBLIC_ID_IN_STRING_TABLE, 0], mbUint32(CHARSET_UTF8), mbUint32(table.length), table],
    page: PAGE_SYNCML,
  }
  encodeElement(out, root, PAGE_SYNCML)
  return concatBytes(out.chunks)
}
