// Authentication of the real agent both ways (OMA DM Protocol 1.2, 9; binding.md §3, §4.1, §6): refused
// parties get 401/407 with a Chal and nothing runs; a party without an account gets no answer at all; the
// nonces the device hands out rotate, are what it expects next, survive a restart and are never handed out
// twice, not even across a SIGKILL; the device's own Cred follows the nonces the server gives it.
import t, { type Test } from 'tap'
import { AgentProcess, cleanUpAgent, FACTORY, factoryServer, finalStatus } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import mqtt from 'mqtt'
import { md5Digest, nonceBytes } from './peers/auth.ts'
import { startDmServer, type DmServer } from './peers/dm-server.ts'
import { CONTENT_TYPE, topicFor } from './peers/mqtt.ts'
import { Party } from './peers/party.ts'
import { resultFor, type PartySession } from './peers/session-record.ts'
import { get, replace, type OutCommand, type ParsedCommand, type ParsedMessage } from './peers/syncml.ts'

// Open: replay() plays an attacker who captured a message and may publish on any topic, past any broker ACL.
const broker = await startMosquitto({ open: true })
t.teardown(() => broker.stop())

const EVIL = 'changed by an impostor'

function headerStatus(message: ParsedMessage | undefined): ParsedCommand | undefined {
  return message?.commands.find((c) => c.name === 'Status' && c.cmdRef === '0')
}

/** Every NextNonce the device handed the server (on its Status for the server's SyncHdr) in these sessions. */
function noncesGiven(sessions: PartySession[]): string[] {
  return sessions.flatMap((s) => s.received.map((m) => headerStatus(m.message)?.chal?.nextNonce)).filter((n): n is string => n !== undefined)
}

/** Publishes a recorded message again on the device's topic, as someone who captured it would. */
async function replay(brokerUrl: string, xml: string): Promise<void> {
  const client = mqtt.connect(brokerUrl, { protocolVersion: 5, clientId: `replay-${process.pid}`, reconnectPeriod: 0 })
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', reject)
  })
  await client.publishAsync(topicFor(FACTORY.deviceId, 'dm'), xml, { qos: 1, properties: { contentType: CONTENT_TYPE.xml } })
  await client.endAsync()
}

/** The server's nonce state, to start a new peer where the last one left off. */
function nonces(server: DmServer) {
  return { serverNonce: server.serverNonce, clientNonce: server.clientNonce }
}

/**
 * A pushed session of `commands`, waited for until the peer has closed it and the agent has ended it too (the
 * peer's last message may still be on its way when the peer closes its record).
 */
async function push(server: DmServer, commands: OutCommand[], agent: AgentProcess): Promise<PartySession> {
  const pushed = await server.pushSession(commands)
  const done = await server.waitForSession((s) => s === pushed && s.closed, 20_000)
  await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === done.sessionId, 20_000, `end of session ${done.sessionId}`)
  return done
}

async function startAgent(t: Test, server: DmServer): Promise<AgentProcess> {
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url }))
  await server.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
  return agent
}

