/**
 * How a scripted DM party judges the device's credentials and what it answers on its Status for the SyncHdr
 * (OMA DM Protocol 1.2, authentication; binding.md §6: over MQTT every message): 212 + Chal when right (the nonce
 * serves the device's next message, and its next session), 401 + Chal when wrong and 407 + Chal when missing
 * (the nonce serves at once, for the resend). With syncml:auth-MAC the answer is 200 with a nonce.
 */
import { AUTH_TYPE_URI, basicCred, freshNonce, hmacMac, md5Digest, nonceBytes, parseHmacHeader, type AuthType } from './auth.ts'
import type { OutMeta } from './commands.ts'
import type { ParsedMessage } from './syncml.ts'

export interface DeviceCredentials {
  authType: AuthType
  clientName: string
  clientPassword: string
}

export interface AuthVerdict {
  ok: boolean
  code: '200' | '212' | '401' | '407'
  chal?: OutMeta
  /** The nonce the device must use from now on within this session (after 401/407, and per message for MAC). */
  sessionNonce?: string
  /** The nonce the device must use from the next session on. */
  storedNonce?: string
}

function challenge(authType: AuthType, nonce: string | undefined): OutMeta {
  return { type: AUTH_TYPE_URI[authType], format: 'b64', nextNonce: nonce }
}

/** A challenge that fails the message whatever it carries (the 407 mode that exercises the device's resend). */
export function forcedChallenge(authType: AuthType): AuthVerdict {
  const nonce = authType === 'basic' ? undefined : freshNonce()
  return { ok: false, code: '407', chal: challenge(authType, nonce), sessionNonce: nonce, storedNonce: nonce }
}

/**
 * Judges one message. `expectedNonce` is the b64 nonce the device should have used; `payload` the bytes as
 * received (the MAC covers them); `hmacProperty` the `x-syncml-hmac` user property, if any.
 */
export function judgeDevice(
  creds: DeviceCredentials,
  message: ParsedMessage,
  expectedNonce: string,
  payload: Uint8Array,
  hmacProperty: string | undefined,
): AuthVerdict {
  const { authType, clientName, clientPassword } = creds
  const failWith = (code: '401' | '407'): AuthVerdict => {
    const nonce = authType === 'basic' ? undefined : freshNonce()
    return { ok: false, code, chal: challenge(authType, nonce), sessionNonce: nonce, storedNonce: nonce }
  }
  if (authType === 'hmac') {
    if (!hmacProperty) return failWith('407')
    const params = parseHmacHeader(hmacProperty)
    const mac = hmacMac(clientName, clientPassword, nonceBytes(expectedNonce), payload)
    if (params.username !== clientName || params.mac !== mac || params.algorithm.toUpperCase() !== 'MD5') return failWith('401')
    const next = freshNonce()
    return { ok: true, code: '200', chal: challenge(authType, next), sessionNonce: next, storedNonce: next }
  }
  const cred = message.hdr.cred
  if (!cred) return failWith('407')
  const expected =
    authType === 'basic' ? basicCred(clientName, clientPassword) : md5Digest(clientName, clientPassword, nonceBytes(expectedNonce))
  const typeMatches = cred.type === undefined || cred.type === AUTH_TYPE_URI[authType]
  if (!typeMatches || cred.data !== expected) return failWith('401')
  if (authType === 'basic') return { ok: true, code: '212' }
  // binding.md §6: over MQTT the nonce of our answer serves the device's next message, and its next session.
  const next = freshNonce()
  return { ok: true, code: '212', chal: challenge(authType, next), sessionNonce: next, storedNonce: next }
}

