/**
 * The state file agents before the store kept (`agent-state.dat`): one ASCII line
 * `GWMO-AGENT-STATE <version> <sha256 hex of the body>`, then the JSON body. Read once, to migrate a device to
 * the store (runtime/migrate.ts); nothing writes it any more.
 */
import { createHash } from 'node:crypto'

export const LEGACY_STATE_FILE_VERSION = 1
const MAGIC = 'GWMO-AGENT-STATE'
const DEVICE_KEY_BYTES = 32

type Json = string | number | boolean | null | Json[] | { [key: string]: Json }

export interface LegacyStateDocument {
  deviceKey: string
  nonceReservedUntil: string
  alertSeq: number
  pendingAlerts: Record<string, Array<{ id: string; type: string; text?: string; b64?: string; queuedAt: number }>>
  accounts: Record<string, Record<string, Json>>
  slots: Record<string, Json>
}

/** The document a state file holds, or the reason it is refused. */
export function parseLegacyStateFile(bytes: Uint8Array): LegacyStateDocument | string {
  const text = Buffer.from(bytes).toString('utf8')
  const newline = text.indexOf('\n')
  const header = (newline < 0 ? text : text.slice(0, newline)).split(' ')
  if (header.length !== 3 || header[0] !== MAGIC) return 'not an agent state file (bad header)'
  const version = Number(header[1])
  if (!Number.isInteger(version) || version < 1) return 'bad version in header'
  if (version > LEGACY_STATE_FILE_VERSION) return `version ${version} is newer than this agent reads (${LEGACY_STATE_FILE_VERSION})`
  const body = text.slice(newline + 1)
  if (createHash('sha256').update(body, 'utf8').digest('hex') !== header[2]) return 'checksum mismatch (corrupt or truncated file)'
  let raw: unknown
  try {
    raw = JSON.parse(body)
  } catch {
    return 'body is not JSON'
  }
  return checkDocument(raw) ?? (raw as LegacyStateDocument)
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The reason a parsed body is not a version-1 document, or undefined when it is one. */
function checkDocument(raw: unknown): string | undefined {
  if (!isRecord(raw)) return 'body is not an object'
  if (typeof raw.deviceKey !== 'string' || Buffer.from(raw.deviceKey, 'base64').length !== DEVICE_KEY_BYTES) {
    return 'deviceKey: not a 32-byte base64 key'
  }
  if (typeof raw.nonceReservedUntil !== 'string' || !/^\d{1,20}$/.test(raw.nonceReservedUntil)) {
    return 'nonceReservedUntil: not a counter'
  }
  if (!Number.isSafeInteger(raw.alertSeq) || (raw.alertSeq as number) < 0) return 'alertSeq: not a count'
  if (!isRecord(raw.pendingAlerts)) return 'pendingAlerts: not an object'
  for (const [serverId, queue] of Object.entries(raw.pendingAlerts)) {
    if (!Array.isArray(queue)) return `pendingAlerts.${serverId}: not a list`
    for (const alert of queue) {
      if (!isRecord(alert) || typeof alert.id !== 'string' || typeof alert.type !== 'string') {
        return `pendingAlerts.${serverId}: an alert without id or type`
      }
      if (typeof alert.text !== 'string' && typeof alert.b64 !== 'string') return `pendingAlerts.${serverId}: alert ${alert.id} has no data`
    }
  }
  if (!isRecord(raw.accounts) || !Object.values(raw.accounts).every(isRecord)) return 'accounts: not an object of objects'
  if (!isRecord(raw.slots)) return 'slots: not an object'
  if (Object.values(raw.accounts).some((flags) => Object.keys(flags as object).some((name) => name.includes('/')))) {
    return "accounts: a flag name with '/'"
  }
  return undefined
}

/** An `agent-state.dat` of `doc`, as agents before the store wrote it (for tests of the migration). */
export function encodeLegacyStateFile(doc: LegacyStateDocument): Uint8Array {
  const body = JSON.stringify(doc)
  const sum = createHash('sha256').update(body, 'utf8').digest('hex')
  return new Uint8Array(Buffer.from(`${MAGIC} ${LEGACY_STATE_FILE_VERSION} ${sum}\n${body}`, 'utf8'))
}
