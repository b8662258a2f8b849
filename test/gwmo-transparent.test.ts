import t, { type Test } from 'tap'
import { NotificationMemory } from '../src/gwmo/notification-memory.ts'
import { NotificationHandler, type NotificationOutcome } from '../src/gwmo/transparent.ts'
import { beginRun, endRun } from '../src/runtime/unclean-stop.ts'
import type { AgentState } from '../src/session/agent-state.ts'
import { findAccount, setNonce } from '../src/tree/accounts.ts'
import { MemoryStore } from '../src/store/index.ts'
import { durableState, failingStore } from './helpers/stores.ts'
import type { InboundMessage } from '../src/session/port.ts'
import { buildNotification, type NotificationFields } from './peers/notification.ts'
import { AUTH_MD5, md5Digest } from './peers/auth.ts'
import { buildMessage, type OutCommand } from './peers/syncml.ts'
import { DEVICE, gwmoWorld, memoryState, SERVER_SECRET, type PartySpec, type World } from './helpers/gwmo-harness.ts'

const SRV = 'http://www.someDMServer.com'
const GW = 'http://gw.local'
const ACCOUNTS: PartySpec[] = [
  { x: 'srv', serverId: SRV },
  { x: 'gw', serverId: GW, role: 'gateway' },
]
const STORED = new Uint8Array(Buffer.from('stored-server-nonce'))

async function world(): Promise<World> {
  const w = await gwmoWorld({ accounts: ACCOUNTS })
  const account = findAccount(w.tree, SRV)!
  if (setNonce(w.tree, account.serverEntries[0]!, STORED) !== 200) throw new Error('cannot store the server nonce')
  return w
}

function notification(fields: Partial<NotificationFields> & { sessionId: number }, nonce: Uint8Array = STORED, password = SERVER_SECRET): InboundMessage {
  const bytes = buildNotification({ serverId: SRV, ...fields }, password, nonce)
  return { channel: 'notification', payload: new Uint8Array(bytes), contentType: 'application/vnd.syncml.notification', properties: {} }
}

/** The Package 1 messages the device sent to the server: their SessionID and session alert. */
function package1s(w: World, server = SRV) {
  return w.to(server).map((s) => ({
    sessionId: s.message.hdr.sessionId,
    msgId: s.message.hdr.msgId,
    alert: s.message.commands.find((c) => c.name === 'Alert')?.data,
  }))
}

t.test('a valid notification opens a session with Alert 1200 and the notification session id', async (t) => {
  const w = await world()
  const outcome = await w.gwmo.onNotification(notification({ sessionId: 0x0abc }))
  t.same(outcome, { ok: true, serverId: SRV, sessionId: 'ABC', nonce: 'stored' })
  await w.settle()
  t.same(package1s(w), [{ sessionId: 'ABC', msgId: '1', alert: '1200' }], 'upper-case hex without leading zeros')
  const p1 = w.to(SRV)[0]!.message
  t.ok(p1.commands.some((c) => c.name === 'Replace' && c.items.some((i) => i.source === './DevInfo/DevId')), 'DevInfo in Package 1')
  await w.stop()
})

// Finding 7 (replay): the default nonce was accepted at once, so any captured default-nonce notification verified.
t.test('the default nonce, in both forms, is tried only once the server is out of step', async (t) => {
  for (const [nonce, name] of [[new Uint8Array(4), 'default-bytes'], [new Uint8Array(Buffer.from('0x00000000')), 'default-text']] as const) {
    const w = await world()
    t.match(await w.gwmo.onNotification(notification({ sessionId: 0x10 }, nonce)), { ok: false, reason: 'bad-digest' },
      `${name}: refused while the server is in step, and that puts it out of step`)
    t.match(await w.gwmo.onNotification(notification({ sessionId: 0x10 }, nonce)), { ok: true, nonce: name },
      `${name}: accepted once it is out of step`)
    await w.settle()
    t.same(package1s(w).map((p) => p.alert), ['1200'])
    await w.stop()
  }
})