t.test('wrong or missing server credentials: 401/407 with a Chal, nothing executed; a stranger gets no answer', async (t) => {
  let server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const agent = await startAgent(t, server)

  // Only one party listens on the server's topic at a time: the impostors take the server's place.
  const saved = nonces(server)
  await server.stop()
  const party = (extra: Partial<ConstructorParameters<typeof Party>[0]>) =>
    new Party({ ...factoryServer(broker.url), partyId: FACTORY.serverId, maxAuthRetries: 0, ...saved, ...extra })

  const wrong = party({ serverPassword: 'not-the-secret' })
  await wrong.start()
  const wrongPush = await wrong.pushSession([replace('./DMAcc/dms/Name', EVIL), get('./DMAcc/dms/ServerID')])
  const refused = await wrong.waitForSession((s) => s === wrongPush && s.received.length > 0, 15_000)
  await wrong.stop()
  const answer = refused.received[0]!.message
  t.equal(headerStatus(answer)?.data, '401', 'wrong Cred: 401 on the SyncHdr')
  t.equal(headerStatus(answer)?.chal?.type, 'syncml:auth-md5', 'with a Chal of the account\'s scheme')
  t.ok(headerStatus(answer)?.chal?.nextNonce, 'and a nonce to retry with')
  t.equal(resultFor(refused, './DMAcc/dms/ServerID'), undefined, 'no Results')
  t.notOk(refused.statuses.some((s) => s.code.startsWith('2')), 'no command succeeded')

  const missing = party({ sendCred: false })
  await missing.start()
  const missingPush = await missing.pushSession([replace('./DMAcc/dms/Name', EVIL)])
  const challenged = await missing.waitForSession((s) => s === missingPush && s.received.length > 0, 15_000)
  await missing.stop()
  t.equal(headerStatus(challenged.received[0]!.message)?.data, '407', 'no Cred: 407')
  t.equal(headerStatus(challenged.received[0]!.message)?.chal?.type, 'syncml:auth-md5')
  t.notOk(challenged.statuses.some((s) => s.code.startsWith('2')), 'nothing executed')

  // binding.md §4.1: a party with no account gets no answer at all; it is logged.
  const stranger = new Party({ ...factoryServer(broker.url), partyId: 'http://stranger.example.com' })
  await stranger.start()
  t.teardown(() => stranger.stop())
  const logged = agent.logs.length
  await stranger.pushSession([get('./DevInfo/DevId')])
  await agent.waitForLogAfter(logged, (l) => l.msg === 'message from a party without an account dropped' && l.party === 'http://stranger.example.com')

  // The real server, back: its nonce may have moved with the refusals (a challenge it answers), and the tree
  // shows that nothing of the impostors ran.
  server = await startDmServer({ ...factoryServer(broker.url, t), ...saved })
  const check = await push(server, [get('./DMAcc/dms/Name'), get('./DevInfo/DevId')], agent)
  t.equal(check.hdrStatuses.at(-1), '212', 'the real server authenticates (after a challenge if need be)')
  t.equal(resultFor(check, './DMAcc/dms/Name'), 'Example DM Server', 'nothing of the refused commands ran')
  t.equal(resultFor(check, './DevInfo/DevId'), FACTORY.deviceId)
  t.equal(stranger.sessions[0]?.received.length, 0, 'the stranger got nothing, even after a later session')
  t.same(stranger.malformed, [])
})

t.test('the device\'s nonces: rotated every session, expected next, kept across restarts, never handed out twice', async (t) => {
  let server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const all: PartySession[] = []
  let agent = await startAgent(t, server)
  all.push(...server.sessions)
  // Regression: a session whose server message held nothing but Status got no reply, yet the device had
  // stored a fresh nonce for the server, which then started every next session with a 401.
  t.equal(server.serverNonce, '', 'a session without a reply hands out no nonce')
  const factoryNonce = await push(server, [get('./DevInfo/Man')], agent)
  t.same(factoryNonce.hdrStatuses, ['212'], 'and the nonce the server holds is still the one expected')
  all.push(factoryNonce)
  const first = server.serverNonce
  t.not(first, '', 'a reply carries a fresh nonce')

  // The next session authenticates with it at the first try, and gets a new one.
  const second = await push(server, [get('./DevInfo/Mod')], agent)
  t.equal(second.sent[0]!.xml.includes(md5Digest(FACTORY.serverName, FACTORY.serverPassword, nonceBytes(first))), true,
    'the server used the nonce of the last session')
  t.same(second.hdrStatuses, ['212'], 'accepted at the first try')
  t.not(server.serverNonce, first, 'a fresh nonce for the next session')
  all.push(second)

  // A clean restart keeps the nonce the device expects.
  t.equal((await agent.stop()).code, 0)
  agent = cleanUpAgent(t, agent.restart())
  await agent.online()
  const afterRestart = await push(server, [get('./DevInfo/Mod')], agent)
  t.same(afterRestart.hdrStatuses, ['212'], 'after SIGTERM and a start: accepted at the first try')
  all.push(afterRestart)

  // A session that changes nothing leaves its new nonce in memory for a while (the counter reservation keeps
  // it unique); a SIGKILL then loses it. The server may need one more challenge, and the session completes.
  const beforeKill = await push(server, [get('./DevInfo/Lang')], agent)
  t.same(beforeKill.hdrStatuses, ['212'])
  all.push(beforeKill)
  const givenBeforeKill = server.serverNonce
  await agent.kill()
  agent = cleanUpAgent(t, agent.restart())
  await agent.online()

  const afterKill = await push(server, [get('./DevInfo/Lang'), replace('./DMAcc/dms/Name', 'after the kill')], agent)
  all.push(afterKill)
  t.equal(afterKill.hdrStatuses.at(-1), '212', 'the protocol recovers: authenticated at last')
  t.ok(afterKill.hdrStatuses.length <= 2, 'with one challenge at most')
  t.equal(resultFor(afterKill, './DevInfo/Lang'), 'en-US')
  t.equal(finalStatus(afterKill, './DMAcc/dms/Name'), '200')
  t.not(server.serverNonce, givenBeforeKill)

  // A failure within a second of the last rotation repeats the current nonce (binding.md §6); otherwise each
  // nonce is new, and none ever comes back once another was given.
  const given = noncesGiven(all)
  t.ok(new Set(given).size >= all.length, 'a fresh nonce in every session')
  const comesBack = given.find((nonce, k) => k > 0 && given[k - 1] !== nonce && given.slice(0, k - 1).includes(nonce))
  t.equal(comesBack, undefined, 'no nonce was handed out again after another')
})

