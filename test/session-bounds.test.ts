// The session engine's bounds (binding.md §11): every message of the device fits the smaller of the party's
// MaxMsgSize and the broker's packet size, announced or not, fitted in time linear in the message; a message whose
// Statuses alone cannot fit is refused whole; a party's pending Generic Alerts are bounded.
import { durableState } from './helpers/stores.ts'
import t from 'tap'
import type { Command, Results, SyncMLMessage } from '../src/codec/syncml-model.ts'
import { encodeMessage } from '../src/codec/syncml.ts'
import { messageLimit, sessionConstants } from '../src/session/constants.ts'
import { makeStatus, type ReplyEntry } from '../src/session/reply.ts'
import { fitToSize, type Encoded } from '../src/session/size.ts'
import type { InboundMessage } from '../src/session/port.ts'
import { add, alert, createHarness, get, headerStatus, Party, SERVER, settle, status, type Harness } from './helpers/session-harness.ts'

const OPEN_ACL = 'Add=*&Delete=*&Exec=*&Get=*&Replace=*'

async function setup(constants: Parameters<typeof createHarness>[0] extends infer O ? O extends { constants?: infer C } ? C : never : never = {}): Promise<{ h: Harness; server: Party }> {
  const h = await createHarness({ constants })
  t.equal(h.tree.add('./Vendor', { format: 'node' }, 'device'), 200)
  t.equal(h.tree.replace('./Vendor?prop=ACL', { format: 'chr', data: OPEN_ACL }, 'device'), 200)
  await h.tree.flush()
  return { h, server: new Party(SERVER) }
}

/** The party's message with its SyncHdr's MaxMsgSize changed (a number) or taken out (undefined). */
function withMaxMsgSize(inbound: InboundMessage, size: number | undefined): InboundMessage {
  const text = Buffer.from(inbound.payload).toString('utf8')
  const meta = /<Meta><MaxMsgSize xmlns="syncml:metinf">65536<\/MaxMsgSize><\/Meta>/
  if (!meta.test(text)) throw new Error('the harness message has no MaxMsgSize to change')
  const changed = text.replace(meta, size === undefined ? '' : `<Meta><MaxMsgSize xmlns="syncml:metinf">${size}</MaxMsgSize></Meta>`)
  return { ...inbound, payload: new Uint8Array(Buffer.from(changed, 'utf8')) }
}

let sessions = 0x300
/** Pushes a session's first message (after the challenge a spent nonce draws, binding.md §6); the device's answer. */
async function push(h: Harness, server: Party, body: Command[], maxMsgSize?: number): Promise<{ reply: SyncMLMessage; size: number; sessionId: string; msgId: number }> {
  const sessionId = (sessions++).toString(16).toUpperCase()
  const send = async (msgId: number) => {
    const before = h.sent.length
    await h.manager.receive(withMaxMsgSize(server.message({ sessionId, msgId, body }), maxMsgSize))
    if (h.sent.length !== before + 1) throw new Error(`expected one answer, got ${h.sent.length - before}`)
    const reply = h.decoded()
    server.learnNonce(reply)
    return { reply, size: h.sent.at(-1)!.payload.length, sessionId, msgId }
  }
  const first = await send(1)
  return headerStatus(first.reply)?.data === '401' ? send(2) : first
}

/** Ends the session the party pushed: its Statuses for the device's answer, which no reply follows (binding.md §3). */
async function close(h: Harness, server: Party, pushed: { reply: SyncMLMessage; sessionId: string; msgId: number }): Promise<void> {
  const before = h.sent.length
  await h.manager.receive(server.message({ sessionId: pushed.sessionId, msgId: pushed.msgId + 1, body: [status(pushed.reply.hdr.msgId, '0', 'SyncHdr', 200)] }))
  await settle(5)
  if (h.sent.length !== before) throw new Error('the device answered a Status-only message')
}

const codes = (msg: SyncMLMessage, cmd: string) => msg.body.filter((c) => c.kind === 'Status' && c.cmd === cmd).map((c) => c.kind === 'Status' && c.data)
const resultsOf = (msg: SyncMLMessage) => msg.body.filter((c): c is Results => c.kind === 'Results')

