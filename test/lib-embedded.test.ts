// The library entry (binding.md §8): a program that requires the built dist/lib.js defines objects with get,
// replace and exec callbacks and runs the agent against a DM Server over a real mosquitto, under Node and Bun.
// The same rules as for the configuration's objects: ACL (425), format (415), size (413), a callback's thrown
// status or 500 (and the agent goes on), writes once the commit is durable, an Atomic set back (507).
import t from 'tap'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { AgentProcess, cleanUpAgent, factoryServer, type LogLine } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer } from './peers/dm-server.ts'
import { statusOf, resultFor } from './peers/session-record.ts'
import { atomic, exec, get, replace } from './peers/syncml.ts'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const PROGRAM = join(ROOT, 'test', 'fixtures', 'lib', 'embedding-program.cjs')
const BUN = join(ROOT, 'node_modules', '.bin', 'bun')
const APP = './Vendor/App'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

const programLines = (agent: AgentProcess, msg: string): LogLine[] => agent.logs.filter((l) => l.msg === msg)

t.test('a program embedding the agent serves Get, Replace and Exec from its callbacks, under every rule', async (t) => {
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const getVersion = get(`${APP}/Version`)
  const getInterval = get(`${APP}/Interval`)
  const getBig = get(`${APP}/Big`)
  const getPrivate = get(`${APP}/Private`)
  const notInt = replace(`${APP}/Interval`, 'soon', 'int')
  const otherFormat = replace(`${APP}/Interval`, '30', 'chr')
  const tooLong = replace(`${APP}/Interval`, '12345', 'int')
  const readOnly = replace(`${APP}/Version`, '2.0')
  const busy = replace(`${APP}/Mode`, 'busy')
  const broken = replace(`${APP}/Mode`, 'broken')
  const level = replace(`${APP}/Level`, '5', 'int')
  const restart = exec(`${APP}/Restart`, 'now', 'corr-1')
  const crash = exec(`${APP}/Crash`)
  // Turn 2, after the crash: the agent is still there. An Atomic whose second write fails sets the first back.
  const atomicInterval = replace(`${APP}/Interval`, '30', 'int')
  const atomicMode = replace(`${APP}/Mode`, 'broken')
  const failing = atomic(atomicInterval, atomicMode)
  // Turn 3: what the Atomic left, and a write that works.
  const intervalAfter = get(`${APP}/Interval`)
  const modeAfter = get(`${APP}/Mode`)
  const goodInterval = replace(`${APP}/Interval`, '45', 'int')
  const getLate = get(`${APP}/Late`)
  server.queueSession(
    [getVersion, getInterval, getBig, getPrivate, notInt, otherFormat, tooLong, readOnly, busy, broken, level, restart, crash],
    [failing],
    [intervalAfter, modeAfter, goodInterval, getLate],
  )
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, script: PROGRAM }))
  const session = await server.waitForSession((s) => s.closed, 25_000)
  await agent.waitForLog((l) => l.msg === 'program started')

  t.equal(statusOf(session, getVersion), '200')
  t.equal(resultFor(session, `${APP}/Version`), '1.4.2', 'the get callback\'s value')
  const versionItem = session.results.flatMap((r) => r.items).find((i) => i.source === `${APP}/Version`)
  t.match(versionItem?.meta, { format: 'chr', type: 'text/x-version' }, 'served with the node\'s format and type')
  t.match(programLines(agent, 'program get')[0], { uri: `${APP}/Version`, serverId: 'http://dms.example.com', aborted: false })
  t.equal(resultFor(session, `${APP}/Interval`), '60')
  t.equal(statusOf(session, getBig), '413', 'a value over maxBytes')
  t.equal(statusOf(session, getPrivate), '425', 'an ACL that does not name the server')
  t.equal(statusOf(session, notInt), '415', 'a value that is not of the node\'s format')
  t.equal(statusOf(session, otherFormat), '415', 'another format')
  t.equal(statusOf(session, tooLong), '413', 'longer than maxBytes')
  t.equal(statusOf(session, readOnly), '425', 'a leaf without an ACL is Get=* only')
  t.equal(statusOf(session, busy), '503', 'a thrown SyncMLStatusError\'s code')
  t.equal(statusOf(session, broken), '500', 'a thrown Error')
  t.equal(statusOf(session, level), '200')
  t.equal(statusOf(session, restart), '202', 'the exec callback\'s status')
  t.match(programLines(agent, 'program exec')[0], { uri: `${APP}/Restart`, data: 'now', correlator: 'corr-1', serverId: 'http://dms.example.com' })
  t.equal(statusOf(session, crash), '500', 'an exec that throws')
  t.ok(agent.logs.some((l) => l.msg === 'exec failed' && l.uri === `${APP}/Crash`), 'logged once')

  const writes = programLines(agent, 'program replace').map((l) => `${String(l.uri).slice(APP.length + 1)}=${String(l.value)}`)
  t.same(writes.slice(0, 3), ['Mode=busy', 'Mode=broken', 'Level=5'], 'no write for a refused Replace, the rest in command order')
  t.match(programLines(agent, 'program replace').find((l) => l.uri === `${APP}/Level`), { stored: /^\.\/Vendor\/App\/Level\tint\t-\t\S+\t"5"$/ },
    'the write ran once the new value was on disk')

  t.equal(statusOf(session, failing), '507', 'the Atomic failed')
  t.equal(statusOf(session, atomicInterval), '216', 'its first write rolled back')
  t.equal(statusOf(session, atomicMode), '500', 'the failing write\'s own status')
  t.same(writes.slice(3, 6), ['Interval=30', 'Mode=broken', 'Interval=60'], 'the write made, the one that failed, the first set back to the value read before')
  t.equal(session.results.flatMap((r) => r.items).filter((i) => i.source === `${APP}/Interval`).at(-1)?.data, '60', 'read after the Atomic')
  t.equal(resultFor(session, `${APP}/Mode`), 'eco')
  t.equal(statusOf(session, goodInterval), '200')
  t.same(writes.slice(6), ['Interval=45'])
  t.equal(resultFor(session, `${APP}/Late`), 'late', 'an object defined once the agent runs')

  const running = agent.logs.length
  const exit = await agent.stop()
  t.equal(exit.code, 0)
  t.ok(agent.logs.slice(running).some((l) => l.msg === 'program stopped'), 'stop() resolved')
  t.match(programLines(agent, 'program defined')[0], { bad: 'GWMO_INVALID_ARGUMENT: defineObject ./Vendor/App/Odd: format: unknown format text' })
})

