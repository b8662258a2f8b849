// A DM Notification captured on the broker and published again later opens nothing (binding.md §6: handled
// session ids are remembered per server across restarts, at least the last 64 and 24 hours; the default nonce
// is tried only while the server is out of step), under the real bundle over mosquitto. The captured
// notification is one a server out of step sent with the default nonce, the kind that verifies again later; the
// attacker first publishes a notification that does not verify, which is all it takes to put a server out of
// step, so that only the memory of handled ids can stop the replay.
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import { AgentProcess, cleanUpAgent, FACTORY, factoryServer } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer, type DmServer } from './peers/dm-server.ts'
import { connectPeer, CONTENT_TYPE, disconnect, publish, topicFor } from './peers/mqtt.ts'

// The attacker of the security review: it can publish and subscribe on any topic (an open broker, no ACL).
const broker = await startMosquitto({ open: true })
t.teardown(() => broker.stop())

const hex = (id: number) => id.toString(16).toUpperCase()

/** Someone who can publish on the broker: what it publishes reaches the device in the order it was sent. */
async function attacker(t: Test): Promise<{ publish(bytes: Buffer): Promise<void> }> {
  const client: MqttClient = await connectPeer(broker.url, { clientId: `attacker-${process.pid}-${Math.random().toString(16).slice(2, 8)}` })
  t.teardown(() => disconnect(client))
  const topic = topicFor(FACTORY.deviceId, 'notification')
  return { publish: (bytes) => publish(client, topic, bytes, { contentType: CONTENT_TYPE.notification }) }
}

/** A fresh agent on the factory account, once its first session with the server is over. */
async function startAgent(t: Test, server: DmServer, env?: Record<string, string>): Promise<AgentProcess> {
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, ...(env && { env }) }))
  await server.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
  return agent
}

/**
 * The server, out of step, notifies the device as OMA DM Notification 1.2, 6.1 has it: with the nonce it holds
 * (which fails), then with the default nonce; the device opens the session. Returns the default-nonce bytes,
 * which the attacker captures. With `waitFor: 'accepted'` it returns as soon as the device logs the notification
 * accepted, before the session has run.
 */
async function capture(server: DmServer, agent: AgentProcess, sessionId: number, waitFor: 'session' | 'accepted' = 'session'): Promise<Buffer> {
  const from = agent.logs.length
  await server.sendNotification({ sessionId, digestNonce: 'wrong' })
  const bytes = await server.sendNotification({ sessionId, digestNonce: 'zero-bytes' })
  await agent.waitForLogAfter(from, (l) => l.msg === 'notification accepted' && l.sessionId === hex(sessionId))
  if (waitFor === 'session') {
    await server.waitForSession((s) => s.sessionId === hex(sessionId) && s.closed, 20_000)
    await agent.waitForLogAfter(from, (l) => l.msg === 'session ended' && l.sessionId === hex(sessionId), 20_000)
  }
  return bytes
}

/**
 * The attack: a notification that does not verify (the server is now out of step), the captured one again,
 * then a fresh default-nonce notification of the server's (`probe`), relayed by the attacker so that the device
 * handles it last. By the time the agent has ended the probe's session, a session the replay opened has begun:
 * the device opens one session at a time with a party, in the order asked.
 */
async function replay(t: Test, server: DmServer, agent: AgentProcess, captured: Buffer, probe: number): Promise<void> {
  const from = agent.logs.length
  const mallory = await attacker(t)
  await mallory.publish(server.notificationBytes({ sessionId: 0xfff0, digestNonce: 'wrong' }))
  await mallory.publish(captured)
  await mallory.publish(server.notificationBytes({ sessionId: probe, digestNonce: 'zero-bytes' }))
  await sessionEnded(agent, from, probe)
}

/** The agent's end of a session (the peer may still wait for more after a challenge it answered). */
async function sessionEnded(agent: AgentProcess, from: number, sessionId: number): Promise<void> {
  await agent.waitForLogAfter(from, (l) => l.msg === 'session ended' && l.sessionId === hex(sessionId), 20_000, `end of session ${hex(sessionId)}`)
}

/** Sessions with this id the agent process started. */
function started(agent: AgentProcess, sessionId: number): number {
  return agent.logs.filter((l) => l.msg === 'session started' && l.sessionId === hex(sessionId)).length
}

function repeatLogged(agent: AgentProcess, sessionId: number): boolean {
  return agent.logs.some((l) => l.msg === 'notification dropped' && l.reason === 'repeat' && l.sessionId === hex(sessionId))
}

// Finding 7: the session manager remembered 8 ids per server, so the 9th notification after it freed a replay.
t.test('a captured notification replayed after 8 others opens nothing', async (t) => {
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const agent = await startAgent(t, server)
  const captured = await capture(server, agent, 0x100)
  for (let id = 0x101; id <= 0x108; id++) {
    await server.sendNotification({ sessionId: id, digestNonce: 'stored' })
    await server.waitForSession((s) => s.sessionId === hex(id) && s.closed, 20_000)
  }
  await replay(t, server, agent, captured, 0x109)
  t.equal(server.sessions.filter((s) => s.sessionId === '100').length, 1, 'the server saw one session with that id')
  t.equal(started(agent, 0x100), 1, 'the agent started one')
  t.ok(repeatLogged(agent, 0x100), 'the replay is logged as a repeat')
})