t.test('a reply fits the broker\'s packet size when the party announces no MaxMsgSize, or a larger one', async (t) => {
  const { h, server } = await setup({ maxMsgSize: 16384 })
  for (let k = 0; k < 8; k++) t.equal(h.tree.add(`./Vendor/big${k}`, { format: 'chr', data: String(k).repeat(3000) }, 'device'), 200)
  const gets = Array.from({ length: 8 }, (_, k) => get(`./Vendor/big${k}`))
  const limit = messageLimit(sessionConstants({ maxMsgSize: 16384 }), undefined)
  t.equal(limit, 16384 - 512, 'the broker\'s packet size less room for the MQTT header')
  for (const announced of [undefined, 1_000_000]) {
    const pushed = await push(h, server, gets, announced)
    const { reply, size } = pushed
    t.ok(size <= limit, `MaxMsgSize ${announced ?? 'not announced'}: ${size} bytes ≤ ${limit}`)
    const got = codes(reply, 'Get')
    t.equal(got.filter((c) => c === '200').length, resultsOf(reply).length, 'a Get answered 200 has its Results')
    t.ok(got.filter((c) => c === '413').length >= 4, 'the others are answered 413')
    t.equal(got.length, 8, 'every Get has its Status')
    await close(h, server, pushed)
  }
})

t.test('fitting is linear in the message: each entry that may give way is encoded once, the message twice', async (t) => {
  const constants = sessionConstants()
  const hdr = { verDTD: '1.2', verProto: 'DM/1.2', sessionId: '1', msgId: '1', target: { locUri: 'srv' }, source: { locUri: 'dev' } }
  const entries: ReplyEntry[] = []
  for (let k = 0; k < 40; k++) {
    entries.push({ kind: 'status', status: makeStatus('1', String(k + 1), 'Get', 200, { targetRef: `./Big/${k}` }), write: false })
    entries.push({ kind: 'results', results: { kind: 'Results', cmdId: '', msgRef: '1', cmdRef: String(k + 1), targetRefs: [], sourceRefs: [], items: [{ source: { locUri: `./Big/${k}` }, data: 'x'.repeat(50_000 + k) }] } })
  }
  let encodes = 0
  let bytes = 0
  const encode = (list: ReplyEntry[]): Encoded => {
    encodes += 1
    const body = list.map((e, i): Command => (e.kind === 'status' ? { ...e.status, cmdId: String(i + 1) } : e.kind === 'results' ? { ...e.results, cmdId: String(i + 1) } : { ...e.command, cmdId: String(i + 1) }))
    const payload = encodeMessage({ hdr, body, final: true }, 'xml')
    bytes += payload.length
    return { payload, refs: [] }
  }
  const whole = encode(entries).payload.length
  encodes = 0
  bytes = 0
  const limit = messageLimit(constants, 200_000)
  const fitted = fitToSize(entries, limit, encode)
  t.notOk(fitted.oversize)
  t.ok(fitted.payload.length <= limit, `${fitted.payload.length} ≤ ${limit}`)
  t.ok(encodes <= 40 + 3, `${encodes} encodings for 40 Results`)
  // Re-encoding the whole message for each Result dropped costs some 20 times the message here.
  t.ok(bytes <= 3 * whole, `${bytes} bytes encoded for a ${whole}-byte message`)
  const text = Buffer.from(fitted.payload).toString('utf8')
  t.equal(text.split('<Results>').length - 1, 1, 'the one Result that fits stays (the smallest)')
  t.match(text, /x{50000}<\/Data>/)
  t.equal(text.split('<Data>413</Data>').length - 1, 39, 'the other Gets are answered 413')
})

