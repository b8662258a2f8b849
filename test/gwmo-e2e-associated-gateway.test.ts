// Associated Gateway through the real agent (GwMO seed 000, 8.6.1.3 step 3, Appendix Y; binding.md §4.3): only
// when the gateway allows sharing does each listed DM Server learn its address, in a session the device opens
// with it. When sharing is not allowed the address never leaves the device: a client subscribed to `#` for
// the whole run sees every payload on the broker (WBXML decoded too), and none holds it, not even after a
// Location Update, a session with each server, a restart, and the gateway's later detection with sharing on.
import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer } from './peers/dm-server.ts'
import { ASSOCIATED_GATEWAY, LOCATION_UPDATE, startGateway } from './peers/gateway.ts'
import { topicFor } from './peers/mqtt.ts'
import { BrokerWatch } from './fixtures/gwmo/broker-watch.ts'
import { LocationFeed } from './fixtures/gwmo/location-feed.ts'
import { alertsOfType, gwAddressOf, locationUpdateOf, pushDetection } from './fixtures/gwmo/observe.ts'
import { GATEWAY, gatewayOptions, SERVER_A, SERVER_B, serverOptions, startGwmoAgent } from './fixtures/gwmo/parties.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())
const watch = await BrokerWatch.start(broker.url)
t.teardown(() => watch.stop())

const DEVICE = 'mac:01-ab-34-ef-69-0c'
/** The address of a gateway that does not allow sharing it (distinct from every other string of the run). */
const PRIVATE_ADDRESS = '10.77.66.55'
/** The address the same gateway later allows to be shared (the seed's example). */
const SHARED_ADDRESS = '2002:0:0:0:0:0:9da6:e219'
const HOME = { addresses: ['192.0.2.10'], defaultGateway: '192.0.2.1' }
const MOVED = { addresses: ['192.0.2.11'], defaultGateway: '192.0.2.1' }

const a = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_A))
const b = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_B))
const gateway = await startGateway(gatewayOptions(broker.url, DEVICE, GATEWAY))
const servers = [a, b]
const dir = mkdtempSync(join(tmpdir(), 'gwmo-e2e-'))
const feed = LocationFeed.start(dir, HOME, () => agent.pid)
let agent = startGwmoAgent({
  brokerUrl: broker.url,
  deviceId: DEVICE,
  parties: [SERVER_A, SERVER_B, GATEWAY],
  dir,
  config: { location: { enabled: true, pollSeconds: 1, sourceFile: feed.path } },
})
/** Every agent process of the run (a restart is a new one), for their logs. */
const runs = [agent]
t.teardown(async () => {
  await agent.remove()
  await feed.stop()
  for (const peer of [a, b, gateway]) await peer.stop()
})
for (const peer of [a, b, gateway]) await peer.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
await agent.waitForLog((l) => l.msg === 'network location recorded')

t.test('Share false: no Associated Gateway, and no Location Update names the gateway', async (t) => {
  const answer = await pushDetection(gateway, { gwAddress: PRIVATE_ADDRESS, share: false })
  t.equal(answer.alertStatus, '200')
  t.same(answer.lists.map((l) => [...l].sort()), [[SERVER_A.serverId, SERVER_B.serverId].sort()], 'the DMS list is still sent')

  // Something for each server to be told after the detection: a move (same default gateway, so the gateway
  // stays the current one). The Location Update is the first thing the servers hear after the detection.
  feed.set(MOVED)
  for (const server of servers) {
    const update = await server.waitForGenericAlert(LOCATION_UPDATE, 15_000)
    t.same(locationUpdateOf(update.data), { devAddresses: MOVED.addresses }, `${server.serverId}: the device's addresses, no GwAddress`)
  }
  for (const server of servers) t.same(alertsOfType(server.sessions, ASSOCIATED_GATEWAY), [], `${server.serverId}: no Associated Gateway`)

  // A restart reads the recorded location and gateway back; nothing about them goes out either.
  t.equal((await agent.stop()).code, 0)
  agent = agent.restart()
  runs.push(agent)
  await agent.online()
  await feed.waitForReads(MOVED, feed.readsOf(MOVED) + 2)
})

t.test('Share true: each listed DM Server gets the address, in a session the device opens with it', async (t) => {
  const answer = await pushDetection(gateway, { gwAddress: SHARED_ADDRESS, share: true })
  t.equal(answer.alertStatus, '200')
  t.same(alertsOfType([answer.session], ASSOCIATED_GATEWAY), [], 'the gateway itself is not sent it')
  for (const server of servers) {
    const alert = await server.waitForGenericAlert(ASSOCIATED_GATEWAY, 15_000)
    t.equal(gwAddressOf(alert.data), SHARED_ADDRESS, `${server.serverId}: <GwAddress> holds the address`)
    t.equal(alert.format, 'text/plain')
    t.equal(alert.source, DEVICE, 'Item/Source is the DevId')
    t.equal(alert.target, server.serverId, 'Item/Target is the server')
    const session = server.sessions.find((s) => s.sessionId === alert.sessionId)
    t.equal(session?.origin, 'device', 'in a session the device opened')
    t.equal(session?.initiation, '1201', 'client-initiated')
    t.ok(session?.deviceAuthenticated, 'and authenticated to the server')
  }
  t.same(alertsOfType(gateway.sessions, ASSOCIATED_GATEWAY), [], 'never to the gateway')
})

t.test('on the wire, from start to end: the private address never, the shared one only to the DM Servers', async (t) => {
  t.equal((await agent.stop()).code, 0, 'the agent stops cleanly, its last words on the broker')
  const serverTopics = servers.map((s) => topicFor(s.serverId, 'dm'))
  const shared = watch.containing(SHARED_ADDRESS)
  t.ok(shared.length > 0, 'the watch does see addresses that go out (the shared one)')
  t.same([...new Set(shared.map((m) => m.topic))].filter((topic) => !serverTopics.includes(topic) && topic !== topicFor(DEVICE, 'dm')), [],
    'the shared address went to the DM Servers, and came from the gateway')
  t.ok(watch.messages.length > 20, `the watch saw the whole run (${watch.messages.length} messages)`)
  t.same(watch.containing(PRIVATE_ADDRESS).filter((m) => m.topic !== topicFor(DEVICE, 'dm')), [],
    'the private address was on the broker only in the gateway\'s message to the device')
  for (const run of runs) t.notMatch(run.stdout, PRIVATE_ADDRESS, 'and it is in none of the agent\'s log lines')
})
