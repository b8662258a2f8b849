import t from 'tap'
import fc from 'fast-check'
import { readFileSync, readdirSync } from 'node:fs'
import { isDeepStrictEqual } from 'node:util'
import type { XmlElement } from '../src/codec/element.ts'
import type { Command, SyncMLMessage } from '../src/codec/syncml-model.ts'
import { decodeMessage, encodeMessage, messageFromElement } from '../src/codec/syncml.ts'
import { parseXml, serializeXml } from '../src/codec/xml.ts'

// Random input through the decoders: they must return (never throw, never run away: every input is bounded by the
// decode limits), and whatever decodes must survive being written and read again unchanged.

const FIXTURES = new URL('./fixtures/syncml/', import.meta.url)
const fixtures: Uint8Array[] = readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.xml'))
  .sort()
  .map((f) => new Uint8Array(readFileSync(new URL(f, FIXTURES))))
const utf8 = new TextEncoder()
/** What our own writer produces from a decoded message may be larger (escaping): read it back without limits. */
const ROOMY = { maxBytes: 1 << 24, maxDepth: 1 << 10, maxElements: 1 << 20 }

/** The reason of a malformed command is a diagnostic: only that it is malformed has to survive a round trip. */
function normalizeCommands(commands: Command[]): unknown[] {
  return commands.map((c) => {
    if (c.kind === 'Unknown') return { ...c, malformed: c.malformed === undefined ? undefined : true }
    if (c.kind === 'Atomic' || c.kind === 'Sequence') return { ...c, commands: normalizeCommands(c.commands) }
    return c
  })
}

function normalize(msg: SyncMLMessage): unknown {
  return { ...msg, body: normalizeCommands(msg.body) }
}

/**
 * Decodes the payload and, when it decodes, writes and reads it again: throws when the second reading differs
 * from the first. Returns whether the payload decoded.
 */
function checkRoundTrip(payload: Uint8Array): boolean {
  const first = decodeMessage(payload)
  if (!first.ok) return false
  const again = decodeMessage(encodeMessage(first.value, 'xml'), undefined, ROOMY)
  if (!again.ok) throw new Error(`re-decoding failed: ${again.error.code} ${again.error.message}`)
  const a = normalize(first.value)
  const b = normalize(again.value)
  if (!isDeepStrictEqual(a, b)) throw new Error(`differs:\n${fc.stringify(a)}\n${fc.stringify(b)}`)
  return true
}

/** Written, read and written again, a parsed document gives the same text (CDATA splits are stable). */
function xmlRoundTripHolds(text: string): boolean {
  const first = parseXml(text)
  if (!first.ok) return true
  const written = serializeXml(first.value)
  const again = parseXml(written, ROOMY)
  return again.ok && serializeXml(again.value) === written
}

// Markup fragments, so that random text reaches past the first syntax error into the interesting paths.
const XML_TOKENS = [
  '<a>', '</a>', '<b x="1">', '</b>', '<c/>', '<m:d xmlns:m="n">', '</m:d>', '&amp;', '&lt;', '&#x41;', '&#65;',
  '&bogus;', '&', '<![CDATA[', ']]>', '<!--', '-->', '<?pi x?>', '<?xml version="1.0"?>', '<!DOCTYPE a>',
  '<!DOCTYPE a [<!ENTITY e "x">]>', ' ', '\n', 'text', '"', "'", '=', '<', '>', '/', 'é', '\u{1F600}', '\uFEFF',
]

const SYNCML_TOKENS = [
  '<Item>', '</Item>', '<Data>', '</Data>', '<Data/>', '<![CDATA[', ']]>', '&amp;', '&lt;x&gt;', '<CmdID>7</CmdID>',
  '<CmdID>', '</CmdID>', '<Final/>', '<NoResp/>', '<MoreData/>', '<Sync><CmdID>9</CmdID></Sync>',
  '<Meta><Format xmlns="syncml:metinf">b64</Format></Meta>', '<Meta><Size xmlns="syncml:metinf">x</Size></Meta>',
  '<Target><LocURI>./a</LocURI></Target>', '<Source><LocName>n</LocName></Source>', '<Atomic><CmdID>5</CmdID>',
  '</Atomic>', '<Sequence>', '</Sequence>', '<Replace><CmdID>3</CmdID>', '</Replace>', '<Exec>', '</Exec>',
  '<Alert><CmdID>2</CmdID><Data>1230</Data>', '</Alert>', '<Status>', '</Status>', '<Chal><Meta/></Chal>',
  '<GwAddress>gw</GwAddress>', 'AAEC', '==', ' ', '\n', '<m:Type xmlns:m="syncml:metinf">t</m:Type>',
]

