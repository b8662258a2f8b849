// Who may change what in ./DMAcc (binding.md §6), through the real agent over mosquitto, driven the way a
// security review broke it: a gateway the device legitimately holds an account for, publishing on the broker
// with its real credentials, tried to make itself a DM Server or take over one; and a DM Server that added a
// gateway's account kept rights over it.
import t, { type Test } from 'tap'
import { startMosquitto } from './helpers/mosquitto.ts'
import type { AgentProcess } from './helpers/agent-process.ts'
import { DmServer, startDmServer } from './peers/dm-server.ts'
import { ASSOCIATED_GATEWAY, startGateway, type Gateway } from './peers/gateway.ts'
import { buildAccountCommands } from './peers/bootstrap-server.ts'
import { resultFor, statusFor, type PartySession } from './peers/session-record.ts'
import { add, addNode, get, type OutCommand } from './peers/syncml.ts'
import { headerStatus, pushDetection, storedAccounts } from './fixtures/gwmo/observe.ts'
import { accountSpec, GATEWAY, gatewayOptions, SERVER_A, serverOptions, startGwmoAgent, stranger } from './fixtures/gwmo/parties.ts'

// The attacker of the security review: it can publish and subscribe on any topic (an open broker, no ACL).
const broker = await startMosquitto({ open: true })
t.teardown(() => broker.stop())

const DEVICE = 'mac:01-ab-34-ef-69-0c'
/** The DM Server a hostile gateway tries to make the device trust. */
const EVIL = stranger('evil', 'http://evil.example')
/** A DM Server whose ServerID the ACL grammar cannot name (it holds `=`, TND 1.2, 7.7.1.5). */
const ODD = stranger('odd', 'http://dms.example.com/dm?dev=1')
/** The gateway a DM Server bootstraps (GwMO 1.0, 8.4.1). */
const GW_ADDED = stranger('gw2', 'http://gw2.example.net', 'gateway')

type Peer = DmServer | Gateway

/** Waits until the agent too has ended a session the peer has closed (the peer's last message may be on its way). */
async function ended(agent: AgentProcess, peer: Peer, session: PartySession): Promise<PartySession> {
  const party = peer instanceof DmServer ? peer.serverId : peer.gatewayId
  await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === session.sessionId && l.party === party, 15_000)
  return session
}

/** Starts the agent with the factory accounts of `parties` and the peers given; waits for every first session. */
async function world(t: Test, parties: typeof SERVER_A[], peers: Peer[]): Promise<AgentProcess> {
  const agent = startGwmoAgent({ brokerUrl: broker.url, deviceId: DEVICE, parties })
  t.teardown(async () => {
    if (!t.passing()) t.comment(agent.tail(60))
    await agent.remove()
    for (const peer of peers) await peer.stop()
  })
  for (const peer of peers) await ended(agent, peer, await peer.waitForSession((s) => s.origin === 'device' && s.closed, 20_000))
  return agent
}

/**
 * Pushes a session of `commands` and waits for both sides to end it. A Get rides along: the peer then answers
 * the device's reply (a Status for its Results), and the nonce the peer hands out in that answer reaches the
 * device.
 */
async function push(agent: AgentProcess, peer: Peer, commands: OutCommand[]): Promise<PartySession> {
  const pushed = await peer.pushSession([...commands, get('./DevInfo/DevId')])
  return ended(agent, peer, await peer.waitForSession((s) => s === pushed && s.closed, 15_000))
}

/** The codes the device gave the Adds of a session: the last for each (a refused message goes again, binding.md §6). */
const addCodes = (session: PartySession) => [...new Map(session.statuses.filter((s) => s.cmd === 'Add').map((s) => [s.target, s.code])).values()]

/**
 * What became of a session a party pushed: answered by the device, or dropped as coming from a party the
 * device holds no account for (binding.md §4.1: no answer at all, logged).
 */
async function fateOfPush(agent: AgentProcess, peer: DmServer, commands: OutCommand[]): Promise<'answered' | 'dropped'> {
  const from = agent.logs.length
  const pushed = await peer.pushSession(commands)
  return Promise.race([
    peer.waitForSession((s) => s === pushed && s.received.length > 0, 15_000).then(() => 'answered' as const),
    agent.waitForLogAfter(from, (l) => l.msg === 'message from a party without an account dropped' && l.party === peer.serverId)
      .then(() => 'dropped' as const),
  ])
}

