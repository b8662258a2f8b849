import t from 'tap'
import {
  add, alert, createHarness, DEVICE_ID, GATEWAY, get, headerStatus, Party, push, replace, SERVER, settle, status, statusCodes,
} from './helpers/session-harness.ts'

const OPEN_ACL = 'Add=*&Delete=*&Exec=*&Get=*&Replace=*'

t.test('a pushed session runs Package 2/3/4 with an authenticated party until a Final with only Status', async (t) => {
  const h = await createHarness()
  h.tree.add('./Vendor', { format: 'node' }, 'device')
  h.tree.replace('./Vendor?prop=ACL', { format: 'chr', data: OPEN_ACL }, 'device')
  const server = new Party(SERVER)
  await h.manager.receive(server.message({ sessionId: 'ABC', msgId: 1, body: [get('./DevInfo/Mod')] }))
  const first = h.decoded()
  t.equal(first.hdr.sessionId, 'ABC')
  t.equal(first.hdr.msgId, '1')
  t.equal(first.hdr.target.locUri, SERVER.serverId)
  t.ok(first.hdr.cred, 'the device authenticates in its first reply')
  t.equal(headerStatus(first)?.msgRef, '1')
  t.same(headerStatus(first)?.targetRefs, [DEVICE_ID])
  t.same(headerStatus(first)?.sourceRefs, [SERVER.serverId])
  server.learnNonce(first)

  await h.manager.receive(server.message({ sessionId: 'ABC', msgId: 2, body: [status('1', '0', 'SyncHdr', 212), add('./Vendor/n', 'v')] }))
  const second = h.decoded()
  t.equal(second.hdr.msgId, '2')
  t.ok(second.hdr.cred, 'the device authenticates in every message (binding.md §6)')
  t.equal(headerStatus(second)?.data, '200', 'the party authenticated again, with the nonce of our last message')
  t.ok(headerStatus(second)?.chal?.meta.nextNonce, 'and gets the next one')
  t.same(statusCodes(second), { '0': '200', '2': '200' })
  t.equal(second.body.find((c) => c.kind === 'Status' && c.cmdRef === '2')?.kind === 'Status' ? '2' : '', '2')

  server.learnNonce(second)
  await h.manager.receive(server.message({ sessionId: 'ABC', msgId: 3, body: [status('2', '0', 'SyncHdr', 200), status('2', '2', 'Status', 200)] }))
  await settle()
  t.equal(h.sent.length, 2, 'the closing message is not answered')
  t.same(h.ended, [{ serverId: SERVER.serverId, sessionId: 'ABC', initiator: 'party', outcome: 'completed' }])
  // Only the lazy flush of the nonce bookkeeping is left; it saves the tree later, without a session timer.
  t.equal(h.clock.pending, 1)
  h.clock.advance(30_000)
  await settle()
  t.equal(h.clock.pending, 0)
  t.notOk(h.tree.dirty, 'nonce bookkeeping flushed lazily')
})

t.test('a party without an account gets no answer at all, logged once', async (t) => {
  const h = await createHarness()
  const stranger = new Party({ ...SERVER, serverId: 'http://stranger.example.com' })
  for (let k = 1; k <= 5; k++) await h.manager.receive(stranger.message({ sessionId: String(k), msgId: 1, body: [get('./DevInfo/Mod')] }))
  t.equal(h.sent.length, 0)
  t.equal(h.log.lines.filter((l) => String(l.msg).includes('without an account')).length, 1)
})

t.test('an alert registered to accept unauthenticated parties runs for them; nothing else does', async (t) => {
  const h = await createHarness({ accounts: [SERVER] })
  const seen: Array<{ serverId: string; authenticated: boolean; hasAccount: boolean }> = []
  h.manager.registerAlert(
    '1230',
    (ctx) => {
      seen.push(ctx.party)
      return 200
    },
    { acceptUnauthenticated: (party) => party.serverId === GATEWAY.serverId },
  )
  const gateway = new Party(GATEWAY)
  await h.manager.receive(gateway.message({ sessionId: '1', msgId: 1, cred: 'none', body: [alert('1230'), get('./DevInfo/Mod')] }))
  t.equal(h.sent.length, 0, 'a Get beside the alert: not admitted, and no account: no answer')
  await h.manager.receive(gateway.message({ sessionId: '2', msgId: 1, cred: 'none', body: [alert('1230')] }))
  t.equal(h.sent.length, 1)
  t.same(statusCodes(h.decoded()), { '0': '200', '1': '200' })
  t.same(seen, [{ serverId: GATEWAY.serverId, hasAccount: false, authenticated: false }])
  const other = new Party({ ...GATEWAY, serverId: 'http://other-gw.local' })
  await h.manager.receive(other.message({ sessionId: '3', msgId: 1, cred: 'none', body: [alert('1230')] }))
  t.equal(h.sent.length, 1, 'the policy said no for that party')
})

