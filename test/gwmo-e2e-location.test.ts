// Location Update through the real agent (binding.md §4.6; GwMO seed 001, 8.4.1 figure 10): the agent polls
// `location.sourceFile` every `location.pollSeconds` and, when its network location changes, reports a
// Location Update Generic Alert to each DM Server in a session with it, with the gateway's address only while
// that gateway is the current one and allowed sharing. What is no change reports nothing: the first reading,
// the same addresses in another order, no address at all, an unreadable file, and a restart in the same place.
// The location comes from a named pipe that counts the agent's reads, so "nothing reported" is checked after
// the agent has provably looked, and then pinned by the next real change being the next report.
import t, { type Test } from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer, type DmServer } from './peers/dm-server.ts'
import { ASSOCIATED_GATEWAY, LOCATION_UPDATE, startGateway } from './peers/gateway.ts'
import type { Party } from './peers/party.ts'
import { LocationFeed, type Location } from './fixtures/gwmo/location-feed.ts'
import { alertsOfType, locationUpdateOf, pushDetection, type LocationUpdatePayload, type SeenAlert } from './fixtures/gwmo/observe.ts'
import { GATEWAY, gatewayOptions, SERVER_A, SERVER_B, serverOptions, startGwmoAgent } from './fixtures/gwmo/parties.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

const DEVICE = 'mac:01-ab-34-ef-69-0c'
const GW_ADDRESS = '2002:0:0:0:0:0:9da6:e219'
const HOME: Location = { addresses: ['192.0.2.10'], defaultGateway: '192.0.2.1' }
const OFFICE: Location = { addresses: ['198.51.100.20', '2001:db8::20'], defaultGateway: '198.51.100.1' }
const OFFICE_REORDERED: Location = { addresses: ['2001:db8::20', ' 198.51.100.20 ', '198.51.100.20'], defaultGateway: '198.51.100.1' }
const OFFICE_RENUMBERED: Location = { addresses: ['198.51.100.21'], defaultGateway: '198.51.100.1' }
const HOTEL: Location = { addresses: ['203.0.113.40'], defaultGateway: '203.0.113.1' }
const HOTEL_RENUMBERED: Location = { addresses: ['203.0.113.41'], defaultGateway: '203.0.113.1' }
const CAFE: Location = { addresses: ['192.0.2.77'], defaultGateway: '192.0.2.65' }

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
t.teardown(async () => {
  await agent.remove()
  await feed.stop()
  for (const peer of [a, b, gateway]) await peer.stop()
})
for (const peer of [a, b, gateway]) await peer.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)

const updates = (server: Party): SeenAlert[] => alertsOfType(server.sessions, LOCATION_UPDATE)

/** The `index`-th Location Update (0-based) a server received, once it has come. */
function update(server: DmServer, index: number): Promise<SeenAlert> {
  return server.waitFor(() => updates(server)[index], 15_000, `Location Update #${index}`)
}

/** What the device reports for a location: its addresses as a set, sorted. */
function payload(location: Location, gwAddress?: string): LocationUpdatePayload {
  const devAddresses = [...new Set(location.addresses.map((x) => x.trim()))].sort()
  return gwAddress === undefined ? { devAddresses } : { devAddresses, gwAddress }
}

/**
 * Serves `location` until the agent has read it. The agent checks one reading at a time, so whatever is served
 * next is read only once this one has been compared with what the agent knew.
 */
async function lookedAt(location: Location | string): Promise<void> {
  feed.set(location)
  await feed.waitForReads(location, feed.readsOf(location) + 1)
}

/** Moves the device and checks the next Location Update of each server (the `index`-th). */
async function moveAndExpect(t: Test, location: Location, index: number, expected: LocationUpdatePayload, what: string): Promise<SeenAlert[]> {
  feed.set(location)
  const seen: SeenAlert[] = []
  for (const server of servers) {
    const alert = await update(server, index)
    t.same(locationUpdateOf(alert.data), expected, `${server.serverId}: ${what}`)
    seen.push(alert)
  }
  return seen
}

