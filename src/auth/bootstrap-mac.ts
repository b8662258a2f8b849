import { createHmac } from 'node:crypto'
import { constantTimeEqual } from './compare.ts'

/**
 * Server-initiated bootstrap security, DM profile (OMA DM Security 1.2, 5.1.7.2; binding.md section 6):
 * MAC = hex(HMAC-SHA1(key, payload bytes as sent)), the key chosen by the SEC method.
 */

export type BootstrapSecMethod = 'NETWORKID' | 'USERPIN' | 'USERPIN_NETWORKID'

export interface BootstrapSecrets {
  userPin?: string
  networkId?: string
}

export type BootstrapMacCheck =
  | { ok: true; method: BootstrapSecMethod }
  | { ok: false; reason: 'missing-sec' | 'unknown-sec' | 'secret-not-configured' | 'short-pin' | 'missing-mac' | 'bad-mac' }

const MAC_HEX = /^[0-9a-fA-F]{40}$/

/**
 * The shortest PIN that `USERPIN` alone is taken with (binding.md §6): a 4-digit PIN is 10,000 keys, a brute
 * force of minutes. With `USERPIN_NETWORKID` the network secret makes up the key, whatever the PIN's length.
 */
export const MIN_USERPIN_LENGTH = 6

/** Whether a PIN is configured and is too short for `USERPIN` alone (its length in characters, not bytes). */
export function userPinTooShort({ userPin }: BootstrapSecrets): boolean {
  return !!userPin && [...userPin].length < MIN_USERPIN_LENGTH
}

/** The SEC method a `SEC` property names (any case, blanks around it ignored), or undefined. */
export function secMethodOf(sec: string | undefined): BootstrapSecMethod | undefined {
  const name = sec?.trim().toUpperCase()
  return name === 'NETWORKID' || name === 'USERPIN' || name === 'USERPIN_NETWORKID' ? name : undefined
}

/** Lower-case hex of HMAC-SHA1(key, payload), two digits per byte. */
export function bootstrapMac(key: string, payload: Uint8Array): string {
  return createHmac('sha1', key).update(payload).digest('hex')
}

/**
 * The key of each SEC method, undefined when its secret is not configured (an empty secret counts as none: a
 * MAC under an empty key proves nothing). USERPIN_NETWORKID uses "PIN:secret" (5.1.7.2).
 */
function keysOf({ userPin, networkId }: BootstrapSecrets): Record<BootstrapSecMethod, string | undefined> {
  return {
    NETWORKID: networkId || undefined,
    USERPIN: userPin || undefined,
    USERPIN_NETWORKID: userPin && networkId ? `${userPin}:${networkId}` : undefined,
  }
}

/**
 * Checks a bootstrap message's SEC and MAC (MQTT 5 user properties on `/bootstrap`). SEC is matched without
 * regard to case and MAC hex in either case; surrounding whitespace is ignored in both. The first failing step
 * gives the reason: no SEC, a SEC that is not a DM-profile method, a method whose secret is not configured,
 * `USERPIN` with a PIN shorter than `MIN_USERPIN_LENGTH`, no MAC, or a MAC that is not 40 hex digits or does
 * not match.
 */
export function verifyBootstrapMac(
  payload: Uint8Array,
  sec: string | undefined,
  macHex: string | undefined,
  secrets: BootstrapSecrets,
): BootstrapMacCheck {
  if (!sec?.trim()) return { ok: false, reason: 'missing-sec' }
  const method = secMethodOf(sec)
  if (method === undefined) return { ok: false, reason: 'unknown-sec' }
  const key = keysOf(secrets)[method]
  if (key === undefined) return { ok: false, reason: 'secret-not-configured' }
  if (method === 'USERPIN' && userPinTooShort(secrets)) return { ok: false, reason: 'short-pin' }
  const mac = macHex?.trim()
  if (!mac) return { ok: false, reason: 'missing-mac' }
  if (!MAC_HEX.test(mac)) return { ok: false, reason: 'bad-mac' }
  if (!constantTimeEqual(mac.toLowerCase(), bootstrapMac(key, payload))) return { ok: false, reason: 'bad-mac' }
  return { ok: true, method }
}