t.test('a duplicate delivery gets the same reply again and runs nothing twice; older MsgIDs are ignored', async (t) => {
  const h = await createHarness()
  h.tree.add('./Vendor', { format: 'node' }, 'device')
  h.tree.replace('./Vendor?prop=ACL', { format: 'chr', data: OPEN_ACL }, 'device')
  const server = new Party(SERVER)
  const message = server.message({ sessionId: 'D1', msgId: 1, body: [add('./Vendor/once', 'x')] })
  await h.manager.receive(message)
  await h.manager.receive(message)
  t.equal(h.sent.length, 2)
  t.same(h.sent[1]!.payload, h.sent[0]!.payload, 'byte for byte the same reply')
  t.same(statusCodes(h.decoded(1)), { '0': '212', '1': '200' }, 'not 418: the Add ran once')
  server.learnNonce(h.decoded(0))

  await h.manager.receive(server.message({ sessionId: 'D1', msgId: 3, body: [get('./Vendor/once')] }))
  t.equal(h.sent.length, 3)
  server.learnNonce(h.decoded())
  await h.manager.receive(server.message({ sessionId: 'D1', msgId: 2, body: [add('./Vendor/late', 'x')] }))
  t.equal(h.sent.length, 3, 'an older message is not answered')
  t.equal(h.tree.get('./Vendor/late', 'device').status, 404, 'nor run')
  t.ok(h.log.lines.some((l) => l.msg === 'old message ignored'))

  // After the session ends, a duplicate of its last answered message is answered from what remains of it.
  const closing = server.message({ sessionId: 'D1', msgId: 4, body: [status('2', '0', 'SyncHdr', 200)] })
  await h.manager.receive(closing)
  await settle()
  t.equal(h.ended.length, 1)
  await h.manager.receive(closing)
  await h.manager.receive(server.message({ sessionId: 'D1', msgId: 1, body: [add('./Vendor/once', 'x')] }))
  t.equal(h.sent.length, 3, 'nothing answered, no new session from an ended one')
})

t.test('ended sessions are remembered per party, at most endedSessionsPerParty and for endedSessionMemoryMs', async (t) => {
  const h = await createHarness({ constants: { endedSessionsPerParty: 2, endedSessionMemoryMs: 60_000 } })
  const server = new Party(SERVER)
  const opening = (sessionId: string) => server.message({ sessionId, msgId: 1, body: [get('./DevInfo/Mod')] })
  const session = async (sessionId: string) => {
    const { nextMsgId } = await push(h, server, sessionId, [get('./DevInfo/Mod')])
    await h.manager.receive(server.message({ sessionId, msgId: nextMsgId, body: [status(String(nextMsgId - 1), '0', 'SyncHdr', 212)] }))
    await settle()
  }
  for (const sessionId of ['E1', 'E2', 'E3']) await session(sessionId)
  t.same(h.ended.map((e) => e.sessionId), ['E1', 'E2', 'E3'])
  const sent = h.sent.length
  await h.manager.receive(opening('E3'))
  await h.manager.receive(opening('E2'))
  t.equal(h.sent.length, sent, 'a late message of one of the last two is ignored')
  await h.manager.receive(opening('E1'))
  t.equal(h.sent.length, sent + 1, 'the oldest is forgotten: its id is a new push (challenged: the nonce is spent)')
  h.clock.advance(60_001)
  await h.manager.receive(opening('E3'))
  t.equal(h.sent.length, sent + 2, 'and after endedSessionMemoryMs no ended session is remembered')
})

t.test('Session Abort: the session ends, no reply', async (t) => {
  const h = await createHarness()
  const server = new Party(SERVER)
  await h.manager.receive(server.message({ sessionId: 'AB', msgId: 1, body: [get('./DevInfo/Mod')] }))
  server.learnNonce(h.decoded())
  await h.manager.receive(server.message({ sessionId: 'AB', msgId: 2, body: [status('1', '0', 'SyncHdr', 212), alert('1223')] }))
  await settle()
  t.equal(h.sent.length, 1)
  t.same(h.ended.map((e) => e.outcome), ['aborted'])
})

t.test('no answer: the same message again (same MsgID) after each timeout, then failure and a backoff retry', async (t) => {
  const h = await createHarness({ constants: { sessionTimeoutMs: 1000, retransmitCount: 2, retryBackoffBaseMs: 10_000, retryBackoffCapMs: 60_000 } })
  await h.manager.queueGenericAlert(SERVER.serverId, { type: 'urn:x:kept', data: 'd' })
  await h.manager.openSession(SERVER.serverId, { alert: 1201 })
  const first = h.sent[0]!
  h.clock.advance(1000)
  await settle()
  h.clock.advance(1000)
  await settle()
  t.equal(h.sent.length, 3)
  t.same(h.sent[1]!.payload, first.payload, 'sent again unchanged')
  t.same(h.sent[2]!.payload, first.payload)
  h.clock.advance(1000)
  await settle()
  t.same(h.ended.map((e) => e.outcome), ['failed'])
  t.equal(h.sent.length, 3)
  h.clock.advance(4999)
  await settle()
  t.equal(h.sent.length, 3, 'not before half the backoff')
  h.clock.advance(5001)
  await settle()
  t.equal(h.sent.length, 4, 'retried within the backoff window')
  const retry = h.decoded()
  t.not(retry.hdr.sessionId, h.decoded(0).hdr.sessionId)
  t.ok(retry.body.some((c) => c.kind === 'Alert' && c.data === '1226'), 'the pending alert goes with it')
  await h.manager.stop()
  t.equal(h.clock.pending, 0, 'stop leaves no timer')
})

