// Bootstrapped DMS List through the real agent (GwMO seed 000, 8.6.1.2 step 2, Appendix X; binding.md §1,
// §4.2): the answer to a Device Detection lists every DM Server account the device holds and no gateway's,
// the detecting gateway's own account included among those left out; an account a party used to detect the
// device becomes a gateway's for good; an account a local bootstrap adds later is listed; no DM Server is ever
// sent the list.
import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer } from './peers/dm-server.ts'
import { BOOTSTRAPPED_DMS_LIST, LOCATION_UPDATE, startGateway } from './peers/gateway.ts'
import { buildAccountCommands, sendBootstrap } from './peers/bootstrap-server.ts'
import type { Party } from './peers/party.ts'
import { LocationFeed } from './fixtures/gwmo/location-feed.ts'
import { alertsOfType, pushDetection } from './fixtures/gwmo/observe.ts'
import { accountSpec, GATEWAY, gatewayOptions, SERVER_A, SERVER_B, serverOptions, startGwmoAgent, stranger } from './fixtures/gwmo/parties.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

const DEVICE = 'mac:01-ab-34-ef-69-0c'
/** A second gateway, marked as one by the factory bootstrap; it never detects the device. */
const GATEWAY_2 = stranger('gw2', 'http://gw2.example.net', 'gateway')
/** A party whose account carries no Role: a DM Server's, until it sends a Device Detection. */
const EDGE = stranger('edge', 'http://edge.example.net')
/** A DM Server a local DM Bootstrap Server adds later (a DM Server adds only gateways' accounts, binding.md §6). */
const SERVER_C = stranger('dmsC', 'http://www.thirdDMServer.com')
const NETWORK_ID = '310150123456789'

const sorted = (ids: string[]) => [...ids].sort()

t.test('every DM Server but no gateway, the detecting one included; kept across a restart', async (t) => {
  const a = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_A))
  const b = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_B))
  const c = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_C))
  const gateway = await startGateway(gatewayOptions(broker.url, DEVICE, GATEWAY))
  const gateway2 = await startGateway(gatewayOptions(broker.url, DEVICE, GATEWAY_2))
  const edge = await startGateway(gatewayOptions(broker.url, DEVICE, EDGE))
  const peers: Party[] = [a, b, c, gateway, gateway2, edge]
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-e2e-'))
  // A fixed location: a detection by another gateway is then a Location Update to each server, on any host.
  const feed = LocationFeed.start(dir, { addresses: ['192.168.4.20'], defaultGateway: '192.168.4.1' }, () => agent.pid)
  const agent = startGwmoAgent({
    brokerUrl: broker.url,
    deviceId: DEVICE,
    parties: [SERVER_A, SERVER_B, GATEWAY, GATEWAY_2, EDGE],
    dir,
    config: { networkId: NETWORK_ID, location: { sourceFile: feed.path, pollSeconds: 3600 } },
  })
  t.teardown(async () => {
    await agent.remove()
    await feed.stop()
    for (const peer of peers) await peer.stop()
  })
  for (const peer of [a, b, gateway, gateway2, edge]) await peer.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)

  const first = await pushDetection(gateway, { gwAddress: '192.168.4.1', share: false })
  t.equal(first.alertStatus, '200')
  t.equal(first.alerts.length, 1, 'one Bootstrapped DMS List')
  const list = first.alerts[0]!
  t.equal(list.sessionId, first.session.sessionId, 'in the device\'s answer, in the session the gateway pushed')
  t.equal(list.format, 'text/plain', 'Meta/Format text/plain')
  t.equal(list.source, DEVICE, 'Item/Source is the DevId')
  t.equal(list.target, GATEWAY.serverId, 'Item/Target is the gateway')
  t.same(sorted(first.lists[0]!), sorted([SERVER_A.serverId, SERVER_B.serverId, EDGE.serverId]),
    'both DM Servers and the account without a Role; neither gateway')

  // The party without a Role detects the device: its own account is left out, and it is a gateway's from now
  // on. Another gateway is a move, reported to each server; then a local bootstrap adds the account of server C.
  const byEdge = await pushDetection(edge, { gwAddress: '192.168.7.1', share: false })
  t.same(sorted(byEdge.lists[0] ?? []), sorted([SERVER_A.serverId, SERVER_B.serverId]), 'the detecting party is not in its own list')
  await a.waitForSession((s) => s.genericAlerts.some((x) => x.type === LOCATION_UPDATE) && s.closed, 15_000)
  const from = agent.logs.length
  await sendBootstrap({
    brokerUrl: broker.url, deviceId: DEVICE, networkId: NETWORK_ID, encoding: 'xml', sec: 'NETWORKID',
    commands: buildAccountCommands(accountSpec(SERVER_C)),
  })
  t.match(await agent.waitForLogAfter(from, (l) => l.msg === 'bootstrap applied'), { servers: [SERVER_C.serverId] }, 'a local bootstrap adds server C')

  const again = await pushDetection(gateway, { gwAddress: '192.168.4.1', share: false })
  t.same(sorted(again.lists[0] ?? []), sorted([SERVER_A.serverId, SERVER_B.serverId, SERVER_C.serverId]),
    'a party that detected the device is a gateway now; the server added later is listed')

  t.equal((await agent.stop()).code, 0)
  const restarted = agent.restart()
  t.teardown(() => restarted.remove())
  await restarted.online()
  const afterRestart = await pushDetection(gateway, { gwAddress: '192.168.4.1', share: false })
  t.equal(afterRestart.alertStatus, '200')
  t.same(sorted(afterRestart.lists[0] ?? []), sorted([SERVER_A.serverId, SERVER_B.serverId, SERVER_C.serverId]),
    'after a restart: the same list, the gateway marking kept')

  for (const peer of [a, b, c, gateway2]) {
    t.same(alertsOfType(peer.sessions, BOOTSTRAPPED_DMS_LIST), [], `${peer === gateway2 ? 'the other gateway' : 'a DM Server'} is never sent the list`)
  }
})

t.test('a device bootstrapped to no DM Server answers with an empty list', async (t) => {
  const gateway = await startGateway(gatewayOptions(broker.url, DEVICE, GATEWAY))
  const agent = startGwmoAgent({ brokerUrl: broker.url, deviceId: DEVICE, parties: [GATEWAY] })
  t.teardown(async () => {
    await agent.remove()
    await gateway.stop()
  })
  await gateway.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
  const answer = await pushDetection(gateway, { gwAddress: '192.168.4.1', share: true })
  t.equal(answer.alertStatus, '200')
  t.equal(answer.alerts.length, 1, 'the list is sent all the same')
  t.same(answer.lists, [[]], 'and names no server')
  t.match(answer.alerts[0]!.data, /<ServerList\s*\/>|<ServerList>\s*<\/ServerList>/, 'an empty ServerList element')
})
