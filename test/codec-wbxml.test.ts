import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import t from 'tap'
import type { DecodeLimits, XmlChild, XmlElement } from '../src/codec/element.ts'
import { isElement, isText } from '../src/codec/element.ts'
import type { DecodeErrorCode } from '../src/codec/errors.ts'
import { decodeWbxml, encodeWbxml } from '../src/codec/wbxml.ts'

const FIXTURES = fileURLToPath(new URL('fixtures/wbxml/', import.meta.url))
const SYNCML_NS = 'SYNCML:SYNCML1.2'
const METINF_NS = 'syncml:metinf'

// ---- helpers --------------------------------------------------------------------------------------------------

function el(name: string, attrs: Record<string, string>, ...children: (XmlChild | string)[]): XmlElement {
  return { name, attrs, children: children.map((c) => (typeof c === 'string' ? { text: c, cdata: false } : c)) }
}
const meta = (name: string, ...children: (XmlChild | string)[]) => el(name, { xmlns: METINF_NS }, ...children)
const syncml = (...children: (XmlChild | string)[]) => el('SyncML', { xmlns: SYNCML_NS }, ...children)

const ascii = (s: string) => [...Buffer.from(s, 'utf8')]

/** A JSON-comparable copy: opaque bytes become hex, so `t.same` compares content, not array classes. */
type Plain = { name: string; attrs: Record<string, string>; children: Plain[] } | { text: string } | { opaque: string }
function plain(node: XmlChild): Plain {
  if (isElement(node)) return { name: node.name, attrs: { ...node.attrs }, children: node.children.map(plain) }
  if (isText(node)) return { text: node.text }
  return { opaque: Buffer.from(node.opaque).toString('hex') }
}

/**
 * The comparison form for documents that passed through libwbxml or XML text: whitespace-only text dropped, text
 * trimmed (libwbxml trims character data), opaque data read as UTF-8 text (libwbxml writes `Item/Data` and CDATA
 * as OPAQUE and prints opaque data as CDATA), adjacent text merged, xmlns attributes ignored.
 */
type Norm = { name: string; children: Norm[] } | string
function norm(element: XmlElement): Norm {
  const children: Norm[] = []
  for (const child of element.children) {
    if (isElement(child)) children.push(norm(child))
    else {
      const text = isText(child) ? child.text : Buffer.from(child.opaque).toString('utf8')
      const last = children[children.length - 1]
      if (typeof last === 'string') children[children.length - 1] = last + text
      else children.push(text)
    }
  }
  const kept = children.map((c) => (typeof c === 'string' ? c.trim() : c)).filter((c) => c !== '')
  return { name: element.name, children: kept }
}

/** Drops whitespace-only text and forgets CDATA: the form the decoder returns for a fixture. */
function withoutLayout(element: XmlElement): XmlElement {
  const children: XmlChild[] = []
  for (const child of element.children) {
    if (isElement(child)) children.push(withoutLayout(child))
    else if (isText(child)) {
      if (child.text.trim() !== '') children.push({ text: child.text, cdata: false })
    } else children.push(child)
  }
  return { name: element.name, attrs: { ...element.attrs }, children }
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" }
function unescapeXml(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, ref: string) => {
    if (ref.startsWith('#x')) return String.fromCodePoint(parseInt(ref.slice(2), 16))
    if (ref.startsWith('#')) return String.fromCodePoint(parseInt(ref.slice(1), 10))
    return ENTITIES[ref] ?? whole
  })
}

/**
 * A deliberately tiny XML reader, enough for the fixtures and for libwbxml's output: prolog, DOCTYPE, comments,
 * elements, attributes, character and entity references, CDATA.
 */
