/**
 * The neutral document form to the SyncML DM 1.2 model (OMA-TS-DM_RepPro-V1_2, OMA-SyncML-RepPro 1.2 DTD). A
 * header that lacks a required element fails the whole message; a body command that is malformed becomes an
 * `Unknown` command with the reason, so that the rest of the message can still be answered (DM Protocol 1.2).
 */
import type { XmlElement } from './element.ts'
import { isElement, isOpaque, isText } from './element.ts'
import type { Decoded } from './errors.ts'
import { decoded, failed } from './errors.ts'
import type {
  Alert,
  Chal,
  Command,
  ContainerCommand,
  Cred,
  Item,
  ItemCommand,
  ItemCommandKind,
  ItemData,
  Meta,
  Party,
  Results,
  Status,
  SyncHdr,
  SyncMLMessage,
  UnknownCommand,
} from './syncml-model.ts'
import { decodeBase64, decodeUtf8, encodeBase64, encodeUtf8, isBase64 } from './bytes.ts'
import { serializeChild } from './xml.ts'

/** Raised while reading one part of the message; the header turns it into a failure, a command into Unknown. */
class Malformed {
  constructor(
    readonly reason: string,
    readonly path: string,
  ) {}
}

function malformed(reason: string, path: string): never {
  throw new Malformed(reason, path)
}

/** Atomic and Sequence nest; a bound keeps a hand-built tree from driving the reader arbitrarily deep. */
const MAX_CONTAINER_NESTING = 16

function child(parent: XmlElement, name: string): XmlElement | undefined {
  for (const c of parent.children) if (isElement(c) && c.name === name) return c
  return undefined
}

function childrenNamed(parent: XmlElement, name: string): XmlElement[] {
  const found: XmlElement[] = []
  for (const c of parent.children) if (isElement(c) && c.name === name) found.push(c)
  return found
}

