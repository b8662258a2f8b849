import t from 'tap'
import type { XmlChild, XmlElement } from '../src/codec/element.ts'
import type { DecodeErrorCode } from '../src/codec/errors.ts'
import { parseXml, serializeXml } from '../src/codec/xml.ts'

function el(name: string, children: XmlChild[] = [], attrs: Record<string, string> = {}): XmlElement {
  return { name, attrs, children }
}
function txt(text: string): XmlChild {
  return { text, cdata: false }
}
function cdata(text: string): XmlChild {
  return { text, cdata: true }
}

const protoAttrs: Record<string, string> = {}
Object.defineProperty(protoAttrs, '__proto__', { value: 'x', enumerable: true, writable: true, configurable: true })

const parseCases: { name: string; xml: string; want: XmlElement }[] = [
  { name: 'empty element', xml: '<a/>', want: el('a') },
  { name: 'start and end tag', xml: '<a></a>', want: el('a') },
  {
    name: 'predefined entities and character references',
    xml: '<a>x &lt; &gt; &amp; &quot; &apos; &#65;&#x42;&#x1F600;</a>',
    want: el('a', [txt('x < > & " \' AB\u{1F600}')]),
  },
  {
    name: 'CDATA kept apart from text, its content not decoded',
    xml: '<a>x<![CDATA[<b>&amp;]]>y</a>',
    want: el('a', [txt('x'), cdata('<b>&amp;'), txt('y')]),
  },
  { name: 'empty CDATA', xml: '<a><![CDATA[]]></a>', want: el('a', [cdata('')]) },
  { name: 'comment skipped, text around it joined', xml: '<a>x<!-- c - d -->y</a>', want: el('a', [txt('xy')]) },
  {
    name: 'XML declaration and processing instructions skipped',
    xml: '<?xml version="1.0" encoding="UTF-8"?>\n<?pi data?><a><?inner x?>v</a>\n<!-- after -->\n',
    want: el('a', [txt('v')]),
  },
  {
    name: 'attributes in both quotes, entities decoded',
    xml: `<a x='1' y="&quot;2&lt;" z = "a'b" w='&#x41;"'/>`,
    want: el('a', [], { x: '1', y: '"2<', z: "a'b", w: 'A"' }),
  },
  { name: 'UTF-8 BOM allowed', xml: '\uFEFF<a>v</a>', want: el('a', [txt('v')]) },
  {
    name: 'namespace prefix stripped, its namespace kept as xmlns',
    xml: '<m:Type xmlns:m="syncml:metinf">b64</m:Type>',
    want: el('Type', [txt('b64')], { xmlns: 'syncml:metinf' }),
  },
  {
    name: 'prefix declared on an ancestor',
    xml: '<Meta xmlns:m="syncml:metinf"><m:Format>chr</m:Format><Type/></Meta>',
    want: el('Meta', [el('Format', [txt('chr')], { xmlns: 'syncml:metinf' }), el('Type')]),
  },
  {
    name: 'default namespace kept as an attribute',
    xml: '<SyncML xmlns="SYNCML:SYNCML1.2"><Type xmlns="syncml:metinf"/></SyncML>',
    want: el('SyncML', [el('Type', [], { xmlns: 'syncml:metinf' })], { xmlns: 'SYNCML:SYNCML1.2' }),
  },
  {
    name: 'whitespace-only text kept',
    xml: '<a> <b/>\n\t</a>',
    want: el('a', [txt(' '), el('b'), txt('\n\t')]),
  },
  {
    name: 'DOCTYPE without an internal subset skipped',
    xml:
      '<?xml version="1.0"?><!DOCTYPE SyncML PUBLIC "-//SYNCML//DTD SyncML 1.2//EN" ' +
      '"http://www.openmobilealliance.org/tech/DTD/OMA-TS-SyncML_RepPro_DTD-V1_2.dtd"><SyncML/>',
    want: el('SyncML'),
  },
  { name: 'non-ASCII names and text', xml: '<é ü="ö">ß€</é>', want: el('é', [txt('ß€')], { ü: 'ö' }) },
  { name: 'CR LF kept as is', xml: '<a>x\r\ny</a>', want: el('a', [txt('x\r\ny')]) },
  { name: '">" allowed in text', xml: '<a>a>b</a>', want: el('a', [txt('a>b')]) },
  { name: 'space before the end of tags', xml: '<a >x</a >', want: el('a', [txt('x')]) },
  { name: 'an attribute named __proto__ stays an attribute', xml: '<a __proto__="x"/>', want: el('a', [], protoAttrs) },
  {
    name: 'nested mixed content',
    xml: '<a>1<b>2<c>3</c>4</b>5</a>',
    want: el('a', [txt('1'), el('b', [txt('2'), el('c', [txt('3')]), txt('4')]), txt('5')]),
  },
]