t.test('a notification handled right behind one that failed sees the server out of step', async (t) => {
  const w = await world()
  // Both arrive before either is done with: the second is checked once the first has marked the server.
  const failed = w.gwmo.onNotification(notification({ sessionId: 0x11 }, new Uint8Array(Buffer.from('some-other-nonce'))))
  const retried = w.gwmo.onNotification(notification({ sessionId: 0x11 }, new Uint8Array(4)))
  t.match(await failed, { ok: false, reason: 'bad-digest' })
  t.match(await retried, { ok: true, nonce: 'default-bytes' }, 'the default nonce is tried')
  await w.stop()
})

t.test('a bad digest, an unknown server, a gateway, a malformed packet: logged and dropped, nothing sent', async (t) => {
  const w = await world()
  const cases: Array<[InboundMessage, string]> = [
    [notification({ sessionId: 1 }, STORED, 'wrong-password'), 'bad-digest'],
    [notification({ sessionId: 2 }, new Uint8Array(Buffer.from('some-other-nonce'))), 'bad-digest'],
    [notification({ sessionId: 3, serverId: 'http://unknown.example' }), 'unknown-server'],
    [notification({ sessionId: 4, serverId: GW }, new Uint8Array(0)), 'gateway'],
    [{ channel: 'notification', payload: new Uint8Array(10), properties: {} }, 'malformed'],
    [notification({ sessionId: 0 }), 'malformed'],
  ]
  for (const [message, reason] of cases) {
    w.clock.advance(2_000) // past the log limit, so that each drop has its line
    const outcome = await w.gwmo.onNotification(message)
    t.match(outcome, { ok: false, reason }, reason)
  }
  await w.settle()
  t.same(w.sent, [], 'no session, no answer')
  t.equal(w.log.lines.filter((l) => l.msg === 'notification dropped').length, cases.length)
  t.notOk(w.log.text().includes(SERVER_SECRET), 'no secret in the logs')
  await w.stop()
})

t.test('an account without server credentials cannot trigger a session', async (t) => {
  const w = await world()
  t.equal(w.tree.delete('./DMAcc/srv/AppAuth/2', 'device'), 200)
  t.match(await w.gwmo.onNotification(notification({ sessionId: 5 })), { ok: false, reason: 'no-credentials' })
  await w.settle()
  t.same(w.sent, [])
  await w.stop()
})

t.test('the same session id twice opens one session, even after that session ended', async (t) => {
  const w = await world()
  const message = notification({ sessionId: 0x2a })
  await w.gwmo.onNotification(message)
  await w.gwmo.onNotification(message)
  await w.settle()
  t.same(package1s(w).map((p) => p.sessionId), ['2A'])
  await w.party(SRV).closeAll()
  await w.gwmo.onNotification(message)
  await w.settle()
  t.same(package1s(w).map((p) => p.sessionId), ['2A'], 'a late repeat opens nothing')
  // The session may have given the server a fresh nonce; its next notification uses whatever is stored now.
  const current = w.tree.readSecret(`${findAccount(w.tree, SRV)!.serverEntries[0]!.uri}/AAuthData`) as Uint8Array
  t.match(await w.gwmo.onNotification(notification({ sessionId: 0x2b }, current)), { ok: true, nonce: 'stored' })
  await w.settle()
  t.same(package1s(w).map((p) => p.sessionId), ['2A', '2B'], 'another id does')
  await w.stop()
})

/**
 * A session the device opens for a notification, whose server's first answer is refused (a Cred made with a nonce
 * the device never gave): the refusal's nonce, and the server's answer made with any nonce.
 */
async function refusedSession(w: World, sessionId: number) {
  t.match(await w.gwmo.onNotification(notification({ sessionId })), { ok: true })
  await w.settle()
  const package1 = w.to(SRV).at(-1)!.message
  const answer = (msgId: string, nonce: Uint8Array): InboundMessage => {
    const statuses: OutCommand[] = [
      { name: 'Status', msgRef: '1', cmdRef: '0', cmd: 'SyncHdr', data: '212', targetRefs: [DEVICE], sourceRefs: [SRV] },
      ...package1.commands.map((c): OutCommand => ({ name: 'Status', msgRef: '1', cmdRef: c.cmdId, cmd: c.name, data: '200' })),
    ]
    const hdr = { sessionId: package1.hdr.sessionId, msgId, target: DEVICE, source: SRV, locName: SRV, cred: { type: AUTH_MD5, data: md5Digest(SRV, SERVER_SECRET, nonce) } }
    return { channel: 'dm', payload: new Uint8Array(Buffer.from(buildMessage(hdr, statuses).xml)), contentType: 'application/vnd.syncml.dm+xml', properties: {} }
  }
  await w.sessions.receive(answer('1', new Uint8Array(Buffer.from('a-nonce-never-handed-out'))))
  await w.settle()
  const refusal = w.to(SRV).at(-1)!.message.commands.find((c) => c.name === 'Status' && c.cmdRef === '0')
  if (refusal?.data !== '401' || refusal.chal?.nextNonce === undefined) throw new Error('the server\'s answer was not refused with a Chal')
  return { answer, nonce: new Uint8Array(Buffer.from(refusal.chal.nextNonce, 'base64')) }
}