function readXml(xml: string): XmlElement {
  const stack: XmlElement[] = []
  let root: XmlElement | undefined
  const skippedPattern = String.raw`<\?[\s\S]*?\?>|<!--[\s\S]*?-->|<!DOCTYPE[^>]*>`
  const cdataPattern = String.raw`<!\[CDATA\[([\s\S]*?)\]\]>`
  const closePattern = String.raw`<\/([^\s>]+)\s*>`
  const openPattern = String.raw`<([^\s/>]+)((?:\s+[^\s=]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>`
  const token = new RegExp(`${skippedPattern}|${cdataPattern}|${closePattern}|${openPattern}|([^<]+)`, 'g')
  for (const m of xml.matchAll(token)) {
    const [, cdata, close, open, attrText, selfClose, text] = m
    const top = stack[stack.length - 1]
    if (cdata !== undefined) top!.children.push({ text: cdata, cdata: true })
    else if (close !== undefined) {
      if (stack.pop()?.name !== close) throw new Error(`mismatched </${close}>`)
    } else if (open !== undefined) {
      const attrs: Record<string, string> = {}
      for (const a of attrText!.matchAll(/([^\s=]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
        attrs[a[1]!] = unescapeXml(a[2] ?? a[3]!)
      }
      const element: XmlElement = { name: open, attrs, children: [] }
      if (top) top.children.push(element)
      else root = element
      if (selfClose !== '/') stack.push(element)
    } else if (text !== undefined && top) top.children.push({ text: unescapeXml(text), cdata: false })
  }
  if (!root || stack.length) throw new Error('not a complete XML document')
  return root
}

const fixtureNames = readdirSync(FIXTURES).filter((f) => f.endsWith('.xml')).sort()
const fixture = (name: string) => readXml(readFileSync(join(FIXTURES, name), 'utf8'))

/** Runs a libwbxml tool; a missing tool fails the test: CI installs Debian's libwbxml2-utils (see .ci/run). */
function libwbxml(tool: 'xml2wbxml' | 'wbxml2xml', args: string[]): void {
  try {
    execFileSync(tool, args, { stdio: 'pipe' })
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`${tool} is missing: install Debian's libwbxml2-utils (see .ci/run)`)
    }
    throw e
  }
}

function libwbxmlEncode(dir: string, xml: string, args: string[] = []): Uint8Array {
  writeFileSync(join(dir, 'in.xml'), xml)
  libwbxml('xml2wbxml', [...args, '-v', '1.2', '-o', join(dir, 'out.wbxml'), join(dir, 'in.xml')])
  return new Uint8Array(readFileSync(join(dir, 'out.wbxml')))
}

function libwbxmlDecode(dir: string, wbxml: Uint8Array): string {
  writeFileSync(join(dir, 'in.wbxml'), wbxml)
  libwbxml('wbxml2xml', ['-m', '0', '-o', join(dir, 'out.xml'), join(dir, 'in.wbxml')])
  return readFileSync(join(dir, 'out.xml'), 'utf8')
}

// ---- decoding: hand-assembled vectors --------------------------------------------------------------------------

// Header: WBXML 1.2, public id 0x1201 (libwbxml's SyncML 1.2), charset 106 (UTF-8), empty string table.
const H = [0x02, 0xa4, 0x01, 0x6a, 0x00]
const PUBLIC_ID_12 = ascii('-//SYNCML//DTD SyncML 1.2//EN\0') // 30 bytes
/** Tag tokens with the content flag (0x40) where used so below: page 0 unless marked. */
const SyncML = 0x2d, SyncHdr = 0x2c, SyncBody = 0x2b, Final = 0x12, Data = 0x0f, Meta = 0x1a, VerDTD = 0x31
const VerProto = 0x32, Atomic = 0x08, Add = 0x05, Type_p1 = 0x13, Mem_p1 = 0x0d, FreeMem_p1 = 0x09
const C = 0x40

interface DecodeCase {
  name: string
  bytes: number[]
  limits?: Partial<DecodeLimits>
  value?: XmlElement
  error?: { code: DecodeErrorCode; at: number }
}

/** A vector the decoder must refuse as WBXML_SYNTAX, naming the byte offset `at`. */
const refused = (name: string, at: number, bytes: number[]): DecodeCase => ({
  name,
  bytes,
  error: { code: 'WBXML_SYNTAX', at },
})

