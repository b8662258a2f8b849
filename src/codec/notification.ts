import { decodeUtf8 } from './bytes.ts'
import { type Decoded, decoded, failed } from './errors.ts'

/**
 * DM Notification, Package 0 (OMA DM Notification 1.2, 6.2): a 16-byte MD5 digest, then the trigger, a 64-bit
 * big-endian header followed by the server identifier and optional vendor data:
 *
 *   bits 63..54 version | 53..52 ui-mode | 51 initiator | 50..24 future use | 23..8 session id | 7..0 id length
 */

/** 6.2.2.3: ui-mode 0 not specified, 1 background, 2 informative, 3 user interaction. */
export type NotificationUiMode = 0 | 1 | 2 | 3

export interface Notification {
  /** The 16 digest bytes as received (checked by `verifyNotificationDigest` in `src/auth`). */
  digest: Uint8Array
  /** DEC(version)/10 is the protocol version; 11 is DM 1.2's value, others are reported, not refused. */
  version: number
  uiMode: NotificationUiMode
  initiator: 'client' | 'server'
  /** 1..0xFFFF */
  sessionId: number
  /** The SyncHdr form: upper-case hex without leading zeros (6.2.2.10). */
  sessionIdHex: string
  serverId: string
  vendorData: Uint8Array
  /** Every byte after the digest: what the digest covers. */
  trigger: Uint8Array
}

export const NOTIFICATION_DIGEST_BYTES = 16
/** Digest plus the 64-bit trigger header: nothing shorter can be a notification. */
export const NOTIFICATION_MIN_BYTES = 24
/** OMA DM Notification 1.2, 6.2.2.1: DM 1.2 sends version '0000001011'. */
export const NOTIFICATION_VERSION_DM12 = 11
/**
 * Default bound on a whole notification. The layout itself stops near 280 bytes plus vendor data, and
 * notifications were designed to fit an SMS; anything far larger is not a trigger worth parsing.
 */
export const DEFAULT_MAX_NOTIFICATION_BYTES = 4096

const HEADER_OFFSET = NOTIFICATION_DIGEST_BYTES
const SESSION_ID_OFFSET = HEADER_OFFSET + 5 // bits 23..8 of the header are its bytes 5 and 6
const LENGTH_OFFSET = HEADER_OFFSET + 7
const SERVER_ID_OFFSET = NOTIFICATION_MIN_BYTES

// Server identifiers are compared with account ServerIDs and written to logs: control characters have no place.
const CONTROL_CHAR = /[\u0000-\u001f\u007f]/

function badLayout(message: string, at: number): Decoded<Notification> {
  return failed('NOTIFICATION_FORMAT', message, at)
}

/**
 * Reads a Package 0 trigger message. The future-use bits (which OMA says MUST be 0) are ignored, and any version
 * is accepted and reported, because servers in the field send other values than 11. Errors carry the byte offset
 * of the field at fault. Never throws.
 */
