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

t.test('the device\'s nonces: one in every message, single-use, kept across restarts, never handed out twice', async (t) => {
  let server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const all: PartySession[] = []
  let agent = await startAgent(t, server)
  all.push(...server.sessions)
  t.equal(server.serverNonce, '', 'the factory session ended on the server\'s Status-only message: no nonce handed out')
  // That message spent the factory nonce (binding.md §6): the next session begins with one challenge.
  const firstPush = await push(server, [get('./DevInfo/Man')], agent)
  t.same(firstPush.hdrStatuses, ['401', '212'], 'the spent factory nonce is refused, the Chal\'s accepted')
  all.push(firstPush)
  t.ok(firstPush.received.every((m) => headerStatus(m.message)?.chal?.nextNonce), 'every message of the device hands out a nonce')

  // Each later session: the nonce the server holds was spent by its own closing message.
  const second = await push(server, [get('./DevInfo/Mod')], agent)
  const spent = second.sent[0]!
  t.same(second.hdrStatuses, ['401', '212'], 'a nonce used once is refused the next time')
  all.push(second)

  // A clean restart keeps what was spent: the captured first message of that session is still refused.
  t.equal((await agent.stop()).code, 0)
  agent = cleanUpAgent(t, agent.restart())
  await agent.online()
  const saved = nonces(server)
  await server.stop()
  const logged = agent.logs.length
  await replay(broker.url, spent.xml)
  await agent.waitForLogAfter(logged, (l) => l.msg === 'authentication failed' && l.sessionId === second.sessionId, 20_000, 'the replay refused')
  server = await startDmServer({ ...factoryServer(broker.url, t), ...saved })
  const afterRestart = await push(server, [get('./DevInfo/Mod')], agent)
  t.same(afterRestart.hdrStatuses, ['401', '212'], 'after SIGTERM and a start: still spent, one challenge')
  all.push(afterRestart)

  // A SIGKILL loses what was kept lazily; every stored nonce is replaced by one never handed out.
  await agent.kill()
  agent = cleanUpAgent(t, agent.restart())
  await agent.online()
  const afterKill = await push(server, [get('./DevInfo/Lang'), replace('./DMAcc/dms/Name', 'after the kill')], agent)
  all.push(afterKill)
  // The server's nonce was replaced: one challenge. (The device's own nonce from the server may have been lost
  // with the kill too: then the server challenges it once, and it answers again.)
  t.equal(afterKill.hdrStatuses[0], '401', 'the protocol recovers with one challenge')
  t.ok(afterKill.hdrStatuses.slice(1).every((code) => code === '212' || code === '200'), 'then authenticates')
  t.equal(resultFor(afterKill, './DevInfo/Lang'), 'en-US')
  t.equal(finalStatus(afterKill, './DMAcc/dms/Name'), '200')

  const given = noncesGiven(all)
  t.ok(given.length >= 2 * (all.length - 1), 'a nonce in each refusal and each answer')
  t.equal(new Set(given).size, given.length, 'no nonce was ever handed out twice')
})