const decodeCases: DecodeCase[] = [
  { name: 'an empty root', bytes: [...H, SyncML], value: syncml() },
  {
    name: 'nested content and an empty element',
    bytes: [...H, SyncML | C, SyncBody | C, Final, 0x01, 0x01],
    value: syncml(el('SyncBody', {}, el('Final', {}))),
  },
  {
    name: 'STR_I text',
    bytes: [...H, SyncML | C, SyncHdr | C, VerDTD | C, 0x03, ...ascii('1.2\0'), 0x01, 0x01, 0x01],
    value: syncml(el('SyncHdr', {}, el('VerDTD', {}, '1.2'))),
  },
  {
    name: 'STR_T references, at an entry and inside one',
    bytes: [0x02, 0xa4, 0x01, 0x6a, 0x0a, ...ascii('ab\0DM/1.2\0'), SyncML | C, SyncHdr | C,
      VerProto | C, 0x83, 0x03, 0x01, VerDTD | C, 0x83, 0x01, 0x01, 0x01, 0x01],
    value: syncml(el('SyncHdr', {}, el('VerProto', {}, 'DM/1.2'), el('VerDTD', {}, 'b'))),
  },
  {
    name: 'ENTITY, STR_I and STR_T pieces merge into one text',
    // ENTITY 0x20AC (€) = mb_u_int32 0xC1 0x2C
    bytes: [0x02, 0xa4, 0x01, 0x6a, 0x03, ...ascii('ab\0'), SyncML | C, Data | C, 0x03, ...ascii('a\0'),
      0x02, 0xc1, 0x2c, 0x83, 0x00, 0x01, 0x01],
    value: syncml(el('Data', {}, 'a€ab')),
  },
  {
    name: 'an empty STR_I adds no text',
    bytes: [...H, SyncML | C, Data | C, 0x03, 0x00, 0x01, 0x01],
    value: syncml(el('Data', {})),
  },
  {
    name: 'OPAQUE beside text stays bytes',
    bytes: [...H, SyncML | C, Data | C, 0xc3, 0x03, 0x00, 0xff, 0x10, 0x03, ...ascii('x\0'), 0xc3, 0x00, 0x01, 0x01],
    value: syncml(el('Data', {}, { opaque: new Uint8Array([0, 0xff, 0x10]) }, 'x', { opaque: new Uint8Array() })),
  },
  {
    name: 'SWITCH_PAGE to MetInf and back; MetInf elements carry their namespace',
    bytes: [...H, SyncML | C, SyncHdr | C, Meta | C, 0x00, 0x01, Type_p1 | C, 0x03, ...ascii('b64\0'), 0x01,
      Mem_p1 | C, FreeMem_p1 | C, 0x03, ...ascii('9\0'), 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, SyncBody | C, Final,
      0x01, 0x01],
    value: syncml(
      el('SyncHdr', {}, el('Meta', {}, meta('Type', 'b64'), meta('Mem', meta('FreeMem', '9')))),
      el('SyncBody', {}, el('Final', {})),
    ),
  },
  {
    name: 'public id as a string-table reference',
    bytes: [0x02, 0x00, 0x00, 0x6a, 0x1e, ...PUBLIC_ID_12, SyncML],
    value: syncml(),
  },
  {
    name: 'public id of SyncML 1.1 (0x0FD3) and WBXML 1.3',
    bytes: [0x03, 0x9f, 0x53, 0x6a, 0x00, SyncML],
    value: el('SyncML', { xmlns: 'SYNCML:SYNCML1.1' }),
  },
  {
    name: 'public id of SyncML 1.0 (0x0FD1) and WBXML 1.1',
    bytes: [0x01, 0x9f, 0x51, 0x6a, 0x00, SyncML],
    value: el('SyncML', { xmlns: 'SYNCML:SYNCML1.0' }),
  },
  { name: 'unknown public id (1)', bytes: [0x02, 0x01, 0x6a, 0x00, SyncML], value: syncml() },
  {
    name: 'a root other than SyncML is left to the model to refuse',
    bytes: [...H, Add | C, 0x01],
    value: el('Add', {}),
  },
  {
    name: 'nesting exactly at maxDepth',
    bytes: [...H, SyncML | C, SyncBody | C, Atomic, 0x01, 0x01],
    limits: { maxDepth: 3 },
    value: syncml(el('SyncBody', {}, el('Atomic', {}))),
  },
  {
    name: 'exactly maxElements elements',
    bytes: [...H, SyncML | C, SyncBody | C, Final, 0x01, 0x01],
    limits: { maxElements: 3 },
    value: syncml(el('SyncBody', {}, el('Final', {}))),
  },
  { name: 'exactly maxBytes bytes', bytes: [...H, SyncML], limits: { maxBytes: 6 }, value: syncml() },

  // -- errors: header
  refused('empty input', 0, []),
  refused('WBXML 1.0 (no charset field)', 0, [0x00, 0x01, 0x00, SyncML]),
  refused('WBXML 2.0', 0, [0x10, ...H.slice(1), SyncML]),
  refused('header ends after the version', 1, [0x02]),
  refused('truncated public id', 1, [0x02, 0xa4]),
  refused('over-long public id (6 bytes)', 1, [0x02, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x6a, 0x00, SyncML]),
  refused('public id over 32 bits', 1, [0x02, 0x9f, 0xff, 0xff, 0xff, 0x7f, 0x6a, 0x00, SyncML]),
  refused('public id of DevInf 1.1 (0x0FD2)', 1, [0x02, 0x9f, 0x52, 0x6a, 0x00, SyncML]),
  refused('public id string that is not SyncML', 1, [0x02, 0x00, 0x00, 0x6a, 0x1e,
    ...ascii('-//SYNCML//DTD DevInf 1.2//EN\0'), SyncML]),
  refused('public id index outside the string table', 2, [0x02, 0x00, 0x05, 0x6a, 0x02, ...ascii('a\0'), SyncML]),
  refused('charset ISO-8859-1 (4)', 3, [0x02, 0xa4, 0x01, 0x04, 0x00, SyncML]),
  refused('over-long charset', 3, [0x02, 0xa4, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00, SyncML]),
  refused('header ends before the string table', 4, [0x02, 0xa4, 0x01, 0x6a]),
  refused('string table longer than the input', 4, [0x02, 0xa4, 0x01, 0x6a, 0x10, 0x61, 0x00, SyncML]),

  // -- errors: body structure
  refused('no root element', 5, [...H]),
  refused('END with nothing open', 5, [...H, 0x01]),
  refused('text before the root', 5, [...H, 0x03, 0x61, 0x00, SyncML]),
  refused('opaque before the root', 5, [...H, 0xc3, 0x00, SyncML]),
  refused('data after the root', 6, [...H, SyncML, 0x01]),
  refused('input ends inside an element', 7, [...H, SyncML | C, SyncBody | C]),
  refused('input ends inside SWITCH_PAGE', 6, [...H, SyncML | C, 0x00]),

  // -- errors: tokens
  refused('reserved tag 0x30 on page 0', 6, [...H, SyncML | C, 0x30, 0x01]),
  refused('unknown tag 0x3D on page 0', 6, [...H, SyncML | C, 0x7d, 0x01, 0x01]),
  refused('unknown tag 0x17 on page 1', 8, [...H, SyncML | C, 0x00, 0x01, 0x17, 0x01]),
  refused('code page 2 (DevInf)', 6, [...H, SyncML | C, 0x00, 0x02, 0x05, 0x01]),
  refused('LITERAL refused', 6, [...H, SyncML | C, 0x04, 0x00, 0x01]),
  refused('LITERAL_C refused', 6, [...H, SyncML | C, 0x44, 0x00, 0x01, 0x01]),
  refused('LITERAL_A refused', 6, [...H, SyncML | C, 0x84, 0x00, 0x01, 0x01]),
  refused('LITERAL_AC refused', 6, [...H, SyncML | C, 0xc4, 0x00, 0x01, 0x01]),
  refused('attribute flag on the root', 5, [...H, SyncML | 0x80, 0x01]),
  refused('attribute and content flags on a child', 6, [...H, SyncML | C, SyncBody | C | 0x80, 0x05, 0x01, 0x01, 0x01]),
  refused('EXT_I_0 refused', 6, [...H, SyncML | C, 0x40, 0x61, 0x00, 0x01]),
  refused('EXT_T_0 refused', 6, [...H, SyncML | C, 0x80, 0x00, 0x01]),
  refused('EXT_0 refused', 6, [...H, SyncML | C, 0xc0, 0x01]),
  refused('PI refused', 6, [...H, SyncML | C, 0x43, 0x05, 0x01, 0x01]),
  refused('STR_I without its NUL', 7, [...H, SyncML | C, Data | C, 0x03, 0x61, 0x62]),
  refused('STR_I that is not UTF-8', 7, [...H, SyncML | C, Data | C, 0x03, 0xc3, 0x28, 0x00, 0x01, 0x01]),
  refused('STR_T offset outside the string table', 10, [0x02, 0xa4, 0x01, 0x6a, 0x03, ...ascii('ab\0'),
    SyncML | C, Data | C, 0x83, 0x03, 0x01, 0x01]),
  refused('STR_T entry without a NUL in the table', 9, [0x02, 0xa4, 0x01, 0x6a, 0x02, ...ascii('ab'),
    SyncML | C, Data | C, 0x83, 0x00, 0x01, 0x01]),
  refused('ENTITY of a surrogate (0xD800)', 7, [...H, SyncML | C, Data | C, 0x02, 0x83, 0xb0, 0x00, 0x01, 0x01]),
  refused('ENTITY past U+10FFFF', 7, [...H, SyncML | C, Data | C, 0x02, 0xc4, 0x80, 0x00, 0x01, 0x01]),
  refused('OPAQUE length past the end', 7, [...H, SyncML | C, Data | C, 0xc3, 0x05, 0x01, 0x02]),
  refused('OPAQUE length as an over-long mb_u_int32', 7, [...H, SyncML | C, Data | C,
    0xc3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x01, 0x01]),
  refused('OPAQUE length truncated mid mb_u_int32', 7, [...H, SyncML | C, Data | C, 0xc3, 0x85]),

  // -- errors: limits
  {
    name: 'nesting past maxDepth',
    bytes: [...H, SyncML | C, SyncBody | C, Atomic | C, 0x24, 0x01, 0x01, 0x01],
    limits: { maxDepth: 3 },
    error: { code: 'TOO_DEEP', at: 8 },
  },
  {
    name: 'more than maxElements elements',
    bytes: [...H, SyncML | C, SyncBody | C, Final, 0x01, 0x01],
    limits: { maxElements: 2 },
    error: { code: 'TOO_MANY_ELEMENTS', at: 7 },
  },
  {
    name: 'more than maxBytes bytes',
    bytes: [...H, SyncML, 0x01],
    limits: { maxBytes: 6 },
    error: { code: 'TOO_LARGE', at: 6 },
  },
  {
    name: 'default depth limit (32)',
    bytes: [...H, SyncML | C, ...Array<number>(40).fill(Atomic | C), ...Array<number>(41).fill(0x01)],
    error: { code: 'TOO_DEEP', at: 5 + 32 },
  },
]

