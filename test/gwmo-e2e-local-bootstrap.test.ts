// Gateway bootstrap by a local DM Bootstrap Server through the real agent (GwMO seed 001, 8.4.2; binding.md §2,
// §4.7, §6; OMA DM Bootstrap 1.2, DM profile; OMA DM Security 1.2, 5.1.7.2): a bootstrap on `/bootstrap` whose
// MAC verifies with the key of its SEC method (NETWORKID, USERPIN, USERPIN_NETWORKID), in XML or WBXML, is
// applied whole, answered by nobody, and followed by a client-initiated session with each server it
// configured, the gateway among them. A wrong MAC, a method whose secret is not configured, a malformed or
// foreign document, a duplicate delivery and a change to an existing account change nothing, open no session,
// and are logged.
import t from 'tap'
import { startMosquitto } from './helpers/mosquitto.ts'
import type { AgentProcess } from './helpers/agent-process.ts'
import { bootstrapMac } from './peers/auth.ts'
import { buildAccountCommands, DEFAULT_SOURCE, sendBootstrap, type BootstrapRequest } from './peers/bootstrap-server.ts'
import { startDmServer } from './peers/dm-server.ts'
import { BOOTSTRAPPED_DMS_LIST, startGateway } from './peers/gateway.ts'
import { connectPeer, CONTENT_TYPE, disconnect, publish, topicFor } from './peers/mqtt.ts'
import type { Party } from './peers/party.ts'
import { resultFor } from './peers/session-record.ts'
import { add, buildMessage, del, get, replace, type OutCommand } from './peers/syncml.ts'
import { BrokerWatch } from './fixtures/gwmo/broker-watch.ts'
import { pushDetection, storedAccounts } from './fixtures/gwmo/observe.ts'
import { accountSpec, gatewayOptions, SERVER_A, SERVER_B, serverOptions, startGwmoAgent, stranger } from './fixtures/gwmo/parties.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())
const watch = await BrokerWatch.start(broker.url)
t.teardown(() => watch.stop())

const DEVICE = 'mac:01-ab-34-ef-69-0c'
const SECRETS = { userPin: '864213', networkId: '310150123456789' }
/** Configured by the bootstraps: a DM Server, a local gateway, and one more server. */
const SERVER_C = stranger('dmsC', 'http://www.thirdDMServer.com')
const LOCAL_GW = stranger('lgw', 'http://gw.local.example', 'gateway')
const SERVER_D = stranger('dmsD', 'http://www.fourthDMServer.com')
const SERVER_E = stranger('dmsE', 'http://www.fifthDMServer.com')
/** Accounts that refused bootstraps would have created. */
const NEVER = stranger('never', 'http://never.example.com')

/** Every bootstrap message this file sends, to tell them from anything else on a bootstrap topic. */
const sent: Buffer[] = []

function bootstrap(request: Omit<BootstrapRequest, 'brokerUrl' | 'deviceId'> & { deviceId?: string }) {
  return sendBootstrap({ brokerUrl: broker.url, deviceId: DEVICE, ...SECRETS, ...request }).then((result) => {
    sent.push(Buffer.from(result.payload))
    return result
  })
}

/** Publishes raw bytes on the device's bootstrap topic with the given user properties. */
async function publishRaw(payload: Uint8Array, properties: Record<string, string>, contentType: string = CONTENT_TYPE.xml, deviceId = DEVICE): Promise<void> {
  const client = await connectPeer(broker.url, { as: DEFAULT_SOURCE })
  try {
    await publish(client, topicFor(deviceId, 'bootstrap'), payload, { contentType, userProperties: properties })
    sent.push(Buffer.from(payload))
  } finally {
    await disconnect(client)
  }
}

function message(commands: OutCommand[], target = DEVICE): string {
  return buildMessage({ sessionId: '0', msgId: '1', target, source: 'local-bootstrap' }, commands).xml
}

/** The next `bootstrap refused` line after the `from`-th, with its stage. */
async function refusedAfter(agent: AgentProcess, from: number): Promise<string> {
  const line = await agent.waitForLogAfter(from, (l) => l.msg === 'bootstrap refused')
  return String(line.stage)
}

const deviceSessions = (peer: Party) => peer.sessions.filter((s) => s.origin === 'device').length

