/**
 * What a scripted DM party (server or gateway) records of each session, for tests to assert on.
 */
import type { OutCommand, ParsedCommand, ParsedItem, ParsedMessage } from './syncml.ts'

export interface ReceivedMessage {
  msgId: string
  message: ParsedMessage
  /** The payload as text (XML) or, for WBXML, as the bytes received. */
  payload: string | Uint8Array
  userProperties: Record<string, string>
}

export interface SentMessage {
  msgId: string
  xml: string
  commands: OutCommand[]
}

/** A Status the device gave, matched to the command it answers when that command was ours. */
export interface DeviceStatus {
  msgRef: string
  cmdRef: string
  cmd: string
  code: string
  command?: OutCommand
  /** The URI of our command's first item (`TargetRef` when the device gave none). */
  target?: string
}

export interface DeviceResults {
  msgRef: string
  cmdRef: string
  items: ParsedItem[]
  command?: OutCommand
}

export interface GenericAlert {
  sessionId: string
  type: string
  format: string
  mark?: string
  data: string
  source?: string
  target?: string
  correlator?: string
}

export interface PartySession {
  sessionId: string
  /** `device`: the device opened it (Package 1); `push`: we pushed the first message (binding.md §3). */
  origin: 'device' | 'push'
  /** The Alert code of the device's Package 1 (`1200`, `1201`), when it sent one. */
  initiation?: string
  received: ReceivedMessage[]
  sent: SentMessage[]
  /** Statuses for our commands (SyncHdr statuses are in `hdrStatuses`). */
  statuses: DeviceStatus[]
  /** Codes the device gave for our SyncHdr, in order (212 / 200 / 401 / 407). */
  hdrStatuses: string[]
  results: DeviceResults[]
  genericAlerts: GenericAlert[]
  /** Every command the device sent in this session, Statuses included, in order. */
  commands: ParsedCommand[]
  /** `./DevInfo/*` values from the device's Package 1 Replace. */
  devInfo: Record<string, string>
  deviceAuthenticated: boolean
  deviceAuthFailures: number
  /** The device accepted our credentials (212 or 200 on our SyncHdr). */
  partyAccepted: boolean
  /** Number of command batches sent so far. */
  turn: number
  closed: boolean
  aborted: boolean
  /** Messages delivered again with a MsgID already answered. */
  duplicates: number
}

export function newSessionRecord(sessionId: string, origin: 'device' | 'push'): PartySession {
  return {
    sessionId,
    origin,
    received: [],
    sent: [],
    statuses: [],
    hdrStatuses: [],
    results: [],
    genericAlerts: [],
    commands: [],
    devInfo: {},
    deviceAuthenticated: false,
    deviceAuthFailures: 0,
    partyAccepted: false,
    turn: 0,
    closed: false,
    aborted: false,
    duplicates: 0,
  }
}

/**
 * The device's last code for one of our commands, found by the command object we sent (a refused message is
 * answered 401 and sent again, binding.md §6).
 */
export function statusOf(session: PartySession, command: OutCommand): string | undefined {
  return session.statuses.filter((s) => s.command === command).at(-1)?.code
}

/** The status of one of our commands, found by its target URI (for `get('./DevInfo/Mod')` and the like). */
export function statusFor(session: PartySession, uri: string): string | undefined {
  // The last one: a message the device refused is answered 401/407 and sent again (binding.md §6).
  return session.statuses.filter((s) => s.target === uri).at(-1)?.code
}

/** The data the device returned for a Get of `uri`. */
export function resultFor(session: PartySession, uri: string): string | undefined {
  for (const r of session.results) {
    for (const item of r.items) if (item.source === uri) return item.data
  }
  return undefined
}
