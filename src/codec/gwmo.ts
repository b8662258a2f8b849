/**
 * Every OMA DM and GwMO code, URN and namespace the agent uses, in one place, and the GwMO 1.0 payloads: the
 * Device Detection Alert the gateway sends, and the Generic Alerts the device sends (Bootstrapped DMS List,
 * Associated Gateway, Location Update).
 *
 * The GwMO values come from the GwMO change requests (OMA-DM-GwMO CRs, Change 2 schemas and examples) and could
 * not be checked against the published GwMO 1.0 TS; keeping them here alone makes a correction a one-line change.
 */
import type { Decoded } from './errors.ts'
import { decoded } from './errors.ts'
import type { Alert, Item, ItemData } from './syncml-model.ts'
import {
  dataText,
  elementsNamed,
  findElement,
  leafMarkup,
  parseFragment,
  PAYLOAD_LIMITS,
  payloadFailure,
  SERVER_LIST_LIMITS,
  simpleValue,
} from './gwmo-fragment.ts'

/** OMA DM Protocol 1.2, 5.1 (SyncHdr): the values a DM 1.2 message carries. */
export const VER_DTD = '1.2'
export const VER_PROTO = 'DM/1.2'
export const SYNCML_NAMESPACE = 'SYNCML:SYNCML1.2'
export const METINF_NAMESPACE = 'syncml:metinf'

/** Content types of the DM 1.2 bindings (OMA DM Protocol 1.2; DM Notification 1.2). */
export const CONTENT_TYPE = {
  XML: 'application/vnd.syncml.dm+xml',
  WBXML: 'application/vnd.syncml.dm+wbxml',
  NOTIFICATION: 'application/vnd.syncml.notification',
} as const

/** Alert codes: DM RepPro 1.2, alert codes (1200–1226), and the GwMO Device Detection Alert (seed, 8.6.1.2). */
export const ALERT = {
  SERVER_INITIATED_MGMT: '1200',
  CLIENT_INITIATED_MGMT: '1201',
  NEXT_MESSAGE: '1222',
  SESSION_ABORT: '1223',
  GENERIC_ALERT: '1226',
  /** GwMO seed, 8.6.1.2 step 1; DM 1.2.1 reserves 1227–1299, so plain DM 1.2 peers do not know it. */
  DEVICE_DETECTION: '1230',
} as const

/** Generic Alert types of GwMO 1.0 (seed Change 2 examples; binding.md 4.6 for the Location Update). */
export const GWMO_ALERT_TYPE = {
  BOOTSTRAPPED_DMS_LIST: 'urn:oma:gwmo:1.0:BootstrappedDMSList',
  ASSOCIATED_GATEWAY: 'urn:oma:gwmo:1.0:AssociatedGateway',
  LOCATION_UPDATE: 'urn:oma:gwmo:1.0:LocationUpdate',
} as const

/** `Meta/Format` of every GwMO Generic Alert payload (seed Change 2 examples). */
export const GWMO_PAYLOAD_FORMAT = 'text/plain'

/** Authentication types in `Cred`/`Chal` `Meta/Type` (OMA DM Security 1.2; DM RepPro 1.2). */
export const AUTH_TYPE = {
  BASIC: 'syncml:auth-basic',
  MD5: 'syncml:auth-md5',
  HMAC: 'syncml:auth-MAC',
} as const

// ---------------------------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------------------------
// Device Detection Alert (seed 8.6.1.2 step 1; Appendix Z schema: GwAddr xs:string, Share xs:boolean)

export interface DeviceDetection {
  gwAddress: string
  share: boolean
}

/** The seed's examples use `GwAddress`; its schema names the element `GwAddr`. Both are accepted. */
const GW_ADDRESS_NAMES = ['GwAddress', 'GwAddr'] as const

/** xs:boolean lexical forms (`true`, `false`, `1`, `0`), in any case since the seed writes `True`/`False`. */
function parseBoolean(text: string): boolean | undefined {
  const lower = text.trim().toLowerCase()
  if (lower === 'true' || lower === '1') return true
  if (lower === 'false' || lower === '0') return false
  return undefined
}

/**
 * Reads the gateway address and sharing permission of a Device Detection Alert (`1230`), from `Item/Data`
 * (escaped text, CDATA or child elements) or from character data directly inside `Alert`, where the seed's
 * examples put it. A missing `Share` reads as false: without the gateway's permission its address is not shared.
 */