t.test('decoding hand-assembled vectors', async (t) => {
  for (const c of decodeCases) {
    const result = decodeWbxml(new Uint8Array(c.bytes), c.limits)
    if (c.value) {
      t.ok(result.ok, `${c.name}: decodes`, result.ok ? {} : { error: result.error })
      if (result.ok) t.same(plain(result.value), plain(c.value), `${c.name}: document`)
    } else {
      t.notOk(result.ok, `${c.name}: refused`)
      if (!result.ok) {
        t.same({ code: result.error.code, at: result.error.at }, c.error, `${c.name}: code and offset`)
        t.ok(result.error.message.length > 0, `${c.name}: has a message`)
      }
    }
  }
})

t.test('decoding a huge nesting is iterative and stops at the depth limit', async (t) => {
  const depth = 50_000
  const bytes = new Uint8Array([...H, SyncML | C, ...Array<number>(depth).fill(Atomic | C)])
  const result = decodeWbxml(bytes, { maxBytes: bytes.length, maxDepth: depth + 10, maxElements: depth + 10 })
  t.notOk(result.ok)
  if (!result.ok) t.same({ code: result.error.code, at: result.error.at }, { code: 'WBXML_SYNTAX', at: bytes.length })
})

t.test('error messages name what went wrong', async (t) => {
  const message = (bytes: number[]) => {
    const r = decodeWbxml(new Uint8Array(bytes))
    return r.ok ? '' : r.error.message
  }
  t.match(message([0x02, 0xa4, 0x01, 0x04, 0x00, SyncML]), /charset.*4.*UTF-8/)
  t.match(message([...H, SyncML | C, 0x04, 0x00, 0x01]), /LITERAL/)
  t.match(message([...H, SyncML | C, 0x7d, 0x01, 0x01]), /0x3D.*page 0/)
  t.match(message([0x02, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x6a, 0x00, SyncML]), /5 bytes/)
  t.match(message([0x02, 0x9f, 0x52, 0x6a, 0x00, SyncML]), /0xFD2.*not a SyncML/)
})