/** The character content of a PCDATA element, trimmed (pretty-printed XML indents values); `Data` is not read here. */
function leafText(element: XmlElement, path: string): string {
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

function requiredLeaf(parent: XmlElement, name: string, path: string): string {
  const element = child(parent, name)
  if (element === undefined) malformed(`required element ${name} is missing`, `${path}/${name}`)
  const value = leafText(element, `${path}/${name}`)
  if (value === '') malformed(`required element ${name} is empty`, `${path}/${name}`)
  return value
}

function optionalLeaf(parent: XmlElement, name: string, path: string): string | undefined {
  const element = child(parent, name)
  return element === undefined ? undefined : leafText(element, `${path}/${name}`)
}

/** MetInf numbers (Size, MaxMsgSize, MaxObjSize) are unsigned decimal integers; anything else is malformed. */
function readNumber(element: XmlElement, path: string): number {
  const text = leafText(element, path)
  if (!/^[0-9]{1,15}$/.test(text)) malformed(`"${text}" is not a decimal number`, path)
  return Number(text)
}

function readParty(element: XmlElement, path: string): Party {
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

function optionalMeta(parent: XmlElement, path: string): Meta | undefined {
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

function optionalCred(parent: XmlElement, path: string): Cred | undefined {
  const element = child(parent, 'Cred')
  return element === undefined ? undefined : readCred(element, `${path}/Cred`)
}

function readChal(element: XmlElement, path: string): Chal {
  const meta = child(element, 'Meta')
  if (meta === undefined) malformed('required element Meta is missing', `${path}/Meta`)
  return { meta: readMeta(meta, `${path}/Meta`) }
}

function isBinaryFormat(format: string | undefined): boolean {
  return format === 'b64' || format === 'bin'
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
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

function readItems(element: XmlElement, path: string, commandMeta: Meta | undefined, required: boolean): Item[] {
  const items = childrenNamed(element, 'Item').map((item, k) => readItem(item, `${path}/Item[${k + 1}]`, commandMeta))
  if (required && items.length === 0) malformed('required element Item is missing', `${path}/Item`)
  return items
}

function leaves(parent: XmlElement, name: string, path: string): string[] {
  return childrenNamed(parent, name).map((e, k) => leafText(e, `${path}/${name}[${k + 1}]`))
}

const ALERT_FIELDS = new Set(['CmdID', 'NoResp', 'Cred', 'Data', 'Correlator', 'Item'])

function readAlert(element: XmlElement, path: string, cmdId: string): Alert {
  const alert: Alert = { kind: 'Alert', cmdId, data: requiredLeaf(element, 'Data', path), items: [] }
  if (child(element, 'NoResp') !== undefined) alert.noResp = true
  const cred = optionalCred(element, path)
  if (cred !== undefined) alert.cred = cred
  const correlator = optionalLeaf(element, 'Correlator', path)
  if (correlator !== undefined) alert.correlator = correlator
  alert.items = readItems(element, path, undefined, false)
  // The GwMO seed places the Device Detection payload directly inside Alert, as CDATA; indentation around it is
  // not payload, but any other character data (and any element the DTD does not place here) is.
  let inline = ''
  for (const c of element.children) {
    if (isText(c)) {
      if (c.cdata || c.text.trim() !== '') inline += c.text
    } else if (isElement(c)) {
      if (!ALERT_FIELDS.has(c.name)) inline += serializeChild(c)
    } else {
      const utf8 = decodeUtf8(c.opaque)
      inline += utf8.ok ? utf8.text : encodeBase64(c.opaque)
    }
  }
  if (inline !== '') alert.inline = inline
  return alert
}

function readStatus(element: XmlElement, path: string, cmdId: string): Status {
  const status: Status = {
    kind: 'Status',
    cmdId,
    msgRef: requiredLeaf(element, 'MsgRef', path),
    cmdRef: requiredLeaf(element, 'CmdRef', path),
    cmd: requiredLeaf(element, 'Cmd', path),
    targetRefs: leaves(element, 'TargetRef', path),
    sourceRefs: leaves(element, 'SourceRef', path),
    data: requiredLeaf(element, 'Data', path),
    items: readItems(element, path, undefined, false),
  }
  const cred = optionalCred(element, path)
  if (cred !== undefined) status.cred = cred
  const chal = child(element, 'Chal')
  if (chal !== undefined) status.chal = readChal(chal, `${path}/Chal`)
  return status
}

function readResults(element: XmlElement, path: string, cmdId: string): Results {
  const meta = optionalMeta(element, path)
  const results: Results = {
    kind: 'Results',
    cmdId,
    cmdRef: requiredLeaf(element, 'CmdRef', path),
    targetRefs: leaves(element, 'TargetRef', path),
    sourceRefs: leaves(element, 'SourceRef', path),
    items: readItems(element, path, meta, true),
  }
  const msgRef = optionalLeaf(element, 'MsgRef', path)
  if (msgRef !== undefined) results.msgRef = msgRef
  if (meta !== undefined) results.meta = meta
  return results
}

function readItemCommand(element: XmlElement, path: string, cmdId: string, kind: ItemCommandKind): ItemCommand {
  const meta = optionalMeta(element, path)
  const command: ItemCommand = { kind, cmdId, items: readItems(element, path, meta, true) }
  if (child(element, 'NoResp') !== undefined) command.noResp = true
  const cred = optionalCred(element, path)
  if (cred !== undefined) command.cred = cred
  if (meta !== undefined) command.meta = meta
  if (kind === 'Exec') {
    // SyncML RepPro 1.2 DTD: Exec (CmdID, NoResp?, Cred?, Meta?, Correlator?, Item).
    if (command.items.length > 1) malformed('Exec takes exactly one Item', `${path}/Item[2]`)
    const correlator = optionalLeaf(element, 'Correlator', path)
    if (correlator !== undefined) command.correlator = correlator
  }
  return command
}

const CONTAINER_FIELDS = new Set(['CmdID', 'NoResp', 'Meta'])

function readContainer(
  element: XmlElement,
  path: string,
  cmdId: string,
  kind: 'Atomic' | 'Sequence',
  nesting: number,
): ContainerCommand {
  if (nesting >= MAX_CONTAINER_NESTING) malformed(`Atomic and Sequence nested deeper than ${MAX_CONTAINER_NESTING}`, path)
  const command: ContainerCommand = {
    kind,
    cmdId,
    commands: readCommands(element, path, CONTAINER_FIELDS, nesting + 1).commands,
  }
  if (command.commands.length === 0) malformed(`${kind} holds no command`, path)
  if (child(element, 'NoResp') !== undefined) command.noResp = true
  const meta = optionalMeta(element, path)
  if (meta !== undefined) command.meta = meta
  return command
}

const ITEM_COMMANDS: ReadonlySet<string> = new Set<ItemCommandKind>(['Get', 'Add', 'Replace', 'Delete', 'Exec', 'Copy'])

const OTHER_COMMANDS: ReadonlySet<string> = new Set(['Alert', 'Status', 'Results', 'Atomic', 'Sequence'])

/** The CmdID, read even from a command that is otherwise unreadable, so that its Status can refer to it. */
function commandId(element: XmlElement, path: string): string {
  const idElement = child(element, 'CmdID')
  if (idElement === undefined) return ''
  try {
    return leafText(idElement, `${path}/CmdID`)
  } catch (e) {
    if (!(e instanceof Malformed)) throw e
    return ''
  }
}

function readCommand(element: XmlElement, path: string, nesting: number): Command {
  const cmdId = commandId(element, path)
  // Outside the DM profile (Sync, Map, Put, Search…): answered 406, not 400.
  if (!OTHER_COMMANDS.has(element.name) && !ITEM_COMMANDS.has(element.name)) {
    return { kind: 'Unknown', name: element.name, cmdId }
  }
  try {
    if (cmdId === '') malformed('required element CmdID is missing or empty', `${path}/CmdID`)
    switch (element.name) {
      case 'Alert':
        return readAlert(element, path, cmdId)
      case 'Status':
        return readStatus(element, path, cmdId)
      case 'Results':
        return readResults(element, path, cmdId)
      case 'Atomic':
      case 'Sequence':
        return readContainer(element, path, cmdId, element.name, nesting)
      default:
        return readItemCommand(element, path, cmdId, element.name as ItemCommandKind)
    }
  } catch (e) {
    if (!(e instanceof Malformed)) throw e
    const unknown: UnknownCommand = { kind: 'Unknown', name: element.name, cmdId, malformed: `${e.reason} (${e.path})` }
    return unknown
  }
}

/** The commands among `parent`'s children, skipping `fields` (its own elements) and noting `Final`. */
function readCommands(
  parent: XmlElement,
  path: string,
  fields: ReadonlySet<string>,
  nesting: number,
): { commands: Command[]; final: boolean } {
  const commands: Command[] = []
  const seen = new Map<string, number>()
  let final = false
  for (const c of parent.children) {
    if (!isElement(c) || fields.has(c.name)) continue
    if (c.name === 'Final' && nesting === 0) {
      final = true
      continue
    }
    const index = (seen.get(c.name) ?? 0) + 1
    seen.set(c.name, index)
    commands.push(readCommand(c, `${path}/${c.name}[${index}]`, nesting))
  }
  return { commands, final }
}

function readHeader(element: XmlElement, path: string): SyncHdr {
  const hdr: SyncHdr = {
    verDTD: requiredLeaf(element, 'VerDTD', path),
    verProto: requiredLeaf(element, 'VerProto', path),
    sessionId: requiredLeaf(element, 'SessionID', path),
    msgId: requiredLeaf(element, 'MsgID', path),
    target: readRequiredParty(element, 'Target', path),
    source: readRequiredParty(element, 'Source', path),
  }
  const respUri = optionalLeaf(element, 'RespURI', path)
  if (respUri !== undefined) hdr.respUri = respUri
  if (child(element, 'NoResp') !== undefined) hdr.noResp = true
  const cred = optionalCred(element, path)
  if (cred !== undefined) hdr.cred = cred
  const meta = optionalMeta(element, path)
  if (meta !== undefined) hdr.meta = meta
  return hdr
}

function readRequiredParty(parent: XmlElement, name: string, path: string): Party {
  const element = child(parent, name)
  if (element === undefined) malformed(`required element ${name} is missing`, `${path}/${name}`)
  return readParty(element, `${path}/${name}`)
}

const NO_FIELDS: ReadonlySet<string> = new Set()

/** Reads one SyncML message; fails only when the message as a whole cannot be answered (a bad SyncHdr). */
export function messageFromElement(root: XmlElement): Decoded<SyncMLMessage> {
  if (root.name !== 'SyncML') return failed('SYNCML_STRUCTURE', `root element is <${root.name}>, not <SyncML>`, 'SyncML')
  try {
    const hdrElement = child(root, 'SyncHdr')
    if (hdrElement === undefined) malformed('required element SyncHdr is missing', 'SyncML/SyncHdr')
    const hdr = readHeader(hdrElement, 'SyncML/SyncHdr')
    const bodyElement = child(root, 'SyncBody')
    if (bodyElement === undefined) malformed('required element SyncBody is missing', 'SyncML/SyncBody')
    const { commands, final } = readCommands(bodyElement, 'SyncML/SyncBody', NO_FIELDS, 0)
    return decoded({ hdr, body: commands, final })
  } catch (e) {
    if (!(e instanceof Malformed)) throw e
    return failed('SYNCML_STRUCTURE', e.reason, e.path)
  }
}