type Mutation =
  | { op: 'flip'; at: number; value: number }
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; length: number }

/** Positions are fractions of the input's length, so that one mutation list applies to inputs of any length. */
const position = fc.double({ min: 0, max: 1, noNaN: true })
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: position, value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: position }),
  fc.record({ op: fc.constant('insert' as const), at: position, bytes: fc.uint8Array({ maxLength: 8 }) }),
  fc.record({
    op: fc.constant('insert' as const),
    at: position,
    bytes: fc.constantFrom(...SYNCML_TOKENS).map((s) => utf8.encode(s)),
  }),
  fc.record({ op: fc.constant('delete' as const), at: position, length: fc.integer({ min: 1, max: 40 }) }),
)

function mutate(input: Uint8Array, mutations: Mutation[]): Uint8Array {
  let bytes = input
  for (const m of mutations) {
    const at = Math.min(bytes.length, Math.floor(m.at * bytes.length))
    if (m.op === 'flip' && at < bytes.length) {
      bytes = bytes.slice()
      bytes[at] = m.value
    } else if (m.op === 'truncate') bytes = bytes.slice(0, at)
    else if (m.op === 'insert') bytes = new Uint8Array([...bytes.subarray(0, at), ...m.bytes, ...bytes.subarray(at)])
    else if (m.op === 'delete') bytes = new Uint8Array([...bytes.subarray(0, at), ...bytes.subarray(at + m.length)])
  }
  return bytes
}

function returns(run: () => { ok: boolean }): boolean {
  const result = run()
  return result.ok === true || result.ok === false
}

/** Any code point, unpaired surrogates included; ASCII half the time. (fast-check's 'binary' unit is slow to start.) */
const anyCharacter = fc
  .oneof(fc.integer({ min: 0, max: 0x7f }), fc.integer({ min: 0, max: 0x10ffff }))
  .map((c) => String.fromCodePoint(c))

t.test('parseXml: random text returns, and what parses round-trips', async (t) => {
  fc.assert(
    fc.property(fc.string({ unit: anyCharacter, maxLength: 200 }), (text) => returns(() => parseXml(text)) && xmlRoundTripHolds(text)),
    { numRuns: 1500 },
  )
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom(...XML_TOKENS), maxLength: 40 }), (text) => {
      return returns(() => parseXml(text)) && returns(() => parseXml(text, { maxDepth: 3, maxElements: 5 })) && xmlRoundTripHolds(text)
    }),
    { numRuns: 2000 },
  )
  t.pass('3,500 cases')
})

t.test('decodeMessage: byte-mutated fixtures return, and what decodes round-trips', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: fixtures.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (index, mutations) => {
      const payload = mutate(fixtures[index]!, mutations)
      checkRoundTrip(payload)
      return returns(() => parseXml(new TextDecoder().decode(payload)))
    }),
    { numRuns: 2000 },
  )
  t.pass('2,000 cases')
})

