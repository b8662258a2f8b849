/**
 * The parts SyncML DM 1.2 commands are made of (OMA-SyncML-RepPro 1.2 and MetInf 1.2 DTDs): PCDATA values,
 * Target/Source, Meta, Cred, Chal and Item with its Data. A part that breaks the DTD raises a `Fault` with the
 * element path; the command reader decides what that costs (the whole message, or one command).
 */
import type { XmlElement } from './element.ts'
import { isElement, isOpaque, isText } from './element.ts'
import type { Chal, Cred, Item, ItemData, Meta, Party } from './syncml-model.ts'
import { concatBytes, decodeBase64, decodeUtf8, encodeBase64, encodeUtf8, isBase64 } from './bytes.ts'
import { fault } from './fault.ts'
import { serializeChild } from './xml-write.ts'

type Reader<T> = (element: XmlElement, path: string) => T

export function child(parent: XmlElement, name: string): XmlElement | undefined {
  for (const c of parent.children) if (isElement(c) && c.name === name) return c
  return undefined
}

export function childrenNamed(parent: XmlElement, name: string): XmlElement[] {
  const found: XmlElement[] = []
  for (const c of parent.children) if (isElement(c) && c.name === name) found.push(c)
  return found
}

/** The character content of a PCDATA element, trimmed (pretty-printed XML indents values); `Data` is not read here. */
export function leafText(element: XmlElement, path: string): string {
  let text = ''
  for (const c of element.children) {
    if (isText(c)) text += c.text
    else if (isOpaque(c)) {
      const utf8 = decodeUtf8(c.opaque)
      if (!utf8.ok) fault('opaque data that is not UTF-8 text', path)
      text += utf8.text
    } else fault(`element <${c.name}> where text is expected`, path)
  }
  return text.trim()
}

/**
 * A value that is base64 on the wire (NextNonce, Cred Data). WBXML writers may send it as opaque: the bytes of
 * the base64 text, or the raw octets themselves, which are then put into base64 as the model keeps it.
 */
function base64Leaf(element: XmlElement, path: string): string {
  if (element.children.length === 1 && isOpaque(element.children[0]!)) {
    const bytes = element.children[0].opaque
    const utf8 = decodeUtf8(bytes)
    if (utf8.ok && utf8.text.trim() !== '' && isBase64(utf8.text)) return utf8.text.trim()
    return encodeBase64(bytes)
  }
  return leafText(element, path)
}

/** The child `name` read by `read`, or undefined when `parent` has none. */
export function optional<T>(parent: XmlElement, name: string, path: string, read: Reader<T>): T | undefined {
  const element = child(parent, name)
  return element === undefined ? undefined : read(element, `${path}/${name}`)
}

/** The child `name` read by `read`; its absence breaks the DTD. */
export function required<T>(parent: XmlElement, name: string, path: string, read: Reader<T>): T {
  const element = child(parent, name)
  if (element === undefined) fault(`required element ${name} is missing`, `${path}/${name}`)
  return read(element, `${path}/${name}`)
}

export function requiredLeaf(parent: XmlElement, name: string, path: string): string {
  const value = required(parent, name, path, leafText)
  if (value === '') fault(`required element ${name} is empty`, `${path}/${name}`)
  return value
}

export function optionalLeaf(parent: XmlElement, name: string, path: string): string | undefined {
  return optional(parent, name, path, leafText)
}

/** `true` when the flag element (`NoResp`, `MoreData`…) is there, undefined when not. */
export function flag(parent: XmlElement, name: string): true | undefined {
  return child(parent, name) && true
}

/** Sets `key` only to a value the message has, so that the model leaves out what the message leaves out. */
export function setPresent<T, K extends keyof T>(target: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) target[key] = value
}

/** MetInf numbers (Size, MaxMsgSize, MaxObjSize) are unsigned decimal integers; anything else is malformed. */
function readNumber(element: XmlElement, path: string): number {
  const text = leafText(element, path)
  if (!/^[0-9]{1,15}$/.test(text)) fault(`"${text}" is not a decimal number`, path)
  return Number(text)
}

export function readParty(element: XmlElement, path: string): Party {
  const party: Party = { locUri: requiredLeaf(element, 'LocURI', path) }
  setPresent(party, 'locName', optionalLeaf(element, 'LocName', path))
  return party
}

/**
 * The MetInf fields (OMA-SyncML-MetaInfo 1.2) the DM protocol uses, in the order of the MetInf DTD, which the
 * writer keeps; each is read as the model keeps it. The model's key is the name in camelCase (`maxMsgSize`).
 */