// binding.md §6: a refusal's nonce is stored once the party's message made with it verifies. A server that sends
// that message and then a notification made with the same nonce, or a notification made with the stored nonce and
// then that message, has both checked in that order, whichever the device gets to first.
t.test('a notification is checked after the messages of its server that came before it', async (t) => {
  const w = await world()
  const { answer, nonce } = await refusedSession(w, 0x30)
  const resent = w.sessions.receive(answer('2', nonce))
  const outcome = await w.gwmo.onNotification(notification({ sessionId: 0x31 }, nonce))
  await resent
  t.match(outcome, { ok: true, nonce: 'stored' }, 'the notification verifies with the nonce the message before it proved')
  await w.settle()
  t.same(package1s(w).filter((p) => p.alert === '1200').map((p) => p.sessionId), ['30', '31'], 'and opens its session')
  await w.stop()
})

t.test('a notification is checked before the messages of its server that come after it', async (t) => {
  const w = await world()
  const { answer, nonce } = await refusedSession(w, 0x32)
  const outcome = w.gwmo.onNotification(notification({ sessionId: 0x33 }, STORED))
  await w.sessions.receive(answer('2', nonce))
  t.match(await outcome, { ok: true, nonce: 'stored' }, 'the notification verifies with the nonce stored when it came')
  await w.settle()
  t.same(package1s(w).filter((p) => p.alert === '1200').map((p) => p.sessionId), ['32', '33'], 'and opens its session')
  await w.stop()
})

t.test('a notification forwarded by the gateway is the same bytes: checked with the server credentials', async (t) => {
  const w = await world()
  // The gateway forwards the server's Package 0 unchanged; a gateway re-signing it with its own secret fails.
  const forged = buildNotification({ serverId: SRV, sessionId: 0x77 }, 'gateway-secret', STORED)
  t.match(await w.gwmo.onNotification({ channel: 'notification', payload: new Uint8Array(forged), properties: {} }), { ok: false, reason: 'bad-digest' })
  t.match(await w.gwmo.onNotification(notification({ sessionId: 0x78 })), { ok: true })
  await w.stop()
})

t.test('odd version values are logged, not refused', async (t) => {
  for (const version of [10, 12, 0, 1023]) {
    const w = await world()
    t.match(await w.gwmo.onNotification(notification({ sessionId: 0x31, version })), { ok: true }, `version ${version}`)
    t.ok(w.log.lines.some((l) => l.msg === 'notification with an unusual version accepted' && l.version === version))
    await w.stop()
  }
  const w = await world()
  await w.gwmo.onNotification(notification({ sessionId: 0x31, version: 11 }))
  t.notOk(w.log.lines.some((l) => l.msg === 'notification with an unusual version accepted'), '11 is the usual one')
  await w.stop()
})

t.test('a flood of bad notifications gives a bounded number of log lines', async (t) => {
  const w = await world()
  for (let k = 0; k < 200; k++) await w.gwmo.onNotification(notification({ sessionId: 1 + k }, STORED, 'wrong'))
  const lines = w.log.lines.filter((l) => l.msg === 'notification dropped')
  t.equal(lines.length, 1, 'one line within the interval')
  w.clock.advance(1_000)
  await w.gwmo.onNotification(notification({ sessionId: 999 }, STORED, 'wrong'))
  const after = w.log.lines.filter((l) => l.msg === 'notification dropped')
  t.equal(after.length, 2)
  t.equal(after[1]!.dropped, 200, 'the next line counts the drops it stands for')
  t.same(w.sent, [])
  await w.stop()
})