t.test('after a SIGKILL no nonce used before it authenticates again: a recorded message sent again is refused', async (t) => {
  let server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  let agent = await startAgent(t, server)
  // Sessions that change nothing: the nonces they hand out reach the disk lazily.
  const recorded = [
    await push(server, [get('./DevInfo/Man')], agent),
    await push(server, [get('./DevInfo/Mod')], agent),
    await push(server, [get('./DevInfo/Lang')], agent),
  ]
  await agent.kill()
  agent = cleanUpAgent(t, agent.restart())
  await agent.online()
  await agent.waitForLog((l) => l.msg === 'the last run did not stop cleanly: parties will be challenged for a new nonce')

  // Regression: after a SIGKILL the device expected a nonce the server had already used, so a recorded message
  // of a session before the kill, sent again by whoever captured it, was executed again.
  const saved = nonces(server)
  await server.stop()
  for (const session of recorded) {
    const logged = agent.logs.length
    await replay(broker.url, session.sent[0]!.xml)
    const verdict = await agent.waitForLogAfter(logged, (l) => l.sessionId === session.sessionId &&
      (l.msg === 'authentication failed' || l.msg === 'session started'), 20_000, 'the replay handled')
    t.equal(verdict.msg, 'authentication failed', `a replay of session ${session.sessionId} is refused`)
    await agent.waitForLogAfter(logged, (l) => l.sessionId === session.sessionId && l.outcome !== undefined, 20_000, 'the replay answered')
  }
  t.notOk(agent.logs.some((l) => l.msg === 'session started'), 'no replay started a session')

  // A clean stop leaves nothing to distrust: the next start challenges no one.
  t.equal((await agent.stop()).code, 0)
  agent = cleanUpAgent(t, agent.restart())
  await agent.online()
  t.notOk(agent.logs.some((l) => l.msg.startsWith('the last run did not stop cleanly')), 'no reset after a clean stop')
  server = await startDmServer({ ...factoryServer(broker.url, t), ...saved })
  const after = await push(server, [get('./DevInfo/DevId')], agent)
  t.equal(after.hdrStatuses.at(-1), '212', 'the server gets back in step')
  t.equal(resultFor(after, './DevInfo/DevId'), FACTORY.deviceId)
})

