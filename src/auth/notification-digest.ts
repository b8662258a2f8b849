import type { Notification } from '../codec/notification.ts'
import { concatBytes } from './bytes.ts'
import { constantTimeEqual } from './compare.ts'
import { dmDigest } from './md5.ts'

/**
 * The Package 0 digest (OMA DM Notification 1.2, 6.2.2.2; binding.md section 6):
 * H(B64(H(server-identifier:password)):nonce:B64(H(trigger))), H = MD5, with the server's credentials (SRVCRED)
 * and the trigger being every byte after the digest. Returned raw, as it sits in the notification.
 */
export function notificationDigest(
  serverId: string,
  password: string,
  nonce: Uint8Array,
  trigger: Uint8Array,
): Uint8Array {
  return dmDigest(serverId, password, nonce, trigger)
}

export type NotificationDigestCheck = { ok: true; nonce: 'stored' | 'default-bytes' | 'default-text' } | { ok: false }

export interface NotificationDigestOptions {
  /**
   * Also try the default nonce 0x00000000, which OMA DM Notification 1.2, 6.1 allows for a device whose nonce is
   * out of step. binding.md §6: only while the server is out of step, so a caller decides each time.
   */
  defaultNonce: boolean
}

/**
 * Checks a notification's digest with the stored server nonce, then, when asked, with the default nonce in both
 * forms the binding accepts: four zero bytes, and the ten ASCII characters `0x00000000` that libdmclient sends.
 * Each try really uses its nonce (libdmclient's retry writes the default into the wrong credential and so never
 * retries). The result says which nonce matched. Nothing is changed: verifying spends no nonce.
 */
export function verifyNotificationDigest(
  n: Notification,
  password: string,
  storedNonce: Uint8Array | undefined,
  options: NotificationDigestOptions,
): NotificationDigestCheck {
  const matches = (nonce: Uint8Array) =>
    constantTimeEqual(n.digest, notificationDigest(n.serverId, password, nonce, n.trigger))
  if (storedNonce !== undefined && matches(storedNonce)) return { ok: true, nonce: 'stored' }
  if (!options.defaultNonce) return { ok: false }
  if (matches(new Uint8Array(4))) return { ok: true, nonce: 'default-bytes' }
  if (matches(concatBytes('0x00000000'))) return { ok: true, nonce: 'default-text' }
  return { ok: false }
}