// ---------------------------------------------------------------------------------------------------------------
// Replay memory and the out-of-step rule (binding.md §6), on the handler alone: its sessions are only recorded.

const HOUR = 60 * 60 * 1000
const DEFAULT_BYTES = new Uint8Array(4)

interface Bench {
  w: World
  handler: NotificationHandler
  /** The agent state the handler keeps its memory in. */
  state: AgentState
  /** Session ids the handler opened a session for, in order. */
  opened: string[]
  /** Called as each session opens, before it is recorded. */
  onOpen?: (sessionId: string) => Promise<void>
  /** Opens the handler again on the same stores (a restart); the clock goes on. */
  restart(): Promise<void>
  handle(sessionId: number, nonce?: Uint8Array): Promise<NotificationOutcome>
  storedNonce(): Uint8Array | undefined
}

async function bench(t: Test, options: { state?: MemoryStore } = {}): Promise<Bench> {
  const w = await world()
  t.teardown(() => w.stop())
  const opened: string[] = []
  const make = (state: AgentState) =>
    new NotificationHandler({
      tree: w.tree,
      state,
      openSession: async (_serverId, request) => {
        await b.onOpen?.(request.notification.sessionIdHex)
        opened.push(request.notification.sessionIdHex)
      },
      now: () => w.clock.now(),
      logger: w.log.logger,
    })
  const store = options.state ?? new MemoryStore()
  const { state } = await memoryState(store)
  const b: Bench = {
    w,
    handler: make(state),
    state,
    opened,
    async restart() {
      b.state = (await memoryState(store)).state
      b.handler = make(b.state)
    },
    handle: (sessionId, nonce = STORED) => b.handler.handle(notification({ sessionId }, nonce)),
    storedNonce: () => w.tree.readSecret(`${findAccount(w.tree, SRV)!.serverEntries[0]!.uri}/AAuthData`) as Uint8Array | undefined,
  }
  return b
}

/** Puts the server out of step the way an attacker on the broker can: one notification that does not verify. */
async function putOutOfStep(b: Bench): Promise<void> {
  const outcome = await b.handle(0xffff, new Uint8Array(Buffer.from('not the stored nonce')))
  if (outcome.ok || outcome.reason !== 'bad-digest') throw new Error(`expected a bad digest, got ${JSON.stringify(outcome)}`)
}

// Finding 7: a replay opened a session again once 8 other notifications had pushed its id out of memory.
t.test('a handled session id is refused while it is one of the server\'s last 64, however old', async (t) => {
  const b = await bench(t)
  t.match(await b.handle(1), { ok: true })
  for (let id = 2; id <= 64; id++) await b.handle(id)
  b.w.clock.advance(48 * HOUR)
  t.match(await b.handle(1), { ok: false, reason: 'repeat' }, '63 others and two days later: still refused')
  await b.handle(65)
  t.match(await b.handle(1), { ok: true }, 'once 64 others are newer and it is past 24 hours, it is forgotten')
  t.same(b.opened.filter((id) => id === '1'), ['1', '1'])
})

// Finding 7: a replay opened a session again 10 minutes later.
t.test('a handled session id is refused for 24 hours, however many came after it', async (t) => {
  const b = await bench(t)
  await b.handle(1)
  for (let id = 2; id <= 200; id++) await b.handle(id)
  b.w.clock.advance(24 * HOUR - 1)
  t.match(await b.handle(1), { ok: false, reason: 'repeat' }, '199 others and just under 24 hours later: refused')
  b.w.clock.advance(1)
  t.match(await b.handle(1), { ok: true }, '24 hours on, and 199 newer ones: forgotten')
})

t.test('the memory is bounded: at most 256 ids per server, the oldest go first', async (t) => {
  const b = await bench(t)
  const outcomes: NotificationOutcome[] = []
  for (let id = 1; id <= 300; id++) outcomes.push(await b.handle(id))
  t.ok(outcomes.every((o) => o.ok), 'each one opens a session')
  t.match(await b.handle(45), { ok: false, reason: 'repeat' }, 'the 256 newest are remembered')
  t.match(await b.handle(44), { ok: true }, 'the 44 oldest were forgotten, within the 24 hours')
  const kept = (b.state.slot('gwmo.notifications') as Record<string, { handled: unknown[] }>)[SRV]!.handled
  t.equal(kept.length, 256, 'and that is all the state holds')
})