t.test('a gateway neither lists ./DMAcc nor adds a DM Server\'s account, which then never logs in nor is told of the gateway', async (t) => {
  const a = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_A))
  const gateway = await startGateway(gatewayOptions(broker.url, DEVICE, GATEWAY))
  const agent = await world(t, [SERVER_A, GATEWAY], [a, gateway])

  // Regression: Get ./DMAcc named every party the device talks to, to any authenticated party.
  const listed = await push(agent, gateway, [get('./DMAcc')])
  t.equal(statusFor(listed, './DMAcc'), '425', 'Get ./DMAcc: 425')
  t.equal(resultFor(listed, './DMAcc'), undefined, 'and no Results')

  // Regression: the gateway's Adds of a whole DM Server account, with credentials of its choosing, were stored.
  const added = await push(agent, gateway, buildAccountCommands(accountSpec(EVIL)))
  const codes = addCodes(added)
  t.ok(codes.length > 0 && codes.every((code) => code === '425'), `every Add of the account: 425 (${codes.join(' ')})`)
  t.same(storedAccounts(agent.stateDir), [SERVER_A.x, GATEWAY.x].sort(), 'no account stored')

  // Regression: the server the gateway made up then logged in with those credentials.
  const evil = await startDmServer(serverOptions(broker.url, DEVICE, EVIL))
  t.teardown(() => evil.stop())
  t.equal(await fateOfPush(agent, evil, [get('./DevInfo/DevId')]), 'dropped', 'the made-up server is a stranger to the device')

  // Regression: it was listed in the Bootstrapped DMS List, and so told of the gateway (Associated Gateway).
  const from = agent.logs.length
  const detected = await pushDetection(gateway, { gwAddress: '192.0.2.1', share: true })
  t.same(detected.lists, [[SERVER_A.serverId]], 'the Bootstrapped DMS List names the factory server alone')
  const accepted = await agent.waitForLogAfter(from, (l) => l.msg === 'device detection accepted')
  t.equal(accepted.servers, 1, 'one server to tell of the gateway')
  t.match(await a.waitForGenericAlert(ASSOCIATED_GATEWAY, 15_000), { data: /192\.0\.2\.1/ }, 'and that server is told')
})

t.test('a gateway adds no credential to an account whose ServerID no ACL can name, and cannot log in as its server', async (t) => {
  const a = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_A))
  const gateway = await startGateway(gatewayOptions(broker.url, DEVICE, GATEWAY))
  const odd = await startDmServer(serverOptions(broker.url, DEVICE, ODD))
  const agent = await world(t, [SERVER_A, GATEWAY, ODD], [a, gateway, odd])
  // Only one party listens on the server's topic at a time: the impostor takes the real server's place.
  await odd.stop()

  // Regression: with no ACL of its own, the account inherited ./DMAcc's `Add=*`, and the gateway added an entry.
  const base = './DMAcc/odd/AppAuth/3'
  const added = await push(agent, gateway, [
    addNode(base),
    add(`${base}/AAuthLevel`, 'SRVCRED'),
    add(`${base}/AAuthType`, 'BASIC'),
    add(`${base}/AAuthName`, 'impostor'),
    add(`${base}/AAuthSecret`, 'impostor-secret'),
  ])
  const codes = addCodes(added)
  t.ok(codes.length === 5 && codes.every((code) => code === '425'), `every Add of the credential: 425 (${codes.join(' ')})`)

  // Regression: the gateway then logged in as that server with the credential it had added.
  const impostor = await startDmServer({
    ...serverOptions(broker.url, DEVICE, ODD), serverName: 'impostor', serverPassword: 'impostor-secret', authType: 'basic',
  })
  t.teardown(() => impostor.stop())
  const pushed = await impostor.pushSession([get('./DevInfo/DevId')])
  const refused = await impostor.waitForSession((s) => s === pushed && s.received.length > 0, 15_000)
  t.equal(headerStatus(refused)?.data, '401', 'the impostor\'s credentials fail: 401')
  t.notOk(refused.received.some((m) => m.message.commands.some((c) => c.name === 'Results')), 'and it reads nothing')
})

t.test('a DM Server adds only a gateway\'s account, and keeps no rights over it', async (t) => {
  const a = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_A))
  const agent = await world(t, [SERVER_A], [a])

  // Regression: a server could add any account, a DM Server's too (GwMO 8.4.1 is the only reason it adds one).
  const server = await push(agent, a, buildAccountCommands(accountSpec(EVIL)))
  const serverCodes = addCodes(server)
  t.ok(serverCodes.length > 0 && serverCodes.every((code) => code === '500'), `a DM Server's account: every Add 500 (${serverCodes.join(' ')})`)
  t.match(agent.logs.find((l) => l.msg === 'commit refused by validation' && l.sessionId === server.sessionId), {
    problems: [`./DMAcc/${EVIL.x}/Ext/GwMO/Role: missing: a DM Server adds only a gateway's account (GwMO 1.0, 8.4.1)`],
  }, 'the refusal is logged, naming the path')

  const gatewayAccount = await push(agent, a, buildAccountCommands(accountSpec(GW_ADDED)))
  const gatewayCodes = addCodes(gatewayAccount)
  t.ok(gatewayCodes.length > 0 && gatewayCodes.every((code) => code === '200'), 'a gateway\'s account: every Add 200')
  t.same(storedAccounts(agent.stateDir), [SERVER_A.x, GW_ADDED.x].sort(), 'the gateway\'s account alone is stored')

  // Regression: the account kept its creator's ACL, so the server could read it and change its credentials.
  const uri = `./DMAcc/${GW_ADDED.x}/AppAuth/2/AAuthName`
  const after = await push(agent, a, [get(uri)])
  t.equal(statusFor(after, uri), '425', 'the server no longer reads the account it added')
  t.equal(resultFor(after, uri), undefined, 'and gets no Results')
  const gw2 = await startGateway(gatewayOptions(broker.url, DEVICE, GW_ADDED))
  t.teardown(() => gw2.stop())
  const own = await push(agent, gw2, [get(uri)])
  t.equal(resultFor(own, uri), GW_ADDED.serverName, 'the gateway reads its own account')
})