export function parseDeviceDetection(alert: Alert): Decoded<DeviceDetection> {
  if (alert.data !== ALERT.DEVICE_DETECTION) {
    return payloadFailure(`alert ${alert.data} is not a Device Detection Alert (${ALERT.DEVICE_DETECTION})`)
  }
  const candidates = [...alert.items.map((i) => (i.data === undefined ? undefined : dataText(i.data))), alert.inline]
  const raw = candidates.find((c) => c !== undefined && c.trim() !== '')
  if (raw === undefined) return payloadFailure('Device Detection Alert carries no payload (Item/Data or inline)')
  const parsed = parseFragment(raw, PAYLOAD_LIMITS)
  if (!parsed.ok) return parsed
  const addressElement = findElement(parsed.value, GW_ADDRESS_NAMES)
  if (addressElement === undefined) return payloadFailure('Device Detection Alert payload has no GwAddress or GwAddr')
  const gwAddress = simpleValue(addressElement)
  if (gwAddress === undefined || gwAddress === '') {
    return payloadFailure(`${addressElement.name} of the Device Detection Alert is empty or not text`)
  }
  const shareElement = findElement(parsed.value, ['Share'])
  if (shareElement === undefined) return decoded({ gwAddress, share: false })
  const shareText = simpleValue(shareElement)
  const share = shareText === undefined ? undefined : parseBoolean(shareText)
  if (share === undefined) {
    return payloadFailure(`Share "${shareText ?? '(elements)'}" is not an xs:boolean (true, false, 1, 0)`)
  }
  return decoded({ gwAddress, share })
}

/** The Device Detection payload, `<GwAddress>…</GwAddress><Share>true|false</Share>` (seed Change 2). */
export function buildDeviceDetection(detection: DeviceDetection): string {
  return leafMarkup('GwAddress', detection.gwAddress) + leafMarkup('Share', String(detection.share))
}

/**
 * A whole Device Detection Alert as a gateway sends it: payload in `Item/Data` by default, or as CDATA directly
 * inside `Alert` (`inline`), as the seed's example does.
 */
export function buildDeviceDetectionAlert(options: DeviceDetection & { cmdId: string; inline?: boolean }): Alert {
  const payload = buildDeviceDetection(options)
  const alert: Alert = { kind: 'Alert', cmdId: options.cmdId, data: ALERT.DEVICE_DETECTION, items: [] }
  if (options.inline) alert.inline = payload
  else alert.items.push({ data: payload })
  return alert
}

// ---------------------------------------------------------------------------------------------------------------
// Generic Alert (OMA DM Protocol 1.2, 8.7 / RepPro 1.2 Generic Alert: Item with Meta Type and Format, and Data)

export interface GenericAlertItem {
  type: string
  format: string
  data: ItemData
  source?: string
  target?: string
  mark?: string
}

export interface GenericAlertOptions {
  cmdId: string
  type: string
  /** `text/plain` unless told, the format of every GwMO payload. */
  format?: string
  data: ItemData
  source?: string
  target?: string
  mark?: string
  correlator?: string
}

export function buildGenericAlert(options: GenericAlertOptions): Alert {
  const item: Item = { meta: { type: options.type, format: options.format ?? GWMO_PAYLOAD_FORMAT }, data: options.data }
  if (options.mark !== undefined) item.meta!.mark = options.mark
  if (options.source !== undefined) item.source = { locUri: options.source }
  if (options.target !== undefined) item.target = { locUri: options.target }
  const alert: Alert = { kind: 'Alert', cmdId: options.cmdId, data: ALERT.GENERIC_ALERT, items: [item] }
  if (options.correlator !== undefined) alert.correlator = options.correlator
  return alert
}

/**
 * The items of a Generic Alert (`1226`). Each needs Meta Type and Format and Data (DM Protocol 1.2, Generic
 * Alert); any Type is accepted, trimmed, as the seed's example spreads it over several lines.
 */
