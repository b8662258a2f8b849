/**
 * The neutral document form to the SyncML DM 1.2 model (OMA-TS-DM_RepPro-V1_2, OMA-SyncML-RepPro 1.2 DTD). A
 * header that lacks a required element fails the whole message; a body command that is malformed becomes an
 * `Unknown` command with the reason, so that the rest of the message can still be answered (DM Protocol 1.2).
 */
import type { XmlElement } from './element.ts'
import { isElement, isText } from './element.ts'
import type { Decoded } from './errors.ts'
import { decoded, failed } from './errors.ts'
import type {
  Alert,
  Command,
  ContainerCommand,
  ItemCommand,
  ItemCommandKind,
  Party,
  Results,
  Status,
  SyncHdr,
  SyncMLMessage,
  UnknownCommand,
} from './syncml-model.ts'
import { decodeUtf8, encodeBase64 } from './bytes.ts'
import {
  child,
  leafText,
  leaves,
  Malformed,
  malformed,
  optionalCred,
  optionalLeaf,
  optionalMeta,
  readChal,
  readItems,
  readParty,
  requiredLeaf,
} from './syncml-read-parts.ts'
import { serializeChild } from './xml-write.ts'

/** Atomic and Sequence nest; a bound keeps a hand-built tree from driving the reader arbitrarily deep. */
const MAX_CONTAINER_NESTING = 16

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
