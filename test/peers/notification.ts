/**
 * DM Notification (Package 0) bytes, OMA DM Notification 1.2, 6.2: a 16-byte digest, then the trigger: a
 * 64-bit big-endian header (version 63..54, ui-mode 53..52, initiator 51, future use 50..24 = 0, session id
 * 23..8, server-id length 7..0), the server identifier, and optional vendor data.
 */
import { notificationDigest } from './auth.ts'

export type UiMode = 'not-specified' | 'background' | 'informative' | 'user-interaction'

const UI_MODE_BITS: Record<UiMode, bigint> = {
  'not-specified': 0n,
  background: 1n,
  informative: 2n,
  'user-interaction': 3n,
}

export interface NotificationFields {
  serverId: string
  sessionId: number
  /** 10-bit version; DM Notification 1.2 requires 11 ("1.1"). */
  version?: number
  uiMode?: UiMode
  /** `server` (bit set) unless told; `client` marks a user-initiated trigger. */
  initiator?: 'server' | 'client'
  vendor?: Uint8Array
}

export function buildTrigger(fields: NotificationFields): Buffer {
  const serverIdBytes = Buffer.from(fields.serverId, 'utf8')
  if (serverIdBytes.length > 255) throw new Error('server identifier longer than 255 bytes')
  if (!Number.isInteger(fields.sessionId) || fields.sessionId < 0 || fields.sessionId > 0xffff) {
    throw new Error(`session id ${fields.sessionId} outside 0..FFFF`)
  }
  const version = BigInt((fields.version ?? 11) & 0x3ff)
  const header =
    (version << 54n) |
    (UI_MODE_BITS[fields.uiMode ?? 'not-specified'] << 52n) |
    ((fields.initiator ?? 'server') === 'server' ? 1n << 51n : 0n) |
    (BigInt(fields.sessionId) << 8n) |
    BigInt(serverIdBytes.length)
  const head = Buffer.alloc(8)
  head.writeBigUInt64BE(header)
  return Buffer.concat([head, serverIdBytes, fields.vendor ?? Buffer.alloc(0)])
}

/** The whole Package 0: digest over the trigger with the server's SRVCRED password and the given nonce. */
export function buildNotification(fields: NotificationFields, password: string, nonce: Uint8Array): Buffer {
  const trigger = buildTrigger(fields)
  return Buffer.concat([notificationDigest(fields.serverId, password, nonce, trigger), trigger])
}