t.test('stopping the agent aborts the signal of a callback still running, and the stop completes', async (t) => {
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  server.queueSession([get(`${APP}/Slow`)])
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, script: PROGRAM }))
  await agent.waitForLog((l) => l.msg === 'program get' && l.uri === `${APP}/Slow`, 25_000)
  const exit = await agent.stop()
  t.equal(exit.code, 0, 'stopped cleanly, not at a deadline')
  t.ok(programLines(agent, 'program aborted').some((l) => l.uri === `${APP}/Slow`), 'the callback was told')
  t.ok(programLines(agent, 'program stopped').length === 1)
})

t.test('a program\'s object under a path the agent keeps for itself refuses the start, with one line naming it', async (t) => {
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, script: PROGRAM, env: { PROGRAM_RESERVED: '1' } }))
  const exit = await agent.waitForExit(15_000)
  t.equal(exit.code, 1)
  t.match(programLines(agent, 'program start failed')[0], { code: 'GWMO_START', error: 'objects: ./DevInfo/Mine: ./DevInfo is the agent\'s own' })
})

t.test('the library entry under Bun', async (t) => {
  t.ok(existsSync(BUN), 'Bun is installed as a dev dependency (npm ci)')
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const restart = exec(`${APP}/Restart`, 'now', 'corr-bun')
  const setMode = replace(`${APP}/Mode`, 'turbo')
  server.queueSession([get(`${APP}/Version`), restart, setMode], [get(`${APP}/Mode`)])
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, script: PROGRAM, runtime: BUN }))
  const session = await server.waitForSession((s) => s.closed, 25_000)
  t.match(agent.logs.find((l) => l.msg === 'started'), { runtime: /^bun / }, 'the agent ran under Bun')
  t.equal(resultFor(session, `${APP}/Version`), '1.4.2')
  t.equal(statusOf(session, restart), '202')
  t.match(programLines(agent, 'program exec')[0], { correlator: 'corr-bun' })
  t.equal(statusOf(session, setMode), '200')
  t.equal(resultFor(session, `${APP}/Mode`), 'turbo')
  t.equal((await agent.stop()).code, 0)
})
