// Transparent mode through the real agent (GwMO seed 000, 8.6.1.3; binding.md §4.4, §6): a DM Notification
// that the gateway forwards is checked with the credentials of the server it names, with the default-nonce
// retry (four zero bytes, or the text `0x00000000`) while that server is out of step, and opens a session with
// Alert 1200 and the notification's session id in upper-case hex; anything else is dropped and logged, and one
// session id opens one session however often it comes.
import t from 'tap'
import { recordTraffic } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { nonceBytes } from './peers/auth.ts'
import { startDmServer, type DmServer, type NotificationRequest } from './peers/dm-server.ts'
import { startGateway } from './peers/gateway.ts'
import { buildNotification } from './peers/notification.ts'
import { resultFor, type PartySession } from './peers/session-record.ts'
import { get } from './peers/syncml.ts'
import { BrokerWatch } from './fixtures/gwmo/broker-watch.ts'
import { GATEWAY, gatewayOptions, SERVER_A, SERVER_B, serverOptions, startGwmoAgent, stranger } from './fixtures/gwmo/parties.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())
const watch = await BrokerWatch.start(broker.url)
t.teardown(() => watch.stop())

const DEVICE = 'mac:01-ab-34-ef-69-0c'
// Each peer's view of the traffic is shown when a test fails.
const a = await startDmServer({ ...serverOptions(broker.url, DEVICE, SERVER_A), onTraffic: recordTraffic(t, SERVER_A.serverId) })
const b = await startDmServer({ ...serverOptions(broker.url, DEVICE, SERVER_B), onTraffic: recordTraffic(t, SERVER_B.serverId) })
const gateway = await startGateway({ ...gatewayOptions(broker.url, DEVICE, GATEWAY), onTraffic: recordTraffic(t, GATEWAY.serverId) })
const agent = startGwmoAgent({ brokerUrl: broker.url, deviceId: DEVICE, parties: [SERVER_A, SERVER_B, GATEWAY] })
t.teardown(async () => {
  await agent.remove()
  for (const peer of [a, b, gateway]) await peer.stop()
})
for (const peer of [a, b, gateway]) await peer.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)

const hex = (id: number) => id.toString(16).toUpperCase()

/** The server builds its notification, the gateway forwards it to the device unchanged. */
async function forward(server: DmServer, request: NotificationRequest): Promise<Buffer> {
  const bytes = server.notificationBytes(request)
  await gateway.forwardNotification(bytes)
  return bytes
}

/**
 * A session both sides are done with: the server closed it, and the device handled the server's last message. The
 * server may close a session before the device has refused its answer (binding.md §6: a spent nonce, one challenge
 * first) and taken the resend, which changes the nonce a notification must be made with; the next notification
 * goes once that is over, as a real server's would, not across it.
 */
async function sessionDone(server: DmServer, sessionId: string): Promise<PartySession> {
  const session = await server.waitForSession((s) => s.sessionId === sessionId && s.closed, 15_000)
  await agent.waitForLog((l) => l.msg === 'session ended' && l.party === server.serverId && l.sessionId === sessionId, 15_000, `the end of session ${sessionId}`)
  return session
}

function sessionsWithId(sessionId: string) {
  return [a, b, gateway].flatMap((peer) => peer.sessions.filter((s) => s.sessionId === sessionId))
}

// First: drops are logged once per reason and server a second, and the tests below drop notifications of their own.
t.test('a bad digest, a stranger, the gateway, and noise are dropped and logged; no session', async (t) => {
  const unknown = stranger('unknown', 'http://unknown-dms.example.com')
  const bad: Array<{ bytes: Buffer; reason: string; server?: string; id: number; what: string }> = [
    { bytes: a.notificationBytes({ sessionId: 0x1001, password: 'not-the-secret' }), reason: 'bad-digest', server: SERVER_A.serverId, id: 0x1001, what: 'a forged digest' },
    { bytes: b.notificationBytes({ sessionId: 0x1002, password: SERVER_A.serverPassword }), reason: 'bad-digest', server: SERVER_B.serverId, id: 0x1002, what: 'another server\'s credentials' },
    { bytes: buildNotification({ serverId: unknown.serverId, sessionId: 0x1003 }, unknown.serverPassword, new Uint8Array(4)), reason: 'unknown-server', server: unknown.serverId, id: 0x1003, what: 'a server the device has no account for' },
    { bytes: buildNotification({ serverId: GATEWAY.serverId, sessionId: 0x1004 }, GATEWAY.serverPassword, nonceBytes(gateway.serverNonce)), reason: 'gateway', server: GATEWAY.serverId, id: 0x1004, what: 'the gateway\'s own account' },
    { bytes: Buffer.from('not a DM Notification at all'), reason: 'malformed', id: 0x1005, what: 'bytes that are no notification' },
  ]
  for (const { bytes, reason, server, what } of bad) {
    const from = agent.logs.length
    await gateway.forwardNotification(bytes)
    const dropped = await agent.waitForLogAfter(from, (l) => l.msg === 'notification dropped')
    t.match(dropped, { reason, ...(server && { server }) }, `${what}: dropped, logged as ${reason}`)
  }
  // A valid one after them: by the time its session is over, any session the bad ones could open would be too.
  await forward(a, { sessionId: 0x1006, digestNonce: 'stored' })
  await sessionDone(a, '1006')
  for (const { id, what } of bad) t.same(sessionsWithId(hex(id)), [], `${what}: no session`)
  t.notOk(agent.logs.some((l) => l.msg === 'session started' && bad.some((x) => l.sessionId === hex(x.id))), 'the agent started none')
  t.notOk(agent.logs.some((l) => JSON.stringify(l).includes('not-the-secret')), 'no secret in the logs')
})

