/**
 * How the demo tells what went over the wire: one line per SyncML message, `from → to` and its commands in a
 * few words (alert codes named, the GwMO payloads read, long node lists folded), never the XML itself.
 */
import type { PartySession } from './session-record.ts'
import { parseMessage, type ParsedCommand, type ParsedItem, type ParsedMessage } from './syncml.ts'

/** Display names of the parties, by LocURI. */
export type Names = ReadonlyMap<string, string>

const ALERT_NAMES: Record<string, string> = {
  '1200': '(server-initiated session)',
  '1201': '(client-initiated session)',
  '1222': '(next message)',
  '1223': '(session abort)',
  '1230': 'Device Detection',
}

const MAX_VALUE = 60
/** More items than this are folded into a count and their common parent. */
const MAX_LISTED = 6

function clip(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim()
  return flat.length > MAX_VALUE ? `${flat.slice(0, MAX_VALUE - 1)}…` : flat
}

/** `urn:oma:gwmo:1.0:BootstrappedDMSList` → `BootstrappedDMSList`. */
export function shortType(type: string | undefined): string {
  return type === undefined ? '' : type.slice(type.lastIndexOf(':') + 1)
}

/** The leaves of a small GwMO payload as `Name=value`, ServerList IDs as a list. */
export function payloadSummary(data: string | undefined): string {
  if (data === undefined) return ''
  const leaves = [...data.matchAll(/<([A-Za-z]+)>([^<]*)<\/\1>/g)].map((m) => [m[1]!, m[2]!.trim()] as const)
  if (leaves.length === 0) return clip(data)
  if (leaves.every(([name]) => name === 'ID')) return `[${leaves.map(([, v]) => v).join(', ')}]`
  return leaves.map(([name, value]) => `${name}=${value}`).join(', ')
}

/** The levels all the URIs share: `./DMAcc/gw` for `./DMAcc/gw` and `./DMAcc/gw/AppID`. */
function commonPrefix(uris: string[]): string {
  const split = uris.map((u) => u.split('/'))
  const first = split[0] ?? []
  let n = 0
  while (n < first.length && split.every((parts) => parts[n] === first[n])) n++
  return first.slice(0, n).join('/')
}

function itemsSummary(name: string, items: ParsedItem[]): string {
  const uris = items.map((i) => i.target ?? i.source ?? '?')
  if (items.length > MAX_LISTED) {
    const prefix = commonPrefix(uris)
    return uris.includes(prefix) ? `${name} ${prefix} (${items.length} nodes)` : `${name} ×${items.length} under ${prefix}`
  }
  // A list of siblings reads as `Replace ./DevInfo: DevId=…, Man=…`.
  const prefix = items.length > 1 ? commonPrefix(uris) : ''
  const parent = uris.includes(prefix) ? '' : prefix
  const listed = items.map((item, k) => {
    const uri = parent ? uris[k]!.slice(parent.length + 1) : uris[k]!
    return item.data === undefined ? uri : `${uri}=${clip(item.data)}`
  })
  return parent ? `${name} ${parent}: ${listed.join(', ')}` : `${name} ${listed.join(', ')}`
}

function describeAlert(c: ParsedCommand): string[] {
  const code = c.data ?? '?'
  if (code === '1226') {
    return c.items.map((i) => `Alert 1226 ${shortType(i.meta.type)}: ${payloadSummary(i.data)}`)
  }
  if (code === '1230') {
    const payload = c.items[0]?.data ?? c.inline
    return [`Alert 1230 Device Detection: ${payloadSummary(payload)}`]
  }
  return [`Alert ${code} ${ALERT_NAMES[code] ?? ''}`.trim()]
}

/** The command a Status answers, when the message it refers to is known (to name `Alert 1226` rather than `Alert`). */
export type CommandLookup = (msgRef: string | undefined, cmdRef: string | undefined) => ParsedCommand | undefined

