/**
 * Codec throughput: decode + encode of a typical Package 2 (test/fixtures/syncml), as XML and as WBXML,
 * messages per second on one core. The floor is a generic XML parser (txml, a dev dependency) parsing the
 * same XML text and writing it back: what reading and writing the bytes costs without any SyncML meaning.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse, stringify } from 'txml'
import { decodeMessage, encodeMessage } from '../../src/codec/syncml.ts'
import { ratePerSecond, repeat, summarize, type Summary } from '../lib/stats.ts'

const XML_TYPE = 'application/vnd.syncml.dm+xml'
const WBXML_TYPE = 'application/vnd.syncml.dm+wbxml'

export interface CodecFigures {
  xml: Summary
  wbxml: Summary
  floor: Summary
  xmlBytes: number
  wbxmlBytes: number
}

export async function codecThroughput(root: string, options: { runs: number; warmup: number; durationMs: number }): Promise<CodecFigures> {
  const xml = new Uint8Array(readFileSync(join(root, 'test', 'fixtures', 'syncml', 'package2-management-commands.xml')))
  const decoded = decodeMessage(xml, XML_TYPE)
  if (!decoded.ok) throw new Error(`fixture does not decode: ${decoded.error.message}`)
  const wbxml = encodeMessage(decoded.value, 'wbxml')
  const roundTrip = (bytes: Uint8Array, type: string, encoding: 'xml' | 'wbxml') => () => {
    const message = decodeMessage(bytes, type)
    if (!message.ok) throw new Error(message.error.message)
    return encodeMessage(message.value, encoding)
  }
  const text = new TextDecoder()
  const encoder = new TextEncoder()
  const floor = () => encoder.encode(stringify(parse(text.decode(xml), { keepWhitespace: false }) as never))
  const sample = (once: () => unknown) => repeat(options.runs, options.warmup, () => ratePerSecond(options.durationMs, once))
  return {
    xml: summarize(await sample(roundTrip(xml, XML_TYPE, 'xml'))),
    wbxml: summarize(await sample(roundTrip(wbxml, WBXML_TYPE, 'wbxml'))),
    floor: summarize(await sample(floor)),
    xmlBytes: xml.byteLength,
    wbxmlBytes: wbxml.byteLength,
  }
}
