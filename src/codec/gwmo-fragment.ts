/**
 * Reading and writing the small XML fragments GwMO payloads are: sibling elements with text around them, carried
 * as the string data of a Generic Alert or Device Detection Alert item.
 */
import type { DecodeLimits, XmlElement } from './element.ts'
import { isElement, isText } from './element.ts'
import type { Decoded } from './errors.ts'
import { failed } from './errors.ts'
import type { ItemData } from './syncml-model.ts'
import { decodeUtf8 } from './bytes.ts'
import { parseXml, serializeXml } from './xml.ts'

/** GwMO payloads are a few short elements: tight bounds, well under the message's own. */
export const PAYLOAD_LIMITS: DecodeLimits = { maxBytes: 16 * 1024, maxDepth: 8, maxElements: 64 }
/** A server list grows with the device's accounts. */
export const SERVER_LIST_LIMITS: DecodeLimits = { maxBytes: 64 * 1024, maxDepth: 8, maxElements: 4096 }

export function payloadFailure<T>(message: string, at?: string): Decoded<T> {
  return failed('PAYLOAD_FORMAT', message, at)
}

export function dataText(data: ItemData): string | undefined {
  if (typeof data === 'string') return data
  const utf8 = decodeUtf8(data)
  return utf8.ok ? utf8.text : undefined
}

/**
 * Parses a payload fragment: the seed's examples hold sibling elements with text around them (indentation, and
 * the stray `--` before `]]>`), so the fragment is wrapped in a synthetic root. A leading XML declaration, which
 * a standalone payload may carry, is dropped first.
 */
export function parseFragment(text: string, limits: DecodeLimits): Decoded<XmlElement> {
  const body = text.replace(/^\uFEFF?\s*<\?xml[^>]*\?>/, '')
  const parsed = parseXml(`<payload>${body}</payload>`, limits)
  if (!parsed.ok) return payloadFailure(`payload is not well-formed XML: ${parsed.error.message}`)
  return parsed
}

/** First element named one of `names`, searched breadth-first; payloads may come wrapped in an outer element. */
export function findElement(root: XmlElement, names: readonly string[]): XmlElement | undefined {
  const queue: XmlElement[] = [root]
  for (let k = 0; k < queue.length; k++) {
    for (const c of queue[k]!.children) {
      if (!isElement(c)) continue
      if (names.includes(c.name)) return c
      queue.push(c)
    }
  }
  return undefined
}

/** The text of a simple-typed element, without the whitespace around it (the seed's IDs carry trailing blanks). */
export function simpleValue(element: XmlElement): string | undefined {
  let value = ''
  for (const c of element.children) {
    if (isText(c)) value += c.text
    else return undefined
  }
  return value.trim()
}

export function elementsNamed(parent: XmlElement, name: string): XmlElement[] {
  return parent.children.filter((c): c is XmlElement => isElement(c) && c.name === name)
}

export function leafMarkup(name: string, value: string): string {
  return serializeXml({ name, attrs: {}, children: value === '' ? [] : [{ text: value, cdata: false }] })
}
