import { basicCredential, parseBasicCredential } from '../auth/basic.ts'
import { constantTimeEqual } from '../auth/compare.ts'
import { computeHmacMac, formatHmacHeader, verifyHmac } from '../auth/hmac.ts'
import { md5Digest, verifyMd5 } from '../auth/md5.ts'
import { encodeNonce } from '../auth/nonce.ts'
import { AUTH_TYPE } from '../codec/gwmo.ts'
import type { Chal, Cred } from '../codec/syncml-model.ts'
import { AUTH_FAILURE, type AuthFailure } from '../errors.ts'
import type { AuthEntry } from '../tree/accounts.ts'

/**
 * The device's credentials toward a party (its account's CLCRED) and the check of the party's credentials
 * (its SRVCRED), as OMA DM Security 1.2 and dm-reference.md §2.6 define them. Pure: secrets and nonces are
 * passed in; reading and storing them is the session's business.
 */

/** The three DM-level schemes (AAuthType ↔ Meta/Type of Cred and Chal). */
export type AuthScheme = 'md5' | 'basic' | 'hmac'

/** Each scheme's AAuthType (upper case, as compared) and Meta/Type. */
const SCHEMES: ReadonlyArray<[scheme: AuthScheme, aauthType: string, metaType: string]> = [
  ['md5', 'DIGEST', AUTH_TYPE.MD5],
  ['basic', 'BASIC', AUTH_TYPE.BASIC],
  ['hmac', 'HMAC', AUTH_TYPE.HMAC],
]

export function schemeOfAAuthType(type: string): AuthScheme | undefined {
  const wanted = type.trim().toUpperCase()
  return SCHEMES.find(([, aauthType]) => aauthType === wanted)?.[0]
}

export function schemeOfMetaType(type: string | undefined): AuthScheme | undefined {
  // A Cred without Meta/Type is syncml:auth-basic (OMA DM RepPro 1.2, Cred: basic is the default type).
  const wanted = (type ?? AUTH_TYPE.BASIC).trim().toLowerCase()
  return SCHEMES.find(([, , metaType]) => metaType.toLowerCase() === wanted)?.[0]
}

function metaTypeOf(scheme: AuthScheme): string {
  return SCHEMES.find(([s]) => s === scheme)![2]
}

/** Whether a scheme uses nonces (basic does not: its Chal carries none). */
export function usesNonce(scheme: AuthScheme): boolean {
  return scheme !== 'basic'
}

/**
 * Which of an account's entries of one level to use: the one of the type asked for (a Chal's, or the type of
 * the credentials the party sent), else
 * the one AAuthPref names (dm-reference.md §2.6: it saves a round trip), else the first DM-level one.
 */
export function chooseEntry(entries: readonly AuthEntry[], options: { type?: string | undefined; pref?: string | undefined }): AuthEntry | undefined {
  const usable = entries.filter((e) => schemeOfAAuthType(e.type) !== undefined)
  const ofScheme = (scheme: AuthScheme | undefined) => (scheme ? usable.find((e) => schemeOfAAuthType(e.type) === scheme) : undefined)
  // AAuthPref names an AAuthType, as the entries do.
  const { type, pref } = options
  return ofScheme(type === undefined ? undefined : schemeOfMetaType(type)) ?? ofScheme(pref === undefined ? undefined : schemeOfAAuthType(pref)) ?? usable[0]
}

/** What goes with a message we send: a Cred in the SyncHdr (md5, basic), or an HMAC over the bytes. */
export type OutboundAuth =
  | { scheme: 'md5' | 'basic'; username: string; cred: Cred }
  | { scheme: 'hmac'; username: string; sign: (payload: Uint8Array) => Record<string, string> }

/** Our credentials for one message, from the CLCRED entry, its secret and the nonce the party gave us. */
export function outboundAuth(scheme: AuthScheme, username: string, secret: string, nonce: Uint8Array): OutboundAuth {
  if (scheme === 'hmac') {
    return {
      scheme,
      username,
      sign: (payload) => ({
        [HMAC_PROPERTY]: formatHmacHeader({ username, mac: computeHmacMac(username, secret, nonce, payload) }),
      }),
    }
  }
  const data = scheme === 'md5' ? md5Digest(username, secret, nonce) : basicCredential(username, secret)
  return { scheme, username, cred: { meta: { type: metaTypeOf(scheme), format: 'b64' }, data } }
}

/** The MQTT 5 user property that carries the `x-syncml-hmac` transport header (binding.md §2). */
export const HMAC_PROPERTY = 'x-syncml-hmac'

/** A challenge for the party (OMA DM Protocol 1.2, 9.3: a 401/407 MUST carry one; 212 MAY). */
export function challenge(scheme: AuthScheme, nonce: Uint8Array | undefined): Chal {
  const meta: Chal['meta'] = { type: metaTypeOf(scheme), format: 'b64' }
  if (nonce !== undefined && usesNonce(scheme)) meta.nextNonce = encodeNonce(nonce)
  return { meta }
}

export type PartyCheck =
  | { ok: true; scheme: AuthScheme }
  | { ok: false; scheme: AuthScheme; failure: AuthFailure }

/**
 * Checks a party's credentials for one message against its SRVCRED and one nonce: `Cred` in the SyncHdr for
 * md5 and basic, the `x-syncml-hmac` property over the payload bytes for HMAC (DM Security 1.2, 5.1.3).
 */
export function checkParty(input: {
  scheme: AuthScheme
  username: string
  secret: string
  nonce: Uint8Array
  cred?: Cred | undefined
  hmacHeader?: string | undefined
  payload: Uint8Array
}): PartyCheck {
  const { scheme, username, secret, nonce, cred } = input
  const fail = (failure: AuthFailure): PartyCheck => ({ ok: false, scheme, failure })
  const verdict = (good: boolean): PartyCheck => (good ? { ok: true, scheme } : fail(AUTH_FAILURE.MISMATCH))
  if (scheme === 'hmac') {
    if (input.hmacHeader === undefined) return fail(AUTH_FAILURE.MISSING)
    return verdict(verifyHmac(input.hmacHeader, secret, nonce, input.payload, username))
  }
  if (cred === undefined) return fail(AUTH_FAILURE.MISSING)
  if (schemeOfMetaType(cred.meta?.type) !== scheme) return fail(AUTH_FAILURE.OTHER_SCHEME)
  if (scheme === 'md5') return verdict(verifyMd5(cred.data, username, secret, nonce))
  const basic = parseBasicCredential(cred.data)
  // Both halves are compared whatever the first gives, so the time taken does not tell which one was wrong.
  const nameOk = constantTimeEqual(basic?.username ?? '', username)
  const passwordOk = constantTimeEqual(basic?.password ?? '', secret)
  return verdict(basic !== undefined && nameOk && passwordOk)
}

/** How strong a scheme is: a Chal never moves the device to a weaker one than its account's (binding.md §6). */
export function strength(scheme: AuthScheme): number {
  return STRENGTH[scheme]
}

/** basic hands the password itself over; md5 proves it over a nonce; HMAC also covers the body. */
const STRENGTH: Readonly<Record<AuthScheme, number>> = { basic: 0, md5: 1, hmac: 2 }
