/**
 * SyncML DM 1.2 messages as the peers write and read them: a template for the message around the commands of
 * `commands.ts`, and a tolerant reader that turns whatever the agent writes into plain objects (trimmed
 * fields, Meta looked up on the item or its command, nested data kept as text).
 */
import { renderCommands, renderMeta, type OutCommand, type SentCommand } from './commands.ts'
import { child, childText, childrenNamed, el, isNode, ownText, readXml, serialize, textEl, type Node } from './xml.ts'

export * from './commands.ts'

export const SYNCML_NS = 'SYNCML:SYNCML1.2'

export interface OutCred {
  type: string
  format?: string
  data: string
}

export interface OutHeader {
  sessionId: string
  msgId: string
  target: string
  source: string
  /** The user id for MD5 and HMAC (OMA DM Protocol 1.2, SyncHdr Source/LocName). */
  locName?: string
  cred?: OutCred
  maxMsgSize?: number
  /** Where the device sends its next message of the session (OMA DM's HTTP binding). */
  respUri?: string
}

export interface BuiltMessage {
  xml: string
  sent: SentCommand[]
}

/** One message: SyncHdr, the commands (CmdIDs from 1 unless told), and `Final` unless `final` is false. */
export function buildMessage(hdr: OutHeader, commands: OutCommand[], final = true, firstCmdId = 1): BuiltMessage {
  let next = firstCmdId
  const sent: SentCommand[] = []
  const body = renderCommands(commands, () => String(next++), sent)
  const source = el('Source', textEl('LocURI', hdr.source) + textEl('LocName', hdr.locName))
  const cred = hdr.cred
    ? el('Cred', renderMeta({ format: hdr.cred.format ?? 'b64', type: hdr.cred.type }) + textEl('Data', hdr.cred.data))
    : ''
  const header = el(
    'SyncHdr',
    textEl('VerDTD', '1.2') +
      textEl('VerProto', 'DM/1.2') +
      textEl('SessionID', hdr.sessionId) +
      textEl('MsgID', hdr.msgId) +
      el('Target', textEl('LocURI', hdr.target)) +
      source +
      textEl('RespURI', hdr.respUri) +
      cred +
      renderMeta(hdr.maxMsgSize === undefined ? undefined : { maxMsgSize: hdr.maxMsgSize }),
  )
  const xml = `<?xml version="1.0" encoding="UTF-8"?>${el('SyncML', header + el('SyncBody', body + (final ? '<Final/>' : '')), { xmlns: SYNCML_NS })}`
  return { xml, sent }
}

export interface ParsedMeta {
  type?: string
  format?: string
  nextNonce?: string
  mark?: string
  size?: string
  maxMsgSize?: string
}

export interface ParsedCred {
  type?: string
  format?: string
  data: string
}

export interface ParsedItem {
  target?: string
  source?: string
  meta: ParsedMeta
  data?: string
  moreData?: boolean
}

export interface ParsedCommand {
  name: string
  cmdId: string
  /** `Data` of Alert and Status (the alert or status code). */
  data?: string
  items: ParsedItem[]
  meta?: ParsedMeta
  cmdRef?: string
  msgRef?: string
  cmd?: string
  targetRefs?: string[]
  sourceRefs?: string[]
  chal?: ParsedMeta
  cred?: ParsedCred
  correlator?: string
  noResp?: boolean
  /** Commands inside Atomic and Sequence. */
  children?: ParsedCommand[]
  /** Character data directly inside an Alert (beside `Data`), trimmed. */
  inline?: string
}

export interface ParsedHeader {
  verDTD?: string
  verProto?: string
  sessionId: string
  msgId: string
  source: string
  target: string
  locName?: string
  cred?: ParsedCred
  maxMsgSize?: string
  respUri?: string
}

export interface ParsedMessage {
  hdr: ParsedHeader
  commands: ParsedCommand[]
  final: boolean
}

export type ParseOutcome = { ok: true; message: ParsedMessage } | { ok: false; error: string }

export function parseMessage(xml: string): ParseOutcome {
  const root = readXml(xml)
  if (!root || root.name !== 'SyncML') return { ok: false, error: 'no SyncML root element' }
  return parseRoot(root)
}