t.test('parse', async (t) => {
  for (const c of parseCases) {
    const got = parseXml(c.xml)
    t.strictSame(got, { ok: true, value: c.want }, c.name)
  }
})

const errorCases: {
  name: string
  xml: string
  code: DecodeErrorCode
  at: number
  limits?: { maxBytes?: number; maxDepth?: number; maxElements?: number }
}[] = [
  { name: 'unclosed tag', xml: '<a><b></b>', code: 'XML_SYNTAX', at: 10 },
  { name: 'mismatched closing tag', xml: '<a><b></a>', code: 'XML_SYNTAX', at: 6 },
  { name: 'closing tag without an open element', xml: '</a>', code: 'XML_SYNTAX', at: 0 },
  { name: 'unknown entity', xml: '<a>x&foo;</a>', code: 'XML_SYNTAX', at: 4 },
  { name: 'entity named like an Object property', xml: '<a>&constructor;</a>', code: 'XML_SYNTAX', at: 3 },
  { name: 'bare ampersand', xml: '<a>fish & chips</a>', code: 'XML_SYNTAX', at: 8 },
  { name: 'reference to a non-character', xml: '<a>&#0;</a>', code: 'XML_SYNTAX', at: 3 },
  { name: 'reference past U+10FFFF', xml: '<a>&#x110000;</a>', code: 'XML_SYNTAX', at: 3 },
  { name: 'bad entity in an attribute', xml: '<a b="&x;"/>', code: 'XML_SYNTAX', at: 6 },
  { name: 'duplicate attribute', xml: '<a b="1" b="2"/>', code: 'XML_SYNTAX', at: 9 },
  { name: 'unquoted attribute', xml: '<a b=1/>', code: 'XML_SYNTAX', at: 5 },
  { name: '"<" in an attribute value', xml: '<a x="<"/>', code: 'XML_SYNTAX', at: 6 },
  { name: 'attributes without whitespace between', xml: '<a x="1"y="2"/>', code: 'XML_SYNTAX', at: 8 },
  { name: 'unclosed CDATA', xml: '<a><![CDATA[x</a>', code: 'XML_SYNTAX', at: 3 },
  { name: 'CDATA outside the root', xml: '<![CDATA[x]]><a/>', code: 'XML_SYNTAX', at: 0 },
  { name: 'unclosed comment', xml: '<a><!-- x </a>', code: 'XML_SYNTAX', at: 3 },
  { name: '"--" inside a comment', xml: '<a><!-- a -- b --></a>', code: 'XML_SYNTAX', at: 10 },
  { name: 'a second root element', xml: '<a/><b/>', code: 'XML_SYNTAX', at: 4 },
  { name: 'text before the root', xml: ' x<a/>', code: 'XML_SYNTAX', at: 1 },
  { name: 'text after the root', xml: '<a/>\nx', code: 'XML_SYNTAX', at: 5 },
  { name: 'no root element', xml: '<!-- only -->', code: 'XML_SYNTAX', at: 13 },
  { name: 'empty input', xml: '', code: 'XML_SYNTAX', at: 0 },
  { name: '"]]>" in text', xml: '<a>x]]></a>', code: 'XML_SYNTAX', at: 4 },
  { name: 'control character', xml: '<a>x\u0001</a>', code: 'XML_SYNTAX', at: 4 },
  { name: 'unpaired surrogate', xml: '<a>\uD800</a>', code: 'XML_SYNTAX', at: 3 },
  { name: 'XML declaration not at the start', xml: '<a><?xml version="1.0"?></a>', code: 'XML_SYNTAX', at: 3 },
  { name: 'declaration after a BOM and a blank', xml: '\uFEFF <?xml version="1.0"?><a/>', code: 'XML_SYNTAX', at: 2 },
  { name: 'markup declaration in content', xml: '<a><!ELEMENT x ANY></a>', code: 'XML_SYNTAX', at: 3 },
  { name: 'invalid element name', xml: '<1a/>', code: 'XML_SYNTAX', at: 1 },
  { name: 'input ends inside a tag', xml: '<a b="1"', code: 'XML_SYNTAX', at: 8 },
  { name: 'empty prefix', xml: '<:a/>', code: 'XML_SYNTAX', at: 1 },
  {
    name: 'DOCTYPE with entity declarations (internal subset refused)',
    xml: '<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>',
    code: 'XML_SYNTAX',
    at: 12,
  },
  {
    name: 'billion laughs refused before any expansion',
    xml:
      '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>' +
      '<lolz>&lol2;</lolz>',
    code: 'XML_SYNTAX',
    at: 36,
  },
  { name: 'DOCTYPE after the root', xml: '<a/><!DOCTYPE a>', code: 'XML_SYNTAX', at: 4 },
  { name: 'too deep (default 32)', xml: '<a>'.repeat(33) + '</a>'.repeat(33), code: 'TOO_DEEP', at: 96 },
  { name: 'too deep (limit 2)', xml: '<a><b><c/></b></a>', code: 'TOO_DEEP', at: 6, limits: { maxDepth: 2 } },
  {
    name: 'too many elements',
    xml: '<a><b/><b/><b/></a>',
    code: 'TOO_MANY_ELEMENTS',
    at: 11,
    limits: { maxElements: 3 },
  },
  {
    name: 'too large, counted in UTF-8 bytes',
    xml: '<a>' + 'é'.repeat(10) + '</a>',
    code: 'TOO_LARGE',
    at: 0,
    limits: { maxBytes: 20 },
  },
  { name: 'too large (default 64 KiB)', xml: `<a>${'x'.repeat(65536)}</a>`, code: 'TOO_LARGE', at: 0 },
]