export function parseGenericAlert(alert: Alert): Decoded<{ items: GenericAlertItem[] }> {
  if (alert.data !== ALERT.GENERIC_ALERT) {
    return payloadFailure(`alert ${alert.data} is not a Generic Alert (${ALERT.GENERIC_ALERT})`)
  }
  if (alert.items.length === 0) return payloadFailure('Generic Alert has no Item', 'Alert/Item')
  const items: GenericAlertItem[] = []
  for (const [k, item] of alert.items.entries()) {
    const at = `Alert/Item[${k + 1}]`
    const type = item.meta?.type?.trim()
    if (type === undefined || type === '') return payloadFailure('Generic Alert item has no Meta/Type', `${at}/Meta/Type`)
    const format = item.meta?.format?.trim()
    if (format === undefined || format === '') {
      return payloadFailure('Generic Alert item has no Meta/Format', `${at}/Meta/Format`)
    }
    if (item.data === undefined) return payloadFailure('Generic Alert item has no Data', `${at}/Data`)
    const out: GenericAlertItem = { type, format, data: item.data }
    if (item.source !== undefined) out.source = item.source.locUri
    if (item.target !== undefined) out.target = item.target.locUri
    if (item.meta?.mark !== undefined) out.mark = item.meta.mark
    items.push(out)
  }
  return decoded({ items })
}

// ---------------------------------------------------------------------------------------------------------------
// Bootstrapped DMS List (seed 8.6.1.2 step 2; Appendix X schema: ServerList/ServerInfo/ID)

export function buildServerList(serverIds: readonly string[]): string {
  const infos = serverIds.map((id) => `<ServerInfo>${leafMarkup('ID', id)}</ServerInfo>`).join('')
  return `<ServerList>${infos}</ServerList>`
}

export function parseServerList(text: string): Decoded<string[]> {
  const parsed = parseFragment(text, SERVER_LIST_LIMITS)
  if (!parsed.ok) return parsed
  const list = findElement(parsed.value, ['ServerList'])
  if (list === undefined) return payloadFailure('payload has no ServerList')
  const ids: string[] = []
  for (const [k, info] of elementsNamed(list, 'ServerInfo').entries()) {
    const id = elementsNamed(info, 'ID')[0]
    const value = id === undefined ? undefined : simpleValue(id)
    if (value === undefined || value === '') {
      return payloadFailure(`ServerInfo ${k + 1} has no ID text`, `ServerList/ServerInfo[${k + 1}]/ID`)
    }
    ids.push(value)
  }
  return decoded(ids)
}

// ---------------------------------------------------------------------------------------------------------------
// Associated Gateway (seed 8.6.1.3 step 3; Appendix Y schema: GwAddress xs:string)

export function buildGwAddress(address: string): string {
  return leafMarkup('GwAddress', address)
}

export function parseGwAddress(text: string): Decoded<string> {
  const parsed = parseFragment(text, PAYLOAD_LIMITS)
  if (!parsed.ok) return parsed
  const element = findElement(parsed.value, GW_ADDRESS_NAMES)
  if (element === undefined) return payloadFailure('payload has no GwAddress')
  const value = simpleValue(element)
  if (value === undefined || value === '') return payloadFailure('GwAddress is empty or not text')
  return decoded(value)
}

// ---------------------------------------------------------------------------------------------------------------
// Location Update (binding.md 4.6): the device's addresses, and its gateway's when that gateway allows sharing

export interface LocationUpdate {
  devAddresses: string[]
  gwAddress?: string
}

export function buildLocationUpdate(update: LocationUpdate): string {
  const addresses = update.devAddresses.map((a) => leafMarkup('DevAddress', a)).join('')
  const gateway = update.gwAddress === undefined ? '' : leafMarkup('GwAddress', update.gwAddress)
  return `<LocationUpdate>${addresses}${gateway}</LocationUpdate>`
}

export function parseLocationUpdate(text: string): Decoded<LocationUpdate> {
  const parsed = parseFragment(text, SERVER_LIST_LIMITS)
  if (!parsed.ok) return parsed
  const root = findElement(parsed.value, ['LocationUpdate'])
  if (root === undefined) return payloadFailure('payload has no LocationUpdate')
  const update: LocationUpdate = { devAddresses: [] }
  for (const [k, element] of elementsNamed(root, 'DevAddress').entries()) {
    const value = simpleValue(element)
    if (value === undefined || value === '') {
      return payloadFailure(`DevAddress ${k + 1} is empty or not text`, `LocationUpdate/DevAddress[${k + 1}]`)
    }
    update.devAddresses.push(value)
  }
  const gateway = elementsNamed(root, 'GwAddress')[0]
  if (gateway !== undefined) {
    const value = simpleValue(gateway)
    if (value === undefined || value === '') return payloadFailure('GwAddress is empty or not text', 'LocationUpdate/GwAddress')
    update.gwAddress = value
  }
  return decoded(update)
}