// Well-formed pieces a tree mutation puts in, so that mutated messages stay XML and reach the SyncML reader.
const ELEMENT_PALETTE: XmlElement[] = [
  '<Item><Data>x</Data></Item>', '<CmdID>7</CmdID>', '<CmdID><x/></CmdID>', '<Final/>', '<NoResp/>', '<MoreData/>',
  '<Sync><CmdID>9</CmdID></Sync>', '<Meta><Format xmlns="syncml:metinf">b64</Format></Meta>',
  '<Meta><MaxMsgSize xmlns="syncml:metinf">12x</MaxMsgSize></Meta>', '<Data><![CDATA[<x>]]]]><![CDATA[>]]></Data>',
  '<Data><GwAddress>gw</GwAddress> tail</Data>', '<Data>AAEC</Data>', '<Target><LocURI>./a</LocURI></Target>',
  '<Source><LocName>n</LocName></Source>', '<Chal><Meta><NextNonce xmlns="syncml:metinf">AAAA</NextNonce></Meta></Chal>',
  '<Atomic><CmdID>5</CmdID><Get><CmdID>6</CmdID><Item><Target><LocURI>./a</LocURI></Target></Item></Get></Atomic>',
  '<Alert><CmdID>2</CmdID><Data>1230</Data><![CDATA[<GwAddress>gw</GwAddress>]]></Alert>', '<Cred><Data>QQ==</Data></Cred>',
].map((xml) => {
  const parsed = parseXml(xml)
  if (!parsed.ok) throw new Error(xml)
  return parsed.value
})
const NAMES = ['Alert', 'Status', 'Results', 'Get', 'Add', 'Replace', 'Exec', 'Atomic', 'Sequence', 'Item', 'Data', 'Meta', 'Put']
const TEXTS = ['', ' ', 'x', '0', '-1', '1230', '1226', 'b64', 'AAEC', '&<>', ']]>', '\r\n']

type TreeMutation = { op: 'remove' | 'duplicate' | 'text' | 'insert' | 'rename'; at: number; child: number; pick: number }
const treeMutation: fc.Arbitrary<TreeMutation> = fc.record({
  op: fc.constantFrom('remove' as const, 'duplicate' as const, 'text' as const, 'insert' as const, 'rename' as const),
  at: position,
  child: position,
  pick: fc.nat(),
})

function elementsOf(root: XmlElement): XmlElement[] {
  const all: XmlElement[] = []
  const queue = [root]
  while (queue.length > 0) {
    const e = queue.pop()!
    all.push(e)
    for (const c of e.children) if ('name' in c) queue.push(c)
  }
  return all
}

function mutateTree(root: XmlElement, mutations: TreeMutation[]): XmlElement {
  const tree = structuredClone(root)
  for (const m of mutations) {
    const all = elementsOf(tree)
    const target = all[Math.floor(m.at * all.length) % all.length]!
    const k = Math.floor(m.child * target.children.length)
    if (m.op === 'remove' && k < target.children.length) target.children.splice(k, 1)
    else if (m.op === 'duplicate' && k < target.children.length) target.children.splice(k, 0, structuredClone(target.children[k]!))
    else if (m.op === 'text') target.children.splice(k, 0, { text: TEXTS[m.pick % TEXTS.length]!, cdata: m.pick % 2 === 0 })
    else if (m.op === 'insert') target.children.splice(k, 0, structuredClone(ELEMENT_PALETTE[m.pick % ELEMENT_PALETTE.length]!))
    else if (m.op === 'rename' && target !== tree) target.name = NAMES[m.pick % NAMES.length]!
  }
  return tree
}

t.test('decodeMessage: tree-mutated fixtures return, and what decodes round-trips', async (t) => {
  const trees = fixtures.map((f) => {
    const parsed = parseXml(new TextDecoder().decode(f))
    if (!parsed.ok) throw new Error('fixture')
    return parsed.value
  })
  const count = { decoded: 0, all: 0 }
  fc.assert(
    fc.property(fc.integer({ min: 0, max: trees.length - 1 }), fc.array(treeMutation, { minLength: 1, maxLength: 5 }), (index, mutations) => {
      const payload = utf8.encode(serializeXml(mutateTree(trees[index]!, mutations)))
      count.all++
      if (checkRoundTrip(payload)) count.decoded++
      return true
    }),
    { numRuns: 2000 },
  )
  // Tree mutations keep the XML well-formed, so most of them must get past the parser into the SyncML reader.
  t.ok(count.decoded > count.all / 2, `${count.decoded} of ${count.all} mutated messages decoded`)
})

t.test('decodeMessage: the fixtures themselves round-trip', async (t) => {
  for (const [k, f] of fixtures.entries()) t.equal(checkRoundTrip(f), true, `fixture ${k}`)
})

