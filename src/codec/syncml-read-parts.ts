/**
 * The parts SyncML DM 1.2 commands are made of (OMA-SyncML-RepPro 1.2 and MetInf 1.2 DTDs): PCDATA values,
 * Target/Source, Meta, Cred, Chal and Item with its Data. A part that breaks the DTD raises `Malformed` with the
 * element path; the command reader decides what that costs (the whole message, or one command).
 */
import type { XmlElement } from './element.ts'
import { isElement, isOpaque, isText } from './element.ts'
import type { Chal, Cred, Item, ItemData, Meta, Party } from './syncml-model.ts'
import { concatBytes, decodeBase64, decodeUtf8, encodeBase64, encodeUtf8, isBase64 } from './bytes.ts'
import { serializeChild } from './xml-write.ts'

/** Raised while reading one part of the message; the header turns it into a failure, a command into Unknown. */
export class Malformed {
  constructor(
    readonly reason: string,
    readonly path: string,
  ) {}
}

export function malformed(reason: string, path: string): never {
  throw new Malformed(reason, path)
}

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
      if (!utf8.ok) malformed('opaque data that is not UTF-8 text', path)
      text += utf8.text
    } else malformed(`element <${c.name}> where text is expected`, path)
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

export function requiredLeaf(parent: XmlElement, name: string, path: string): string {
  const element = child(parent, name)
  if (element === undefined) malformed(`required element ${name} is missing`, `${path}/${name}`)
  const value = leafText(element, `${path}/${name}`)
  if (value === '') malformed(`required element ${name} is empty`, `${path}/${name}`)
  return value
}

export function optionalLeaf(parent: XmlElement, name: string, path: string): string | undefined {
  const element = child(parent, name)
  return element === undefined ? undefined : leafText(element, `${path}/${name}`)
}

/** MetInf numbers (Size, MaxMsgSize, MaxObjSize) are unsigned decimal integers; anything else is malformed. */
function readNumber(element: XmlElement, path: string): number {
  const text = leafText(element, path)
  if (!/^[0-9]{1,15}$/.test(text)) malformed(`"${text}" is not a decimal number`, path)
  return Number(text)
}

export function readParty(element: XmlElement, path: string): Party {
  const party: Party = { locUri: requiredLeaf(element, 'LocURI', path) }
  const locName = optionalLeaf(element, 'LocName', path)
  if (locName !== undefined) party.locName = locName
  return party
}

/** MetInf (OMA-SyncML-MetaInfo 1.2); values the DM protocol does not use are skipped. */
function readMeta(element: XmlElement, path: string): Meta {
  const meta: Meta = {}
  const fields: XmlElement[] = []
  for (const c of element.children) {
    if (!isElement(c)) continue
    // Some writers wrap the fields in <MetInf>, as the MetInf DTD's root allows.
    if (c.name === 'MetInf') for (const m of c.children) isElement(m) && fields.push(m)
    else fields.push(c)
  }
  for (const field of fields) {
    const at = `${path}/${field.name}`
    switch (field.name) {
      case 'Format':
        meta.format = leafText(field, at)
        break
      case 'Type':
        meta.type = leafText(field, at)
        break
      case 'Mark':
        meta.mark = leafText(field, at)
        break
      case 'Version':
        meta.version = leafText(field, at)
        break
      case 'NextNonce':
        meta.nextNonce = base64Leaf(field, at)
        break
      case 'Size':
        meta.size = readNumber(field, at)
        break
      case 'MaxMsgSize':
        meta.maxMsgSize = readNumber(field, at)
        break
      case 'MaxObjSize':
        meta.maxObjSize = readNumber(field, at)
        break
    }
  }
  return meta
}

export function optionalMeta(parent: XmlElement, path: string): Meta | undefined {
  const element = child(parent, 'Meta')
  return element === undefined ? undefined : readMeta(element, `${path}/Meta`)
}

function readCred(element: XmlElement, path: string): Cred {
  const data = child(element, 'Data')
  if (data === undefined) malformed('required element Data is missing', `${path}/Data`)
  const cred: Cred = { data: base64Leaf(data, `${path}/Data`) }
  const meta = optionalMeta(element, path)
  if (meta !== undefined) cred.meta = meta
  return cred
}

export function optionalCred(parent: XmlElement, path: string): Cred | undefined {
  const element = child(parent, 'Cred')
  return element === undefined ? undefined : readCred(element, `${path}/Cred`)
}

export function readChal(element: XmlElement, path: string): Chal {
  const meta = child(element, 'Meta')
  if (meta === undefined) malformed('required element Meta is missing', `${path}/Meta`)
  return { meta: readMeta(meta, `${path}/Meta`) }
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
  if (bytes === undefined) malformed('data is not valid base64 although its format is b64', path)
  return bytes
}

function readItem(element: XmlElement, path: string, commandMeta: Meta | undefined): Item {
  const item: Item = {}
  const target = child(element, 'Target')
  if (target !== undefined) item.target = readParty(target, `${path}/Target`)
  const source = child(element, 'Source')
  if (source !== undefined) item.source = readParty(source, `${path}/Source`)
  const meta = optionalMeta(element, path)
  if (meta !== undefined) item.meta = meta
  const data = child(element, 'Data')
  if (data !== undefined) {
    // An item's own Meta overrides its command's (SyncML RepPro 1.2, Meta).
    const format = meta?.format ?? commandMeta?.format
    const type = meta?.type ?? commandMeta?.type
    item.data = readData(data, `${path}/Data`, format, type)
  }
  if (child(element, 'MoreData') !== undefined) item.moreData = true
  return item
}

export function readItems(element: XmlElement, path: string, commandMeta: Meta | undefined, required: boolean): Item[] {
  const items = childrenNamed(element, 'Item').map((item, k) => readItem(item, `${path}/Item[${k + 1}]`, commandMeta))
  if (required && items.length === 0) malformed('required element Item is missing', `${path}/Item`)
  return items
}

export function leaves(parent: XmlElement, name: string, path: string): string[] {
  return childrenNamed(parent, name).map((e, k) => leafText(e, `${path}/${name}[${k + 1}]`))
}
