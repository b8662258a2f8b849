// Gateway bootstrap by a DM Server through the real agent (GwMO seed 001, 8.4.1, figures 9 and 10; binding.md
// §4.5): in the device's first session with it, and in a session in which the device reports a Location
// Update, the server adds a `./DMAcc/<x>` account for a gateway; that gateway's detections, ignored before,
// are accepted from then on, also after a restart. An account the device refuses leaves the gateway a stranger.
import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startMosquitto } from './helpers/mosquitto.ts'
import type { AgentProcess } from './helpers/agent-process.ts'
import { buildAccountCommands } from './peers/bootstrap-server.ts'
import { startDmServer } from './peers/dm-server.ts'
import { LOCATION_UPDATE, startGateway, type Gateway } from './peers/gateway.ts'
import type { PartySession } from './peers/session-record.ts'
import { LocationFeed } from './fixtures/gwmo/location-feed.ts'
import { pushDetection } from './fixtures/gwmo/observe.ts'
import { accountSpec, gatewayOptions, SERVER_A, serverOptions, startGwmoAgent, stranger } from './fixtures/gwmo/parties.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

const DEVICE = 'mac:01-ab-34-ef-69-0c'
/** Added in the first session, marked as a gateway by the server (the only account a server may add, binding.md §6). */
const GW_FIRST = stranger('gw1', 'http://gw1.example.net', 'gateway')
/** Added in the Location Update session, marked as a gateway by the server. */
const GW_MOVED = stranger('gw2', 'http://gw2.example.net', 'gateway')
/** An account the server gets wrong (no AppID): refused whole. */
const GW_REFUSED = stranger('gw3', 'http://gw3.example.net', 'gateway')
const HOME = { addresses: ['192.0.2.10'], defaultGateway: '192.0.2.1' }
const MOVED = { addresses: ['198.51.100.10'], defaultGateway: '198.51.100.1' }

const gateways = new Map<string, Gateway>()
for (const spec of [GW_FIRST, GW_MOVED, GW_REFUSED]) gateways.set(spec.serverId, await startGateway(gatewayOptions(broker.url, DEVICE, spec)))
const gw = (spec: { serverId: string }) => gateways.get(spec.serverId)!
t.teardown(async () => {
  for (const peer of gateways.values()) await peer.stop()
})

/** Sends a detection the device must ignore, and waits for the agent's word that it dropped it. */
async function ignored(agent: AgentProcess, spec: { serverId: string }): Promise<PartySession> {
  const from = agent.logs.length
  const pushed = await gw(spec).sendDetection({ gwAddress: '192.0.2.200', share: false })
  await agent.waitForLogAfter(from, (l) => l.msg === 'message from a party without an account dropped' && l.party === spec.serverId)
  return pushed
}

function allOk(session: PartySession): boolean {
  return session.statuses.length > 0 && session.statuses.every((s) => s.code === '200')
}

t.test('added in the first session and in a Location Update session, accepted from then on, across a restart', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-e2e-'))
  const feed = LocationFeed.start(dir, HOME, () => agent.pid)
  const agent = startGwmoAgent({
    brokerUrl: broker.url,
    deviceId: DEVICE,
    parties: [SERVER_A],
    dir,
    // A short session timeout: the server is not listening yet when the device first calls it.
    config: { session: { timeoutSeconds: 2 }, location: { enabled: true, pollSeconds: 1, sourceFile: feed.path } },
  })
  t.teardown(async () => {
    await agent.remove()
    await feed.stop()
  })
  await agent.online()

  // Before any server spoke: every gateway is a stranger, and the device answers none.
  const before = [await ignored(agent, GW_FIRST), await ignored(agent, GW_MOVED)]

  // The first session: the server adds the first gateway's account (figure 9).
  const server = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_A))
  t.teardown(() => server.stop())
  server.queueSession(buildAccountCommands(accountSpec(GW_FIRST)))
  const first = await server.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
  t.equal(first.initiation, '1201', 'the device\'s first session with the server')
  t.ok(allOk(first), 'every Add of the gateway account: 200')

  const accepted = await pushDetection(gw(GW_FIRST), { gwAddress: '192.0.2.1', share: false })
  t.equal(accepted.alertStatus, '200', 'its detection is accepted now')
  t.same(accepted.lists, [[SERVER_A.serverId]], 'and answered with the DMS list')

  // The device moves; in the session reporting it, the server adds the new gateway's account (figure 10).
  await agent.waitForLog((l) => l.msg === 'network location recorded')
  server.queueSession(buildAccountCommands(accountSpec(GW_MOVED)))
  feed.set(MOVED)
  const report = await server.waitForSession((s) => s.genericAlerts.some((a) => a.type === LOCATION_UPDATE) && s.closed, 15_000)
  t.equal(report.origin, 'device')
  t.ok(allOk(report), 'every Add of the new gateway\'s account, in the Location Update session: 200')
  const moved = await pushDetection(gw(GW_MOVED), { gwAddress: '198.51.100.1', share: false })
  t.equal(moved.alertStatus, '200', 'the new gateway\'s detection is accepted')
  t.same(moved.lists, [[SERVER_A.serverId]], 'and neither gateway is listed')

  // Another gateway is a move too: the device reports it to the server. That session over, the server pushes
  // an account the device refuses (no AppID): nothing stored, the gateway stays a stranger.
  await server.waitForSession((s) => s !== report && s.genericAlerts.some((a) => a.type === LOCATION_UPDATE) && s.closed, 15_000)
  const incomplete = buildAccountCommands(accountSpec(GW_REFUSED)).filter((c) => !('items' in c) || !(c.items ?? []).some((i) => i.target?.endsWith('/AppID')))
  const pushed = await server.pushSession(incomplete)
  const refused = await server.waitForSession((s) => s === pushed && s.closed, 15_000)
  t.notOk(refused.statuses.some((s) => s.code === '200'), 'no write of the incomplete account succeeds')
  const stillStranger = await ignored(agent, GW_REFUSED)

  t.equal((await agent.stop()).code, 0)
  const restarted = agent.restart()
  t.teardown(() => restarted.remove())
  await restarted.online()
  for (const spec of [GW_FIRST, GW_MOVED]) {
    const again = await pushDetection(gw(spec), { gwAddress: '192.0.2.1', share: false })
    t.equal(again.alertStatus, '200', `${spec.serverId}: still accepted after a restart`)
  }
  const afterRestart = await ignored(restarted, GW_REFUSED)
  for (const session of [...before, stillStranger, afterRestart]) t.equal(session.received.length, 0, 'an ignored detection got no answer')
})
