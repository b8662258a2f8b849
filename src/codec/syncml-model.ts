/**
 * The typed form of one SyncML DM 1.2 message (OMA-TS-DM_RepPro-V1_2). Both encodings (XML and WBXML) decode
 * into it and encode from it. Values stay as the wire has them (strings), except `ItemData`, which is bytes
 * where the item's format is binary (`b64`, `bin`) or the WBXML carried opaque data.
 */

export interface SyncMLMessage {
  hdr: SyncHdr
  body: Command[]
  /** `<Final/>` closes the package (OMA DM Protocol 1.2, 5.1.4). */
  final: boolean
}

export interface SyncHdr {
  verDTD: string
  verProto: string
  sessionId: string
  msgId: string
  target: Party
  source: Party
  respUri?: string
  noResp?: boolean
  cred?: Cred
  meta?: Meta
}

/** A `Target`/`Source`: LocURI, and the LocName that carries the user id for MD5 and HMAC. */
export interface Party {
  locUri: string
  locName?: string
}

/** MetInf (`syncml:metinf`) values the DM protocol uses. */
export interface Meta {
  format?: string
  type?: string
  mark?: string
  size?: number
  /** Base64 as on the wire (OMA DM RepPro 1.2, 4.1.1.2: NextNonce is b64 for md5 and MAC). */
  nextNonce?: string
  maxMsgSize?: number
  maxObjSize?: number
  version?: string
}

export interface Cred {
  meta?: Meta
  /** As on the wire: base64 of the digest for `syncml:auth-md5`, of `user:password` for `syncml:auth-basic`. */
  data: string
}

export interface Chal {
  meta: Meta
}

export type ItemData = string | Uint8Array

export interface Item {
  target?: Party
  source?: Party
  meta?: Meta
  data?: ItemData
  moreData?: boolean
}

interface CommandBase {
  cmdId: string
  noResp?: boolean
}

export interface Alert extends CommandBase {
  kind: 'Alert'
  /** The alert code (`1201`, `1226`, `1230`…). */
  data: string
  correlator?: string
  cred?: Cred
  items: Item[]
  /**
   * Character data placed directly inside `Alert` (text or CDATA beside `Data`), where the GwMO seed's Device
   * Detection Alert example puts its payload.
   */
  inline?: string
}

export interface Status extends CommandBase {
  kind: 'Status'
  msgRef: string
  cmdRef: string
  cmd: string
  targetRefs: string[]
  sourceRefs: string[]
  cred?: Cred
  chal?: Chal
  /** The status code as text (`200`, `212`, `401`…). */
  data: string
  items: Item[]
}

export interface Results extends CommandBase {
  kind: 'Results'
  msgRef?: string
  cmdRef: string
  meta?: Meta
  targetRefs: string[]
  sourceRefs: string[]
  items: Item[]
}

export type ItemCommandKind = 'Get' | 'Add' | 'Replace' | 'Delete' | 'Exec' | 'Copy'

export interface ItemCommand extends CommandBase {
  kind: ItemCommandKind
  cred?: Cred
  meta?: Meta
  items: Item[]
  /** Exec only. */
  correlator?: string
}

export interface ContainerCommand extends CommandBase {
  kind: 'Atomic' | 'Sequence'
  meta?: Meta
  commands: Command[]
}

/**
 * A SyncBody element the DM profile does not define for a device (Sync, Map, Put, Search…), answered 406; or a
 * known command too malformed to execute (`malformed` says why), answered 400. Either way the rest of the
 * message is still answered.
 */
export interface UnknownCommand extends CommandBase {
  kind: 'Unknown'
  name: string
  malformed?: string
}

export type Command = Alert | Status | Results | ItemCommand | ContainerCommand | UnknownCommand