// ---- encoding ---------------------------------------------------------------------------------------------------

const HEADER_OUT = [0x02, 0x00, 0x00, 0x6a, 0x1e, ...PUBLIC_ID_12]

t.test('encoding: exact bytes, with lazy page switches', async (t) => {
  const doc = syncml(
    el('SyncHdr', {}, el('VerDTD', {}, '1.2'), el('Meta', {}, meta('MaxMsgSize', '512'))),
    el('SyncBody', {}, el('Final', {})),
  )
  const expected = [...HEADER_OUT, SyncML | C, SyncHdr | C, VerDTD | C, 0x03, ...ascii('1.2\0'), 0x01, Meta | C,
    0x00, 0x01, 0x0c | C, 0x03, ...ascii('512\0'), 0x01, 0x01, 0x01, 0x00, 0x00, SyncBody | C, Final, 0x01, 0x01]
  t.same([...encodeWbxml(doc)], expected)
})

t.test('encoding: MetInf elements need no xmlns under Meta or Chal, and children inherit the page', async (t) => {
  const strip = (e: XmlElement): XmlElement => ({
    name: e.name,
    attrs: e.name === 'SyncML' ? e.attrs : {},
    children: e.children.map((c) => (isElement(c) ? strip(c) : c)),
  })
  const doc = syncml(
    el('SyncBody', {}, el('Status', {}, el('Chal', {}, el('Meta', {}, meta('Type', 'syncml:auth-md5'),
      meta('NextNonce', 'bm9uY2U='))), el('Data', {}, '401')),
      el('Alert', {}, el('Meta', {}, meta('Mem', meta('FreeMem', '100'), meta('SharedMem'))))),
  )
  t.same([...encodeWbxml(strip(doc))], [...encodeWbxml(doc)])
  const back = decodeWbxml(encodeWbxml(strip(doc)))
  t.ok(back.ok)
  if (back.ok) t.same(plain(back.value), plain(doc))
})

