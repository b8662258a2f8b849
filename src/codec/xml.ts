/**
 * XML 1.0 text to the neutral document form (`XmlElement`) and back. A small strict parser of our own: it decodes
 * entities, keeps CDATA apart from text, never expands a DTD, and walks the input with an explicit stack under
 * `DecodeLimits`, so that a hostile message can neither overflow the call stack nor exhaust memory.
 */
import type { DecodeLimits, XmlElement } from './element.ts'
import { resolveLimits } from './element.ts'
import type { Decoded } from './errors.ts'
import { failed } from './errors.ts'
import { catchFault, fault } from './fault.ts'
import { decodeReferences, isSpace, NOT_XML_CHAR, readName, skipSpace } from './xml-lexical.ts'

export { serializeChild, serializeXml } from './xml-write.ts'

interface Open {
  element: XmlElement
  qname: string
  at: number
  /** Prefix to namespace, inherited from the parent unless this element declares prefixes. */
  scope: ReadonlyMap<string, string>
}

const NO_PREFIXES: ReadonlyMap<string, string> = new Map([['xml', 'http://www.w3.org/XML/1998/namespace']])

function setAttr(attrs: Record<string, string>, name: string, value: string): void {
  // defineProperty, so that an attribute called `__proto__` stays an attribute.
  Object.defineProperty(attrs, name, { value, enumerable: true, writable: true, configurable: true })
}

