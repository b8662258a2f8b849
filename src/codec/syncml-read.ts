/**
 * The neutral document form to the SyncML DM 1.2 model (OMA-TS-DM_RepPro-V1_2, OMA-SyncML-RepPro 1.2 DTD). A
 * header that lacks a required element fails the whole message; a body command that is malformed becomes an
 * `Unknown` command with the reason, so that the rest of the message can still be answered (DM Protocol 1.2).
 */
import type { XmlElement } from './element.ts'
import { isElement, isText } from './element.ts'
import type { Decoded } from './errors.ts'
import { failed } from './errors.ts'
import type {
  Alert,
  Command,
  ContainerCommand,
  ItemCommand,
  ItemCommandKind,
  Results,
  Status,
  SyncHdr,
  SyncMLMessage,
  UnknownCommand,
} from './syncml-model.ts'
import { decodeUtf8, encodeBase64 } from './bytes.ts'
import { catchFault, fault, Fault } from './fault.ts'
import {
  flag,
  leaves,
  optional,
  optionalCred,
  optionalLeaf,
  optionalMeta,
  readChal,
  readItems,
  readParty,
  required,
  requiredLeaf,
  setPresent,
} from './syncml-read-parts.ts'
import { serializeChild } from './xml-write.ts'

/** Atomic and Sequence nest; a bound keeps a hand-built tree from driving the reader arbitrarily deep. */
const MAX_CONTAINER_NESTING = 16

const ALERT_FIELDS = new Set(['CmdID', 'NoResp', 'Cred', 'Data', 'Correlator', 'Item'])

function readAlert(element: XmlElement, path: string, cmdId: string): Alert {
  const alert: Alert = { kind: 'Alert', cmdId, data: requiredLeaf(element, 'Data', path), items: [] }
  setPresent(alert, 'noResp', flag(element, 'NoResp'))
  setPresent(alert, 'cred', optionalCred(element, path))
  setPresent(alert, 'correlator', optionalLeaf(element, 'Correlator', path))
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
  setPresent(status, 'cred', optionalCred(element, path))
  setPresent(status, 'chal', optional(element, 'Chal', path, readChal))
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
  setPresent(results, 'msgRef', optionalLeaf(element, 'MsgRef', path))
  setPresent(results, 'meta', meta)
  return results
}

function readItemCommand(element: XmlElement, path: string, cmdId: string, kind: ItemCommandKind): ItemCommand {
  const meta = optionalMeta(element, path)
  const command: ItemCommand = { kind, cmdId, items: readItems(element, path, meta, true) }
  setPresent(command, 'noResp', flag(element, 'NoResp'))
  setPresent(command, 'cred', optionalCred(element, path))
  setPresent(command, 'meta', meta)
  if (kind === 'Exec') {
    // SyncML RepPro 1.2 DTD: Exec (CmdID, NoResp?, Cred?, Meta?, Correlator?, Item).
    if (command.items.length > 1) fault('Exec takes exactly one Item', `${path}/Item[2]`)
    setPresent(command, 'correlator', optionalLeaf(element, 'Correlator', path))
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
  if (nesting >= MAX_CONTAINER_NESTING) fault(`Atomic and Sequence nested deeper than ${MAX_CONTAINER_NESTING}`, path)
  const command: ContainerCommand = {
    kind,
    cmdId,
    commands: readCommands(element, path, CONTAINER_FIELDS, nesting + 1).commands,
  }
  if (command.commands.length === 0) fault(`${kind} holds no command`, path)
  setPresent(command, 'noResp', flag(element, 'NoResp'))
  setPresent(command, 'meta', optionalMeta(element, path))
  return command
}

/** The SyncBody commands of the DM profile; any other is answered 406. */
const DM_COMMANDS: ReadonlySet<string> = new Set<Command['kind']>(
  ['Alert', 'Status', 'Results', 'Atomic', 'Sequence', 'Get', 'Add', 'Replace', 'Delete', 'Exec', 'Copy'],
)

/** The CmdID, read even from a command that is otherwise unreadable, so that its Status can refer to it. */
function commandId(element: XmlElement, path: string): string {
  const id = catchFault('SYNCML_STRUCTURE', () => optionalLeaf(element, 'CmdID', path))
  return (id.ok && id.value) || ''
}

function readCommand(element: XmlElement, path: string, nesting: number): Command {
  const cmdId = commandId(element, path)
  // Outside the DM profile (Sync, Map, Put, Search…): answered 406, not 400.
  if (!DM_COMMANDS.has(element.name)) {
    return { kind: 'Unknown', name: element.name, cmdId }
  }
  try {
    if (cmdId === '') fault('required element CmdID is missing or empty', `${path}/CmdID`)
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
    if (!(e instanceof Fault)) throw e
    const unknown: UnknownCommand = { kind: 'Unknown', name: element.name, cmdId, malformed: `${e.message} (${e.at})` }
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
    target: required(element, 'Target', path, readParty),
    source: required(element, 'Source', path, readParty),
  }
  setPresent(hdr, 'respUri', optionalLeaf(element, 'RespURI', path))
  setPresent(hdr, 'noResp', flag(element, 'NoResp'))
  setPresent(hdr, 'cred', optionalCred(element, path))
  setPresent(hdr, 'meta', optionalMeta(element, path))
  return hdr
}

const NO_FIELDS: ReadonlySet<string> = new Set()

/** Reads one SyncML message; fails only when the message as a whole cannot be answered (a bad SyncHdr). */
export function messageFromElement(root: XmlElement): Decoded<SyncMLMessage> {
  if (root.name !== 'SyncML') return failed('SYNCML_STRUCTURE', `root element is <${root.name}>, not <SyncML>`, 'SyncML')
  return catchFault('SYNCML_STRUCTURE', () => {
    const hdr = required(root, 'SyncHdr', 'SyncML', readHeader)
    const { commands, final } = required(root, 'SyncBody', 'SyncML', (body, path) => readCommands(body, path, NO_FIELDS, 0))
    return { hdr, body: commands, final }
  })
}
