/**
 * The SyncML DM 1.2 model to the neutral document form, with every element in the order the SyncML RepPro 1.2
 * DTD gives (CmdID first, and so on), so that strict peers accept what the device writes.
 */
import type { XmlChild, XmlElement } from './element.ts'
import type {
  Alert,
  Chal,
  Command,
  ContainerCommand,
  Cred,
  Item,
  ItemCommand,
  ItemData,
  Meta,
  Party,
  Results,
  Status,
  SyncHdr,
  SyncMLMessage,
} from './syncml-model.ts'
import { METINF_NAMESPACE, SYNCML_NAMESPACE } from './gwmo.ts'
import { META_FIELDS, metaKey } from './syncml-read-parts.ts'

/** What an element holds; an absent optional part is undefined and left out. */
type Part = XmlChild | undefined

function element(name: string, parts: Part[], attrs: Record<string, string> = {}): XmlElement {
  return { name, attrs, children: parts.filter((p): p is XmlChild => p !== undefined) }
}

/** Empty text is no text: `<LocName></LocName>` is written `<LocName/>`. */
function text(value: string): Part {
  return value === '' ? undefined : { text: value, cdata: false }
}

function leaf(name: string, value: string | undefined): Part {
  return value === undefined ? undefined : element(name, [text(value)])
}

function flag(name: string, on: boolean | undefined): Part {
  return on ? element(name, []) : undefined
}

/** MetInf elements carry their namespace, as OMA's examples write them (`<Type xmlns="syncml:metinf">`). */
function metinf(name: string, value: string | number | undefined): Part {
  return value === undefined ? undefined : element(name, [text(String(value))], { xmlns: METINF_NAMESPACE })
}

// OMA-SyncML-MetaInfo 1.2 DTD order: FieldLevel?, Format?, Type?, Mark?, Size?, Anchor?, Version?, NextNonce?,
// MaxMsgSize?, MaxObjSize?, EMI*, Mem?; META_FIELDS lists those the model has in that order.
function meta(value: Meta | undefined): Part {
  if (value === undefined) return undefined
  return element('Meta', [...META_FIELDS.keys()].map((name) => metinf(name, value[metaKey(name)])))
}

function party(name: string, value: Party | undefined): Part {
  if (value === undefined) return undefined
  return element(name, [leaf('LocURI', value.locUri), leaf('LocName', value.locName)])
}

function cred(value: Cred | undefined): Part {
  if (value === undefined) return undefined
  return element('Cred', [meta(value.meta), leaf('Data', value.data)])
}

function chal(value: Chal | undefined): Part {
  return value === undefined ? undefined : element('Chal', [meta(value.meta)])
}

/** Bytes go out as opaque data, which XML writes as base64 and WBXML as OPAQUE. */
function data(value: ItemData | undefined): Part {
  return value === undefined ? undefined : element('Data', [typeof value === 'string' ? text(value) : { opaque: value }])
}

function item(value: Item): XmlElement {
  return element('Item', [
    party('Target', value.target),
    party('Source', value.source),
    meta(value.meta),
    data(value.data),
    flag('MoreData', value.moreData),
  ])
}

function refs(name: string, values: string[]): Part[] {
  return values.map((v) => leaf(name, v))
}

function alert(cmd: Alert): XmlElement {
  const out = element('Alert', [
    leaf('CmdID', cmd.cmdId),
    flag('NoResp', cmd.noResp),
    cred(cmd.cred),
    leaf('Data', cmd.data),
    leaf('Correlator', cmd.correlator),
  ])
  // Where the GwMO seed's Device Detection Alert carries its payload: CDATA directly inside Alert.
  if (cmd.inline !== undefined && cmd.inline !== '') out.children.push({ text: cmd.inline, cdata: true })
  out.children.push(...cmd.items.map(item))
  return out
}

function status(cmd: Status): XmlElement {
  return element('Status', [
    leaf('CmdID', cmd.cmdId),
    leaf('MsgRef', cmd.msgRef),
    leaf('CmdRef', cmd.cmdRef),
    leaf('Cmd', cmd.cmd),
    ...refs('TargetRef', cmd.targetRefs),
    ...refs('SourceRef', cmd.sourceRefs),
    cred(cmd.cred),
    chal(cmd.chal),
    leaf('Data', cmd.data),
    ...cmd.items.map(item),
  ])
}

function results(cmd: Results): XmlElement {
  return element('Results', [
    leaf('CmdID', cmd.cmdId),
    leaf('MsgRef', cmd.msgRef),
    leaf('CmdRef', cmd.cmdRef),
    meta(cmd.meta),
    ...refs('TargetRef', cmd.targetRefs),
    ...refs('SourceRef', cmd.sourceRefs),
    ...cmd.items.map(item),
  ])
}

function itemCommand(cmd: ItemCommand): XmlElement {
  return element(cmd.kind, [
    leaf('CmdID', cmd.cmdId),
    flag('NoResp', cmd.noResp),
    cred(cmd.cred),
    meta(cmd.meta),
    cmd.kind === 'Exec' ? leaf('Correlator', cmd.correlator) : undefined,
    ...cmd.items.map(item),
  ])
}

function container(cmd: ContainerCommand): XmlElement {
  return element(cmd.kind, [leaf('CmdID', cmd.cmdId), flag('NoResp', cmd.noResp), meta(cmd.meta), ...cmd.commands.map(command)])
}

function command(cmd: Command): XmlElement {
  switch (cmd.kind) {
    case 'Alert':
      return alert(cmd)
    case 'Status':
      return status(cmd)
    case 'Results':
      return results(cmd)
    case 'Atomic':
    case 'Sequence':
      return container(cmd)
    case 'Unknown':
      // Only its name and CmdID are known; written back so that a decoded message re-encodes whole.
      return element(cmd.name, [cmd.cmdId === '' ? undefined : leaf('CmdID', cmd.cmdId)])
    default:
      return itemCommand(cmd)
  }
}

function header(hdr: SyncHdr): XmlElement {
  return element('SyncHdr', [
    leaf('VerDTD', hdr.verDTD),
    leaf('VerProto', hdr.verProto),
    leaf('SessionID', hdr.sessionId),
    leaf('MsgID', hdr.msgId),
    party('Target', hdr.target),
    party('Source', hdr.source),
    leaf('RespURI', hdr.respUri),
    flag('NoResp', hdr.noResp),
    cred(hdr.cred),
    meta(hdr.meta),
  ])
}

/** The message as a document: `<SyncML xmlns="SYNCML:SYNCML1.2">`, SyncHdr, SyncBody with `Final` last. */
export function messageToElement(msg: SyncMLMessage): XmlElement {
  const body = element('SyncBody', [...msg.body.map(command), flag('Final', msg.final)])
  return element('SyncML', [header(msg.hdr), body], { xmlns: SYNCML_NAMESPACE })
}
