import { createHash } from 'node:crypto'
import { concatBytes, decodeBase64, encodeBase64 } from './bytes.ts'
import { constantTimeEqual } from './compare.ts'

/** H of the OMA DM texts: MD5 (OMA DM Security 1.2, 5.1.2). */
export function md5(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('md5').update(bytes).digest())
}

/** B64(H(name:secret)), the first step shared by syncml:auth-md5, syncml:auth-MAC and the Package 0 digest. */
export function credentialHash(name: string, secret: string): string {
  return encodeBase64(md5(concatBytes(name, ':', secret)))
}

/**
 * syncml:auth-md5 Cred Data (OMA DM Security 1.2, 5.1.2; DM Protocol 1.2, 9.3):
 * B64(H(B64(H(username:password)):nonce)). The nonce is raw octets: a NextNonce received in a Chal is
 * base64 on the wire and must be decoded first (`decodeNonce`).
 */
export function md5Digest(username: string, password: string, nonce: Uint8Array): string {
  return encodeBase64(md5(concatBytes(credentialHash(username, password), ':', nonce)))
}

/**
 * Checks a syncml:auth-md5 Cred Data. The received value is compared as decoded bytes, so a peer that leaves
 * off the base64 padding or wraps the line is still understood; anything that is not base64 fails.
 */
export function verifyMd5(credData: string, username: string, password: string, nonce: Uint8Array): boolean {
  const received = decodeBase64(credData)
  if (received === undefined) return false
  const expected = md5(concatBytes(credentialHash(username, password), ':', nonce))
  return constantTimeEqual(received, expected)
}