// Finding 7: the handled ids lived in memory only, so any restart forgot them.
for (const how of ['SIGTERM', 'SIGKILL'] as const) {
  t.test(`a captured notification replayed after a restart (${how}) opens nothing`, async (t) => {
    const server = await startDmServer(factoryServer(broker.url, t))
    t.teardown(() => server.stop())
    const agent = await startAgent(t, server)
    const captured = await capture(server, agent, 0x200)
    if (how === 'SIGTERM') t.equal((await agent.stop()).code, 0, 'a clean stop')
    else await agent.kill()
    const again = cleanUpAgent(t, agent.restart())
    await again.online()
    await replay(t, server, again, captured, 0x201)
    t.equal(server.sessions.filter((s) => s.sessionId === '200').length, 1, 'the server saw one session with that id')
    t.equal(started(again, 0x200), 0, 'the restarted agent started none')
    t.ok(repeatLogged(again, 0x200), 'the replay is logged as a repeat')
  })
}

// Finding 7: a crash between accepting a notification and acting on it must not free its id either.
t.test('a notification whose agent is killed right after accepting it opens nothing when replayed', async (t) => {
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const agent = await startAgent(t, server)
  const captured = await capture(server, agent, 0x300, 'accepted')
  await agent.kill()
  const again = cleanUpAgent(t, agent.restart())
  await again.online()
  // No notification that fails is needed first: after an unclean stop every server is out of step.
  const from = again.logs.length
  const mallory = await attacker(t)
  await mallory.publish(captured)
  await mallory.publish(server.notificationBytes({ sessionId: 0x301, digestNonce: 'zero-bytes' }))
  await sessionEnded(again, from, 0x301)
  t.equal(started(again, 0x300), 0, 'the restarted agent started no session with that id')
  t.ok(repeatLogged(again, 0x300), 'the replay is logged as a repeat')
})

/** libfaketime (Debian `faketime`), preloaded into the agent so that its wall clock can be moved on. */
function libfaketime(): string {
  for (const dir of readdirSync('/usr/lib')) {
    const candidate = join('/usr/lib', dir, 'faketime', 'libfaketimeMT.so.1')
    if (existsSync(candidate)) return candidate
  }
  throw new Error('libfaketime not found: apt-get install faketime')
}

// Finding 7: the session manager forgot handled ids after 10 minutes.
t.test('a captured notification replayed 11 minutes later opens nothing', async (t) => {
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const offsetFile = join(AgentProcess.makeDir(), 'faketime')
  writeFileSync(offsetFile, '+0\n')
  // The wall clock (Date.now) follows the file, re-read each second; timers run on the monotonic clock, untouched.
  const agent = await startAgent(t, server, {
    LD_PRELOAD: libfaketime(),
    FAKETIME_TIMESTAMP_FILE: offsetFile,
    FAKETIME_CACHE_DURATION: '1',
    FAKETIME_DONT_FAKE_MONOTONIC: '1',
  })
  const captured = await capture(server, agent, 0x400)
  const acceptedAt = Date.parse(String(agent.logs.find((l) => l.msg === 'notification accepted' && l.sessionId === '400')!.time))
  writeFileSync(offsetFile, '+11m\n')
  // The attacker's notifications that fail put the server out of step, and their log lines carry the agent's
  // time: the replay goes once one shows the clock moved on.
  const mallory = await attacker(t)
  const moved = (l: { msg: string; time?: unknown }) =>
    l.msg === 'notification dropped' && Date.parse(String(l.time)) >= acceptedAt + 11 * 60_000
  const deadline = Date.now() + 15_000
  while (!agent.logs.some(moved)) {
    if (Date.now() > deadline) throw new Error('the agent\'s clock did not move on (libfaketime)')
    await mallory.publish(server.notificationBytes({ sessionId: 0xfff1, digestNonce: 'wrong' }))
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  const from = agent.logs.length
  await mallory.publish(captured)
  await mallory.publish(server.notificationBytes({ sessionId: 0x401, digestNonce: 'zero-bytes' }))
  await sessionEnded(agent, from, 0x401)
  t.equal(server.sessions.filter((s) => s.sessionId === '400').length, 1, 'the server saw one session with that id')
  t.equal(started(agent, 0x400), 1, 'the agent started one')
  t.ok(repeatLogged(agent, 0x400), 'the replay is logged as a repeat')
})

// Finding 7: the default nonce was accepted from a server in step, so a captured default-nonce notification
// always verified.
t.test('a default-nonce notification from a server in step opens nothing', async (t) => {
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const agent = await startAgent(t, server)
  const mallory = await attacker(t)
  const from = agent.logs.length
  await mallory.publish(server.notificationBytes({ sessionId: 0x500, digestNonce: 'zero-bytes' }))
  await mallory.publish(server.notificationBytes({ sessionId: 0x501, digestNonce: 'stored' }))
  await sessionEnded(agent, from, 0x501)
  t.equal(started(agent, 0x500), 0, 'no session for it')
  t.match(agent.logs.slice(from).find((l) => l.msg === 'notification dropped'), { reason: 'bad-digest', server: FACTORY.serverId },
    'dropped as a bad digest')
})
