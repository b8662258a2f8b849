import { createHash } from 'node:crypto'
import { concatBytes, encodeBase64 } from './bytes.ts'
import { base64Equal } from './compare.ts'

/** H of the OMA DM texts: MD5 (OMA DM Security 1.2, 5.1.2). */
export function md5(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('md5').update(bytes).digest())
}

/** B64(H(name:secret)), the first step shared by syncml:auth-md5, syncml:auth-MAC and the Package 0 digest. */
export function credentialHash(name: string, secret: string): string {
  return encodeBase64(md5(concatBytes(name, ':', secret)))
}

/**
 * The digest all three schemes share, raw: H(B64(H(name:secret)):nonce) for syncml:auth-md5, and with a body
 * H(B64(H(name:secret)):nonce:B64(H(body))) for syncml:auth-MAC (5.1.3) and the Package 0 digest (OMA DM
 * Notification 1.2, 6.2.2.2). The nonce is raw octets.
 */
export function dmDigest(name: string, secret: string, nonce: Uint8Array, body?: Uint8Array): Uint8Array {
  const head = concatBytes(credentialHash(name, secret), ':', nonce)
  return md5(body === undefined ? head : concatBytes(head, ':', encodeBase64(md5(body))))
}

/**
 * syncml:auth-md5 Cred Data (OMA DM Security 1.2, 5.1.2; DM Protocol 1.2, 9.3):
 * B64(H(B64(H(username:password)):nonce)). The nonce is raw octets: a NextNonce received in a Chal is
 * base64 on the wire and must be decoded first (`decodeNonce`).
 */
export function md5Digest(username: string, password: string, nonce: Uint8Array): string {
  return encodeBase64(dmDigest(username, password, nonce))
}

/**
 * Checks a syncml:auth-md5 Cred Data. The received value is compared as decoded bytes, so a peer that leaves
 * off the base64 padding or wraps the line is still understood; anything that is not base64 fails.
 */
export function verifyMd5(credData: string, username: string, password: string, nonce: Uint8Array): boolean {
  return base64Equal(credData, dmDigest(username, password, nonce))
}
