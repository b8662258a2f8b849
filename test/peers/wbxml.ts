/**
 * WBXML for the peers: the message a peer builds as XML text is re-read and handed to the project's WBXML
 * codec, the one agent module a peer uses (the WBXML token tables are data, not behaviour under test; the
 * tests also cross-check with libwbxml's `xml2wbxml`/`wbxml2xml`).
 */
import type { XmlChild, XmlElement } from '../../src/codec/element.ts'
import { decodeWbxml, encodeWbxml } from '../../src/codec/wbxml.ts'
import { parseRoot, type ParseOutcome } from './syncml.ts'
import { isNode, readXml, serialize, type Node } from './xml.ts'

/** WBXML carries text, not markup: anything nested inside `Data` goes as its XML text. */
function toElement(node: Node): XmlElement {
  const attrs: Record<string, string> = {}
  if (node.attrs.xmlns !== undefined) attrs.xmlns = node.attrs.xmlns
  const children: XmlChild[] =
    node.name === 'Data'
      ? [{ text: node.children.map((c) => (isNode(c) ? serialize(c) : c)).join(''), cdata: false }]
      : node.children.map((c) => (isNode(c) ? toElement(c) : { text: c, cdata: false })).filter((c) => !('text' in c) || c.text.trim() !== '')
  return { name: node.name, attrs, children }
}

export function xmlToWbxml(xml: string): Uint8Array {
  const root = readXml(xml)
  if (!root) throw new Error('not an XML document')
  return encodeWbxml(toElement(root))
}

const utf8 = new TextDecoder()

function toNode(element: XmlElement): Node {
  const children = element.children.map((c): Node | string => {
    if ('name' in c) return toNode(c)
    if ('text' in c) return c.text
    return utf8.decode(c.opaque)
  })
  return { name: element.name, attrs: { ...element.attrs }, children }
}

export function parseWbxmlMessage(bytes: Uint8Array): ParseOutcome {
  const decoded = decodeWbxml(bytes)
  if (!decoded.ok) return { ok: false, error: `${decoded.error.code}: ${decoded.error.message}` }
  if (decoded.value.name !== 'SyncML') return { ok: false, error: 'no SyncML root element' }
  return parseRoot(toNode(decoded.value))
}

/** WBXML starts with its version byte (0x01–0x03); XML text starts with `<`, a BOM, or white space. */
export function looksLikeWbxml(payload: Uint8Array, contentType?: string): boolean {
  if (contentType) return contentType.toLowerCase().includes('wbxml')
  return payload.length > 0 && payload[0]! <= 0x03
}
