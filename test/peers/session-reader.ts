/**
 * Reads what the device sent in one message into the session record: its Statuses and Results matched to our
 * commands, Generic Alerts, the session's initiation and DevInfo. The nonce policy stays with the party.
 */
import type { OutCommand, SentCommand } from './commands.ts'
import type { PartySession } from './session-record.ts'
import type { ParsedCommand, ParsedMessage } from './syncml.ts'

export interface SentLog {
  msgId: string
  sent: SentCommand[]
}

/** The device's Status for our SyncHdr in this message, if it gave one. */
export interface HeaderAnswer {
  code?: string
  nextNonce?: string
}

export function isHdrStatus(c: ParsedCommand): boolean {
  return c.name === 'Status' && (c.cmdRef === '0' || c.cmd === 'SyncHdr')
}

export function recordDeviceCommands(rec: PartySession, msg: ParsedMessage, sentLog: SentLog[]): HeaderAnswer {
  const answer: HeaderAnswer = {}
  for (const c of msg.commands) {
    if (isHdrStatus(c)) {
      answer.code = c.data ?? ''
      answer.nextNonce = c.chal?.nextNonce
      rec.hdrStatuses.push(answer.code)
      if (answer.code === '200' || answer.code === '212') rec.partyAccepted = true
    } else if (c.name === 'Status') {
      const sent = findSent(sentLog, c.msgRef, c.cmdRef)
      const target = c.targetRefs?.[0] ?? firstTarget(sent)
      rec.statuses.push({ msgRef: c.msgRef ?? '', cmdRef: c.cmdRef ?? '', cmd: c.cmd ?? '', code: c.data ?? '', command: sent, target })
    } else if (c.name === 'Results') {
      rec.results.push({ msgRef: c.msgRef ?? '', cmdRef: c.cmdRef ?? '', items: c.items, command: findSent(sentLog, c.msgRef, c.cmdRef) })
    } else if (c.name === 'Alert') {
      recordAlert(rec, c)
    } else if (c.name === 'Replace') {
      for (const item of c.items) {
        const uri = item.source ?? item.target
        if (uri?.startsWith('./DevInfo') && item.data !== undefined) rec.devInfo[uri] = item.data
      }
    }
  }
  return answer
}

function recordAlert(rec: PartySession, c: ParsedCommand): void {
  if (c.data === '1200' || c.data === '1201') rec.initiation ??= c.data
  else if (c.data === '1223') rec.aborted = true
  else if (c.data === '1226') {
    for (const item of c.items) {
      rec.genericAlerts.push({
        sessionId: rec.sessionId,
        type: item.meta.type ?? '',
        format: item.meta.format ?? '',
        mark: item.meta.mark,
        data: item.data ?? '',
        source: item.source,
        target: item.target,
        correlator: c.correlator,
      })
    }
  }
}

/** Our command a Status or Results refers to; without MsgRef, the last message we sent. */
function findSent(log: SentLog[], msgRef: string | undefined, cmdRef: string | undefined): OutCommand | undefined {
  const message = msgRef === undefined ? log[log.length - 1] : log.find((m) => m.msgId === msgRef)
  return message?.sent.find((s) => s.cmdId === cmdRef)?.command
}

function firstTarget(command: OutCommand | undefined): string | undefined {
  return command && 'items' in command ? command.items?.[0]?.target : undefined
}
