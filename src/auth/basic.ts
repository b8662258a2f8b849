import { decodeBase64, encodeBase64, utf8 } from './bytes.ts'

/** syncml:auth-basic Cred Data (OMA DM Security 1.2, 5.1.1): B64(username:password). */
export function basicCredential(username: string, password: string): string {
  return encodeBase64(utf8(`${username}:${password}`))
}

/**
 * Reads a syncml:auth-basic Cred Data. The user name ends at the first colon (the password may hold colons);
 * bad base64, bytes that are not UTF-8, or no colon at all give `undefined`.
 */
export function parseBasicCredential(data: string): { username: string; password: string } | undefined {
  const bytes = decodeBase64(data)
  if (bytes === undefined) return undefined
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes)
  } catch {
    return undefined
  }
  const colon = text.indexOf(':')
  if (colon < 0) return undefined
  return { username: text.slice(0, colon), password: text.slice(colon + 1) }
}