t.test('applied from XML and WBXML under each SEC method, unanswered, then a session with each server configured', async (t) => {
  const a = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_A))
  const c = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_C))
  const d = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_D))
  const e = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_E))
  const gateway = await startGateway(gatewayOptions(broker.url, DEVICE, LOCAL_GW))
  const peers: Party[] = [a, c, d, e, gateway]
  const agent = startGwmoAgent({ brokerUrl: broker.url, deviceId: DEVICE, parties: [SERVER_A], config: SECRETS })
  t.teardown(async () => {
    await agent.remove()
    for (const peer of peers) await peer.stop()
  })
  await a.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
  const runs = [agent]

  // XML, NETWORKID: a DM Server and the gateway (figure 11).
  let from = agent.logs.length
  const first = await bootstrap({
    encoding: 'xml',
    sec: 'NETWORKID',
    commands: [...buildAccountCommands(accountSpec(SERVER_C)), ...buildAccountCommands(accountSpec(LOCAL_GW))],
  })
  const applied = await agent.waitForLogAfter(from, (l) => l.msg === 'bootstrap applied')
  t.match(applied, { method: 'NETWORKID' }, 'applied, the method logged')
  t.same([...(applied.servers as string[])].sort(), [SERVER_C.serverId, LOCAL_GW.serverId].sort())
  const withC = await c.waitForSession((s) => s.origin === 'device' && s.closed, 15_000)
  const withGw = await gateway.waitForSession((s) => s.origin === 'device' && s.closed, 15_000)
  t.equal(withC.initiation, '1201', 'a client-initiated session with the server it configured')
  t.equal(withGw.initiation, '1201', 'and with the gateway')
  t.ok(withC.deviceAuthenticated && withGw.deviceAuthenticated, 'with the credentials the bootstrap gave')
  const detected = await pushDetection(gateway, { gwAddress: '192.168.1.1', share: false })
  t.same(detected.lists.map((l) => [...l].sort()), [[SERVER_A.serverId, SERVER_C.serverId].sort()], 'the gateway\'s detections are accepted')

  // WBXML, USERPIN: another server.
  from = agent.logs.length
  await bootstrap({ encoding: 'wbxml', sec: 'USERPIN', commands: buildAccountCommands(accountSpec(SERVER_D)) })
  t.match(await agent.waitForLogAfter(from, (l) => l.msg === 'bootstrap applied'), { method: 'USERPIN', servers: [SERVER_D.serverId] })
  t.equal((await d.waitForSession((s) => s.origin === 'device' && s.closed, 15_000)).initiation, '1201', 'WBXML: a session with the new server')

  // WBXML, USERPIN_NETWORKID: one more server.
  from = agent.logs.length
  await bootstrap({ encoding: 'wbxml', sec: 'USERPIN_NETWORKID', commands: buildAccountCommands(accountSpec(SERVER_E)) })
  t.match(await agent.waitForLogAfter(from, (l) => l.msg === 'bootstrap applied'), { method: 'USERPIN_NETWORKID', servers: [SERVER_E.serverId] })
  t.equal((await e.waitForSession((s) => s.origin === 'device' && s.closed, 15_000)).initiation, '1201', 'USERPIN_NETWORKID: a session with the new server')

  const before = storedAccounts(agent.stateDir)
  t.same(before, [SERVER_A.x, SERVER_C.x, SERVER_D.x, SERVER_E.x, LOCAL_GW.x].sort())
  const sessionCounts = peers.map(deviceSessions)

  // What must change nothing. Each one is refused at its stage, and logged.
  const refusals: Array<{ what: string; stage: string; send: () => Promise<unknown> }> = [
    { what: 'a wrong MAC', stage: 'mac', send: () => bootstrap({ encoding: 'xml', sec: 'NETWORKID', macOverride: 'ab'.repeat(20), commands: buildAccountCommands(accountSpec(NEVER)) }) },
    { what: 'a MAC made with another key', stage: 'mac', send: () => bootstrap({ encoding: 'wbxml', sec: 'USERPIN', key: '0000', commands: buildAccountCommands(accountSpec(NEVER)) }) },
    { what: 'no MAC', stage: 'mac', send: () => publishRaw(Buffer.from(message(buildAccountCommands(accountSpec(NEVER)))), { SEC: 'NETWORKID' }) },
    { what: 'a SEC of the provisioning profile', stage: 'mac', send: () => {
      const payload = Buffer.from(message(buildAccountCommands(accountSpec(NEVER))))
      return publishRaw(payload, { SEC: 'NETWPIN', MAC: bootstrapMac(SECRETS.networkId, payload) })
    } },
    { what: 'a malformed document', stage: 'decode', send: () => {
      const payload = Buffer.from('<SyncML><SyncHdr><unclosed></SyncML>')
      return publishRaw(payload, { SEC: 'NETWORKID', MAC: bootstrapMac(SECRETS.networkId, payload) })
    } },
    { what: 'WBXML that is not WBXML', stage: 'decode', send: () => {
      const payload = Buffer.from([0x03, 0x00, 0x00, 0xff, 0xff, 0xff])
      return publishRaw(payload, { SEC: 'NETWORKID', MAC: bootstrapMac(SECRETS.networkId, payload) }, CONTENT_TYPE.wbxml)
    } },
    { what: 'a document for another device', stage: 'target', send: () => bootstrap({ encoding: 'xml', sec: 'NETWORKID', xml: message(buildAccountCommands(accountSpec(NEVER)), 'mac:99-99-99-99-99-99') }) },
    { what: 'a Delete (only Add and Replace bootstrap)', stage: 'apply', send: () => bootstrap({ encoding: 'xml', sec: 'NETWORKID', commands: [...buildAccountCommands(accountSpec(NEVER)), del('./DMAcc/dmsC')] }) },
    { what: 'a duplicate delivery of the first bootstrap', stage: 'apply', send: () => publishRaw(first.payload, first.userProperties) },
    { what: 'a Replace in an existing account (a local bootstrap only adds accounts)', stage: 'apply', send: () => bootstrap({
      encoding: 'wbxml', sec: 'USERPIN_NETWORKID', commands: [replace('./DMAcc/dmsC/Name', 'must not stick')],
    }) },
    { what: 'a Replace followed by an Add of a node that exists', stage: 'apply', send: () => bootstrap({
      encoding: 'wbxml', sec: 'USERPIN_NETWORKID',
      commands: [replace('./DMAcc/dmsC/Name', 'must not stick'), add('./DMAcc/dmsD/AppID', 'w7')],
    }) },
  ]
  for (const { what, stage, send } of refusals) {
    from = agent.logs.length
    await send()
    t.equal(await refusedAfter(agent, from), stage, `${what}: refused at the ${stage} step`)
  }

  t.same(storedAccounts(agent.stateDir), before, 'no account added or removed')
  t.equal((await agent.stop()).code, 0)
  const restarted = agent.restart()
  runs.push(restarted)
  t.teardown(() => restarted.remove())
  // The restart opens no session by itself (nothing pending): the server asks.
  await restarted.online()
  const pushed = await c.pushSession([get('./DMAcc/dmsC/Name')])
  const after = await c.waitForSession((s) => s === pushed && s.closed, 15_000)
  t.equal(resultFor(after, './DMAcc/dmsC/Name'), accountSpec(SERVER_C).name, 'after a restart: no refused Replace stuck')
  t.same(storedAccounts(restarted.stateDir), before, 'and the accounts are the bootstraps\' own')
  t.same(peers.map((p) => p.sessions.filter((s) => s.origin === 'device').length), sessionCounts, 'no refusal opened a session')
  t.notOk(restarted.logs.concat(agent.logs).some((l) => l.msg === 'bootstrap applied' && JSON.stringify(l).includes(NEVER.serverId)))

  // Nobody answers a bootstrap: nothing on any bootstrap topic but what was sent, nothing to its source.
  const onBootstrap = watch.onChannel('bootstrap')
  t.equal(onBootstrap.length, sent.length, 'the bootstrap topics carry only the bootstraps sent')
  t.ok(onBootstrap.every((m) => sent.some((s) => s.equals(m.payload))))
  const toBootstrapServer = [topicFor('bootstrap', 'dm'), topicFor('local-bootstrap', 'dm')]
  t.same(watch.messages.filter((m) => toBootstrapServer.includes(m.topic)), [], 'no message to the bootstrap server')
  t.same(alertsOfTypeIn([a, c, d], BOOTSTRAPPED_DMS_LIST), [], 'and no DMS list to a DM Server')
  for (const run of runs) {
    t.notMatch(run.stdout, SECRETS.networkId, 'the network secret is in no log line')
    t.notMatch(run.stdout, first.mac, 'nor is the MAC')
  }
})

