/**
 * The neutral document form to XML 1.0 text: compact (no indentation, since whitespace inside `Data` is data),
 * escaped so that any conforming parser reads back the same characters.
 */
import type { XmlChild, XmlElement } from './element.ts'
import { isElement, isText } from './element.ts'
import { encodeBase64 } from './bytes.ts'

/** `\r` goes out as a reference so that a conforming parser at the other end keeps it (XML 1.0, 2.11). */
function escapeText(text: string): string {
  return text.replace(/[&<>\r]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&#13;'))
}

/** Tab, LF and CR go out as references, since attribute-value normalisation would turn them into spaces. */
function escapeAttr(text: string): string {
  return text.replace(/[&<"\t\n\r]/g, (c) =>
    c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '"' ? '&quot;' : `&#${c.charCodeAt(0)};`,
  )
}

/** CDATA cannot hold `]]>`: it is split across two sections, the one way XML allows it. */
function cdataSection(text: string): string {
  return `<![CDATA[${text.split(']]>').join(']]]]><![CDATA[>')}]]>`
}

function startTag(element: XmlElement, empty: boolean): string {
  let tag = `<${element.name}`
  for (const [name, value] of Object.entries(element.attrs)) tag += ` ${name}="${escapeAttr(value)}"`
  return tag + (empty ? '/>' : '>')
}

function childMarkup(child: XmlChild): string {
  if (isText(child)) return child.cdata ? cdataSection(child.text) : escapeText(child.text)
  // XML has no opaque data: WBXML opaque travels as base64 text.
  if (!isElement(child)) return encodeBase64(child.opaque)
  return ''
}

/**
 * Writes the element as compact XML (no indentation: whitespace inside `Data` is data). Iterative, like the
 * parser, so that any tree the parser accepts can be written back.
 */
export function serializeXml(root: XmlElement, options?: { declaration?: boolean }): string {
  const out: string[] = []
  if (options?.declaration) out.push('<?xml version="1.0" encoding="UTF-8"?>')
  const stack: { element: XmlElement; next: number }[] = []
  const open = (element: XmlElement): void => {
    const empty = element.children.length === 0
    out.push(startTag(element, empty))
    if (!empty) stack.push({ element, next: 0 })
  }
  open(root)
  while (stack.length > 0) {
    const frame = stack.at(-1)!
    if (frame.next >= frame.element.children.length) {
      out.push(`</${frame.element.name}>`)
      stack.pop()
      continue
    }
    const child = frame.element.children[frame.next++]!
    if (isElement(child)) open(child)
    else out.push(childMarkup(child))
  }
  return out.join('')
}

/** One child as markup: an element with its content, text escaped, CDATA as CDATA, opaque as base64. */
export function serializeChild(child: XmlChild): string {
  return isElement(child) ? serializeXml(child) : childMarkup(child)
}
