/**
 * SyncML DM 1.2 messages as bytes: the entry points the session and the transports use. XML and WBXML meet in
 * the neutral document form, which `syncml-read.ts` and `syncml-write.ts` map to and from the typed model.
 */
import type { DecodeLimits } from './element.ts'
import { resolveLimits } from './element.ts'
import type { Decoded } from './errors.ts'
import { failed } from './errors.ts'
import type { SyncMLMessage } from './syncml-model.ts'
import { decodeUtf8, encodeUtf8 } from './bytes.ts'
import { messageFromElement } from './syncml-read.ts'
import { messageToElement } from './syncml-write.ts'
import { decodeWbxml, encodeWbxml } from './wbxml.ts'
import { parseXml, serializeXml } from './xml.ts'

export { messageFromElement } from './syncml-read.ts'
export { messageToElement } from './syncml-write.ts'

export type MessageEncoding = 'xml' | 'wbxml'

/**
 * WBXML when the content type names it; without a content type, when the first byte is a WBXML version
 * (WBXML 1.2, 5.4: 0x01–0x03), which a UTF-8 XML document cannot start with.
 */
export function isWbxmlPayload(payload: Uint8Array, contentType?: string): boolean {
  if (contentType !== undefined && contentType !== '') return /wbxml/i.test(contentType)
  const first = payload[0]
  return first !== undefined && first >= 0x01 && first <= 0x03
}

/** Decodes one SyncML DM message from bytes. Never throws; bounded by `limits`. */
export function decodeMessage(
  payload: Uint8Array,
  contentType?: string,
  limits?: Partial<DecodeLimits>,
): Decoded<SyncMLMessage> {
  const bounds = resolveLimits(limits)
  if (payload.length > bounds.maxBytes) {
    return failed('TOO_LARGE', `${payload.length} bytes is over the ${bounds.maxBytes}-byte limit`, bounds.maxBytes)
  }
  if (isWbxmlPayload(payload, contentType)) {
    const document = decodeWbxml(payload, bounds)
    return document.ok ? messageFromElement(document.value) : document
  }
  // Invalid UTF-8 is refused, not replaced: a replaced byte could change a value the device acts on.
  const text = decodeUtf8(payload)
  if (!text.ok) return failed('XML_SYNTAX', 'the message is not valid UTF-8', text.at)
  const document = parseXml(text.text, bounds)
  return document.ok ? messageFromElement(document.value) : document
}

const XML_DECLARATION = true

/** Encodes one message: XML (UTF-8, with the XML declaration) or WBXML 1.2. */
export function encodeMessage(msg: SyncMLMessage, encoding: MessageEncoding): Uint8Array {
  const root = messageToElement(msg)
  if (encoding === 'wbxml') return encodeWbxml(root)
  return encodeUtf8(serializeXml(root, { declaration: XML_DECLARATION }))
}
