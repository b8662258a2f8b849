// The GwMO flows that involve a DM Server, over both bindings at once (binding.md §10): through the real agent,
// server A is reached over HTTP (its account's Ext/GwmoAgent/Binding = http; its own node:http server in the peer)
// and server B over MQTT. The first session with factory bootstrap and the gateway bootstrap in it, the Associated
// Gateway, the Location Update, and a DM Notification that the gateway forwards, which opens an HTTP session. Over
// HTTP each of the device's messages is a POST whose response is A's next message; nothing of A's sessions goes
// through the broker, and the device's Cred goes in its first message only (OMA's rule), where over MQTT it goes
// in every one.
import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startMosquitto } from './helpers/mosquitto.ts'
import { buildAccountCommands } from './peers/bootstrap-server.ts'
import { startDmServer } from './peers/dm-server.ts'
import { ASSOCIATED_GATEWAY, LOCATION_UPDATE, startGateway } from './peers/gateway.ts'
import { topicFor } from './peers/mqtt.ts'
import type { PartySession } from './peers/session-record.ts'
import { BrokerWatch } from './fixtures/gwmo/broker-watch.ts'
import { LocationFeed } from './fixtures/gwmo/location-feed.ts'
import { alertsOfType, gwAddressOf, locationUpdateOf, pushDetection } from './fixtures/gwmo/observe.ts'
import { accountSpec, gatewayOptions, overHttp, SERVER_A, SERVER_B, serverOptions, startGwmoAgent, stranger } from './fixtures/gwmo/parties.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())
const watch = await BrokerWatch.start(broker.url)
t.teardown(() => watch.stop())

const DEVICE = 'mac:01-ab-34-ef-69-0c'
/** Added by A (over HTTP) in its first session, and by B (over MQTT) in its own: GwMO 8.4.1 over each binding. */
const GW_A = stranger('gw1', 'http://gw1.example.net', 'gateway')
const GW_B = stranger('gw2', 'http://gw2.example.net', 'gateway')
const HOME = { addresses: ['192.0.2.10'], defaultGateway: '192.0.2.1' }
const MOVED = { addresses: ['192.0.2.77'], defaultGateway: '192.0.2.1' }

const a = await startDmServer({ ...serverOptions(broker.url, DEVICE, SERVER_A), http: {} })
const b = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_B))
const gwA = await startGateway(gatewayOptions(broker.url, DEVICE, GW_A))
const gwB = await startGateway(gatewayOptions(broker.url, DEVICE, GW_B))
a.queueSession(buildAccountCommands(accountSpec(GW_A)))
b.queueSession(buildAccountCommands(accountSpec(GW_B)))

const dir = mkdtempSync(join(tmpdir(), 'gwmo-e2e-'))
const feed = LocationFeed.start(dir, HOME, () => agent.pid)
const agent = startGwmoAgent({
  brokerUrl: broker.url,
  deviceId: DEVICE,
  parties: [overHttp(SERVER_A, a.url), SERVER_B],
  dir,
  config: { location: { enabled: true, pollSeconds: 1, sourceFile: feed.path } },
})
t.teardown(async () => {
  await agent.remove()
  await feed.stop()
  for (const peer of [a, b, gwA, gwB]) await peer.stop()
})

const allOk = (s: PartySession) => s.statuses.length > 0 && s.statuses.every((status) => status.code === '200')

t.test('the first session, with the gateway bootstrap in it, over HTTP beside MQTT', async (t) => {
  const first = await a.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
  const overMqtt = await b.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
  for (const [session, how] of [[first, 'HTTP'], [overMqtt, 'MQTT']] as const) {
    t.equal(session.initiation, '1201', `${how}: the device's first session`)
    t.ok(session.deviceAuthenticated, `${how}: the device authenticated`)
    t.ok(allOk(session), `${how}: every Add of the gateway's account answered 200`)
  }
  const posts = a.requests.slice(0, first.received.length)
  t.ok(posts.length >= 2, `each of the device's messages was a POST (${posts.length})`)
  for (const post of posts) {
    t.equal(post.method, 'POST')
    t.equal(post.path, '/dm', 'to the account\'s URL (no RespURI named)')
    t.equal(post.headers['content-type'], 'application/vnd.syncml.dm+xml')
    t.match(post.headers.accept, /application\/vnd\.syncml\.dm\+xml/)
    t.match(post.headers.accept, /application\/vnd\.syncml\.dm\+wbxml/)
  }
  t.ok(first.received[0]?.message.hdr.cred, 'over HTTP the device\'s Cred is in its first message')
  t.same(first.received.slice(1).map((r) => r.message.hdr.cred), first.received.slice(1).map(() => undefined), 'and not in the others (OMA: the connection carries the session)')
  t.ok(overMqtt.received.every((r) => r.message.hdr.cred !== undefined), 'over MQTT it is in every message, as before')
  t.same(a.overBroker, [], 'A heard nothing from the device over the broker')

  for (const gw of [gwA, gwB]) {
    const answer = await pushDetection(gw, { gwAddress: '192.0.2.1', share: false })
    t.equal(answer.alertStatus, '200', `the gateway a server added is accepted`)
    t.same(answer.lists.map((l) => [...l].sort()), [[SERVER_A.serverId, SERVER_B.serverId].sort()], 'its DMS list names both servers')
  }
})

