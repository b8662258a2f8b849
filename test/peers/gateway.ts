/**
 * The DM Gateway peer: a DM party whose account the device holds (ServerID = the gateway's LocURI). It sends
 * the Device Detection Alert (binding.md §4.1) in a session it pushes, collects the device's Bootstrapped DMS
 * List (§4.2), and forwards DM Notifications in transparent mode (§4.4).
 */
import { alert, type OutCommand } from './commands.ts'
import { CONTENT_TYPE, publish } from './mqtt.ts'
import type { PeerBaseOptions } from './party-options.ts'
import { Party } from './party.ts'
import type { PartySession } from './session-record.ts'
import { childrenNamed, childText, escapeText, readXml } from './xml.ts'

/** GwMO values from the change requests (seeds 000 and 001). */
export const DEVICE_DETECTION_ALERT = '1230'
export const GENERIC_ALERT = '1226'
export const BOOTSTRAPPED_DMS_LIST = 'urn:oma:gwmo:1.0:BootstrappedDMSList'
export const ASSOCIATED_GATEWAY = 'urn:oma:gwmo:1.0:AssociatedGateway'
export const LOCATION_UPDATE = 'urn:oma:gwmo:1.0:LocationUpdate'

export interface GatewayOptions extends PeerBaseOptions {
  /** The gateway's LocURI, e.g. `http://gw.local`. */
  gatewayId: string
  /** Send no `Cred` at all, to see the device refuse the detection. */
  noAuth?: boolean
}

/** Where the detection payload goes: the three places the seed's examples and schema allow. */
export type DetectionForm = 'item-escaped' | 'item-cdata' | 'inline-cdata'

export interface DetectionRequest {
  gwAddress: string
  share: boolean
  form?: DetectionForm
  /** The seed's example says `GwAddress`, its schema `GwAddr`. */
  addrElement?: 'GwAddress' | 'GwAddr'
  /** The text of `<Share>` as sent (`True`, `0`…); `true`/`false` from `share` by default. */
  shareText?: string
}

export function detectionPayload(d: DetectionRequest): string {
  const addr = d.addrElement ?? 'GwAddress'
  return `<${addr}>${escapeText(d.gwAddress)}</${addr}><Share>${escapeText(d.shareText ?? String(d.share))}</Share>`
}

/** Alert 1230 with the payload in the requested form (GwMO seed 000, Appendix Z and its examples). */
export function detectionAlert(d: DetectionRequest): OutCommand {
  const payload = detectionPayload(d)
  switch (d.form ?? 'item-escaped') {
    case 'item-escaped':
      return alert(DEVICE_DETECTION_ALERT, [{ data: payload }])
    case 'item-cdata':
      return alert(DEVICE_DETECTION_ALERT, [{ data: { cdata: payload } }])
    case 'inline-cdata':
      return alert(DEVICE_DETECTION_ALERT, [], { cdata: payload })
  }
}

/** The server ids of a `<ServerList><ServerInfo><ID>…` payload, trimmed, in order. */
export function parseServerList(data: string): string[] {
  const root = readXml(data)
  if (!root || root.name !== 'ServerList') return []
  return childrenNamed(root, 'ServerInfo')
    .map((info) => childText(info, 'ID'))
    .filter((id): id is string => id !== undefined)
}

export class Gateway extends Party {
  constructor(readonly gatewayOptions: GatewayOptions) {
    super({ ...gatewayOptions, partyId: gatewayOptions.gatewayId, sendCred: !gatewayOptions.noAuth })
  }

  get gatewayId(): string {
    return this.gatewayOptions.gatewayId
  }

  /** Pushes a session holding the Device Detection Alert; does not wait for the answer. */
  sendDetection(d: DetectionRequest): Promise<PartySession> {
    return this.pushSession([detectionAlert(d)])
  }

  /** Sends a detection and resolves with the server ids of the Bootstrapped DMS List the device answers with. */
  async detect(d: DetectionRequest & { timeoutMs?: number }): Promise<string[]> {
    const seen = this.dmsLists().length
    await this.sendDetection(d)
    const data = await this.waitFor(() => this.dmsLists()[seen], d.timeoutMs ?? 10_000, 'Bootstrapped DMS List')
    return parseServerList(data)
  }

  /** Every Bootstrapped DMS List payload received so far, in order. */
  dmsLists(): string[] {
    return this.sessions.flatMap((s) => s.genericAlerts).filter((a) => a.type === BOOTSTRAPPED_DMS_LIST).map((a) => a.data)
  }

  /** Transparent mode: republishes a DM Notification unchanged on the device's `notification` topic. */
  async forwardNotification(bytes: Uint8Array): Promise<void> {
    const topic = this.topic(this.gatewayOptions.deviceId, 'notification')
    this.trace('out', topic, `forwarded DM Notification (${bytes.length} bytes)`)
    await publish(this.mqtt(), topic, bytes, { contentType: CONTENT_TYPE.notification })
  }
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const gateway = new Gateway(options)
  await gateway.start()
  return gateway
}
