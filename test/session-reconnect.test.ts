// The session engine when its transport comes back (binding.md §2, §3): what waited for the broker goes at once,
// not at its timers. Pins a return that waited on a retry's backoff, a session timeout, or a timer that ran out
// while the broker was away.
import t from 'tap'
import { createHarness, GATEWAY, Party, replace, SERVER, settle, status } from './helpers/session-harness.ts'

const ALERT = { type: 'urn:oma:gwmo:1.0:AssociatedGateway', format: 'text/plain', data: '<GwAddress>2001:db8::1</GwAddress>' }

function genericAlertsOf(message: ReturnType<Awaited<ReturnType<typeof createHarness>>['decoded']>): string[] {
  return message.body.flatMap((c) => (c.kind === 'Alert' && c.data === '1226' ? c.items.map((i) => String(i.data)) : []))
}

t.test('a failed session waiting for its retry starts when the transport is back, not at its timer', async (t) => {
  const h = await createHarness({ constants: { sessionTimeoutMs: 1000, retransmitCount: 0, retryBackoffBaseMs: 60_000, retryBackoffCapMs: 600_000 } })
  await h.manager.queueGenericAlert(SERVER.serverId, ALERT)
  await h.manager.openSession(SERVER.serverId, { alert: 1201 })
  h.clock.advance(1000)
  await settle()
  t.same(h.ended.map((e) => e.outcome), ['failed'], 'no answer: the session failed, its retry is half a minute away at least')
  t.equal(h.sent.length, 1)

  h.manager.reconnected()
  await settle()
  t.equal(h.sent.length, 2, 'the retry went out at once')
  const retry = h.decoded()
  t.not(retry.hdr.sessionId, h.decoded(0).hdr.sessionId, 'a new session')
  t.same(genericAlertsOf(retry), [ALERT.data], 'carrying the queued alert')
  // Its own first wait runs out, and this session fails too; the retry timer it replaced never fires.
  h.clock.advance(1000)
  await settle()
  const sentBefore = h.sent.length
  h.clock.advance(30_000 - 1)
  await settle()
  t.equal(h.sent.length, sentBefore, 'the timer of the retry that already ran is gone')
  await h.manager.stop()
})

t.test('a server with queued alerts and nothing running gets a session; a party with one running gets no second', async (t) => {
  const h = await createHarness({ accounts: [SERVER, GATEWAY] })
  h.manager.reconnected()
  await settle()
  t.equal(h.sent.length, 0, 'nothing waits: nothing is sent')

  // Queued while the broker was away, with no session running for it (the one that carried it ended unacknowledged).
  await h.manager.queueGenericAlert(SERVER.serverId, ALERT)
  h.manager.reconnected()
  await settle()
  t.equal(h.sent.length, 1, 'one session, to the server the alert is for')
  const package1 = h.decoded()
  t.equal(h.sent[0]!.to, SERVER.serverId)
  t.equal(package1.body[0]?.kind === 'Alert' && package1.body[0].data, '1201', 'client-initiated')
  t.same(genericAlertsOf(package1), [ALERT.data])

  // Reconnected again while that session runs: it goes on alone.
  h.manager.reconnected()
  await settle()
  t.equal(h.sent.length, 1, 'no second session for a party with one running')
  await h.manager.stop()
})

t.test('a session waiting for an answer sends its message again soon after a reconnection, then waits as before', async (t) => {
  const h = await createHarness({ constants: { sessionTimeoutMs: 30_000, reconnectResendMs: 3000 } })
  await h.manager.openSession(SERVER.serverId, { alert: 1201 })
  const package1 = h.sent[0]!
  h.clock.advance(10_000)
  await settle()
  h.manager.reconnected()
  h.clock.advance(2999)
  await settle()
  t.equal(h.sent.length, 1, 'an answer on its way still has time to arrive')
  h.clock.advance(1)
  await settle()
  t.equal(h.sent.length, 2, 'sent again 3 s after the reconnection, not 20 s later at the session timeout')
  t.same(h.sent[1]!.payload, package1.payload, 'the same message, same MsgID')
  h.clock.advance(30_000 - 1)
  await settle()
  t.equal(h.sent.length, 2, 'then the session timeout again')
  h.clock.advance(1)
  await settle()
  t.equal(h.sent.length, 3)
  await h.manager.stop()
})

