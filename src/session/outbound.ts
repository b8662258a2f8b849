import { CONTENT_TYPE } from '../codec/gwmo.ts'
import type { Command, Status, SyncHdr } from '../codec/syncml-model.ts'
import { encodeMessage, type MessageEncoding } from '../codec/syncml.ts'
import type { OutboundMessage } from './port.ts'
import type { Account } from '../tree/accounts.ts'
import { messageLimit, type SessionConstants } from './constants.ts'
import type { OutboundAuth } from './credentials.ts'
import { assignCmdIds, type ReplyEntry } from './reply.ts'
import { fitToSize } from './size.ts'

const MQTT_URL = /^mqtts?:\/\//i

export interface ComposeInput {
  constants: SessionConstants
  deviceId: string
  party: string
  /** The party's account: its first `mqtt://` AppAddr is where the message goes (binding.md §2), on a connection of its own. */
  account: Account | undefined
  sessionId: string
  msgId: number
  encoding: MessageEncoding
  /** Our credentials for this message, if it carries any. */
  auth: OutboundAuth | undefined
  /** The Status for the party's SyncHdr; it comes first in the body (SyncML RepPro 1.2, Status). */
  headerStatus: Status | undefined
  entries: ReplyEntry[]
  partyMaxMsgSize: number | undefined
  /** The RespURI the party named in this session (binding.md §10), for a party reached over HTTP. */
  respUri?: string | undefined
}

export interface Composed {
  message: OutboundMessage
  /** `<MsgID>:<CmdID>` → persisted Generic Alert id, for each Generic Alert in the message. */
  alertRefs: [string, string][]
  /** Not even without the entries that may give way does it fit (`fitToSize`). */
  oversize: boolean
}

/**
 * One message of ours (OMA DM Protocol 1.2, 8.1): SyncHdr with VerDTD, VerProto, SessionID, MsgID, Target (the
 * party), Source (the device, with LocName when it authenticates), Cred (md5/basic), our MaxMsgSize; the body
 * numbered; Final. With HMAC the mac of the encoded bytes travels as the `x-syncml-hmac` property. It is fitted
 * to the party's MaxMsgSize and the broker's packet size, the smaller (`messageLimit`, `fitToSize`).
 */
export function composeMessage(input: ComposeInput): Composed {
  const { constants, deviceId, auth, headerStatus, msgId } = input
  const hdr: SyncHdr = {
    verDTD: constants.verDTD,
    verProto: constants.verProto,
    sessionId: input.sessionId,
    msgId: String(msgId),
    target: { locUri: input.party },
    source: { locUri: deviceId, locName: auth?.username },
    meta: { maxMsgSize: constants.maxMsgSize },
  }
  if (auth && auth.scheme !== 'hmac') hdr.cred = auth.cred
  const encode = (entries: ReplyEntry[]) => {
    const refs: [string, string][] = []
    const all: ReplyEntry[] = headerStatus ? [{ kind: 'status', status: headerStatus, write: false }, ...entries] : entries
    const body: Command[] = assignCmdIds(all, (cmdId, alertId) => refs.push([`${msgId}:${cmdId}`, alertId]))
    return { payload: encodeMessage({ hdr, body, final: true }, input.encoding), refs }
  }
  const fitted = fitToSize(input.entries, messageLimit(constants, input.partyMaxMsgSize), encode)
  const message: OutboundMessage = {
    to: input.party,
    payload: fitted.payload,
    contentType: input.encoding === 'wbxml' ? CONTENT_TYPE.WBXML : CONTENT_TYPE.XML,
  }
  const account = input.account
  if (account?.httpUrl !== undefined) {
    // binding.md §10: POSTed to the account's URL, or to the RespURI the party named.
    message.http = { url: account.httpUrl, sessionId: input.sessionId, ...(input.respUri !== undefined && { respUri: input.respUri }) }
    message.account = account.node
  } else {
    const address = account?.addresses.find((a) => MQTT_URL.test(a.addr))?.addr
    if (address !== undefined) {
      message.address = address
      message.account = account!.node
    }
  }
  if (auth?.scheme === 'hmac') message.properties = auth.sign(fitted.payload)
  return { message, alertRefs: fitted.refs, oversize: fitted.oversize }
}

/** A generous allowance for the parts of a message that `roughBytes` does not see (its root, SyncHdr, Final). */
const FRAME_BOUND = 1024
/** What one field may cost beyond its value: its element's tags, a MetInf namespace. */
const FIELD_BOUND = 100
/** Bytes one UTF-16 unit of text may take in a message: 3 in UTF-8, 6 as an XML entity (`&quot;`). */
const TEXT_FACTOR = 6

/**
 * Whether the message `input` makes surely fits `limit` bytes, told without encoding it from an upper bound of its
 * size: every field's value at its largest, every field and object with room for its tags. False says only that
 * the bound is over the limit (then encode and see): a typical message is far below it.
 */
export function surelyFits(input: ComposeInput, limit: number): boolean {
  let budget = limit - FRAME_BOUND
  const visit = (value: unknown): void => {
    if (budget < 0 || value === undefined || value === null || typeof value === 'function') return
    budget -= FIELD_BOUND
    if (typeof value === 'string') budget -= TEXT_FACTOR * value.length
    else if (value instanceof Uint8Array) budget -= 2 * value.length
    else if (Array.isArray(value)) for (const item of value) visit(item)
    else if (typeof value === 'object') for (const inner of Object.values(value)) visit(inner)
  }
  for (const part of [input.deviceId, input.party, input.sessionId, input.auth, input.headerStatus, input.entries]) visit(part)
  return budget >= 0
}