/** Reads an already parsed document (the WBXML path builds the same `Node` tree). */
export function parseRoot(root: Node): ParseOutcome {
  const hdr = child(root, 'SyncHdr')
  const body = child(root, 'SyncBody')
  if (!hdr || !body) return { ok: false, error: 'SyncHdr or SyncBody missing' }
  const sessionId = childText(hdr, 'SessionID')
  const msgId = childText(hdr, 'MsgID')
  const source = childText(child(hdr, 'Source'), 'LocURI')
  const target = childText(child(hdr, 'Target'), 'LocURI')
  if (sessionId === undefined || msgId === undefined || source === undefined || target === undefined) {
    return { ok: false, error: 'SyncHdr lacks SessionID, MsgID, Source or Target' }
  }
  const header: ParsedHeader = {
    verDTD: childText(hdr, 'VerDTD'),
    verProto: childText(hdr, 'VerProto'),
    sessionId,
    msgId,
    source,
    target,
    locName: childText(child(hdr, 'Source'), 'LocName'),
    cred: readCred(child(hdr, 'Cred')),
    maxMsgSize: readMeta(child(hdr, 'Meta'))?.maxMsgSize,
    respUri: childText(hdr, 'RespURI'),
  }
  const commands = body.children.filter(isNode).filter((n) => n.name !== 'Final').map(readCommand)
  return { ok: true, message: { hdr: header, commands, final: child(body, 'Final') !== undefined } }
}

function readMeta(node: Node | undefined): ParsedMeta | undefined {
  if (!node) return undefined
  const meta: ParsedMeta = {}
  for (const key of ['Type', 'Format', 'NextNonce', 'Mark', 'Size', 'MaxMsgSize'] as const) {
    const value = childText(node, key)
    if (value !== undefined) meta[(key[0]!.toLowerCase() + key.slice(1)) as keyof ParsedMeta] = value
  }
  return meta
}

function readCred(node: Node | undefined): ParsedCred | undefined {
  if (!node) return undefined
  const meta = readMeta(child(node, 'Meta')) ?? {}
  return { type: meta.type, format: meta.format, data: childText(node, 'Data') ?? '' }
}

/** Item data as text: character data as is, nested elements written back as XML. */
function dataText(node: Node): string {
  return node.children.map((c) => (typeof c === 'string' ? c : serialize(c))).join('')
}

function readItem(node: Node, commandMeta: ParsedMeta | undefined): ParsedItem {
  const data = child(node, 'Data')
  return {
    target: childText(child(node, 'Target'), 'LocURI'),
    source: childText(child(node, 'Source'), 'LocURI'),
    meta: { ...commandMeta, ...readMeta(child(node, 'Meta')) },
    data: data ? dataText(data) : undefined,
    moreData: child(node, 'MoreData') !== undefined ? true : undefined,
  }
}

const CONTAINERS = new Set(['Atomic', 'Sequence'])

function readCommand(node: Node): ParsedCommand {
  const meta = readMeta(child(node, 'Meta'))
  const command: ParsedCommand = {
    name: node.name,
    cmdId: childText(node, 'CmdID') ?? '',
    items: childrenNamed(node, 'Item').map((item) => readItem(item, meta)),
  }
  const optional: Partial<ParsedCommand> = {
    data: childText(node, 'Data'),
    meta,
    cmdRef: childText(node, 'CmdRef'),
    msgRef: childText(node, 'MsgRef'),
    cmd: childText(node, 'Cmd'),
    correlator: childText(node, 'Correlator'),
    chal: readMeta(child(child(node, 'Chal'), 'Meta')),
    cred: readCred(child(node, 'Cred')),
    noResp: child(node, 'NoResp') ? true : undefined,
  }
  for (const [k, v] of Object.entries(optional)) if (v !== undefined) (command as unknown as Record<string, unknown>)[k] = v
  if (node.name === 'Status' || node.name === 'Results') {
    command.targetRefs = childrenNamed(node, 'TargetRef').map((n) => ownText(n).trim())
    command.sourceRefs = childrenNamed(node, 'SourceRef').map((n) => ownText(n).trim())
  }
  if (CONTAINERS.has(node.name)) {
    const skip = new Set(['CmdID', 'Meta', 'NoResp'])
    command.children = node.children.filter(isNode).filter((n) => !skip.has(n.name)).map(readCommand)
  }
  if (node.name === 'Alert') {
    const inline = ownText(node).trim()
    if (inline) command.inline = inline
  }
  return command
}