t.test('one session per party at a time; a party waiting does not hold up another', async (t) => {
  const h = await createHarness({ accounts: [SERVER, GATEWAY] })
  const server = new Party(SERVER)
  const gateway = new Party(GATEWAY)
  await h.manager.openSession(SERVER.serverId, { alert: 1201 })
  const first = h.decoded().hdr.sessionId
  await h.manager.openSession(SERVER.serverId, { alert: 1201 })
  t.equal(h.sent.length, 1, 'the second request waits behind the first')
  // A push from the server with another SessionID also waits.
  await h.manager.receive(server.message({ sessionId: 'F00', msgId: 1, body: [get('./DevInfo/Mod')] }))
  t.equal(h.sent.length, 1)

  // The gateway is another party: answered at once.
  await h.manager.receive(gateway.message({ sessionId: '9', msgId: 1, body: [replace('./DevInfo/Lang', 'x')] }))
  t.equal(h.sent.length, 2)
  t.equal(h.sent[1]!.to, GATEWAY.serverId)

  // The server ends its first session; the queued requests run in turn: the open, then the push.
  await h.manager.receive(server.message({ sessionId: first, msgId: 1, body: [status('1', '0', 'SyncHdr', 212)] }))
  await settle()
  t.equal(h.sent.length, 3)
  const second = h.decoded()
  t.not(second.hdr.sessionId, first)
  t.equal(second.body[0]?.kind === 'Alert' && second.body[0].data, '1201')
  // The server's first message spent its stored nonce; the second session begins with one challenge.
  await h.manager.receive(server.message({ sessionId: second.hdr.sessionId, msgId: 1, body: [status('1', '0', 'SyncHdr', 212)] }))
  t.equal(headerStatus(h.decoded())?.data, '401')
  server.learnNonce(h.decoded())
  await h.manager.receive(server.message({ sessionId: second.hdr.sessionId, msgId: 2, body: [status('2', '0', 'SyncHdr', 212)] }))
  await settle()
  t.equal(h.sent.length, 5)
  t.equal(h.decoded().hdr.sessionId, 'F00')
  // The push waited, admitted, and was checked again when its turn came: its nonce had been spent meanwhile.
  t.equal(headerStatus(h.decoded())?.data, '401', 'a queued push is admitted again when its turn comes')
})

t.test('after a reply of nothing but Status the session waits only in case the party goes on; no resend', async (t) => {
  const h = await createHarness({ constants: { sessionTimeoutMs: 1000 } })
  const server = new Party(SERVER)
  await h.manager.receive(server.message({ sessionId: 'C1', msgId: 1, body: [replace('./DevInfo/Lang', 'fr')] }))
  t.same(statusCodes(h.decoded()), { '0': '212', '1': '405' })
  server.learnNonce(h.decoded())
  // The party goes on in the same session.
  await h.manager.receive(server.message({ sessionId: 'C1', msgId: 2, body: [get('./DevInfo/Lang')] }))
  t.equal(h.sent.length, 2)
  t.equal(h.decoded().hdr.sessionId, 'C1')
  // Our message held Results: the party owes an answer, so this one is sent again on timeout.
  h.clock.advance(1000)
  await settle()
  t.equal(h.sent.length, 3)
  server.learnNonce(h.decoded())
  await h.manager.receive(server.message({ sessionId: 'C1', msgId: 3, body: [replace('./DevInfo/Lang', 'x')] }))
  t.equal(h.sent.length, 4)
  // A status-only reply: nothing is sent again, and the session ends quietly at the timeout.
  h.clock.advance(1000)
  await settle()
  t.equal(h.sent.length, 4)
  t.same(h.ended.map((e) => e.outcome), ['completed'])

  // A new request ends such a lingering session at once.
  await push(h, server, 'C2', [replace('./DevInfo/Lang', 'fr')])
  await h.manager.openSession(SERVER.serverId, { alert: 1201 })
  await settle()
  t.same(h.ended.map((e) => e.outcome), ['completed', 'completed'])
  const opened = h.decoded().body[0]
  t.equal(opened?.kind === 'Alert' && opened.data, '1201', 'Package 1 went out without waiting')
})