function parseDocument(text: string, limits: DecodeLimits): XmlElement {
  const n = text.length
  const start = text.charCodeAt(0) === 0xfeff ? 1 : 0
  const stack: Open[] = []
  let root: XmlElement | undefined
  let elements = 0
  let pending: string[] = []
  let i = start

  const flushText = (): void => {
    if (pending.length === 0) return
    stack.at(-1)!.element.children.push({ text: pending.join(''), cdata: false })
    pending = []
  }

  const readText = (from: number, to: number): void => {
    if (stack.length === 0) {
      for (let k = from; k < to; k++) {
        if (!isSpace(text.charCodeAt(k))) fault('text outside the root element', k)
      }
      return
    }
    const raw = text.slice(from, to)
    const bad = raw.indexOf(']]>')
    if (bad >= 0) fault('"]]>" in text', from + bad)
    pending.push(decodeReferences(raw, from))
  }

  const readStartTag = (): void => {
    const tagAt = i
    if (root !== undefined && stack.length === 0) fault('a second root element', tagAt)
    const qname = readName(text, i + 1)
    if (qname === '') fault('expected an element name after "<"', i + 1)
    let j = i + 1 + qname.length
    let raw: [string, string, number][] | undefined
    for (;;) {
      const afterSpace = skipSpace(text, j)
      if (afterSpace >= n) fault(`input ends inside the tag <${qname}>`, n)
      const c = text.charCodeAt(afterSpace)
      if (c === 0x3e /* > */ || (c === 0x2f /* / */ && text.charCodeAt(afterSpace + 1) === 0x3e)) {
        j = afterSpace
        break
      }
      if (afterSpace === j) fault(`expected whitespace, ">" or "/>" in the tag <${qname}>`, j)
      const name = readName(text, afterSpace)
      if (name === '') fault(`expected an attribute name in the tag <${qname}>`, afterSpace)
      j = skipSpace(text, afterSpace + name.length)
      if (text[j] !== '=') fault(`expected "=" after the attribute ${name}`, j)
      j = skipSpace(text, j + 1)
      const quote = text[j]
      if (quote !== '"' && quote !== "'") fault(`expected a quoted value for the attribute ${name}`, j)
      const close = text.indexOf(quote, j + 1)
      if (close < 0) fault(`unclosed value of the attribute ${name}`, j)
      const value = text.slice(j + 1, close)
      const lt = value.indexOf('<')
      if (lt >= 0) fault(`"<" in the value of the attribute ${name}`, j + 1 + lt)
      raw ??= []
      // Linear, but the tag's length bounds it and tags with many attributes are rare.
      for (const [seen] of raw) if (seen === name) fault(`duplicate attribute ${name}`, afterSpace)
      raw.push([name, decodeReferences(value, j + 1), afterSpace])
      j = close + 1
    }
    const selfClosing = text.charCodeAt(j) === 0x2f
    i = j + (selfClosing ? 2 : 1)

    elements++
    if (elements > limits.maxElements) fault(`more than ${limits.maxElements} elements`, tagAt, 'TOO_MANY_ELEMENTS')
    if (stack.length + 1 > limits.maxDepth) fault(`elements nested deeper than ${limits.maxDepth}`, tagAt, 'TOO_DEEP')

    // Namespaces in XML 1.0: prefixes are declared by xmlns:p attributes and resolved against the open elements.
    const parentScope = stack.at(-1)?.scope ?? NO_PREFIXES
    let scope = parentScope
    const attrs: Record<string, string> = {}
    for (const [name, value, at] of raw ?? []) {
      if (name.startsWith('xmlns:')) {
        const prefix = name.slice(6)
        if (prefix === '' || prefix.includes(':')) fault(`invalid namespace declaration ${name}`, at)
        if (scope === parentScope) scope = new Map(parentScope)
        ;(scope as Map<string, string>).set(prefix, value)
      } else setAttr(attrs, name, value)
    }
    const colon = qname.indexOf(':')
    let local = qname
    if (colon >= 0) {
      local = qname.slice(colon + 1)
      if (colon === 0 || local === '' || local.includes(':')) fault(`invalid element name ${qname}`, tagAt + 1)
      // The local name is what the SyncML DTD names; the prefix's namespace is kept as `xmlns`.
      const namespace = scope.get(qname.slice(0, colon))
      if (namespace !== undefined) setAttr(attrs, 'xmlns', namespace)
    }
    const element: XmlElement = { name: local, attrs, children: [] }
    if (stack.length === 0) root = element
    else {
      flushText()
      stack.at(-1)!.element.children.push(element)
    }
    if (!selfClosing) stack.push({ element, qname, at: tagAt, scope })
  }

  const readEndTag = (): void => {
    const tagAt = i
    const qname = readName(text, i + 2)
    if (qname === '') fault('expected an element name after "</"', i + 2)
    const j = skipSpace(text, i + 2 + qname.length)
    if (text[j] !== '>') fault(`expected ">" to end the closing tag </${qname}>`, j)
    const open = stack.at(-1)
    if (open === undefined) fault(`closing tag </${qname}> without an open element`, tagAt)
    if (open.qname !== qname) fault(`closing tag </${qname}> does not match <${open.qname}>`, tagAt)
    flushText()
    stack.pop()
    i = j + 1
  }

  const skipDoctype = (): void => {
    if (root !== undefined) fault('DOCTYPE after the root element', i)
    let quote = ''
    for (let j = i + 9; j < n; j++) {
      const c = text[j]
      if (quote !== '') {
        if (c === quote) quote = ''
      } else if (c === '"' || c === "'") quote = c
      // An internal subset is where entities are declared: refused, so nothing is ever expanded.
      else if (c === '[') fault('DOCTYPE with an internal subset (entity declarations) is refused', j)
      else if (c === '>') {
        i = j + 1
        return
      }
    }
    fault('unclosed DOCTYPE', i)
  }

  while (i < n) {
    const lt = text.indexOf('<', i)
    const end = lt < 0 ? n : lt
    if (end > i) readText(i, end)
    if (lt < 0) break
    i = lt
    if (text.startsWith('<!--', i)) {
      const close = text.indexOf('-->', i + 4)
      if (close < 0) fault('unclosed comment', i)
      const dashes = text.indexOf('--', i + 4)
      if (dashes < close) fault('"--" inside a comment', dashes)
      i = close + 3
    } else if (text.startsWith('<![CDATA[', i)) {
      if (stack.length === 0) fault('CDATA section outside the root element', i)
      const close = text.indexOf(']]>', i + 9)
      if (close < 0) fault('unclosed CDATA section', i)
      flushText()
      stack.at(-1)!.element.children.push({ text: text.slice(i + 9, close), cdata: true })
      i = close + 3
    } else if (text.startsWith('<?', i)) {
      const target = readName(text, i + 2)
      if (target === '') fault('expected a processing instruction target after "<?"', i + 2)
      const close = text.indexOf('?>', i + 2)
      if (close < 0) fault('unclosed processing instruction', i)
      if (target.toLowerCase() === 'xml' && i !== start) fault('XML declaration not at the start of the input', i)
      i = close + 2
    } else if (text.startsWith('<!DOCTYPE', i)) {
      skipDoctype()
    } else if (text.startsWith('<!', i)) {
      fault('unexpected markup declaration', i)
    } else if (text.startsWith('</', i)) {
      readEndTag()
    } else {
      readStartTag()
    }
  }
  const open = stack.at(-1)
  if (open !== undefined) fault(`input ends inside <${open.qname}> (opened at ${open.at})`, n)
  if (root === undefined) fault('no root element', n)
  return root
}

/**
 * Parses one XML document. Never throws: malformed input, and input over `limits`, come back as a failure whose
 * `at` is the character offset where reading stopped.
 */
export function parseXml(text: string, limits?: Partial<DecodeLimits>): Decoded<XmlElement> {
  const bounds = resolveLimits(limits)
  if (text.length > bounds.maxBytes || Buffer.byteLength(text) > bounds.maxBytes) {
    return failed('TOO_LARGE', `XML text over the ${bounds.maxBytes}-byte limit`, 0)
  }
  const bad = text.search(NOT_XML_CHAR)
  if (bad >= 0) {
    const code = text.charCodeAt(bad).toString(16).toUpperCase().padStart(4, '0')
    return failed('XML_SYNTAX', `U+${code} is not an XML character`, bad)
  }
  return catchFault('XML_SYNTAX', () => parseDocument(text, bounds))
}