t.test('the device\'s Cred follows the nonce the server gives it, with 212 and with 401, across a restart', async (t) => {
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  let agent = await startAgent(t, server)
  let sessionId = 0x200

  /** The server asks for a session (DM Notification); resolves with the session the device opens. */
  const triggered = async (): Promise<PartySession> => {
    const id = ++sessionId
    await server.sendNotification({ sessionId: id })
    const hex = id.toString(16).toUpperCase()
    const done = await server.waitForSession((s) => s.sessionId === hex && s.closed, 20_000)
    await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === hex, 20_000, `end of session ${hex}`)
    return done
  }
  const cred = (nonce: string) => md5Digest(FACTORY.clientName, FACTORY.clientPassword, nonceBytes(nonce))

  // The first session ended with 212 and a nonce for the device: its next Package 1 uses it.
  const given212 = server.clientNonce
  t.not(given212, '', 'the server gave the device a nonce with 212')
  const next = await triggered()
  t.equal(next.initiation, '1200', 'a notified session opens with Alert 1200')
  t.equal(next.received[0]!.message.hdr.cred?.data, cred(given212), 'Package 1 uses the nonce given with 212')
  t.same(next.hdrStatuses, [], 'the device accepted the server without a word more')
  t.ok(next.deviceAuthenticated)

  // The server forgot the nonce: the device's Cred fails, 401 + Chal; the device retries with the new nonce.
  server.clientNonce = Buffer.from('a nonce the device never had').toString('base64')
  const challenged = await triggered()
  t.equal(challenged.deviceAuthFailures, 1, 'one 401')
  const chal = challenged.sent[0]!.commands.find((c) => c.name === 'Status' && c.cmdRef === '0')
  const chalNonce = chal?.name === 'Status' ? chal.chal?.nextNonce : undefined
  t.ok(chalNonce, 'the 401 carried a Chal with a nonce')
  t.equal(challenged.received[1]!.message.hdr.cred?.data, cred(chalNonce!), 'the resent Package 1 uses the Chal\'s nonce')
  t.ok(challenged.received[1]!.message.commands.some((c) => c.name === 'Alert' && c.data === '1200'), 'it is Package 1 again')
  t.ok(challenged.deviceAuthenticated, 'and it passes')

  // In a session the server pushes, the device's first answer carries its Cred; refused, the answer goes again
  // with the Chal's nonce. Regression: the device sent a Package 1 (Alert 1200 and DevInfo) instead, and the
  // Results of the server's Get were lost.
  server.clientNonce = Buffer.from('another nonce the device never had').toString('base64')
  const pushed = await server.pushSession([get('./DevInfo/Mod'), replace('./DMAcc/dms/Name', 'pushed')])
  const refusedAnswer = await server.waitForSession((s) => s === pushed && s.closed, 20_000)
  await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === refusedAnswer.sessionId, 20_000)
  t.equal(refusedAnswer.deviceAuthFailures, 1, 'the server refused the device\'s answer once')
  const again = refusedAnswer.received[1]?.message
  t.notOk(again?.commands.some((c) => c.name === 'Alert'), 'the answer again, not a Package 1')
  const refusedNonce = headerStatus(refusedAnswer.received[0]?.message)?.chal?.nextNonce
  t.ok(refusedNonce, 'the refused answer handed out a nonce')
  t.equal(headerStatus(again)?.chal?.nextNonce, refusedNonce, 'which goes again, so that it reaches the server')
  t.equal(resultFor(refusedAnswer, './DevInfo/Mod'), 'unknown', 'the Results reach the server')
  t.equal(finalStatus(refusedAnswer, './DMAcc/dms/Name'), '200')
  t.equal(refusedAnswer.sent.filter((m) => m.commands.some((c) => c.name === 'Replace')).length, 1, 'the Replace was sent once')

  // The 212 nonce of that session is kept across a restart.
  const kept = server.clientNonce
  t.equal((await agent.stop()).code, 0)
  agent = cleanUpAgent(t, agent.restart())
  await agent.online()
  const afterRestart = await triggered()
  t.equal(afterRestart.received[0]!.message.hdr.cred?.data, cred(kept), 'after a restart, the last nonce given')
  t.equal(afterRestart.deviceAuthFailures, 0)
})

for (const [authType, fixture] of [['hmac', 'factory-bootstrap-hmac.xml'], ['basic', 'factory-bootstrap-basic.xml']] as const) {
  t.test(`an account with ${authType} credentials both ways: sessions the device opens and the server pushes complete`, async (t) => {
    const server = await startDmServer({ ...factoryServer(broker.url, t), authType })
    t.teardown(() => server.stop())
    server.queueSession([get('./DevInfo/DevId')])
    const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, factoryBootstrap: fixture }))
    const first = await server.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
    await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === first.sessionId && l.outcome === 'completed', 20_000)
    t.ok(first.deviceAuthenticated, 'the server accepted the device')
    t.ok(first.partyAccepted, 'the device accepted the server')
    t.equal(resultFor(first, './DevInfo/DevId'), FACTORY.deviceId)
    const p1 = first.received[0]!
    if (authType === 'hmac') {
      t.notOk(p1.message.hdr.cred, 'no Cred in the SyncHdr')
      t.match(p1.userProperties['x-syncml-hmac'], /username="device-user", mac=/, 'the MAC travels as a user property')
    } else {
      t.equal(p1.message.hdr.cred?.type, 'syncml:auth-basic')
    }

    const pushed = await push(server, [get('./DevInfo/Mod'), replace('./DMAcc/dms/Name', authType)], agent)
    t.equal(finalStatus(pushed, './DMAcc/dms/Name'), '200', 'a pushed session runs')
    t.ok(pushed.partyAccepted)
    t.equal(pushed.deviceAuthFailures, 0)

    // Wrong credentials are refused in this scheme too.
    await server.stop()
    const impostor = new Party({ ...factoryServer(broker.url), partyId: FACTORY.serverId, authType, serverPassword: 'wrong', maxAuthRetries: 0, ...nonces(server) })
    await impostor.start()
    const refused = await impostor.pushSession([replace('./DMAcc/dms/Name', EVIL)])
    const answer = await impostor.waitForSession((s) => s === refused && s.received.length > 0, 15_000)
    await impostor.stop()
    t.equal(headerStatus(answer.received[0]!.message)?.data, '401', 'wrong credentials: 401')
    t.notOk(answer.statuses.some((s) => s.code.startsWith('2')), 'nothing executed')
  })
}
