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
  | { ok: false; reason: 'missing-sec' | 'unknown-sec' | 'secret-not-configured' | 'missing-mac' | 'bad-mac' }

const SEC_METHODS: readonly BootstrapSecMethod[] = ['NETWORKID', 'USERPIN', 'USERPIN_NETWORKID']
const MAC_HEX = /^[0-9a-fA-F]{40}$/

/** Lower-case hex of HMAC-SHA1(key, payload), two digits per byte. */
export function bootstrapMac(key: string, payload: Uint8Array): string {
  return createHmac('sha1', key).update(payload).digest('hex')
}

/**
 * The key of a SEC method, or undefined when its secret is not configured (an empty secret counts as none: a
 * MAC under an empty key proves nothing). USERPIN_NETWORKID uses "PIN:secret" (5.1.7.2).
 */
function keyFor(method: BootstrapSecMethod, secrets: BootstrapSecrets): string | undefined {
  const { userPin, networkId } = secrets
  switch (method) {
    case 'NETWORKID':
      return networkId ? networkId : undefined
    case 'USERPIN':
      return userPin ? userPin : undefined
    case 'USERPIN_NETWORKID':
      return userPin && networkId ? `${userPin}:${networkId}` : undefined
  }
}

/**
 * Checks a bootstrap message's SEC and MAC (MQTT 5 user properties on `/bootstrap`). SEC is matched without
 * regard to case and MAC hex in either case; surrounding whitespace is ignored in both. The first failing step
 * gives the reason: no SEC, a SEC that is not a DM-profile method, a method whose secret is not configured,
 * no MAC, or a MAC that is not 40 hex digits or does not match.
 */
export function verifyBootstrapMac(
  payload: Uint8Array,
  sec: string | undefined,
  macHex: string | undefined,
  secrets: BootstrapSecrets,
): BootstrapMacCheck {
  const secName = sec?.trim().toUpperCase()
  if (!secName) return { ok: false, reason: 'missing-sec' }
  const method = SEC_METHODS.find((m) => m === secName)
  if (method === undefined) return { ok: false, reason: 'unknown-sec' }
  const key = keyFor(method, secrets)
  if (key === undefined) return { ok: false, reason: 'secret-not-configured' }
  const mac = macHex?.trim()
  if (!mac) return { ok: false, reason: 'missing-mac' }
  if (!MAC_HEX.test(mac)) return { ok: false, reason: 'bad-mac' }
  if (!constantTimeEqual(mac.toLowerCase(), bootstrapMac(key, payload))) return { ok: false, reason: 'bad-mac' }
  return { ok: true, method }
}
