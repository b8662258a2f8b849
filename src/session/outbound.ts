import { CONTENT_TYPE } from '../codec/gwmo.ts'
import type { Command, Status, SyncHdr } from '../codec/syncml-model.ts'
import { encodeMessage, type MessageEncoding } from '../codec/syncml.ts'
import type { OutboundMessage } from '../transport/port.ts'
import type { Account } from '../tree/accounts.ts'
import type { SessionConstants } from './constants.ts'
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
}

export interface Composed {
  message: OutboundMessage
  /** `<MsgID>:<CmdID>` → persisted Generic Alert id, for each Generic Alert in the message. */
  alertRefs: [string, string][]
  /** Not even dropping Results made it fit the party's MaxMsgSize. */
  oversize: boolean
}

/**
 * One message of ours (OMA DM Protocol 1.2, 8.1): SyncHdr with VerDTD, VerProto, SessionID, MsgID, Target (the
 * party), Source (the device, with LocName when it authenticates), Cred (md5/basic), our MaxMsgSize; the body
 * numbered; Final. With HMAC the mac of the encoded bytes travels as the `x-syncml-hmac` property.
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
  const fitted = fitToSize(input.entries, input.partyMaxMsgSize, encode)
  const message: OutboundMessage = {
    to: input.party,
    payload: fitted.payload,
    contentType: input.encoding === 'wbxml' ? CONTENT_TYPE.WBXML : CONTENT_TYPE.XML,
  }
  const address = input.account?.addresses.find((a) => MQTT_URL.test(a.addr))?.addr
  if (address !== undefined) {
    message.address = address
    message.account = input.account!.node
  }
  if (auth?.scheme === 'hmac') message.properties = auth.sign(fitted.payload)
  return { message, alertRefs: fitted.refs, oversize: fitted.oversize }
}