// Finding 7: the memory lived in the session manager only, so a restart forgot every handled id.
t.test('handled ids and the out-of-step mark survive a restart', async (t) => {
  const b = await bench(t)
  await putOutOfStep(b)
  t.match(await b.handle(0x500, DEFAULT_BYTES), { ok: true, nonce: 'default-bytes' })
  await b.restart()
  t.match(await b.handle(0x500, DEFAULT_BYTES), { ok: false, reason: 'repeat' }, 'the replayed id is refused')
  t.match(await b.handle(0x501, DEFAULT_BYTES), { ok: true, nonce: 'default-bytes' }, 'the server is still out of step')
  t.same(b.opened, ['500', '501'])
})

t.test('the id is durable before the session it allows opens; a state that cannot be saved opens nothing', async (t) => {
  let failing = false
  const store = failingStore(() => failing)
  const b = await bench(t, { state: store })
  const savedWhenOpened: boolean[] = []
  b.onOpen = async (sessionId) => {
    // What a restart at this instant would find in the state.
    const state = await durableState(store)
    savedWhenOpened.push(new NotificationMemory(state, () => [SRV]).handled(SRV, sessionId, b.w.clock.now()))
  }
  failing = true
  t.match(await b.handle(0x600), { ok: false, reason: 'not-saved' })
  t.same(b.opened, [], 'no session without the id saved')
  t.ok(b.w.log.lines.some((l) => l.msg === 'notification dropped' && l.reason === 'not-saved' && l.sessionId === '600'), 'logged')
  failing = false
  t.match(await b.handle(0x600), { ok: true }, 'the server\'s next try works once the state can be saved')
  t.same(b.opened, ['600'])
  t.same(savedWhenOpened, [true], 'when the session opened, the saved state already held the id')
})

t.test('only verified notifications are remembered: forgeries neither fill nor evict the memory', async (t) => {
  const b = await bench(t)
  await b.handle(0x700)
  for (let id = 1; id <= 300; id++) await b.handler.handle(notification({ sessionId: id }, STORED, 'forged'))
  t.match(await b.handle(0x700), { ok: false, reason: 'repeat' }, 'still remembered')
  const outcomes: NotificationOutcome[] = []
  for (let id = 1; id <= 300; id++) outcomes.push(await b.handle(id))
  t.ok(outcomes.every((o) => o.ok), 'the ids the forgeries used are free for the server')
  t.same((b.state.slot('gwmo.notifications') as Record<string, { handled: unknown[] }>)[SRV]!.handled.length, 256)
})

t.test('a replay flood gives one log line per interval, and opens nothing', async (t) => {
  const b = await bench(t)
  await b.handle(0x800)
  const outcomes: NotificationOutcome[] = []
  for (let k = 0; k < 50; k++) outcomes.push(await b.handle(0x800))
  t.ok(outcomes.every((o) => !o.ok && o.reason === 'repeat'), 'every copy refused')
  const repeats = () => b.w.log.lines.filter((l) => l.msg === 'notification dropped' && l.reason === 'repeat')
  t.equal(repeats().length, 1, 'one line')
  t.match(repeats()[0], { server: SRV, sessionId: '800' })
  b.w.clock.advance(1_000)
  await b.handle(0x800)
  t.equal(repeats().length, 2)
  t.equal(repeats()[1]!.dropped, 50, 'the next line counts the drops it stands for')
  t.same(b.opened, ['800'])
})

t.test('servers without an account are dropped from the memory', async (t) => {
  const w = await gwmoWorld({ accounts: [...ACCOUNTS, { x: 'other', serverId: 'http://other.example' }] })
  t.teardown(() => w.stop())
  const other = (sessionId: number) => ({
    channel: 'notification' as const, properties: {},
    payload: new Uint8Array(buildNotification({ serverId: 'http://other.example', sessionId }, SERVER_SECRET, new Uint8Array(0))),
  })
  t.match(await w.gwmo.onNotification(other(1)), { ok: true })
  const secret = w.tree.readSecret(`${findAccount(w.tree, SRV)!.serverEntries[0]!.uri}/AAuthData`) as Uint8Array | undefined
  t.same(Object.keys(w.state.slot('gwmo.notifications') as object), ['http://other.example'])
  t.equal(w.tree.delete('./DMAcc/other', 'device'), 200)
  t.match(await w.gwmo.onNotification(notification({ sessionId: 2 }, secret ?? new Uint8Array(0))), { ok: true })
  t.same(Object.keys(w.state.slot('gwmo.notifications') as object), [SRV], 'the deleted account\'s entry is gone')
})

