/**
 * The integrator's objects (binding.md §8) through the real bundle over mosquitto, driven by the DM Server peer:
 * values read from files and programs (one trailing newline trimmed, 413, 500), written atomically to files and
 * to programs' stdin, refused before anything runs (415, 425), an Atomic whose program write fails set back
 * (507), programs that never see a secret, and unsafe program files refused at start.
 */
import t from 'tap'
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AgentProcess, cleanUpAgent, FACTORY, factoryServer, finalStatus } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer } from './peers/dm-server.ts'
import { statusOf, resultFor, statusFor, type PartySession } from './peers/session-record.ts'
import { atomic, get, replace } from './peers/syncml.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

const dir = mkdtempSync(join(tmpdir(), 'gwmo-objects-'))
chmodSync(dir, 0o755)

function program(name: string, body: string, mode = 0o755): string {
  const file = join(dir, name)
  writeFileSync(file, `#!/bin/sh\n${body}\n`)
  chmodSync(file, mode)
  return file
}

const SRV = FACTORY.serverId
/** The data of the device's last Results for `uri` in the session (`resultFor` gives the first). */
const lastResult = (session: PartySession, uri: string) =>
  session.results.flatMap((r) => r.items).filter((item) => item.source === uri).at(-1)?.data

t.test('reads, writes and their refusals, through the real agent', async (t) => {
  const cpu = join(dir, 'cpu-temp')
  writeFileSync(cpu, '42000\n')
  writeFileSync(join(dir, 'big'), 'x'.repeat(5000))
  const conf = join(dir, 'conf')
  mkdirSync(conf)
  const interval = join(conf, 'interval')
  writeFileSync(interval, '60\n')
  const modeOut = join(dir, 'mode.out')
  const levelRuns = join(dir, 'level.runs')
  const envOut = join(dir, 'env.out')
  const objects = [
    { path: './Vendor/Sensors/CpuTemp', format: 'int', read: { file: cpu } },
    { path: './Vendor/Sensors/Big', read: { file: join(dir, 'big') } },
    { path: './Vendor/Sensors/Missing', read: { file: join(dir, 'no-such-file') } },
    { path: './Vendor/Sensors/Broken', read: { command: [program('broken.sh', 'echo partial; echo oops >&2; exit 3')] } },
    { path: './Vendor/Sensors/Stuck', timeoutSeconds: 1, read: { command: [program('stuck.sh', 'sleep 60')] } },
    { path: './Vendor/Sensors/Env', read: { command: [program('env.sh', `env -0 > ${envOut}; echo ok`)] } },
    { path: './Vendor/Config/Interval', format: 'int', acl: `Get=*&Replace=${SRV}`, write: { file: interval } },
    {
      path: './Vendor/Config/Mode', acl: `Get=*&Replace=${SRV}`, value: 'eco',
      write: { command: [program('set-mode.sh', `v=$(cat); [ "$v" = fail ] && exit 1; printf %s "$v" > ${modeOut}`)] },
    },
    {
      path: './Vendor/Config/Level', format: 'int', acl: `Get=*&Replace=${SRV}`, value: '1',
      write: { command: [program('set-level.sh', `cat >> ${levelRuns}`)] },
    },
    { path: './Vendor/Config/Locked', format: 'int', value: '7' },
  ]

  // One object from a drop-in file of objectsDir (the .deb's /etc/gwmo-agent/objects.d).
  const dropIns = join(dir, 'objects.d')
  mkdirSync(dropIns)
  writeFileSync(join(dropIns, 'uptime.json'), JSON.stringify([{ path: './Vendor/Sensors/Uptime', read: { command: [program('uptime.sh', 'echo "up 5 days"')] } }]))

  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const gets = ['CpuTemp', 'Big', 'Missing', 'Uptime', 'Broken', 'Stuck', 'Env'].map((n) => get(`./Vendor/Sensors/${n}`))
  const getsConfig = ['Interval', 'Mode', 'Locked'].map((n) => get(`./Vendor/Config/${n}`))
  const setInterval = replace('./Vendor/Config/Interval', '90', 'int')
  const setMode = replace('./Vendor/Config/Mode', 'turbo')
  const badInt = replace('./Vendor/Config/Level', 'eleven', 'int')
  const badIntFile = replace('./Vendor/Config/Interval', 'ninety', 'int')
  const locked = replace('./Vendor/Config/Locked', '8', 'int')
  const atomicInterval = replace('./Vendor/Config/Interval', '120', 'int')
  const atomicMode = replace('./Vendor/Config/Mode', 'fail')
  const failing = atomic(atomicInterval, atomicMode)
  const modeFails = replace('./Vendor/Config/Mode', 'fail')
  server.queueSession(
    [...gets, ...getsConfig],
    [setInterval, setMode, badInt, badIntFile, locked],
    [failing],
    [modeFails],
    // A message's external writes follow its commands: what they left is read in the next message.
    [get('./Vendor/Config/Interval'), get('./Vendor/Config/Mode')],
  )
  const agent = cleanUpAgent(t, AgentProcess.start({
    brokerUrl: broker.url,
    config: { objects, objectsDir: dropIns },
    env: { GWMO_BROKER_PASSWORD: 'broker-hunter2', MY_API_TOKEN: 'token-hunter2' },
  }))
  const session = await server.waitForSession((s) => s.closed, 30_000)

  t.equal(resultFor(session, './Vendor/Sensors/CpuTemp'), '42000', 'read.file, its trailing newline trimmed')
  t.equal(finalStatus(session, './Vendor/Sensors/Big'), '413', 'more than maxBytes: 413')
  t.equal(finalStatus(session, './Vendor/Sensors/Missing'), '500', 'a missing file: 500')
  t.equal(resultFor(session, './Vendor/Sensors/Uptime'), 'up 5 days', 'read.command (from a drop-in file): its stdout')
  t.equal(finalStatus(session, './Vendor/Sensors/Broken'), '500', 'a program that exits non-zero: 500')
  t.equal(resultFor(session, './Vendor/Sensors/Broken'), undefined, 'and none of its output')
  t.equal(finalStatus(session, './Vendor/Sensors/Stuck'), '500', 'a program killed at its timeout: 500')
  for (const [node, why] of [['Broken', /exit 3: oops/], ['Stuck', /timed out/]] as const) {
    const logged = agent.logs.filter((l) => JSON.stringify(l).includes(`./Vendor/Sensors/${node}`) && l.level !== 'debug')
    t.equal(logged.length, 1, `${node}: one log line`)
    t.match(JSON.stringify(logged[0]), why)
  }
  t.equal(resultFor(session, './Vendor/Sensors/Env'), 'ok')
  t.equal(resultFor(session, './Vendor/Config/Interval'), '60', 'write.file without read reads the file')
  t.equal(resultFor(session, './Vendor/Config/Mode'), 'eco', 'write.command without read: the stored value')
  t.equal(resultFor(session, './Vendor/Config/Locked'), '7')
  const missingLogs = agent.logs.filter((l) => JSON.stringify(l).includes('./Vendor/Sensors/Missing') && l.level !== 'debug')
  t.equal(missingLogs.length, 1, 'the failed read is one log line')
  t.match(JSON.stringify(missingLogs[0]), /no-such-file \(ENOENT\)/, 'naming the file and why')

  t.equal(statusOf(session, setInterval), '200')
  t.equal(statusOf(session, setMode), '200')
  t.equal(readFileSync(modeOut, 'utf8'), 'turbo', 'write.command got the value on stdin')
  t.equal(statusOf(session, badInt), '415', 'a value that does not fit int: 415')
  t.notOk(existsSync(levelRuns), 'and its program never ran')
  t.equal(statusOf(session, badIntFile), '415')
  t.equal(statusOf(session, locked), '425', 'no ACL naming the server: no Replace')

  t.equal(statusOf(session, failing), '507', 'an Atomic whose program write fails: 507')
  t.equal(readFileSync(interval, 'utf8'), '90', 'the file it wrote first is set back')
  t.same(readdirSync(conf), ['interval'], 'no temporary file left beside it')
  t.equal(statusOf(session, modeFails), '500', 'a failing write.command outside an Atomic: 500')
  t.equal(lastResult(session, './Vendor/Config/Interval'), '90')
  t.equal(lastResult(session, './Vendor/Config/Mode'), 'turbo', 'a failed write keeps the last value written')

  const env = readFileSync(envOut, 'utf8')
  const names = env.split('\0').filter((l) => l !== '').map((l) => l.split('=')[0]!).filter((n) => !/^(_TAPJS_|NODE_OPTIONS$|PWD$)/.test(n)).sort()
  // PWD is the shell's own (and the test runner's coverage hooks reach every process it starts).
  t.same(names, ['GWMO_CORRELATOR', 'GWMO_NODE', 'GWMO_SERVER_ID', 'LANG', 'PATH'], 'the environment of §8 and nothing else')
  t.match(env, /(^|\0)PWD=\/\0/, 'run in /')
  t.match(env, `GWMO_SERVER_ID=${SRV}\0`)
  t.match(env, 'GWMO_NODE=./Vendor/Sensors/Env\0')
  for (const secret of ['hunter2', FACTORY.serverPassword, FACTORY.clientPassword]) t.notMatch(env, secret, 'no secret reaches a program')

  // Restarted: the stored value of a write.command object is kept.
  t.equal((await agent.stop()).code, 0)
  const again = cleanUpAgent(t, agent.restart())
  await again.online()
  const after = await server.pushSession([get('./Vendor/Config/Mode'), get('./Vendor/Config/Interval')])
  await server.waitForSession((s) => s === after && s.closed, 20_000)
  t.equal(resultFor(after, './Vendor/Config/Mode'), 'turbo', 'the last value written survives a restart')
  t.equal(resultFor(after, './Vendor/Config/Interval'), '90')

  // Taken out of the configuration: gone from the tree at the next start, the others untouched.
  t.equal((await again.stop()).code, 0)
  const fewer = objects.filter((o) => o.path !== './Vendor/Config/Mode')
  const third = cleanUpAgent(t, again.restart({ config: { objects: fewer } }))
  await third.online()
  const removed = await third.waitForLog((l) => l.msg === 'object no longer configured: removed from the tree')
  t.equal(removed.uri, './Vendor/Config/Mode', 'the removal is logged, naming the node')
  const gone = await server.pushSession([get('./Vendor/Config/Mode'), get('./Vendor/Config/Interval')])
  await server.waitForSession((s) => s === gone && s.closed, 20_000)
  t.equal(statusFor(gone, './Vendor/Config/Mode'), '404', 'the node is gone')
  t.equal(resultFor(gone, './Vendor/Config/Interval'), '90', 'the objects still configured are as they were')
  t.equal((await third.stop()).code, 0)
  const fourth = cleanUpAgent(t, third.restart({ config: { objects: fewer } }))
  await fourth.online()
  t.notOk(fourth.logs.some((l) => l.msg === 'object no longer configured: removed from the tree'), 'removed once, not at every start')
})

