// Device Detection Alert through the real agent over a broker (GwMO seed 000, 8.6.1.2 step 1, Appendix Z;
// binding.md §4.1, §6): every form of the seed's examples and schema is understood; only a party the device
// holds an account for and that authenticates is answered; bad credentials get 401, missing ones 407, a party
// without an account no answer at all; `acceptDetectionFrom: "any"` answers a stranger and says so at start.
import t, { type Test } from 'tap'
import type { AgentProcess } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer, type DmServer } from './peers/dm-server.ts'
import { startGateway, type DetectionRequest, type Gateway } from './peers/gateway.ts'
import { topicFor } from './peers/mqtt.ts'
import { BrokerWatch } from './fixtures/gwmo/broker-watch.ts'
import { genericAlertsIn, headerStatus, pushDetection, storedAccounts } from './fixtures/gwmo/observe.ts'
import { GATEWAY, gatewayOptions, SERVER_A, SERVER_B, serverOptions, startGwmoAgent, stranger } from './fixtures/gwmo/parties.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())
const watch = await BrokerWatch.start(broker.url)
t.teardown(() => watch.stop())

const DEVICE = 'mac:01-ab-34-ef-69-0c'
const PARTIES = [SERVER_A, SERVER_B, GATEWAY]
const UNKNOWN_GW = stranger('unknowngw', 'http://unknown-gw.example.net')
const ANY_WARNING = /acceptDetectionFrom: "any"/

interface World {
  agent: AgentProcess
  servers: DmServer[]
  gateway: Gateway
}

/** The servers and the gateway first (the first start opens a session with each), then the agent. */
async function world(t: Test, config: Record<string, unknown> = {}): Promise<World> {
  const servers = [await startDmServer(serverOptions(broker.url, DEVICE, SERVER_A)), await startDmServer(serverOptions(broker.url, DEVICE, SERVER_B))]
  const gateway = await startGateway(gatewayOptions(broker.url, DEVICE, GATEWAY))
  const agent = startGwmoAgent({ brokerUrl: broker.url, deviceId: DEVICE, parties: PARTIES, config })
  t.teardown(async () => {
    await agent.remove()
    for (const peer of [...servers, gateway]) await peer.stop()
  })
  // The factory start's sessions are over before the test speaks (they also hand every party a fresh nonce).
  for (const peer of [...servers, gateway]) await peer.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
  return { agent, servers, gateway }
}

/** The `device detection accepted` log line that follows the `from`-th line. */
function acceptedAfter(agent: AgentProcess, from: number) {
  return agent.waitForLogAfter(from, (l) => l.msg === 'device detection accepted', 15_000, '"device detection accepted"')
}

t.test('every form of the seed: Item/Data escaped or CDATA, bare CDATA in Alert, GwAddress or GwAddr, each Share spelling', async (t) => {
  // Dozens of detections from one gateway in seconds: more than its rate (limits.detectionsPerMinute, §11) allows.
  const { agent, gateway } = await world(t, { limits: { detectionsPerMinute: 6000 } })
  t.notOk(agent.logs.some((l) => ANY_WARNING.test(l.msg)), 'the default configuration does not announce "any"')

  const forms: DetectionRequest[] = [
    { form: 'item-escaped', addrElement: 'GwAddress', shareText: 'True', share: true, gwAddress: '2002:0:0:0:0:0:9da6:e219' },
    { form: 'item-cdata', addrElement: 'GwAddr', shareText: 'true', share: true, gwAddress: '2002:0:0:0:0:0:9da6:e219' },
    { form: 'inline-cdata', addrElement: 'GwAddress', shareText: '1', share: true, gwAddress: '2002:0:0:0:0:0:9da6:e219' },
    { form: 'inline-cdata', addrElement: 'GwAddr', shareText: 'False', share: false, gwAddress: '2002:0:0:0:0:0:9da6:e219' },
    { form: 'item-escaped', addrElement: 'GwAddr', shareText: 'false', share: false, gwAddress: '2002:0:0:0:0:0:9da6:e219' },
    { form: 'item-cdata', addrElement: 'GwAddress', shareText: '0', share: false, gwAddress: '2002:0:0:0:0:0:9da6:e219' },
  ]
  for (const request of forms) {
    const what = `${request.form}, <${request.addrElement}>, Share ${request.shareText}`
    const from = agent.logs.length
    const answer = await pushDetection(gateway, request)
    t.equal(answer.alertStatus, '200', `${what}: Alert 1230 answered 200`)
    t.same(answer.lists.map((l) => [...l].sort()), [[SERVER_A.serverId, SERVER_B.serverId].sort()], `${what}: the Bootstrapped DMS List in the answer`)
    const accepted = await acceptedAfter(agent, from)
    t.equal(accepted.share, request.share, `${what}: read as Share ${request.share}`)
    t.equal(accepted.gwAddress, request.share ? request.gwAddress : undefined, `${what}: the address is logged only when it may be shared`)
    t.equal(accepted.authenticated, true)
  }

  // A payload the seed's schema does not allow: no DMS list, a 400 for the alert.
  for (const bad of [
    { gwAddress: '192.0.2.1', share: true, shareText: 'yes' },
    { gwAddress: '', share: true },
  ] satisfies DetectionRequest[]) {
    // Its line is rate-limited (binding.md §11): one a second.
    if (bad.gwAddress === '') await new Promise((resolve) => setTimeout(resolve, 1100))
    const from = agent.logs.length
    const answer = await pushDetection(gateway, bad)
    t.equal(answer.alertStatus, '400', `Share "${bad.shareText ?? bad.share}", GwAddress "${bad.gwAddress}": 400`)
    t.same(answer.lists, [], 'and no Bootstrapped DMS List')
    await agent.waitForLogAfter(from, (l) => l.msg === 'device detection refused: bad payload')
  }
})

