/**
 * Fitting a reply to a MaxMsgSize (binding.md §11): the answer to 40 Gets of a 50 KB leaf under a MaxMsgSize of
 * 64,000 bytes, composed as the session composes it (`composeMessage`: encode, measure what may give way, drop the
 * largest Results, encode again). The floor is one encoding of the whole answer before fitting: a single pass over
 * it. Linear fitting stays within a small multiple of it; before, every Result dropped cost an encoding of the
 * whole message (40 Gets of a 50 KB leaf: a minute).
 */
import { sessionConstants } from '../../src/session/constants.ts'
import { composeMessage, type ComposeInput } from '../../src/session/outbound.ts'
import { makeStatus, type ReplyEntry } from '../../src/session/reply.ts'
import { encodeMessage } from '../../src/codec/syncml.ts'
import type { Command } from '../../src/codec/syncml-model.ts'
import { repeat, summarize, type Summary } from '../lib/stats.ts'

const GETS = 40
const LEAF_BYTES = 50_000
const MAX_MSG_SIZE = 64_000

export interface FittingFigures {
  compose: Summary
  floor: Summary
  replyBytes: number
  wholeBytes: number
}

function entries(): ReplyEntry[] {
  const list: ReplyEntry[] = []
  for (let k = 1; k <= GETS; k++) {
    list.push({ kind: 'status', status: makeStatus('1', String(k), 'Get', 200, { targetRef: './Vendor/blob' }), write: false })
    list.push({ kind: 'results', results: { kind: 'Results', cmdId: '', msgRef: '1', cmdRef: String(k), targetRefs: [], sourceRefs: [], items: [{ source: { locUri: './Vendor/blob' }, data: 'b'.repeat(LEAF_BYTES) }] } })
  }
  return list
}

/** Milliseconds per call of `once`, over at least `minMs`. */
function msPerCall(once: () => unknown, minMs: number): number {
  const start = performance.now()
  let calls = 0
  while (performance.now() - start < minMs || calls < 3) {
    once()
    calls++
  }
  return (performance.now() - start) / calls
}

export async function fittingCost(options: { runs: number; warmup: number; durationMs: number }): Promise<FittingFigures> {
  const input: ComposeInput = {
    constants: sessionConstants(),
    deviceId: 'mac:01-ab-34-ef-69-0c',
    party: 'http://dms.example.com',
    account: undefined,
    sessionId: '1',
    msgId: 2,
    encoding: 'xml',
    auth: undefined,
    headerStatus: makeStatus('1', '0', 'SyncHdr', 200, { targetRef: 'mac:01-ab-34-ef-69-0c', sourceRef: 'http://dms.example.com' }),
    entries: entries(),
    partyMaxMsgSize: MAX_MSG_SIZE,
  }
  const reply = composeMessage(input).message.payload
  const hdr = { verDTD: '1.2', verProto: 'DM/1.2', sessionId: '1', msgId: '2', target: { locUri: input.party }, source: { locUri: input.deviceId } }
  const body = input.entries.map((e, i): Command => (e.kind === 'status' ? { ...e.status, cmdId: String(i + 1) } : e.kind === 'results' ? { ...e.results, cmdId: String(i + 1) } : { ...e.command, cmdId: String(i + 1) }))
  const encodeWhole = () => encodeMessage({ hdr, body, final: true }, 'xml')
  const sample = (once: () => unknown) => repeat(options.runs, options.warmup, async () => msPerCall(once, options.durationMs))
  return {
    compose: summarize(await sample(() => composeMessage(input))),
    floor: summarize(await sample(encodeWhole)),
    replyBytes: reply.length,
    wholeBytes: encodeWhole().length,
  }
}