t.test('encoding: namespaces are matched without regard to case', async (t) => {
  const doc = el('SyncML', { xmlns: 'syncml:SyncML1.2' }, el('Meta', {}, el('Type', { xmlns: 'SYNCML:METINF' }, 'x')))
  t.same([...encodeWbxml(doc)], [...encodeWbxml(syncml(el('Meta', {}, meta('Type', 'x'))))])
})

t.test('encoding: CDATA and text go as STR_I, opaque as OPAQUE with an mb_u_int32 length', async (t) => {
  const opaque = new Uint8Array(200).map((_, i) => i)
  const doc = syncml(el('Data', {}, { text: '<a>&', cdata: true }, { opaque }, { text: 'ü', cdata: false }))
  const expected = [...HEADER_OUT, SyncML | C, Data | C, 0x03, ...ascii('<a>&\0'), 0xc3, 0x81, 0x48, ...opaque,
    0x03, 0xc3, 0xbc, 0x00, 0x01, 0x01]
  t.same([...encodeWbxml(doc)], expected)
})

t.test('encoding: an element with only empty text has no content', async (t) => {
  t.same([...encodeWbxml(syncml(el('Final', {}, '')))], [...HEADER_OUT, SyncML | C, Final, 0x01])
  t.same([...encodeWbxml(syncml())], [...HEADER_OUT, SyncML])
})

t.test('encoding: what has no WBXML form is a programming error that names the element', async (t) => {
  t.throws(() => encodeWbxml(syncml(el('Foo', {}))), /<Foo>/)
  t.throws(() => encodeWbxml(syncml(el('Meta', { xmlns: METINF_NS }))), /<Meta>.*page 1/)
  t.throws(() => encodeWbxml(syncml(el('DevInf', { xmlns: 'syncml:devinf' }))), /syncml:devinf.*<DevInf>/)
  t.throws(() => encodeWbxml(syncml(el('Data', { format: 'b64' }))), /format.*<Data>/)
  t.throws(() => encodeWbxml(syncml(el('Data', {}, 'a\0b'))), /NUL.*<Data>|<Data>.*NUL/)
})

// ---- libwbxml interoperability -------------------------------------------------------------------------------

/** Every tag of both pages, as empty elements: the token tables checked against libwbxml's in both directions. */
const PAGE0 = ['Add', 'Alert', 'Archive', 'Atomic', 'Chal', 'Cmd', 'CmdID', 'CmdRef', 'Copy', 'Cred', 'Data',
  'Delete', 'Exec', 'Final', 'Get', 'Item', 'Lang', 'LocName', 'LocURI', 'Map', 'MapItem', 'Meta', 'MsgID',
  'MsgRef', 'NoResp', 'NoResults', 'Put', 'Replace', 'RespURI', 'Results', 'Search', 'Sequence', 'SessionID',
  'SftDel', 'Source', 'SourceRef', 'Status', 'Sync', 'SyncBody', 'SyncHdr', 'SyncML', 'Target', 'TargetRef',
  'VerDTD', 'VerProto', 'NumberOfChanges', 'MoreData', 'Field', 'Filter', 'Record', 'FilterType', 'SourceParent',
  'TargetParent', 'Move', 'Correlator']