export const META_FIELDS: ReadonlyMap<string, Reader<string | number>> = new Map<string, Reader<string | number>>([
  ['Format', leafText],
  ['Type', leafText],
  ['Mark', leafText],
  ['Size', readNumber],
  ['Version', leafText],
  ['NextNonce', base64Leaf],
  ['MaxMsgSize', readNumber],
  ['MaxObjSize', readNumber],
])

export function metaKey(name: string): keyof Meta {
  return (name[0]!.toLowerCase() + name.slice(1)) as keyof Meta
}

/** MetInf (OMA-SyncML-MetaInfo 1.2); values the DM protocol does not use are skipped. */
function readMeta(element: XmlElement, path: string): Meta {
  const meta: Record<string, string | number> = {}
  const fields: XmlElement[] = []
  for (const c of element.children) {
    if (!isElement(c)) continue
    // Some writers wrap the fields in <MetInf>, as the MetInf DTD's root allows.
    if (c.name === 'MetInf') for (const m of c.children) isElement(m) && fields.push(m)
    else fields.push(c)
  }
  for (const field of fields) {
    const read = META_FIELDS.get(field.name)
    if (read !== undefined) meta[metaKey(field.name)] = read(field, `${path}/${field.name}`)
  }
  return meta as Meta
}

export function optionalMeta(parent: XmlElement, path: string): Meta | undefined {
  return optional(parent, 'Meta', path, readMeta)
}

function readCred(element: XmlElement, path: string): Cred {
  const cred: Cred = { data: required(element, 'Data', path, base64Leaf) }
  setPresent(cred, 'meta', optionalMeta(element, path))
  return cred
}

export function optionalCred(parent: XmlElement, path: string): Cred | undefined {
  return optional(parent, 'Cred', path, readCred)
}

export function readChal(element: XmlElement, path: string): Chal {
  return { meta: required(element, 'Meta', path, readMeta) }
}

function isBinaryFormat(format: string | undefined): boolean {
  return format === 'b64' || format === 'bin'
}

/**
 * Item data, kept byte-faithful (no trimming). Child elements (a TNDS `MgmtTree`, a bare GwMO payload element)
 * come back as the XML text they were; `b64` text is decoded to bytes; WBXML opaque data is bytes when the format
 * is binary or the content is an embedded WBXML document, and UTF-8 text otherwise.
 */
function readData(element: XmlElement, path: string, format: string | undefined, type: string | undefined): ItemData {
  const children = element.children
  if (children.some(isElement)) return decodeB64Format(children.map(serializeChild).join(''), path, format)
  if (children.some(isOpaque)) {
    const bytes = concatBytes(
      children.map((c) => (isOpaque(c) ? c.opaque : encodeUtf8(isText(c) ? c.text : ''))),
    )
    if (isBinaryFormat(format) || (type !== undefined && type.trim().toLowerCase().endsWith('+wbxml'))) return bytes
    const utf8 = decodeUtf8(bytes)
    return utf8.ok ? utf8.text : bytes
  }
  let text = ''
  for (const c of children) if (isText(c)) text += c.text
  return decodeB64Format(text, path, format)
}

function decodeB64Format(text: string, path: string, format: string | undefined): ItemData {
  if (format !== 'b64') return text
  const bytes = decodeBase64(text)
  if (bytes === undefined) fault('data is not valid base64 although its format is b64', path)
  return bytes
}

function readItem(element: XmlElement, path: string, commandMeta: Meta | undefined): Item {
  const item: Item = {}
  setPresent(item, 'target', optional(element, 'Target', path, readParty))
  setPresent(item, 'source', optional(element, 'Source', path, readParty))
  const meta = optionalMeta(element, path)
  setPresent(item, 'meta', meta)
  // An item's own Meta overrides its command's (SyncML RepPro 1.2, Meta).
  const format = meta?.format ?? commandMeta?.format
  const type = meta?.type ?? commandMeta?.type
  setPresent(item, 'data', optional(element, 'Data', path, (data, at) => readData(data, at, format, type)))
  setPresent(item, 'moreData', flag(element, 'MoreData'))
  return item
}

export function readItems(element: XmlElement, path: string, commandMeta: Meta | undefined, required: boolean): Item[] {
  const items = childrenNamed(element, 'Item').map((item, k) => readItem(item, `${path}/Item[${k + 1}]`, commandMeta))
  if (required && items.length === 0) fault('required element Item is missing', `${path}/Item`)
  return items
}

export function leaves(parent: XmlElement, name: string, path: string): string[] {
  return childrenNamed(parent, name).map((e, k) => leafText(e, `${path}/${name}[${k + 1}]`))
}
