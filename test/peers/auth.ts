/**
 * The credentials arithmetic of OMA DM 1.2, written out from the specifications with `node:crypto` so that a
 * peer computes it independently of the agent.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto'

export const AUTH_MD5 = 'syncml:auth-md5'
export const AUTH_BASIC = 'syncml:auth-basic'
export const AUTH_MAC = 'syncml:auth-MAC'

export type AuthType = 'md5' | 'basic' | 'hmac'

export const AUTH_TYPE_URI: Record<AuthType, string> = { md5: AUTH_MD5, basic: AUTH_BASIC, hmac: AUTH_MAC }

function md5(data: Uint8Array | string): Buffer {
  return createHash('md5').update(data).digest()
}

function b64md5(data: Uint8Array | string): string {
  return md5(data).toString('base64')
}

/** A NextNonce is b64 on the wire (OMA DM RepPro 1.2, 4.1.1.2) and hashed as the octets it decodes to. */
export function nonceBytes(b64Nonce: string): Buffer {
  return Buffer.from(b64Nonce, 'base64')
}

/** A fresh nonce, b64 as it goes into `Chal/Meta/NextNonce`. */
export function freshNonce(): string {
  return randomBytes(16).toString('base64')
}

/**
 * syncml:auth-md5 (OMA DM Protocol 1.2 and DM Security 1.2, authentication):
 * B64(H(B64(H(user:password)):nonce)), H = MD5. Vector: Bruce2 / OhBehave / "Nonce" → `Zz6EivR3yeaaENcRN6lpAQ==`.
 */
export function md5Digest(user: string, password: string, nonce: Uint8Array): string {
  const inner = Buffer.from(`${b64md5(`${user}:${password}`)}:`, 'utf8')
  return b64md5(Buffer.concat([inner, nonce]))
}

/** syncml:auth-basic: B64(user:password). */
export function basicCred(user: string, password: string): string {
  return Buffer.from(`${user}:${password}`, 'utf8').toString('base64')
}

/** syncml:auth-MAC (OMA DM Security 1.2, HMAC integrity): B64(H(B64(H(user:password)):nonce:B64(H(body)))). */
export function hmacMac(user: string, password: string, nonce: Uint8Array, body: Uint8Array): string {
  const prefix = Buffer.from(`${b64md5(`${user}:${password}`)}:`, 'utf8')
  const suffix = Buffer.from(`:${b64md5(body)}`, 'utf8')
  return b64md5(Buffer.concat([prefix, nonce, suffix]))
}

/** The `x-syncml-hmac` value (DM Security 1.2, 5.1.2.2), carried as an MQTT 5 user property (binding.md §2). */
export function hmacHeader(user: string, password: string, nonce: Uint8Array, body: Uint8Array): string {
  return `algorithm=MD5, username="${user}", mac=${hmacMac(user, password, nonce, body)}`
}

export interface HmacParams {
  algorithm: string
  username?: string
  mac?: string
}

/** Reads `algorithm=MD5, username="x", mac=…`; the algorithm defaults to MD5 when left out. */
export function parseHmacHeader(value: string): HmacParams {
  const params: HmacParams = { algorithm: 'MD5' }
  for (const m of value.matchAll(/\s*([A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,]*)\s*(?:,|$)/g)) {
    const key = m[1]!.toLowerCase()
    const raw = m[2]!.trim()
    const text = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw
    if (key === 'algorithm') params.algorithm = text
    else if (key === 'username') params.username = text
    else if (key === 'mac') params.mac = text
  }
  return params
}

/**
 * DM Notification digest (OMA DM Notification 1.2, 6.2): H(B64(H(server-id:password)):nonce:B64(H(trigger))),
 * the 16 raw bytes that open Package 0; `trigger` is everything after them.
 */
export function notificationDigest(serverId: string, password: string, nonce: Uint8Array, trigger: Uint8Array): Buffer {
  const prefix = Buffer.from(`${b64md5(`${serverId}:${password}`)}:`, 'utf8')
  const suffix = Buffer.from(`:${b64md5(trigger)}`, 'utf8')
  return md5(Buffer.concat([prefix, nonce, suffix]))
}

export type SecMethod = 'NETWORKID' | 'USERPIN' | 'USERPIN_NETWORKID'

export interface BootstrapSecrets {
  networkId?: string
  userPin?: string
}

/** The HMAC key for a SEC method (DM Security 1.2, 5.1.7.2; USERPIN_NETWORKID is `PIN:secret`). */
export function bootstrapKey(sec: SecMethod, secrets: BootstrapSecrets): string {
  const need = (value: string | undefined, name: string) => {
    if (value === undefined) throw new Error(`SEC ${sec} needs ${name}`)
    return value
  }
  switch (sec) {
    case 'NETWORKID':
      return need(secrets.networkId, 'networkId')
    case 'USERPIN':
      return need(secrets.userPin, 'userPin')
    case 'USERPIN_NETWORKID':
      return `${need(secrets.userPin, 'userPin')}:${need(secrets.networkId, 'networkId')}`
  }
}

/** Bootstrap MAC: hex HMAC-SHA1(key, payload bytes as sent). */
export function bootstrapMac(key: string, payload: Uint8Array): string {
  return createHmac('sha1', key).update(payload).digest('hex')
}
