/**
 * The commands a peer sends, as small builders (`get('./DevInfo/Mod')`, `replace(uri, data)`…) and their XML
 * templates. Element order follows the SyncML RepPro 1.2 DTD; MetInf elements carry `xmlns="syncml:metinf"`.
 */
import { cdata, el, escapeText, textEl } from './xml.ts'

/** Item data: plain text (escaped on the way out), a CDATA section, or markup inserted as written. */
export type OutData = string | { cdata: string } | { xml: string }

export interface OutMeta {
  format?: string
  type?: string
  mark?: string
  size?: number
  nextNonce?: string
  maxMsgSize?: number
}

export interface OutItem {
  target?: string
  source?: string
  meta?: OutMeta
  data?: OutData
}

export type ItemCommandName = 'Get' | 'Add' | 'Replace' | 'Delete' | 'Exec' | 'Copy'

export type OutCommand =
  | { name: ItemCommandName; items: OutItem[]; meta?: OutMeta; correlator?: string; noResp?: boolean }
  | { name: 'Alert'; data: string; items: OutItem[]; inline?: OutData; correlator?: string }
  | { name: 'Atomic' | 'Sequence'; commands: OutCommand[]; meta?: OutMeta }
  | {
      name: 'Status'
      msgRef: string
      cmdRef: string
      cmd: string
      data: string
      targetRefs?: string[]
      sourceRefs?: string[]
      chal?: OutMeta
      items?: OutItem[]
    }
  | { name: 'Results'; msgRef?: string; cmdRef: string; meta?: OutMeta; items: OutItem[] }
  /** A whole command element written by hand (negative tests); it takes no CmdID from the counter. */
  | { name: 'Raw'; xml: string }

/** What went out under which CmdID, so that the device's Status and Results can be matched to it. */
export interface SentCommand {
  cmdId: string
  command: OutCommand
}

export function get(uri: string): OutCommand {
  return { name: 'Get', items: [{ target: uri }] }
}

export function add(uri: string, data?: OutData, format = 'chr', type?: string): OutCommand {
  return { name: 'Add', items: [{ target: uri, meta: { format, type }, data }] }
}

/** Add of an interior node (`Meta/Format` `node`). */
export function addNode(uri: string): OutCommand {
  return { name: 'Add', items: [{ target: uri, meta: { format: 'node' } }] }
}

export function replace(uri: string, data: OutData, format = 'chr', type?: string): OutCommand {
  return { name: 'Replace', items: [{ target: uri, meta: { format, type }, data }] }
}

export function del(uri: string): OutCommand {
  return { name: 'Delete', items: [{ target: uri }] }
}

export function exec(uri: string, data?: OutData, correlator?: string): OutCommand {
  return { name: 'Exec', items: [{ target: uri, data }], correlator }
}

export function atomic(...commands: OutCommand[]): OutCommand {
  return { name: 'Atomic', commands }
}

export function sequence(...commands: OutCommand[]): OutCommand {
  return { name: 'Sequence', commands }
}

export function alert(code: string, items: OutItem[] = [], inline?: OutData): OutCommand {
  return { name: 'Alert', data: code, items, inline }
}

/** Alert 1223: SESSION ABORT (OMA DM Protocol 1.2, alert codes); the device should not answer it. */
export function sessionAbort(): OutCommand {
  return alert('1223')
}

export function raw(xml: string): OutCommand {
  return { name: 'Raw', xml }
}

const METINF = { xmlns: 'syncml:metinf' }

export function renderMeta(meta: OutMeta | undefined): string {
  if (!meta) return ''
  const inner =
    textEl('Format', meta.format, METINF) +
    textEl('Type', meta.type, METINF) +
    textEl('Mark', meta.mark, METINF) +
    textEl('Size', meta.size?.toString(), METINF) +
    textEl('NextNonce', meta.nextNonce, METINF) +
    textEl('MaxMsgSize', meta.maxMsgSize?.toString(), METINF)
  return inner ? el('Meta', inner) : ''
}

export function renderData(data: OutData | undefined): string {
  if (data === undefined) return ''
  if (typeof data === 'string') return el('Data', escapeText(data))
  return el('Data', 'cdata' in data ? cdata(data.cdata) : data.xml)
}

function renderItem(item: OutItem): string {
  const loc = (name: string, uri?: string) => (uri === undefined ? '' : el(name, textEl('LocURI', uri)))
  return el('Item', loc('Target', item.target) + loc('Source', item.source) + renderMeta(item.meta) + renderData(item.data))
}

/**
 * Renders the commands in order, taking CmdIDs from `nextCmdId`, and records every command sent (those
 * inside Atomic and Sequence too) in `sent`.
 */
export function renderCommands(commands: OutCommand[], nextCmdId: () => string, sent: SentCommand[]): string {
  return commands.map((c) => renderCommand(c, nextCmdId, sent)).join('')
}

function renderCommand(c: OutCommand, nextCmdId: () => string, sent: SentCommand[]): string {
  if (c.name === 'Raw') return c.xml
  const cmdId = nextCmdId()
  sent.push({ cmdId, command: c })
  const id = textEl('CmdID', cmdId)
  const items = (list: OutItem[] | undefined) => (list ?? []).map(renderItem).join('')
  switch (c.name) {
    case 'Alert':
      return el('Alert', id + textEl('Data', c.data) + textEl('Correlator', c.correlator) + items(c.items) + inline(c.inline))
    case 'Atomic':
    case 'Sequence':
      return el(c.name, id + renderMeta(c.meta) + renderCommands(c.commands, nextCmdId, sent))
    case 'Status':
      return el(
        'Status',
        id +
          textEl('MsgRef', c.msgRef) +
          textEl('CmdRef', c.cmdRef) +
          textEl('Cmd', c.cmd) +
          (c.targetRefs ?? []).map((r) => textEl('TargetRef', r)).join('') +
          (c.sourceRefs ?? []).map((r) => textEl('SourceRef', r)).join('') +
          (c.chal ? el('Chal', renderMeta(c.chal)) : '') +
          textEl('Data', c.data) +
          items(c.items),
      )
    case 'Results':
      return el('Results', id + textEl('MsgRef', c.msgRef) + textEl('CmdRef', c.cmdRef) + renderMeta(c.meta) + items(c.items))
    default:
      return el(
        c.name,
        id + (c.noResp ? '<NoResp/>' : '') + renderMeta(c.meta) + textEl('Correlator', c.correlator) + items(c.items),
      )
  }
}

/** Payload placed directly inside `Alert`, where the GwMO seed's Device Detection Alert example puts it. */
function inline(data: OutData | undefined): string {
  if (data === undefined) return ''
  if (typeof data === 'string') return escapeText(data)
  return 'cdata' in data ? cdata(data.cdata) : data.xml
}
