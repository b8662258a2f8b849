// The local bootstrap channel under attack (binding.md §6), through the real agent over mosquitto, driven the way
// a security review broke it: a bootstrap server on the broker guessing a USERPIN as fast as it could, and,
// once in, a bootstrap that replaced the DM Server's secret and opened its account's ACL to every server.
import t, { type Test } from 'tap'
import { startMosquitto } from './helpers/mosquitto.ts'
import type { AgentProcess } from './helpers/agent-process.ts'
import { buildAccountCommands, buildBootstrap, type BootstrapPayload, type BootstrapRequest } from './peers/bootstrap-server.ts'
import { startDmServer, type DmServer } from './peers/dm-server.ts'
import { connectPeer, disconnect, publish, topicFor } from './peers/mqtt.ts'
import type { Party } from './peers/party.ts'
import { resultFor, type PartySession } from './peers/session-record.ts'
import { add, addNode, get, replace, type OutCommand } from './peers/syncml.ts'
import { headerStatus, storedAccounts } from './fixtures/gwmo/observe.ts'
import { accountSpec, SERVER_A, serverOptions, startGwmoAgent, stranger } from './fixtures/gwmo/parties.ts'

// The attacker of the security review: it can publish and subscribe on any topic (an open broker, no ACL).
const broker = await startMosquitto({ open: true })
t.teardown(() => broker.stop())

const DEVICE = 'mac:01-ab-34-ef-69-0c'
const NETWORK_ID = '310150123456789'
/** The DM Server an attacker wants the device to trust. */
const ROGUE = stranger('rogue', 'http://rogue.example.com')
/** A DM Server a legitimate local bootstrap adds. */
const SERVER_N = stranger('dmsN', 'http://www.newDMServer.com')

/** Publishes bootstrap messages in order, on one connection, as fast as the broker takes them. */
async function publishAll(messages: BootstrapPayload[]): Promise<void> {
  const client = await connectPeer(broker.url)
  try {
    for (const m of messages) {
      await publish(client, topicFor(DEVICE, 'bootstrap'), m.payload, { contentType: m.contentType, userProperties: m.userProperties })
    }
  } finally {
    await disconnect(client)
  }
}

const bootstrapOf = (request: Omit<BootstrapRequest, 'brokerUrl' | 'deviceId'>) => buildBootstrap({ deviceId: DEVICE, ...request })

/** The agent with the factory server A and the given bootstrap secrets; waits for A's first session. */
async function world(t: Test, secrets: { userPin: string; networkId: string }, peers: Party[] = []): Promise<{ agent: AgentProcess; a: DmServer }> {
  const a = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_A))
  const agent = startGwmoAgent({ brokerUrl: broker.url, deviceId: DEVICE, parties: [SERVER_A], config: secrets })
  t.teardown(async () => {
    if (!t.passing()) t.comment(agent.tail(60))
    await agent.remove()
    for (const peer of [a, ...peers]) await peer.stop()
  })
  await ended(agent, await a.waitForSession((s) => s.origin === 'device' && s.closed, 20_000))
  return { agent, a }
}

/** Waits until the agent too has ended a session server A has closed (A's last message may be on its way). */
async function ended(agent: AgentProcess, session: PartySession): Promise<PartySession> {
  await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === session.sessionId && l.party === SERVER_A.serverId, 15_000)
  return session
}

/** Waits for the `bootstrap applied` or `bootstrap refused` line that follows the `from`-th line. */
const outcomeAfter = (agent: AgentProcess, from: number) =>
  agent.waitForLogAfter(from, (l) => l.msg === 'bootstrap applied' || l.msg === 'bootstrap refused')

t.test('a USERPIN brute force is throttled: past three wrong guesses even the right PIN is refused unchecked', async (t) => {
  const PIN = '428613'
  const { agent } = await world(t, { userPin: PIN, networkId: NETWORK_ID })
  const rogue = buildAccountCommands(accountSpec(ROGUE))
  const guess = (pin: string) => bootstrapOf({ encoding: 'xml', sec: 'USERPIN', userPin: pin, commands: rogue })

  // Regression: every guess had its MAC checked, as fast as they came; the 735th found the PIN.
  const from = agent.logs.length
  const guesses = Array.from({ length: 24 }, (_, k) => guess(String(100000 + k)))
  await publishAll([...guesses, guess(PIN)])
  // Another method's bootstrap, after them on the same topic: once it is applied, every guess has been handled.
  await publishAll([bootstrapOf({ encoding: 'xml', sec: 'NETWORKID', networkId: NETWORK_ID, commands: buildAccountCommands(accountSpec(SERVER_N)) })])
  const applied = await agent.waitForLogAfter(from, (l) => l.msg === 'bootstrap applied')
  t.match(applied, { method: 'NETWORKID', servers: [SERVER_N.serverId] }, 'NETWORKID still works during the USERPIN backoff')

  const lines = agent.logs.slice(from)
  t.notOk(lines.some((l) => l.msg === 'bootstrap applied' && l.method === 'USERPIN'), 'the right PIN, sent after the guesses, was not applied')
  t.same(storedAccounts(agent.stateDir), [SERVER_A.x, SERVER_N.x].sort(), 'no account for the attacker\'s server')
  const checked = lines.filter((l) => l.msg === 'bootstrap refused' && l.stage === 'mac')
  t.equal(checked.length, 4, 'four MACs checked out of 25 USERPIN bootstraps: three free failures, and the one that started the backoff')
  t.match(checked.at(-1), { method: 'USERPIN', failures: 4, backoffSeconds: 30 }, 'that line says so')
  t.notMatch(agent.stdout, PIN, 'the PIN is in no log line')
})