function describeStatus(c: ParsedCommand, lookup: CommandLookup): string {
  if (c.cmd === 'SyncHdr' || c.cmdRef === '0') {
    return `Status ${c.data ?? '?'} on the credentials${c.chal?.nextNonce ? ' + NextNonce' : ''}`
  }
  const answered = lookup(c.msgRef, c.cmdRef)
  const what = c.cmd === 'Alert' && answered?.data ? `Alert ${answered.data}` : (c.cmd ?? '?')
  return `Status ${c.data ?? '?'} for ${what}`
}

/** The commands of one message, consecutive commands of the same kind folded together. */
export function describeCommands(message: ParsedMessage, lookup: CommandLookup = () => undefined): string[] {
  const parts: string[] = []
  if (message.hdr.cred) parts.push(`Cred ${message.hdr.cred.type ?? 'syncml:auth-md5'}`)
  const commands = message.commands
  for (let k = 0; k < commands.length; ) {
    const c = commands[k]!
    if (c.name === 'Alert') {
      parts.push(...describeAlert(c))
      k++
      continue
    }
    // A run of the same command (and, for Status, the same answer to the same kind of command).
    let end = k + 1
    const same = (d: ParsedCommand) =>
      d.name === c.name &&
      (c.name !== 'Status' || (d.cmd === c.cmd && d.data === c.data && d.cmdRef !== '0' && c.cmd !== 'Alert'))
    if (!(c.name === 'Status' && c.cmdRef === '0')) while (end < commands.length && same(commands[end]!)) end++
    const run = commands.slice(k, end)
    if (c.name === 'Status') parts.push(run.length > 1 ? `${describeStatus(c, lookup)} ×${run.length}` : describeStatus(c, lookup))
    else if (c.name === 'Atomic' || c.name === 'Sequence') parts.push(`${c.name} of ${(c.children ?? []).length} commands`)
    else parts.push(itemsSummary(c.name, run.flatMap((r) => r.items)))
    k = end
  }
  if (commands.length === 0) parts.push('(no commands)')
  return parts
}

export function describeLine(from: string, to: string, parts: string[]): string {
  return `   ${`${from} → ${to}`.padEnd(27)} ${parts.join(' · ')}`
}

/**
 * Every message of a session in the order they went, as lines. A session the device opened starts with its
 * message; a pushed one with the party's. The party sends nothing after the device's last Status-only message.
 */
export function transcript(session: PartySession, names: Names): string[] {
  const name = (uri: string) => names.get(uri) ?? uri
  const sent = session.sent.map((m) => parseMessage(m.xml)).flatMap((o) => (o.ok ? [o.message] : []))
  const received = session.received.map((r) => r.message)
  const ordered: ParsedMessage[] = []
  const [first, second] = session.origin === 'device' ? [received, sent] : [sent, received]
  for (let k = 0; k < Math.max(first.length, second.length); k++) {
    if (first[k]) ordered.push(first[k]!)
    if (second[k]) ordered.push(second[k]!)
  }
  const commands = new Map<string, ParsedCommand>()
  for (const m of ordered) for (const c of m.commands) commands.set(`${m.hdr.source}|${m.hdr.msgId}|${c.cmdId}`, c)
  return ordered.map((m) => {
    // A Status answers a command of the party it is sent to.
    const lookup: CommandLookup = (msgRef, cmdRef) => commands.get(`${m.hdr.target}|${msgRef ?? ''}|${cmdRef ?? ''}`)
    return describeLine(name(m.hdr.source), name(m.hdr.target), describeCommands(m, lookup))
  })
}

/** The Status codes the party sent for the device's Alerts carrying a Generic Alert of `type`. */
export function statusesForGenericAlert(session: PartySession, type: string): string[] {
  const codes: string[] = []
  for (const received of session.received) {
    for (const c of received.message.commands) {
      if (c.name !== 'Alert' || c.data !== '1226' || !c.items.some((i) => i.meta.type === type)) continue
      for (const sent of session.sent) {
        for (const out of sent.commands) {
          if (out.name === 'Status' && out.msgRef === received.msgId && out.cmdRef === c.cmdId) codes.push(out.data)
        }
      }
    }
  }
  return codes
}