const PAGE1 = ['Anchor', 'EMI', 'Format', 'FreeID', 'FreeMem', 'Last', 'Mark', 'MaxMsgSize', 'Mem', 'MetInf', 'Next',
  'NextNonce', 'SharedMem', 'Size', 'Type', 'Version', 'MaxObjSize', 'FieldLevel']
const everyTag = syncml(
  el('SyncBody', {}, ...PAGE0.map((n) => el(n, {})), el('Meta', {}, ...PAGE1.map((n) => meta(n)))),
)
const everyTagXml =
  `<?xml version="1.0" encoding="UTF-8"?>\n<SyncML xmlns="${SYNCML_NS}"><SyncBody>` +
  PAGE0.map((n) => `<${n}/>`).join('') +
  `<Meta>${PAGE1.map((n) => `<${n} xmlns="${METINF_NS}"/>`).join('')}</Meta></SyncBody></SyncML>\n`

t.test('every SyncML and MetInf token agrees with libwbxml', async (t) => {
  const dir = t.testdir()
  for (const args of [['-n'], []]) {
    const theirs = decodeWbxml(libwbxmlEncode(dir, everyTagXml, args))
    t.ok(theirs.ok, `xml2wbxml ${args.join(' ')} output decodes`, theirs.ok ? {} : { error: theirs.error })
    if (theirs.ok) t.same(norm(theirs.value), norm(everyTag), 'each tag read back by name')
  }
  t.same(norm(readXml(libwbxmlDecode(dir, encodeWbxml(everyTag)))), norm(everyTag), 'wbxml2xml names each tag')
})

t.test('libwbxml writes SyncML 1.2 with public id 0x1201, which decodes', async (t) => {
  const bytes = libwbxmlEncode(t.testdir(), everyTagXml, ['-n'])
  t.same([...bytes.subarray(0, 4)], [0x02, 0xa4, 0x01, 0x6a])
  const result = decodeWbxml(bytes)
  t.equal(result.ok && result.value.attrs.xmlns, SYNCML_NS)
})

for (const name of fixtureNames) {
  t.test(`fixture ${name}`, async (t) => {
    const dir = t.testdir()
    const xml = readFileSync(join(FIXTURES, name), 'utf8')
    const doc = fixture(name)
    t.ok(doc.children.length > 0, 'fixture read')

    for (const args of [[], ['-n']]) {
      const theirs = decodeWbxml(libwbxmlEncode(dir, xml, args))
      t.ok(theirs.ok, `xml2wbxml ${args.join(' ')} output decodes`, theirs.ok ? {} : { error: theirs.error })
      if (!theirs.ok) continue
      t.same(norm(theirs.value), norm(doc), `xml2wbxml ${args.join(' ')} output is the same document`)
      const again = decodeWbxml(encodeWbxml(theirs.value))
      t.same(again.ok && plain(again.value), plain(theirs.value), 'what libwbxml wrote re-encodes losslessly')
    }

    const ours = encodeWbxml(doc)
    t.same(norm(readXml(libwbxmlDecode(dir, ours))), norm(doc), 'wbxml2xml reads our encoding as the same document')

    const expected = withoutLayout(doc)
    const back = decodeWbxml(encodeWbxml(expected))
    t.ok(back.ok, 'our encoding decodes')
    if (back.ok) t.same(plain(back.value), plain(expected), 'decode(encode(x)) is x')
  })
}

// ---- random documents and mutations --------------------------------------------------------------------------

function wellFormed(s: string): boolean {
  return !s.includes('\0') && Buffer.from(s, 'utf8').toString('utf8') === s
}

/** The decoder merges adjacent character data, so generated trees hold no two texts side by side. */
function mergeTexts(children: XmlChild[]): XmlChild[] {
  const out: XmlChild[] = []
  for (const child of children) {
    const last = out[out.length - 1]
    if (isText(child) && last !== undefined && isText(last)) {
      out[out.length - 1] = { text: last.text + child.text, cdata: false }
    } else out.push(child)
  }
  return out
}

const textArb = fc
  .string({ unit: 'binary', minLength: 1, maxLength: 12 })
  .filter(wellFormed)
  .map((text): XmlChild => ({ text, cdata: false }))
const opaqueArb = fc.uint8Array({ maxLength: 150 }).map((opaque): XmlChild => ({ opaque }))