t.test('a message whose Statuses alone cannot fit is refused whole with 413 on its SyncHdr, and nothing of it runs', async (t) => {
  const { h, server } = await setup({ maxMsgSize: 8192 })
  const seen: string[] = []
  h.manager.registerAlert('1299', async (ctx) => {
    seen.push(ctx.session.msgId)
    await ctx.sendGenericAlert({ type: 'urn:x:answer', data: 'queued by the message' })
    return 200
  })
  const adds = Array.from({ length: 200 }, (_, k) => add(`./Vendor/n${k}`, 'v'))
  const { reply, size, sessionId, msgId } = await push(h, server, [alert('1299'), ...adds])
  t.ok(size <= messageLimit(sessionConstants({ maxMsgSize: 8192 }), 65536), `the answer fits (${size} bytes)`)
  t.equal(headerStatus(reply)?.data, '413', 'its SyncHdr is answered 413')
  t.same(reply.body.map((c) => c.kind), ['Status'], 'and nothing else')
  t.ok(headerStatus(reply)?.chal?.meta.nextNonce, 'with the nonce for the party\'s next message')
  t.same(h.tree.children('./Vendor'), [], 'no Add ran')
  t.same(h.state.pendingAlerts(SERVER.serverId), [], 'the alert the message queued is taken out again')
  t.equal(seen.length, 1)
  t.equal(h.log.lines.filter((l) => l.msg === 'message refused: its Statuses alone would not fit one message').length, 1, 'one line says why')

  // The party goes on in the same session with fewer commands a message.
  const sentBefore = h.sent.length
  await h.manager.receive(server.message({ sessionId, msgId: msgId + 1, body: adds.slice(0, 20) }))
  t.equal(h.sent.length, sentBefore + 1)
  const next = h.decoded()
  t.equal(headerStatus(next)?.data, '200')
  t.same(codes(next, 'Add'), Array(20).fill('200'), 'a smaller message of the same session runs')
  t.equal(h.tree.get('./Vendor/n19', 'device').status, 200)
})

t.test('a refusal of a message of many commands is its SyncHdr\'s Status alone when a Status each would not fit', async (t) => {
  const { h, server } = await setup({ maxMsgSize: 4096 })
  const adds = Array.from({ length: 200 }, (_, k) => add(`./Vendor/n${k}`, 'v'))
  await h.manager.receive(server.message({ sessionId: 'F00', msgId: 1, body: adds, cred: 'bad' }))
  t.equal(h.sent.length, 1)
  const refusal = h.decoded()
  t.ok(h.sent[0]!.payload.length <= 4096 - 512, `${h.sent[0]!.payload.length} bytes`)
  t.equal(headerStatus(refusal)?.data, '401')
  t.same(refusal.body.map((c) => c.kind), ['Status'])
})

t.test('Package 1 fits too: queued alerts that do not fit stay queued for the next session', async (t) => {
  const h = await createHarness({ constants: { maxMsgSize: 8192 } })
  for (let k = 0; k < 6; k++) await h.manager.queueGenericAlert(SERVER.serverId, { type: 'urn:x:big', data: String(k).repeat(2000) })
  await h.manager.openSession(SERVER.serverId, { alert: 1201 })
  t.equal(h.sent.length, 1)
  t.ok(h.sent[0]!.payload.length <= 8192 - 512, `Package 1 is ${h.sent[0]!.payload.length} bytes`)
  const carried = h.decoded().body.filter((c) => c.kind === 'Alert' && c.data === '1226').length
  t.ok(carried >= 1 && carried < 6, `${carried} of the 6 alerts go`)
  t.equal(h.state.pendingAlerts(SERVER.serverId).length, 6, 'all stay queued until acknowledged')
})