t.test('Associated Gateway: each server gets the shared address, over its own binding', async (t) => {
  const answer = await pushDetection(gwA, { gwAddress: '2001:db8::1', share: true })
  t.equal(answer.alertStatus, '200')
  for (const server of [a, b]) {
    const alert = await server.waitForGenericAlert(ASSOCIATED_GATEWAY, 15_000)
    t.equal(gwAddressOf(alert.data), '2001:db8::1', `${server.serverId}: <GwAddress>`)
    const session = server.sessions.find((s) => s.sessionId === alert.sessionId)
    t.equal(session?.initiation, '1201', 'in a session the device opened')
  }
})

t.test('Location Update: each server is told of the move, over its own binding', async (t) => {
  await agent.waitForLog((l) => l.msg === 'network location recorded')
  feed.set(MOVED)
  // (A detection by the second gateway was a move already: the update that counts is the one with the new address.)
  for (const server of [a, b]) {
    const moved = (data: string) => locationUpdateOf(data)?.devAddresses?.includes(MOVED.addresses[0]!) === true
    const update = await server.waitFor(() => alertsOfType(server.sessions, LOCATION_UPDATE).find((u) => moved(u.data)), 15_000, 'Location Update')
    t.same(locationUpdateOf(update.data)?.devAddresses, MOVED.addresses, `${server.serverId}: the new address`)
    t.equal(server.sessions.find((s) => s.sessionId === update.sessionId)?.origin, 'device', 'in a session the device opened')
  }
})

t.test('a DM Notification for A that the gateway forwards opens a session over HTTP', async (t) => {
  // The digest is made with the nonce A holds, and that moves in each of A's sessions (one that begins with a nonce
  // already spent is refused, and the refusal hands A a fresh one, binding.md §6). The detections queued above and
  // the move may each still be telling A in a session of its own: the last carries the move and the shared address.
  const settled = (data: string) => {
    const update = locationUpdateOf(data)
    return update?.devAddresses.includes(MOVED.addresses[0]!) === true && update.gwAddress === '2001:db8::1'
  }
  const last = await a.waitFor(() => alertsOfType(a.sessions, LOCATION_UPDATE).find((u) => settled(u.data)), 15_000, 'the last Location Update')
  await agent.waitForLog((l) => l.msg === 'session ended' && l.party === SERVER_A.serverId && l.sessionId === last.sessionId)
  const posts = a.requests.length
  await gwA.forwardNotification(a.notificationBytes({ sessionId: 0x4a1 }))
  const session = await a.waitForSession((s) => s.sessionId === '4A1' && s.closed, 15_000)
  t.equal(session.initiation, '1200', 'Alert 1200, the notification\'s session id')
  t.ok(session.deviceAuthenticated)
  t.ok(a.requests.length > posts, 'POSTed to A')
})

t.test('on the wire: nothing of A\'s sessions went through the broker', async (t) => {
  const aTopic = topicFor(SERVER_A.serverId, 'dm')
  t.same(watch.messages.filter((m) => m.topic === aTopic).length, 0, 'nothing published to A\'s dm topic')
  t.ok(watch.messages.some((m) => m.topic === topicFor(SERVER_B.serverId, 'dm')), 'while B\'s went there')
  t.same(a.overBroker, [], 'A heard nothing over the broker')
  t.notOk(agent.stdout.includes(SERVER_A.clientPassword) || agent.stdout.includes(SERVER_A.serverPassword), 'no secret in the log')
})