t.test('a method whose secret is not configured is refused; the other methods still work', async (t) => {
  const b = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_B))
  const c = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_C))
  const agent = startGwmoAgent({ brokerUrl: broker.url, deviceId: DEVICE, parties: [SERVER_B], config: { networkId: SECRETS.networkId } })
  t.teardown(async () => {
    await agent.remove()
    for (const peer of [b, c]) await peer.stop()
  })
  await b.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
  for (const sec of ['USERPIN', 'USERPIN_NETWORKID'] as const) {
    // The line of a refusal no MAC check throttles is rate-limited (binding.md §11): one a second.
    if (sec !== 'USERPIN') await new Promise((resolve) => setTimeout(resolve, 1100))
    const from = agent.logs.length
    await bootstrap({ encoding: 'wbxml', sec, commands: buildAccountCommands(accountSpec(SERVER_C)) })
    const refused = await agent.waitForLogAfter(from, (l) => l.msg === 'bootstrap refused')
    t.match(refused, { stage: 'mac', reason: /not configured/ }, `${sec} without userPin: refused`)
  }
  t.same(storedAccounts(agent.stateDir), [SERVER_B.x], 'nothing added')
  t.equal(deviceSessions(c), 0, 'no session with the server it would have configured')
  const from = agent.logs.length
  await bootstrap({ encoding: 'xml', sec: 'NETWORKID', commands: buildAccountCommands(accountSpec(SERVER_C)) })
  await agent.waitForLogAfter(from, (l) => l.msg === 'bootstrap applied')
  t.equal((await c.waitForSession((s) => s.origin === 'device' && s.closed, 15_000)).initiation, '1201', 'NETWORKID works')
})

function alertsOfTypeIn(peers: Party[], type: string) {
  return peers.flatMap((p) => p.sessions.flatMap((s) => s.genericAlerts)).filter((a) => a.type === type)
}