const { root: documentArb } = fc.letrec((tie) => ({
  root: fc
    .array(tie('syncmlChild') as fc.Arbitrary<XmlChild>, { maxLength: 5 })
    .map((children) => el('SyncML', { xmlns: SYNCML_NS }, ...mergeTexts(children))),
  syncmlChild: fc.oneof(
    { depthSize: 'small', maxDepth: 6 },
    textArb,
    opaqueArb,
    tie('syncmlElement'),
    tie('metinfElement'),
  ),
  metinfChild: fc.oneof({ depthSize: 'small', maxDepth: 6 }, textArb, opaqueArb, tie('metinfElement')),
  syncmlElement: fc
    .tuple(fc.constantFrom(...PAGE0), fc.array(tie('syncmlChild') as fc.Arbitrary<XmlChild>, { maxLength: 4 }))
    .map(([name, children]): XmlChild => el(name, {}, ...mergeTexts(children))),
  metinfElement: fc
    .tuple(fc.constantFrom(...PAGE1), fc.array(tie('metinfChild') as fc.Arbitrary<XmlChild>, { maxLength: 3 }))
    .map(([name, children]): XmlChild => meta(name, ...mergeTexts(children))),
}))

t.test('random SyncML-shaped trees round-trip', async (t) => {
  fc.assert(
    fc.property(documentArb, (doc) => {
      const back = decodeWbxml(encodeWbxml(doc), { maxBytes: 1 << 20 })
      return back.ok && JSON.stringify(plain(back.value)) === JSON.stringify(plain(doc))
    }),
    { numRuns: 3000 },
  )
  t.pass('3000 documents round-tripped')
})

const ERROR_CODES: DecodeErrorCode[] = ['WBXML_SYNTAX', 'TOO_DEEP', 'TOO_MANY_ELEMENTS', 'TOO_LARGE']

/** Whatever decodes must encode again to the same document (the root namespace aside: we always write 1.2). */
function checkDecoded(bytes: Uint8Array, limits?: Partial<DecodeLimits>): boolean {
  const result = decodeWbxml(bytes, limits)
  if (!result.ok) {
    const at = result.error.at
    return ERROR_CODES.includes(result.error.code) && typeof at === 'number' && at >= 0 && at <= bytes.length
  }
  const again = decodeWbxml(encodeWbxml(result.value), { ...limits, maxBytes: 1 << 20 })
  if (!again.ok) return false
  if (again.value.attrs.xmlns !== undefined) again.value.attrs.xmlns = result.value.attrs.xmlns!
  return JSON.stringify(plain(again.value)) === JSON.stringify(plain(result.value))
}

t.test('mutated fixture encodings never throw, and what still decodes re-encodes', async (t) => {
  const dir = t.testdir()
  const seeds: Uint8Array[] = []
  for (const name of fixtureNames) {
    seeds.push(encodeWbxml(fixture(name)))
    seeds.push(libwbxmlEncode(dir, readFileSync(join(FIXTURES, name), 'utf8')))
  }
  seeds.push(encodeWbxml(everyTag))
  const edit = fc.record({
    kind: fc.constantFrom('set', 'flip', 'insert', 'delete', 'truncate'),
    at: fc.nat(),
    value: fc.integer({ min: 0, max: 255 }),
  })
  let decodedCount = 0
  fc.assert(
    fc.property(
      fc.nat({ max: seeds.length - 1 }),
      fc.array(edit, { minLength: 1, maxLength: 6 }),
      fc.option(
        fc.record({ maxDepth: fc.integer({ min: 1, max: 12 }), maxElements: fc.integer({ min: 1, max: 200 }) }),
      ),
      (seed, edits, limits) => {
        const bytes = [...seeds[seed]!]
        for (const e of edits) {
          const at = bytes.length === 0 ? 0 : e.at % bytes.length
          if (e.kind === 'set') bytes[at] = e.value
          else if (e.kind === 'flip') bytes[at] = (bytes[at] ?? 0) ^ (1 << e.value % 8)
          else if (e.kind === 'insert') bytes.splice(at, 0, e.value)
          else if (e.kind === 'delete') bytes.splice(at, 1)
          else bytes.length = at
        }
        const input = new Uint8Array(bytes)
        if (decodeWbxml(input).ok) decodedCount++
        return checkDecoded(input, limits ?? undefined)
      },
    ),
    { numRuns: 4000 },
  )
  t.ok(decodedCount > 0, `some mutants still decode (${decodedCount})`)
})

t.test('random bytes never throw', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (tail) => {
      const withHeader = new Uint8Array([...H, ...tail])
      return checkDecoded(tail) && checkDecoded(withHeader)
    }),
    { numRuns: 3000 },
  )
  t.pass('3000 inputs handled')
})