export function parseNotification(bytes: Uint8Array, options?: { maxBytes?: number }): Decoded<Notification> {
  const limit = options?.maxBytes
  const maxBytes = limit !== undefined && Number.isInteger(limit) && limit >= 0 ? limit : DEFAULT_MAX_NOTIFICATION_BYTES
  if (bytes.length > maxBytes) {
    return failed('TOO_LARGE', `notification of ${bytes.length} bytes is over the limit of ${maxBytes}`, maxBytes)
  }
  if (bytes.length < NOTIFICATION_MIN_BYTES) {
    return badLayout(
      `notification of ${bytes.length} bytes is shorter than the ${NOTIFICATION_MIN_BYTES}-byte digest and header`,
      bytes.length,
    )
  }
  const h0 = bytes[HEADER_OFFSET]!
  const h1 = bytes[HEADER_OFFSET + 1]!
  const version = (h0 << 2) | (h1 >> 6)
  const uiMode = ((h1 >> 4) & 0b11) as NotificationUiMode
  const initiator = (h1 >> 3) & 1 ? 'server' : 'client'
  // 6.2.2.10: the session id is in the range 1..FFFF
  const sessionId = (bytes[SESSION_ID_OFFSET]! << 8) | bytes[SESSION_ID_OFFSET + 1]!
  if (sessionId === 0) return badLayout('session id 0 is out of range 1..FFFF', SESSION_ID_OFFSET)
  const idLength = bytes[LENGTH_OFFSET]!
  if (idLength === 0) return badLayout('server identifier is empty', LENGTH_OFFSET)
  const idEnd = SERVER_ID_OFFSET + idLength
  if (idEnd > bytes.length) {
    return badLayout(
      `server identifier of ${idLength} bytes runs past the end of a ${bytes.length}-byte notification`,
      LENGTH_OFFSET,
    )
  }
  const utf8 = decodeUtf8(bytes.subarray(SERVER_ID_OFFSET, idEnd))
  if (!utf8.ok) return badLayout('server identifier is not valid UTF-8', SERVER_ID_OFFSET)
  const serverId = utf8.text
  if (CONTROL_CHAR.test(serverId)) return badLayout('server identifier holds a control character', SERVER_ID_OFFSET)
  // Copies, as plain Uint8Arrays: a Buffer's slice() is a view, and the result must not pin or share the packet.
  const copy = (start: number, end?: number) => new Uint8Array(bytes.subarray(start, end))
  return decoded({
    digest: copy(0, NOTIFICATION_DIGEST_BYTES),
    version,
    uiMode,
    initiator,
    sessionId,
    sessionIdHex: sessionId.toString(16).toUpperCase(),
    serverId,
    vendorData: copy(idEnd),
    trigger: copy(HEADER_OFFSET),
  })
}

export interface NotificationFields {
  /** Default 11 (DM 1.2). */
  version?: number
  /** Default 0, not specified. */
  uiMode?: NotificationUiMode
  /** Default 'server'. */
  initiator?: 'client' | 'server'
  sessionId: number
  serverId: string
  vendorData?: Uint8Array
}

/**
 * Assembles a Package 0 trigger message: the trigger first, then `digest(trigger)` in front of it (for peers and
 * tests). Values only need to fit their fields, so a peer can build the malformed cases (session id 0, empty
 * server id) that a device must refuse; a value that does not fit throws a RangeError.
 */
export function buildNotification(fields: NotificationFields, digest: (trigger: Uint8Array) => Uint8Array): Uint8Array {
  const version = fields.version ?? NOTIFICATION_VERSION_DM12
  const uiMode = fields.uiMode ?? 0
  const serverId = new TextEncoder().encode(fields.serverId)
  const vendorData = fields.vendorData ?? new Uint8Array(0)
  const fits = (value: number, bits: number) => Number.isInteger(value) && value >= 0 && value < 2 ** bits
  if (!fits(version, 10)) throw new RangeError(`version ${version} does not fit 10 bits`)
  if (!fits(uiMode, 2)) throw new RangeError(`ui-mode ${uiMode} does not fit 2 bits`)
  if (!fits(fields.sessionId, 16)) throw new RangeError(`session id ${fields.sessionId} does not fit 16 bits`)
  if (serverId.length > 0xff) throw new RangeError(`server identifier of ${serverId.length} bytes is over 255`)

  const trigger = new Uint8Array(8 + serverId.length + vendorData.length)
  trigger[0] = version >> 2
  trigger[1] = ((version & 0b11) << 6) | (uiMode << 4) | ((fields.initiator ?? 'server') === 'server' ? 1 << 3 : 0)
  trigger[5] = fields.sessionId >> 8
  trigger[6] = fields.sessionId & 0xff
  trigger[7] = serverId.length
  trigger.set(serverId, 8)
  trigger.set(vendorData, 8 + serverId.length)

  const digestBytes = digest(trigger)
  if (digestBytes.length !== NOTIFICATION_DIGEST_BYTES) {
    throw new RangeError(`digest of ${digestBytes.length} bytes, expected ${NOTIFICATION_DIGEST_BYTES}`)
  }
  const message = new Uint8Array(NOTIFICATION_DIGEST_BYTES + trigger.length)
  message.set(digestBytes, 0)
  message.set(trigger, NOTIFICATION_DIGEST_BYTES)
  return message
}