t.test('a PIN shorter than 6 characters: the agent starts, says so once, and refuses every USERPIN bootstrap', async (t) => {
  const PIN = '8642'
  const n = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_N))
  const { agent } = await world(t, { userPin: PIN, networkId: NETWORK_ID }, [n])
  const said = agent.logs.filter((l) => /USERPIN/.test(l.msg))
  t.equal(said.length, 1, 'one line at start')
  t.match(said[0], { level: 'warn', msg: /^SEC=USERPIN bootstraps refused: the configured userPin is shorter than 6 characters/ }, 'a warning naming the rule')

  // Regression: a 4-digit PIN was taken for USERPIN alone, and fell to a brute force in seconds.
  for (let k = 0; k < 2; k++) {
    // The line of a refusal no MAC check throttles is rate-limited (binding.md §11): one a second.
    if (k > 0) await new Promise((resolve) => setTimeout(resolve, 1100))
    const from = agent.logs.length
    await publishAll([bootstrapOf({ encoding: 'wbxml', sec: 'USERPIN', userPin: PIN, commands: buildAccountCommands(accountSpec(ROGUE)) })])
    t.match(await outcomeAfter(agent, from), {
      msg: 'bootstrap refused', stage: 'mac', reason: 'USERPIN alone is refused: the configured PIN is shorter than 6 characters',
    }, `even with the right PIN (${k + 1})`)
  }
  const from = agent.logs.length
  await publishAll([bootstrapOf({ encoding: 'wbxml', sec: 'USERPIN_NETWORKID', userPin: PIN, networkId: NETWORK_ID, commands: buildAccountCommands(accountSpec(SERVER_N)) })])
  t.match(await outcomeAfter(agent, from), { msg: 'bootstrap applied', method: 'USERPIN_NETWORKID' }, 'USERPIN_NETWORKID works')
  t.equal((await n.waitForSession((s) => s.origin === 'device' && s.closed, 15_000)).initiation, '1201', 'and a session with the server it added follows')
  t.same(storedAccounts(agent.stateDir), [SERVER_A.x, SERVER_N.x].sort(), 'no account for the attacker\'s server')
  t.notMatch(agent.stdout, PIN, 'the PIN is in no log line')
})

t.test('a local bootstrap only adds accounts: the DM Server\'s secret, ACL and credentials stay its own', async (t) => {
  const secrets = { userPin: '428613', networkId: NETWORK_ID }
  const { agent, a } = await world(t, secrets)
  const account = `./DMAcc/${SERVER_A.x}`
  const ALL = 'Add=*&Delete=*&Exec=*&Get=*&Replace=*'
  const attempts: Array<[string, OutCommand[]]> = [
    // Regression: the bootstrap replaced the DM Server's secret and set its account's ACL to `*`.
    ['its secret and ACL replaced', [replace(`${account}/AppAuth/2/AAuthSecret`, 'attacker-secret'), replace(`${account}?prop=ACL`, ALL)]],
    // Regression: a bootstrap could add a credential of its own to an existing account.
    ['a credential added to its account', [
      addNode(`${account}/AppAuth/3`), add(`${account}/AppAuth/3/AAuthLevel`, 'SRVCRED'), add(`${account}/AppAuth/3/AAuthType`, 'BASIC'),
      add(`${account}/AppAuth/3/AAuthName`, 'impostor'), add(`${account}/AppAuth/3/AAuthSecret`, 'impostor-secret'),
    ]],
    ['a new account, and a change outside it', [...buildAccountCommands(accountSpec(ROGUE)), replace('./DevInfo/Lang', 'xx')]],
  ]
  for (const [what, commands] of attempts) {
    const from = agent.logs.length
    await publishAll([bootstrapOf({ encoding: 'wbxml', sec: 'USERPIN', ...secrets, commands })])
    t.match(await outcomeAfter(agent, from), { msg: 'bootstrap refused', stage: 'apply', reason: /a local bootstrap only adds new accounts/ }, what)
  }
  t.same(storedAccounts(agent.stateDir), [SERVER_A.x], 'no account added')

  const asked = await a.pushSession([get(`${account}?prop=ACL`), get('./DevInfo/DevId')])
  const own = await ended(agent, await a.waitForSession((s) => s === asked && s.closed, 15_000))
  t.equal(resultFor(own, './DevInfo/DevId'), DEVICE, 'the real server still logs in with its own secret')
  t.equal(resultFor(own, `${account}?prop=ACL`), `Add=${SERVER_A.serverId}&Delete=${SERVER_A.serverId}&Get=${SERVER_A.serverId}&Replace=${SERVER_A.serverId}`,
    'and its account\'s ACL is its own')

  // Only one party listens on the server's topic at a time: each impostor takes the server's place in turn.
  const saved = { serverNonce: a.serverNonce, clientNonce: a.clientNonce }
  await a.stop()
  const impostors = [
    { ...serverOptions(broker.url, DEVICE, SERVER_A), ...saved, serverPassword: 'attacker-secret' },
    { ...serverOptions(broker.url, DEVICE, SERVER_A), ...saved, serverName: 'impostor', serverPassword: 'impostor-secret', authType: 'basic' as const },
  ]
  for (const [k, options] of impostors.entries()) {
    const impostor = await startDmServer(options)
    const pushed = await impostor.pushSession([get('./DevInfo/DevId')])
    const refused = await impostor.waitForSession((s) => s === pushed && s.received.length > 0, 15_000)
    await impostor.stop()
    t.equal(headerStatus(refused)?.data, '401', `impostor ${k + 1}: its credentials fail`)
    t.notOk(refused.received.some((m) => m.message.commands.some((c) => c.name === 'Results')), `impostor ${k + 1}: and it reads nothing`)
  }
})