t.test('after a SIGKILL no nonce used before it authenticates again: a recorded message sent again is refused', async (t) => {
  let server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  let agent = await startAgent(t, server)
  // Sessions that change nothing: the nonces they hand out and spend reach the disk lazily.
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
  // of a session before the kill, sent again by whoever captured it, was executed again. Each message the
  // server sent, the accepted ones included, is refused.
  const saved = nonces(server)
  await server.stop()
  // What the device answers each replay, read on the server's topic (the agent logs refusals once a second).
  const listener = new Party({ ...factoryServer(broker.url), partyId: FACTORY.serverId, maxAuthRetries: 0, ...saved })
  await listener.start()
  t.teardown(() => listener.stop())
  for (const session of recorded) {
    for (const message of session.sent) {
      // The listener never had these sessions: what the device sends in them is kept as strays.
      const before = listener.strays.length
      await replay(broker.url, message.xml)
      const answer = await listener.waitFor(() => listener.strays[before], 20_000, 'the answer to a replay')
      t.equal(headerStatus(answer)?.data, '401', `a replay of session ${session.sessionId}, message ${message.msgId}, is refused`)
    }
  }
  await listener.stop()
  t.notOk(agent.logs.some((l) => l.msg === 'session started'), 'no replay started a session')

  // A clean stop leaves nothing to distrust: the next start challenges no one.
  t.equal((await agent.stop()).code, 0)
  agent = cleanUpAgent(t, agent.restart())
  await agent.online()
  t.notOk(agent.logs.some((l) => l.msg.startsWith('the last run did not stop cleanly')), 'no reset after a clean stop')
  server = await startDmServer({ ...factoryServer(broker.url, t), ...saved })
  const after = await push(server, [get('./DevInfo/DevId')], agent)
  t.match(after.hdrStatuses.at(-1), /^(200|212)$/, 'the server gets back in step')
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
  const opens = (m: { message: ParsedMessage }) => m.message.commands.some((c) => c.name === 'Alert' && c.data === '1200')

  // The first session ended with 212 and a nonce for the device: its next Package 1 uses it.
  const given212 = server.clientNonce
  t.not(given212, '', 'the server gave the device a nonce with 212')
  const next = await triggered()
  t.equal(next.initiation, '1200', 'a notified session opens with Alert 1200')
  t.equal(next.received[0]!.message.hdr.cred?.data, cred(given212), 'Package 1 uses the nonce given with 212')
  // The server's nonce was spent by its own closing message: one challenge, then its Status-only answer ends it.
  t.same(next.hdrStatuses, ['401'], 'the device challenges the server once')
  t.ok(agent.logs.some((l) => l.msg === 'session ended' && l.sessionId === next.sessionId && l.outcome === 'completed'), 'and the session completes')
  t.equal(next.deviceAuthFailures, 0)
  t.ok(next.deviceAuthenticated)

  // The server forgot the nonce: the device's Cred fails, 401 + Chal; the device retries with the new nonce.
  server.clientNonce = Buffer.from('a nonce the device never had').toString('base64')
  const challenged = await triggered()
  t.equal(challenged.deviceAuthFailures, 1, 'one 401')
  const chal = challenged.sent[0]!.commands.find((c) => c.name === 'Status' && c.cmdRef === '0')
  const chalNonce = chal?.name === 'Status' ? chal.chal?.nextNonce : undefined
  t.ok(chalNonce, 'the 401 carried a Chal with a nonce')
  const resent = challenged.received.filter(opens)
  t.equal(resent.length, 2, 'Package 1 went again')
  t.equal(resent[1]!.message.hdr.cred?.data, cred(chalNonce!), 'with a Cred over the Chal\'s nonce')
  t.ok(challenged.deviceAuthenticated, 'and it passes')

  // In a session the server pushes, the device's answer carries its Cred; refused, the answer goes again (a
  // fresh nonce with it: the server's refusal spent the last one). Regression: the device sent a Package 1
  // (Alert 1200 and DevInfo) instead, and the Results of the server's Get were lost.
  server.clientNonce = Buffer.from('another nonce the device never had').toString('base64')
  const pushed = await server.pushSession([get('./DevInfo/Mod'), replace('./DMAcc/dms/Name', 'pushed')])
  const refusedAnswer = await server.waitForSession((s) => s === pushed && s.closed, 20_000)
  await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === refusedAnswer.sessionId, 20_000)
  t.equal(refusedAnswer.deviceAuthFailures, 1, 'the server refused the device\'s answer once')
  const answers = refusedAnswer.received.filter((m) => m.message.commands.some((c) => c.name === 'Results'))
  t.equal(answers.length, 2, 'the answer went twice')
  t.notOk(answers[1]!.message.commands.some((c) => c.name === 'Alert'), 'the answer again, not a Package 1')
  const firstNonce = headerStatus(answers[0]!.message)?.chal?.nextNonce
  t.ok(firstNonce, 'the refused answer handed out a nonce')
  t.ok(headerStatus(answers[1]!.message)?.chal?.nextNonce, 'and so does the answer again')
  t.not(headerStatus(answers[1]!.message)?.chal?.nextNonce, firstNonce, 'a fresh one')
  t.equal(resultFor(refusedAnswer, './DevInfo/Mod'), 'unknown', 'the Results reach the server')
  t.equal(finalStatus(refusedAnswer, './DMAcc/dms/Name'), '200')
  t.equal(refusedAnswer.statuses.filter((s) => s.cmd === 'Replace' && s.code === '200').length, 1, 'the Replace ran once')

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
