/**
 * The peers' own XML layer, kept apart from the agent's codec so that a peer checks the agent instead of
 * agreeing with it: text escaping and CDATA for building, and a tolerant reader on top of txml, which neither
 * decodes entities nor marks CDATA sections, so both are handled here.
 */
import { parse, type TNode } from 'txml'

/** A read element: name without namespace prefix, attributes, and children with entities already decoded. */
export interface Node {
  name: string
  attrs: Record<string, string>
  children: (Node | string)[]
}

export function escapeText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

export function escapeAttr(text: string): string {
  return escapeText(text).replace(/"/g, '&quot;').replace(/'/g, '&apos;')
}

/** A CDATA section; `]]>` inside is split across two sections, the one way XML allows it. */
export function cdata(text: string): string {
  return `<![CDATA[${text.split(']]>').join(']]]]><![CDATA[>')}]]>`
}

/** `<name attrs>inner</name>`, where `inner` is markup already built (children or escaped text). */
export function el(name: string, inner: string, attrs?: Record<string, string>): string {
  const attrText = attrs ? Object.entries(attrs).map(([k, v]) => ` ${k}="${escapeAttr(v)}"`).join('') : ''
  return `<${name}${attrText}>${inner}</${name}>`
}

/** `<name>escaped text</name>`; undefined gives nothing, so optional elements drop out of templates. */
export function textEl(name: string, text: string | undefined, attrs?: Record<string, string>): string {
  return text === undefined ? '' : el(name, escapeText(text), attrs)
}

const NAMED_ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" }

/** Decodes the five predefined entities and numeric references; an unknown entity is left as written. */
export function decodeEntities(text: string): string {
  if (!text.includes('&')) return text
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (whole, ref: string) => {
    if (ref[0] === '#') {
      const code = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10)
      return Number.isFinite(code) && code <= 0x10ffff ? String.fromCodePoint(code) : whole
    }
    return NAMED_ENTITIES[ref] ?? whole
  })
}

/**
 * Rewrites every CDATA section as escaped text before txml sees it, so that afterwards all character data
 * decodes the same way and `&lt;` written inside a CDATA section stays literal.
 */
function flattenCdata(xml: string): string {
  return xml.replace(/<!\[CDATA\[([\s\S]*?)\]\]>/g, (_, inner: string) => escapeText(inner))
}

function localName(tagName: string): string {
  const colon = tagName.indexOf(':')
  return colon < 0 ? tagName : tagName.slice(colon + 1)
}

function toNode(t: TNode): Node {
  const attrs: Record<string, string> = {}
  for (const [k, v] of Object.entries(t.attributes)) attrs[k] = v === null ? '' : decodeEntities(v)
  return {
    name: localName(t.tagName),
    attrs,
    children: t.children.map((c) => (typeof c === 'string' ? decodeEntities(c) : toNode(c))),
  }
}

/** The document's root element, or undefined when the text holds none. */
export function readXml(xml: string): Node | undefined {
  let top: (TNode | string)[]
  try {
    top = parse(flattenCdata(xml), { keepWhitespace: true })
  } catch {
    return undefined
  }
  const root = top.find((c): c is TNode => typeof c !== 'string' && !c.tagName.startsWith('?') && !c.tagName.startsWith('!'))
  return root ? toNode(root) : undefined
}

export function isNode(child: Node | string): child is Node {
  return typeof child !== 'string'
}

export function child(node: Node | undefined, name: string): Node | undefined {
  return node?.children.find((c): c is Node => isNode(c) && c.name === name)
}

export function childrenNamed(node: Node | undefined, name: string): Node[] {
  return node ? node.children.filter((c): c is Node => isNode(c) && c.name === name) : []
}

/** Character data directly inside the node (child elements skipped), untrimmed. */
export function ownText(node: Node): string {
  return node.children.filter((c): c is string => typeof c === 'string').join('')
}

/** Trimmed own text of a named child, as fields like `CmdID` or `Meta/Type` are read. */
export function childText(node: Node | undefined, name: string): string | undefined {
  const c = child(node, name)
  return c ? ownText(c).trim() : undefined
}

/** Writes a node back as XML, for data that arrived as nested elements rather than text. */
export function serialize(node: Node | string): string {
  if (typeof node === 'string') return escapeText(node)
  return el(node.name, node.children.map(serialize).join(''), Object.keys(node.attrs).length ? node.attrs : undefined)
}