t.test('decodeMessage: random bytes return, as XML and as WBXML', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, wbxml) => {
      const contentType = wbxml ? 'application/vnd.syncml.dm+wbxml' : undefined
      return returns(() => decodeMessage(bytes, contentType)) && (checkRoundTrip(bytes) || true)
    }),
    { numRuns: 2000 },
  )
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom(...SYNCML_TOKENS), maxLength: 30 }), (body) => {
      const hdr = '<SyncHdr><VerDTD>1.2</VerDTD><VerProto>DM/1.2</VerProto><SessionID>1</SessionID><MsgID>1</MsgID>' +
        '<Target><LocURI>a</LocURI></Target><Source><LocURI>b</LocURI></Source></SyncHdr>'
      checkRoundTrip(utf8.encode(`<SyncML>${hdr}<SyncBody>${body}</SyncBody></SyncML>`))
      return true
    }),
    { numRuns: 1500 },
  )
  t.pass('3,500 cases')
})

t.test('100,000 levels of nesting: TOO_DEEP at once, no stack overflow', async (t) => {
  const depth = 100_000
  const deep = '<a>'.repeat(depth) + '</a>'.repeat(depth)
  const roomy = { maxBytes: deep.length * 2 }
  const parsed = parseXml(deep, roomy)
  t.strictSame(parsed.ok ? 'parsed' : [parsed.error.code, parsed.error.at], ['TOO_DEEP', 32 * 3])
  const message = utf8.encode(`<SyncML><SyncHdr/><SyncBody>${'<Atomic>'.repeat(depth)}${'</Atomic>'.repeat(depth)}</SyncBody></SyncML>`)
  const decoded = decodeMessage(message, undefined, { maxBytes: message.length })
  t.equal(decoded.ok ? 'decoded' : decoded.error.code, 'TOO_DEEP', 'a SyncML message')
  const defaults = decodeMessage(utf8.encode(deep))
  t.equal(defaults.ok ? 'decoded' : defaults.error.code, 'TOO_LARGE', 'the default byte limit comes first')

  // A tree built by hand has no parser in front of it: the SyncML reader bounds Atomic nesting itself.
  let atomic: XmlElement = { name: 'Get', attrs: {}, children: [] }
  for (let k = 0; k < depth; k++) atomic = { name: 'Atomic', attrs: {}, children: [{ name: 'CmdID', attrs: {}, children: [{ text: '1', cdata: false }] }, atomic] }
  const hdr = parseXml(
    '<SyncHdr><VerDTD>1.2</VerDTD><VerProto>DM/1.2</VerProto><SessionID>1</SessionID><MsgID>1</MsgID>' +
      '<Target><LocURI>a</LocURI></Target><Source><LocURI>b</LocURI></Source></SyncHdr>',
  )
  if (!hdr.ok) throw new Error('header')
  const root: XmlElement = { name: 'SyncML', attrs: {}, children: [hdr.value, { name: 'SyncBody', attrs: {}, children: [atomic] }] }
  const read = messageFromElement(root)
  t.match(read, { ok: true, value: { body: [{ kind: 'Atomic' }] } }, 'hand-built nesting is read without overflow')
  let innermost: Command | undefined = read.ok ? read.value.body[0] : undefined
  while (innermost?.kind === 'Atomic') innermost = innermost.commands[0]
  t.match(innermost, { kind: 'Unknown', name: 'Atomic', malformed: /nested deeper than 16/ }, 'and refused past 16 levels')

  // Item data holding a deep element tree is written back without recursion.
  let data: XmlElement = { name: 'x', attrs: {}, children: [] }
  for (let k = 0; k < depth; k++) data = { name: 'x', attrs: {}, children: [data] }
  const item = { name: 'Item', attrs: {}, children: [{ name: 'Data', attrs: {}, children: [data] }] }
  const replace: XmlElement = { name: 'Replace', attrs: {}, children: [{ name: 'CmdID', attrs: {}, children: [{ text: '2', cdata: false }] }, item] }
  const withData = messageFromElement({ ...root, children: [hdr.value, { name: 'SyncBody', attrs: {}, children: [replace] }] })
  const value = withData.ok && withData.value.body[0]?.kind === 'Replace' ? withData.value.body[0].items[0]?.data : undefined
  t.equal(typeof value === 'string' ? value.length : value, '<x></x>'.length * depth + '<x/>'.length)
})