t.test('a forwarded notification opens a session with Alert 1200 and its session id, whichever nonce made the digest', async (t) => {
  const cases: Array<{ server: DmServer; request: NotificationRequest; matched: string; how: string }> = [
    { server: a, request: { sessionId: 0xbeef, digestNonce: 'stored' }, matched: 'stored', how: 'the nonce the device gave the server' },
    { server: a, request: { sessionId: 0x00a1, digestNonce: 'zero-bytes' }, matched: 'default-bytes', how: 'the default nonce as four zero bytes (server out of step)' },
    { server: b, request: { sessionId: 0x0c0d, digestNonce: 'text' }, matched: 'default-text', how: 'the default nonce as the text 0x00000000 (server out of step)' },
    { server: b, request: { sessionId: 0x7, digestNonce: 'stored', version: 12 }, matched: 'stored', how: 'a version other than 11' },
  ]
  for (const { server, request, matched, how } of cases) {
    const from = agent.logs.length
    server.queueSession([get('./DevInfo/DevId')])
    // binding.md §6: the default nonce is tried only for a server out of step, which a notification that fails
    // on the stored nonce makes it. Both go through the gateway, so the device handles them in this order.
    if (request.digestNonce !== 'stored') await forward(server, { sessionId: request.sessionId, digestNonce: 'wrong' })
    await forward(server, request)
    const id = hex(request.sessionId)
    const session = await sessionDone(server, id)
    t.equal(session.origin, 'device', `${how}: the device opens the session`)
    const package1 = session.received[0]!.message
    t.equal(package1.hdr.sessionId, id, `${how}: SessionID ${id} (upper-case hex, no leading zeros)`)
    t.equal(package1.hdr.target, server.serverId)
    t.equal(package1.commands[0]?.name, 'Alert')
    t.equal(package1.commands[0]?.data, '1200', 'Alert 1200, server-initiated')
    t.ok(session.deviceAuthenticated, 'the device authenticates to the server')
    // The notification's nonce was spent by the end of the last session (binding.md §6): one challenge first.
    t.equal(session.hdrStatuses.at(-1), '212', 'and accepts the server\'s credentials')
    t.equal(resultFor(session, './DevInfo/DevId'), DEVICE, 'the server manages the device in it')
    const accepted = await agent.waitForLogAfter(from, (l) => l.msg === 'notification accepted')
    t.match(accepted, { server: server.serverId, sessionId: id, matched }, `${how}: logged, with the nonce that matched`)
  }
  t.same(watch.onChannel('notification').map((m) => m.topic).filter((topic) => !topic.includes(encodeURIComponent(DEVICE))), [],
    'nothing is ever published on a notification topic but the device\'s')
})

t.test('the same session id twice opens one session', async (t) => {
  // The default nonce verifies whatever nonce the device has stored by then (the server stays out of step until
  // a notification verifies with the stored nonce), so both copies pass the digest and it is the session id
  // that must stop the second.
  await forward(a, { sessionId: 0x2000, digestNonce: 'wrong' })
  const bytes = a.notificationBytes({ sessionId: 0x2001, digestNonce: 'zero-bytes' })
  const from = agent.logs.length
  await gateway.forwardNotification(bytes)
  await sessionDone(a, '2001')
  await gateway.forwardNotification(bytes)
  const isRepeat = (l: { msg: string; reason?: unknown }) => l.msg === 'notification dropped' && l.reason === 'repeat'
  const repeat = await agent.waitForLogAfter(from, isRepeat)
  t.match(repeat, { server: SERVER_A.serverId, sessionId: '2001' }, 'the repeat is logged')
  // Sent directly this time; its line may be held back by the log's rate limit, so the server's next
  // notification, which the device handles after it, shows that it opened nothing.
  await a.sendNotification({ sessionId: 0x2001, digestNonce: 'zero-bytes' })
  await a.sendNotification({ sessionId: 0x2002, digestNonce: 'stored' })
  await sessionDone(a, '2002')
  t.equal(sessionsWithId('2001').length, 1, 'one session with that id at the server')
  t.equal(agent.logs.filter((l) => l.msg === 'session started' && l.sessionId === '2001').length, 1, 'and one started by the agent')
})
