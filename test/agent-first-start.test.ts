// The real agent's first start (binding.md §5, §3, §6): the factory bootstrap is applied and a session opened
// with the server it configured; a second start restores the tree and never runs the factory bootstrap again.
import t from 'tap'
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { AgentProcess, cleanUpAgent, FACTORY, factoryServer, finalStatus, StatusWatcher } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { md5Digest } from './peers/auth.ts'
import { startDmServer } from './peers/dm-server.ts'
import { resultFor } from './peers/session-record.ts'
import { get, replace } from './peers/syncml.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

const DEV_INFO = { man: 'Acme Devices', mod: 'EndPoint 7', lang: 'fr-FR' }

t.test('first start: factory bootstrap, Package 1 with DevInfo and a verified Cred, then a restart keeps the tree', async (t) => {
  const server = await startDmServer(factoryServer(broker.url, t))
  const status = await StatusWatcher.start(broker.url)
  t.teardown(async () => {
    await server.stop()
    await status.stop()
  })
  server.queueSession([replace('./DMAcc/dms/Name', 'Renamed by the server'), get('./DevInfo/DevId')])

  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, config: { devInfo: DEV_INFO } }))
  const started = await agent.waitForLog((l) => l.msg === 'started')
  t.equal(started.firstStart, true, 'the first start says so')

  const session = await server.waitForSession((s) => s.closed, 20_000)
  const ended = await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === session.sessionId, 15_000)
  t.equal(ended.outcome, 'completed', 'the session completes')

  // Package 1 (OMA DM Protocol 1.2, 8.2; binding.md §3).
  const p1 = session.received[0]!.message
  t.equal(session.origin, 'device')
  t.equal(p1.hdr.target, FACTORY.serverId)
  t.equal(p1.hdr.source, FACTORY.deviceId)
  t.match(session.sessionId, /^[1-9A-F][0-9A-F]{0,3}$/, 'a SessionID in upper-case hex without leading zeros')
  t.equal(p1.hdr.msgId, '1')
  t.equal(p1.commands[0]?.name, 'Alert')
  t.equal(p1.commands[0]?.data, '1201', 'Alert 1201 opens it')
  const devInfo = p1.commands.find((c) => c.name === 'Replace')
  t.ok(devInfo, 'a Replace of ./DevInfo')
  const leaves = Object.fromEntries((devInfo?.items ?? []).map((i) => [i.source, i.data]))
  t.same(leaves, {
    './DevInfo/DevId': FACTORY.deviceId,
    './DevInfo/Man': DEV_INFO.man,
    './DevInfo/Mod': DEV_INFO.mod,
    './DevInfo/DmV': '1.2',
    './DevInfo/Lang': DEV_INFO.lang,
  }, 'every DevInfo leaf, from the configuration')
  t.ok(p1.final, 'Final')
  t.equal(p1.hdr.cred?.type, 'syncml:auth-md5')
  t.equal(p1.hdr.cred?.data, md5Digest(FACTORY.clientName, FACTORY.clientPassword, new Uint8Array(0)),
    'Cred is auth-md5 of CLCRED with the factory (empty) nonce')
  t.equal(p1.hdr.locName, FACTORY.clientName)
  t.ok(session.deviceAuthenticated, 'the server peer verified the Cred')
  t.same(session.hdrStatuses, ['212'], 'the device accepted the server with 212')
  t.ok(server.serverNonce !== '', 'the device gave the server a NextNonce')

  t.equal(finalStatus(session, './DMAcc/dms/Name'), '200', 'the server may rename its own account')
  t.equal(resultFor(session, './DevInfo/DevId'), FACTORY.deviceId)

  // binding.md §2: the retained online status on the device's own status topic.
  await status.waitFor('online')
  t.equal(await StatusWatcher.retained(broker.url), 'online', 'online is retained')

  const stopped = await agent.stop()
  t.equal(stopped.code, 0, 'SIGTERM: clean exit')

  // The second start must not need the factory document: make it unusable to prove it is not read.
  writeFileSync(join(agent.dir, 'factory.xml'), 'not a bootstrap at all')
  const sessionsBefore = server.sessions.length
  const again = cleanUpAgent(t, agent.restart())
  const restarted = await again.waitForLog((l) => l.msg === 'started')
  t.equal(restarted.firstStart, false, 'a second start restores the tree')
  await again.online()

  // A session the server pushes with the nonce the device gave it last in the first run: the server's closing
  // message spent it, and the restart kept that (binding.md §6), so one challenge comes first.
  const pushed = await server.pushSession([get('./DMAcc/dms/Name'), get('./DMAcc/dms/ServerID')])
  const done = await server.waitForSession((s) => s === pushed && s.closed, 15_000)
  t.same(done.hdrStatuses, ['401', '212'], 'the nonce spent in the first run is still spent; the Chal\'s is accepted')
  t.equal(finalStatus(done, './DMAcc/dms/Name'), '200')
  t.equal(resultFor(done, './DMAcc/dms/Name'), 'Renamed by the server', 'the change of the first run survived')
  t.equal(resultFor(done, './DMAcc/dms/ServerID'), FACTORY.serverId, 'the account is the factory one')
  t.notOk(again.logs.some((l) => l.msg === 'session started' && l.initiator === 'device'),
    'no client-initiated session on a later start (the factory bootstrap did not run again)')
  t.equal(server.sessions.slice(sessionsBefore).filter((s) => s.origin === 'device').length, 0)
  t.equal((await again.stop()).code, 0)
})

t.test('a first start with a factory document that does not apply creates nothing and exits non-zero', async (t) => {
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, factoryBootstrap: 'factory-bootstrap-no-final.xml' }))
  const exit = await agent.waitForExit()
  t.not(exit.code, 0)
  t.match(agent.stderr.trim(), /^gwmo-agent: .*factoryBootstrap/, 'the line names the factory bootstrap')
  t.equal(agent.stderr.trim().split('\n').length, 1, 'one line')
  const left = existsSync(agent.stateDir) ? readdirSync(agent.stateDir) : []
  t.same(left, [], 'no tree and no agent state written')
})