t.test('a program file another user could change refuses the configuration at start', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['group-writable', program('loose.sh', 'exit 0', 0o775), /is writable by group or others/],
  ]
  if (process.getuid?.() === 0) {
    const foreign = program('foreign.sh', 'exit 0')
    chownSync(foreign, 65534, 65534)
    cases.push(['owned by another user', foreign, /is owned by uid 65534/])
  }
  for (const [name, file, why] of cases) {
    const agent = cleanUpAgent(t, AgentProcess.start({
      brokerUrl: broker.url,
      config: { objects: [{ path: './Vendor/Ops/Run', acl: `Exec=${SRV}`, exec: { command: [file] } }] },
    }))
    const exit = await agent.waitForExit()
    t.equal(exit.code, 2, `${name}: exit 2`)
    const lines = agent.stderr.trim().split('\n')
    t.equal(lines.length, 1, `${name}: one line`)
    t.match(lines[0], './Vendor/Ops/Run')
    t.match(lines[0], 'exec.command[0]')
    t.match(lines[0], file)
    t.match(lines[0], why)
    t.same(agent.logs.filter((l) => l.msg === 'started'), [], 'nothing started')
  }
})

t.test('any bad definition, in the configuration or a drop-in file, refuses it at start with one line', async (t) => {
  const dropIns = join(dir, 'bad.d')
  mkdirSync(dropIns)
  writeFileSync(join(dropIns, 'a.json'), JSON.stringify({ path: './Vendor/Fine', value: 'ok' }))
  writeFileSync(join(dropIns, 'b.json'), JSON.stringify([{ path: './Vendor/Ok', value: '1' }, { path: './DMAcc/Evil', value: 'x' }]))
  const cases: [string, Record<string, unknown>, string][] = [
    ['a reserved path in a drop-in', { objectsDir: dropIns }, `config: ${join(dropIns, 'b.json')}[1]: path: ./DMAcc/Evil is under ./DMAcc, which the agent keeps to itself`],
    ['a value that does not fit', { objects: [{ path: './Vendor/N', format: 'int', value: 'many' }] }, 'config: objects[0] ./Vendor/N: value: does not fit format int within maxBytes'],
    ['a bad ACL', { objects: [{ path: './Vendor/A', value: 'x', acl: 'Get=*&Launch=*' }] }, 'config: objects[0] ./Vendor/A: acl: is not a DM ACL (Get=*&Replace=<ServerID>+<ServerID>)'],
  ]
  for (const [name, config, line] of cases) {
    const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, config }))
    t.equal((await agent.waitForExit()).code, 2, `${name}: exit 2`)
    t.equal(agent.stderr, `gwmo-agent: ${line}\n`, `${name}: one line naming the object and the key`)
  }
})