t.test('a party\'s pending alerts are bounded: the oldest that may go goes; kept types never do', async (t) => {
  const h = await createHarness({ constants: { maxPendingAlertsPerParty: 4 } })
  h.manager.keepQueued('urn:x:kept')
  const types = () => h.state.pendingAlerts(SERVER.serverId).map((p) => `${p.alert.type.slice(6)}:${p.alert.data}`)
  await h.manager.queueGenericAlert(SERVER.serverId, { type: 'urn:x:kept', data: 'k1' })
  for (let k = 1; k <= 6; k++) await h.manager.queueGenericAlert(SERVER.serverId, { type: 'urn:x:list', data: `l${k}` })
  t.same(types(), ['kept:k1', 'list:l4', 'list:l5', 'list:l6'], 'the oldest droppable ones went, the kept one stayed')
  for (let k = 2; k <= 5; k++) await h.manager.queueGenericAlert(SERVER.serverId, { type: 'urn:x:kept', data: `k${k}` })
  t.same(types(), ['kept:k1', 'kept:k2', 'kept:k3', 'kept:k4', 'kept:k5'], 'a kept one is queued past the bound when none may go')
  const dropped = await h.manager.queueGenericAlert(SERVER.serverId, { type: 'urn:x:list', data: 'l7' })
  t.equal(dropped, undefined, 'a new one that may go is not queued then')
  t.same(types(), ['kept:k1', 'kept:k2', 'kept:k3', 'kept:k4', 'kept:k5'])
  t.ok((await durableState(h.stateStore)).pendingAlerts(SERVER.serverId).some((p) => p.alert.data === 'k5'), 'saved')
  const lines = h.log.lines.filter((l) => l.msg === 'pending alert dropped: too many waiting for the party')
  t.equal(lines.length, 1, 'one line for the burst (rate-limited)')
  h.clock.advance(1000)
  await h.manager.queueGenericAlert(SERVER.serverId, { type: 'urn:x:list', data: 'l8' })
  const next = h.log.lines.filter((l) => l.msg === 'pending alert dropped: too many waiting for the party')
  t.equal(next.length, 2)
  t.equal(next[1]!.suppressed, 6, 'which counts the lines left out (l2, l3, l4, l5, l6 and l7)')
})

t.test('an alert in an answer that the full queue does not take still goes in the answer', async (t) => {
  const { h, server } = await setup({ maxPendingAlertsPerParty: 1 })
  h.manager.keepQueued('urn:x:kept')
  await h.manager.queueGenericAlert(SERVER.serverId, { type: 'urn:x:kept', data: 'k' })
  h.manager.registerAlert('1299', async (ctx) => {
    await ctx.sendGenericAlert({ type: 'urn:x:answer', data: 'answered' })
    return 200
  })
  const pushed = await push(h, server, [alert('1299')])
  t.ok(pushed.reply.body.some((c) => c.kind === 'Alert' && c.data === '1226'), 'the Generic Alert is in the answer')
  t.same(h.state.pendingAlerts(SERVER.serverId).map((p) => p.alert.data), ['k'], 'but not queued')
  await close(h, server, pushed)
})

t.test('warnings a party\'s flood can repeat are logged once a second, with the count of those left out', async (t) => {
  const { h, server } = await setup()
  const malformed = Array.from({ length: 30 }, (_, k) => `<Replace><CmdID>${100 + k}</CmdID></Replace>`).join('')
  const sessionId = 'B1'
  const send = async (msgId: number) => {
    const inbound = server.message({ sessionId, msgId, body: [get('./DevInfo/Mod')] })
    const text = Buffer.from(inbound.payload).toString('utf8').replace('<Final/>', `${malformed}<Final/>`)
    await h.manager.receive({ ...inbound, payload: new Uint8Array(Buffer.from(text, 'utf8')) })
    const reply = h.decoded()
    server.learnNonce(reply)
    return reply
  }
  let reply = await send(1)
  if (headerStatus(reply)?.data === '401') reply = await send(2)
  t.equal(codes(reply, 'Replace').filter((c) => c === '400').length, 30, 'each malformed command is answered 400')
  const lines = () => h.log.lines.filter((l) => l.msg === 'malformed command')
  t.equal(lines().length, 1, 'one line for the 30')
  h.clock.advance(1000)
  await send(Number(reply.hdr.msgId) + 1)
  t.equal(lines().length, 2)
  t.equal(lines()[1]!.suppressed, 29)

  // Before authentication: a message of the session with an unusable MsgID, as anyone on the broker can send it.
  for (let k = 0; k < 20; k++) {
    const inbound = server.message({ sessionId, msgId: 1, body: [get('./DevInfo/Mod')] })
    const text = Buffer.from(inbound.payload).toString('utf8').replace('<MsgID>1</MsgID>', '<MsgID>0</MsgID>')
    await h.manager.receive({ ...inbound, payload: new Uint8Array(Buffer.from(text, 'utf8')) })
  }
  t.equal(h.log.lines.filter((l) => l.msg === 'message with an unusable MsgID dropped').length, 1, 'one line for 20')
})