t.test('a move is reported to each DM Server in a session with it; the first reading is not', async (t) => {
  await agent.waitForLog((l) => l.msg === 'network location recorded')
  await feed.waitForReads(HOME, 2)
  const reported = await moveAndExpect(t, OFFICE, 0, payload(OFFICE), 'the first report is the move, with every address and no gateway yet')
  for (const [k, server] of servers.entries()) {
    const alert = reported[k]!
    t.equal(alert.format, 'text/plain', 'Meta/Format text/plain')
    t.equal(alert.source, DEVICE, 'Item/Source is the DevId')
    const session = server.sessions.find((s) => s.sessionId === alert.sessionId)
    t.equal(session?.origin, 'device', 'in a session the device opens')
    t.equal(session?.initiation, '1201')
  }
  t.same(updates(gateway), [], 'the gateway is not a DM Server: not told')
})

t.test('no change, no report: reordered addresses, no address, an unreadable file, the same place again', async (t) => {
  await lookedAt(OFFICE_REORDERED)
  await lookedAt({ addresses: [], defaultGateway: '198.51.100.1' })
  await agent.waitForLog((l) => l.msg === 'no network address: location check waits for one')
  const from = agent.logs.length
  await lookedAt('{ "addresses": ["198.51.100.99"')
  await agent.waitForLogAfter(from, (l) => l.msg === 'network location unavailable')
  await lookedAt({ addresses: ['198.51.100.99'], defaultGateway: '198.51.100.1', comment: 'unknown key' } as Location)
  await lookedAt(OFFICE)
  // The next change is the next report: none of the above made one.
  await moveAndExpect(t, HOTEL, 1, payload(HOTEL), 'the next report is the next real move')
  for (const server of servers) t.equal(updates(server).length, 2, `${server.serverId}: two reports in all`)
})

t.test('the gateway\'s address only while it is the current gateway and allowed sharing', async (t) => {
  const shared = await pushDetection(gateway, { gwAddress: GW_ADDRESS, share: true })
  t.equal(shared.alertStatus, '200')
  for (const server of servers) await server.waitForGenericAlert(ASSOCIATED_GATEWAY, 15_000)
  t.equal(updates(a).length, 2, 'the first gateway to detect the device is no move (its own alerts tell it)')

  await moveAndExpect(t, HOTEL_RENUMBERED, 2, payload(HOTEL_RENUMBERED, GW_ADDRESS), 'same default gateway: the gateway is current, its address shared')
  await moveAndExpect(t, CAFE, 3, payload(CAFE), 'another default gateway: the gateway is no longer current, no address')

  const hidden = await pushDetection(gateway, { gwAddress: GW_ADDRESS, share: false })
  t.equal(hidden.alertStatus, '200', 'the gateway detects the device again, without sharing now')
  await moveAndExpect(t, { addresses: ['192.0.2.78'], defaultGateway: '192.0.2.65' }, 4, payload({ addresses: ['192.0.2.78'] }),
    'current again but not sharing: no address')
})

t.test('the location survives a restart: in the same place nothing is reported, a move afterwards is', async (t) => {
  const here: Location = { addresses: ['192.0.2.78'], defaultGateway: '192.0.2.65' }
  // Each report is acknowledged before the stop: an alert whose Status has not come back is sent again after it.
  for (const server of servers) {
    const last = updates(server).at(-1)!
    await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === last.sessionId, 15_000, `end of session ${last.sessionId}`)
  }
  t.equal((await agent.stop()).code, 0)
  const before = servers.map((s) => updates(s).length)
  agent = agent.restart()
  await agent.online()
  await feed.waitForReads(here, feed.readsOf(here) + 2)
  t.same(agent.logs.filter((l) => l.msg.startsWith('network location')), [], 'nothing recorded anew, nothing changed')
  await moveAndExpect(t, OFFICE_RENUMBERED, before[0]!, payload(OFFICE_RENUMBERED), 'the first report after the restart is the move')
  t.same(servers.map((s) => updates(s).length), before.map((n) => n + 1), 'and the only one')
})