t.test('a reply that expects no answer is not sent again after a reconnection', async (t) => {
  const h = await createHarness({ constants: { sessionTimeoutMs: 30_000, reconnectResendMs: 3000 } })
  const server = new Party(SERVER)
  // A push whose reply holds nothing but Status: the session only lingers in case the party goes on.
  await h.manager.receive(server.message({ sessionId: 'C1', msgId: 1, body: [replace('./DevInfo/Lang', 'fr')] }))
  t.equal(h.sent.length, 1)
  h.manager.reconnected()
  h.clock.advance(29_999)
  await settle()
  t.equal(h.sent.length, 1, 'nothing sent again')
  t.same(h.ended, [], 'and it still lingers for the whole timeout')
  h.clock.advance(1)
  await settle()
  t.same(h.ended.map((e) => e.outcome), ['completed'])
  await h.manager.stop()
})

t.test('a message held by the transport while its broker is away is not sent again the moment it goes out', async (t) => {
  // The transport holds a send until its broker is back (and the device subscribed again).
  let outage: { promise: Promise<void>; end: () => void } | undefined
  const beginOutage = () => {
    let end!: () => void
    const promise = new Promise<void>((resolve) => (end = resolve))
    outage = { promise, end }
  }
  const h = await createHarness({
    constants: { sessionTimeoutMs: 1000, retransmitCount: 3, reconnectResendMs: 300 },
    onSend: () => outage?.promise,
  })
  beginOutage()
  void h.manager.openSession(SERVER.serverId, { alert: 1201 })
  // Five session timeouts pass while the message waits for the broker.
  for (let k = 0; k < 5; k++) {
    h.clock.advance(1000)
    await settle()
  }
  t.equal(h.sent.length, 0, 'nothing has left')
  t.same(h.ended, [], 'and the session has not given up on a message that never left')

  // The broker is back: the message goes out, then the transport says it is online again.
  const back = outage!
  outage = undefined
  back.end()
  await settle()
  t.equal(h.sent.length, 1, 'the message went out once')
  h.manager.reconnected()
  h.clock.advance(299)
  await settle()
  t.equal(h.sent.length, 1, 'not sent again at once: its wait started when it left')
  h.clock.advance(1)
  await settle()
  t.equal(h.sent.length, 2, 'sent again only if no answer came soon after the return')
  t.same(h.sent[1]!.payload, h.sent[0]!.payload)
  await h.manager.stop()
})

t.test('after a reconnection an answer in time completes the session, and nothing is sent again', async (t) => {
  const h = await createHarness({ constants: { sessionTimeoutMs: 30_000, reconnectResendMs: 3000 } })
  const server = new Party(SERVER)
  await h.manager.queueGenericAlert(SERVER.serverId, ALERT)
  await h.manager.openSession(SERVER.serverId, { alert: 1201 })
  const opened = h.decoded()
  const cmdId = opened.body.find((c) => c.kind === 'Alert' && c.data === '1226')!.cmdId
  h.manager.reconnected()
  // The server's answer arrives within the short wait: Status only, so the session ends.
  await h.manager.receive(server.message({ sessionId: opened.hdr.sessionId, msgId: 1, body: [status('1', '0', 'SyncHdr', 212), status('1', cmdId, 'Alert', 200)] }))
  await settle()
  t.same(h.ended.map((e) => e.outcome), ['completed'])
  t.same(h.state.pendingAlerts(SERVER.serverId), [], 'the alert was acknowledged')
  const sent = h.sent.length
  h.clock.advance(3000)
  await settle()
  t.equal(h.sent.length, sent, 'the short wait ended with the session: nothing sent again')
  await h.manager.stop()
})