t.test('exact errors', async (t) => {
  for (const c of errorCases) {
    const got = parseXml(c.xml, c.limits)
    t.equal(got.ok, false, `${c.name}: refused`)
    if (got.ok) continue
    t.equal(got.error.code, c.code, `${c.name}: code`)
    t.equal(got.error.at, c.at, `${c.name}: offset (${got.error.message})`)
  }
})

t.test('limits are inclusive', async (t) => {
  t.ok(parseXml('<a><b/></a>', { maxDepth: 2, maxElements: 2, maxBytes: 11 }).ok)
})

t.test('serialize', async (t) => {
  const cases: { name: string; element: XmlElement; want: string; declaration?: boolean }[] = [
    { name: 'empty element', element: el('Final'), want: '<Final/>' },
    {
      name: 'text escaped, CR as a reference',
      element: el('a', [txt(`a&<>"'\r\n`)]),
      want: `<a>a&amp;&lt;&gt;"'&#13;\n</a>`,
    },
    {
      name: 'attributes escaped',
      element: el('a', [], { x: `a&<>"'\t\n` }),
      want: `<a x="a&amp;&lt;>&quot;'&#9;&#10;"/>`,
    },
    { name: 'CDATA written as CDATA', element: el('a', [cdata('<b>&')]), want: '<a><![CDATA[<b>&]]></a>' },
    {
      name: '"]]>" inside CDATA split across sections',
      element: el('a', [cdata('x]]>y')]),
      want: '<a><![CDATA[x]]]]><![CDATA[>y]]></a>',
    },
    {
      name: 'opaque data as base64',
      element: el('Data', [{ opaque: new Uint8Array([0, 1, 2, 253, 254, 255]) }]),
      want: '<Data>AAEC/f7/</Data>',
    },
    {
      name: 'declaration on request',
      element: el('SyncML', [el('SyncHdr')], { xmlns: 'SYNCML:SYNCML1.2' }),
      want: '<?xml version="1.0" encoding="UTF-8"?><SyncML xmlns="SYNCML:SYNCML1.2"><SyncHdr/></SyncML>',
      declaration: true,
    },
  ]
  for (const c of cases) t.equal(serializeXml(c.element, { declaration: c.declaration }), c.want, c.name)

  const split = parseXml(serializeXml(el('a', [cdata('x]]>y]]>')])))
  t.ok(split.ok)
  if (split.ok) {
    t.ok(split.value.children.every((c) => 'cdata' in c && c.cdata), 'split CDATA reads back as CDATA')
    t.equal(split.value.children.map((c) => ('text' in c ? c.text : '')).join(''), 'x]]>y]]>', 'and joins back')
  }
})

t.test('round trip: parse(serialize(parse(x))) equals parse(x)', async (t) => {
  for (const c of parseCases) {
    const first = parseXml(c.xml)
    if (!first.ok) {
      t.fail(c.name)
      continue
    }
    t.strictSame(parseXml(serializeXml(first.value)), first, c.name)
  }
})

t.test('nesting far past the call stack is parsed and written without recursion', async (t) => {
  const depth = 100_000
  const xml = '<a>'.repeat(depth) + 'x' + '</a>'.repeat(depth)
  const limits = { maxDepth: depth, maxElements: depth, maxBytes: xml.length }
  const parsed = parseXml(xml, limits)
  t.ok(parsed.ok, 'parsed')
  if (parsed.ok) t.equal(serializeXml(parsed.value), xml, 'written back')
  const refused = parseXml(xml, { ...limits, maxDepth: depth - 1 })
  t.equal(refused.ok ? undefined : refused.error.code, 'TOO_DEEP')
})
