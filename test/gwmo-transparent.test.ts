import t from 'tap'
import { findAccount, setNonce } from '../src/tree/accounts.ts'
import type { InboundMessage } from '../src/transport/port.ts'
import { buildNotification, type NotificationFields } from './peers/notification.ts'
import { gwmoWorld, SERVER_SECRET, type PartySpec, type World } from './helpers/gwmo-harness.ts'

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

t.test('the default nonce is accepted in both forms (four zero bytes, the text 0x00000000)', async (t) => {
  for (const [nonce, name] of [[new Uint8Array(4), 'default-bytes'], [new Uint8Array(Buffer.from('0x00000000')), 'default-text']] as const) {
    const w = await world()
    const outcome = await w.gwmo.onNotification(notification({ sessionId: 0x10 }, nonce))
    t.match(outcome, { ok: true, nonce: name })
    await w.settle()
    t.same(package1s(w).map((p) => p.alert), ['1200'])
    await w.stop()
  }
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