t.test('a party without an account gets no answer at all; bad Cred gets 401, missing Cred 407; nothing changes', async (t) => {
  const { agent, servers, gateway } = await world(t)
  const accountsBefore = storedAccounts(agent.stateDir)
  t.same(accountsBefore, [SERVER_A.x, SERVER_B.x, GATEWAY.x].sort())

  // A stranger with perfectly good credentials of its own: the device holds no account for it.
  const strangerTopic = topicFor(UNKNOWN_GW.serverId, 'dm')
  const unknown = await startGateway(gatewayOptions(broker.url, DEVICE, UNKNOWN_GW))
  t.teardown(() => unknown.stop())
  const from = agent.logs.length
  const pushed = await unknown.sendDetection({ gwAddress: '192.0.2.66', share: true })
  const dropped = await agent.waitForLogAfter(from, (l) => l.msg === 'message from a party without an account dropped')
  t.equal(dropped.party, UNKNOWN_GW.serverId, 'the drop is logged with the party')

  // The gateway that the device does know, with no Cred at all, then with a wrong password. The well-behaved
  // gateway peer stops first: both would read the device's answers on the gateway's topic.
  await gateway.stop()
  const noCred = await startGateway({ ...gatewayOptions(broker.url, DEVICE, GATEWAY), noAuth: true })
  t.teardown(() => noCred.stop())
  const missing = await pushDetection(noCred, { gwAddress: '192.0.2.68', share: true })
  await noCred.stop()
  const challenged = headerStatus(missing.session)
  t.equal(challenged?.data, '407', 'no Cred: 407')
  t.ok(challenged?.chal?.nextNonce, 'with a Chal')
  t.not(missing.alertStatus, '200', 'the alert is not executed')
  t.same(missing.lists, [], 'no Bootstrapped DMS List')

  const wrong = await startGateway({ ...gatewayOptions(broker.url, DEVICE, GATEWAY), serverPassword: 'not-the-secret' })
  t.teardown(() => wrong.stop())
  const badCred = await pushDetection(wrong, { gwAddress: '192.0.2.67', share: true }, { firstAnswer: true })
  const refused = headerStatus(badCred.session)
  t.equal(refused?.data, '401', 'a wrong Cred: 401')
  t.ok(refused?.chal?.nextNonce, 'with a Chal')
  t.not(badCred.alertStatus, '200', 'the alert is not executed')
  await wrong.stop()
  t.same(genericAlertsIn(badCred.session), [], 'no Generic Alert in anything the device answered')

  t.same(storedAccounts(agent.stateDir), accountsBefore, 'no account added or removed')
  t.equal(unknown.sessions.find((s) => s === pushed)?.received.length, 0, 'the stranger heard nothing')
  t.same(watch.messages.filter((m) => m.topic === strangerTopic), [], 'nothing was ever published to the stranger')
  t.notOk(agent.logs.some((l) => l.msg === 'device detection accepted'), 'no detection accepted')
  for (const s of servers) {
    t.same(s.sessions.flatMap((x) => x.genericAlerts).map((a) => a.type).filter((type) => type.startsWith('urn:oma:gwmo')), [],
      `${s.serverId} was told nothing`)
  }
  t.notOk(agent.logs.some((l) => /192\.0\.2\.6[678]/.test(JSON.stringify(l))), 'no refused address in the logs')
})

t.test('acceptDetectionFrom "any": announced at start, a stranger is answered, a known party still needs its credentials', async (t) => {
  const { agent, gateway } = await world(t, { acceptDetectionFrom: 'any' })
  const warning = agent.logs.find((l) => ANY_WARNING.test(l.msg))
  t.ok(warning, 'the agent says at start that it accepts detections from anyone')
  t.equal(warning?.level, 'warn')
  t.ok(agent.logs.indexOf(warning!) < agent.logs.findIndex((l) => l.msg === 'started'), 'before "started"')

  const unknown = await startGateway({ ...gatewayOptions(broker.url, DEVICE, UNKNOWN_GW), noAuth: true })
  t.teardown(() => unknown.stop())
  const from = agent.logs.length
  const answer = await pushDetection(unknown, { gwAddress: '192.0.2.99', share: false })
  t.equal(answer.alertStatus, '200', 'the stranger\'s detection is executed')
  // The device has no credentials to give a stranger, which may refuse the answer for that: the device then
  // sends the same answer again (DM Protocol 1.2, 9.3), the same list in it.
  t.ok(answer.lists.length >= 1, 'answered with the DMS list')
  t.same([...new Set(answer.lists.map((l) => [...l].sort().join(' ')))], [[SERVER_A.serverId, SERVER_B.serverId].sort().join(' ')],
    'every DM Server in it, and only those')
  t.equal(answer.alerts[0]?.target, UNKNOWN_GW.serverId)
  const accepted = await acceptedAfter(agent, from)
  t.equal(accepted.authenticated, false, 'logged as unauthenticated')

  // "any" is about parties without an account: the gateway the device knows is held to its credentials.
  await gateway.stop()
  const noCred = await startGateway({ ...gatewayOptions(broker.url, DEVICE, GATEWAY), noAuth: true })
  t.teardown(() => noCred.stop())
  const missing = await pushDetection(noCred, { gwAddress: '192.0.2.98', share: false })
  await noCred.stop()
  t.equal(headerStatus(missing.session)?.data, '407', 'a known gateway without Cred: 407')
  t.same(missing.lists, [])
})