t.test('verifying a digest never changes the stored nonce', async (t) => {
  const b = await bench(t)
  const before = Buffer.from(b.storedNonce()!).toString('hex')
  await putOutOfStep(b)
  await b.handle(0x900, DEFAULT_BYTES)
  await b.handle(0x900, DEFAULT_BYTES)
  await b.handle(0x901, new Uint8Array(Buffer.from('0x00000000')))
  await b.handle(0x902)
  await b.handle(0x903, new Uint8Array(Buffer.from('wrong')))
  t.same(b.opened, ['900', '901', '902'])
  t.equal(Buffer.from(b.storedNonce()!).toString('hex'), before, 'refused, accepted on either nonce, or repeated: the same nonce')
})

t.test('the out-of-step rule: set by a failure on the stored nonce, kept by the default nonce, cleared by the stored one', async (t) => {
  const b = await bench(t)
  t.match(await b.handle(0xa00, DEFAULT_BYTES), { ok: false, reason: 'bad-digest' }, 'in step: the default nonce is not tried')
  t.match(await b.handle(0xa00, DEFAULT_BYTES), { ok: true, nonce: 'default-bytes' }, 'that failure put the server out of step')
  t.match(await b.handle(0xa01, DEFAULT_BYTES), { ok: true, nonce: 'default-bytes' }, 'a default-nonce notification does not clear the mark')
  t.match(await b.handle(0xa02), { ok: true, nonce: 'stored' })
  t.match(await b.handle(0xa03, DEFAULT_BYTES), { ok: false, reason: 'bad-digest' }, 'the stored nonce put it back in step')
  t.match(await b.handle(0xa00), { ok: false, reason: 'repeat' }, 'a verified repeat changes nothing…')
  t.match(await b.handle(0xa04, DEFAULT_BYTES), { ok: true }, '…and the failure before it marked the server out of step again')
  t.match(await b.handle(0xa00), { ok: false, reason: 'repeat' })
  t.match(await b.handle(0xa05, DEFAULT_BYTES), { ok: true }, 'a repeat verified with the stored nonce does not put the server in step')
  t.same(b.opened, ['A00', 'A01', 'A02', 'A04', 'A05'])
})

t.test('an unclean stop puts every DM Server out of step; a clean one does not', async (t) => {
  const w = await world()
  t.teardown(() => w.stop())
  const random = (n: number) => new Uint8Array(n).fill(9)
  await beginRun(w.tree, w.state, random, w.log.logger)
  await endRun(w.state)
  await beginRun(w.tree, w.state, random, w.log.logger)
  const handler = () => new NotificationHandler({
    tree: w.tree, state: w.state, openSession: async () => undefined, now: () => w.clock.now(), logger: w.log.logger,
  })
  t.match(await handler().handle(notification({ sessionId: 0xb00 }, DEFAULT_BYTES)), { ok: false, reason: 'bad-digest' }, 'after a clean stop: in step')
  // The mark of the refused notification above goes with a notification that verifies on the stored nonce.
  const stored = w.tree.readSecret(`${findAccount(w.tree, SRV)!.serverEntries[0]!.uri}/AAuthData`) as Uint8Array
  t.match(await handler().handle(notification({ sessionId: 0xb01 }, stored)), { ok: true, nonce: 'stored' })
  await beginRun(w.tree, w.state, random, w.log.logger) // the run above never ended: unclean
  t.match(await handler().handle(notification({ sessionId: 0xb02 }, DEFAULT_BYTES)), { ok: true, nonce: 'default-bytes' }, 'after an unclean stop: out of step at once')
  t.same(Object.keys(w.state.slot('gwmo.notifications') as object), [SRV], 'the gateway is not a DM Server')
})
