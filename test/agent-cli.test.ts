// The agent's command line and process behaviour (binding.md §7, §2, §6): bad configurations stop it before
// anything starts, with one line naming the key; --help and --version; SIGTERM publishes the retained
// `offline` and exits 0 within 5 s; the state files are the agent's alone; no secret ever reaches its log.
import t from 'tap'
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { AgentProcess, cleanUpAgent, FACTORY, factoryServer, StatusWatcher, writeAgentConfig } from './helpers/agent-process.ts'
import { usernameFor } from './helpers/broker-world.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer } from './peers/dm-server.ts'
import { Party } from './peers/party.ts'
import { add, addNode, atomic, get } from './peers/syncml.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

/** Runs the bundle with `args` in a fresh directory and waits for it to exit. */
async function run(args: string[], prepare?: (dir: string) => void) {
  const dir = AgentProcess.makeDir()
  prepare?.(dir)
  const agent = AgentProcess.run(args.map((a) => a.replaceAll('$DIR', dir)), { dir })
  // Generous: these runs start side by side on a busy machine.
  const exit = await agent.waitForExit(60_000)
  return { dir, exit, stdout: agent.stdout, stderr: agent.stderr, agent }
}

/** A valid configuration in `dir`, changed by `edit`; returns the config path. */
function config(dir: string, edit: (config: Record<string, unknown>) => unknown = (c) => c): string {
  const written = writeAgentConfig(dir, { brokerUrl: broker.url })
  const clone = structuredClone(written)
  const edited = edit(clone) ?? clone
  const path = join(dir, 'config.json')
  writeFileSync(path, typeof edited === 'string' ? edited : JSON.stringify(edited))
  return path
}

const BAD_CONFIGS: { name: string; key: RegExp; edit: (c: Record<string, unknown>) => unknown }[] = [
  { name: 'an unknown key', key: /"deviceID"/, edit: (c) => ({ ...c, deviceID: 'typo' }) },
  { name: 'an unknown nested key', key: /"broker\.usrename"/, edit: (c) => ({ ...c, broker: { ...(c.broker as object), usrename: 'x' } }) },
  { name: 'a missing deviceId', key: /deviceId/, edit: (c) => { delete c.deviceId } },
  { name: 'a broker URL that is not mqtt://', key: /broker\.url/, edit: (c) => ({ ...c, broker: { url: 'http://127.0.0.1:1883' } }) },
  { name: 'a broker URL that is no URL', key: /broker\.url/, edit: (c) => ({ ...c, broker: { url: 'not a url' } }) },
  { name: 'an unreadable factory bootstrap', key: /factoryBootstrap/, edit: (c) => ({ ...c, factoryBootstrap: 'missing/factory.xml' }) },
  { name: 'invalid JSON', key: /invalid JSON at line \d+, column \d+/, edit: () => '{ "deviceId": "x", ' },
  { name: 'a negative session timeout', key: /session\.timeoutSeconds/, edit: (c) => ({ ...c, session: { timeoutSeconds: -1 } }) },
]

t.test('a bad configuration stops the agent with one line naming the key, and creates nothing', async (t) => {
  // Independent processes: run side by side.
  const runs = await Promise.all(BAD_CONFIGS.map((bad) => run(['--config', '$DIR/config.json'], (dir) => config(dir, bad.edit))))
  for (const [k, bad] of BAD_CONFIGS.entries()) {
    const { dir, exit, stdout, stderr } = runs[k]!
    t.teardown(() => rmDir(dir))
    t.not(exit.code, 0, `${bad.name}: a non-zero exit`)
    const lines = stderr.trimEnd().split('\n')
    t.equal(lines.length, 1, `${bad.name}: exactly one line on stderr`)
    t.match(lines[0], /^gwmo-agent: /)
    t.match(lines[0], bad.key, `${bad.name}: the line names the key`)
    t.equal(stdout, '', `${bad.name}: nothing on stdout`)
    const stateDir = join(dir, 'state')
    t.same(existsSync(stateDir) ? readdirSync(stateDir) : [], [], `${bad.name}: nothing created in stateDir`)
  }
})

t.test('a secret in a bad configuration is never echoed', async (t) => {
  const { dir, stderr } = await run(['--config', '$DIR/config.json'], (dir) =>
    config(dir, (c) => ({ ...c, broker: { url: broker.url, password: 'pass\u0001word-secret' } })))
  t.teardown(() => rmDir(dir))
  t.match(stderr, /broker\.password/)
  t.notMatch(stderr, /word-secret/)
})

t.test('usage errors: no --config, an unknown option, a bad --log-level, a missing file', async (t) => {
  const cases = [
    [[], /--config/],
    [['--config', '$DIR/config.json', '--colour'], /colour/],
    [['--config', '$DIR/config.json', '--log-level', 'loud'], /--log-level/],
    [['--config', '$DIR/nowhere.json'], /nowhere\.json.*ENOENT/],
  ] as const
  const runs = await Promise.all(cases.map(([args]) => run([...args], (dir) => config(dir))))
  for (const [k, [args, pattern]] of cases.entries()) {
    const { dir, exit, stderr } = runs[k]!
    t.teardown(() => rmDir(dir))
    t.not(exit.code, 0, `${args.join(' ')}: non-zero exit`)
    t.equal(stderr.trimEnd().split('\n').length, 1, 'one line')
    t.match(stderr, pattern)
  }
})

t.test('--help and --version', async (t) => {
  const [help, version] = await Promise.all([run(['--help']), run(['--version'])])
  t.teardown(() => rmDir(help.dir))
  t.equal(help.exit.code, 0)
  t.match(help.stdout, /^usage: gwmo-agent --config FILE/)
  t.equal(help.stderr, '')
  t.teardown(() => rmDir(version.dir))
  t.equal(version.exit.code, 0)
  t.match(version.stdout.trim(), /^\d+\.\d+\.\d+/, 'the package version')
  t.equal(version.stderr, '')
})

t.test('SIGTERM: retained offline, exit 0 within 5 s; state files 0600 in a 0700 directory', async (t) => {
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const status = await StatusWatcher.start(broker.url)
  t.teardown(() => status.stop())
  // A stateDir that exists with looser rights is tightened.
  const dir = AgentProcess.makeDir()
  mkdirSync(join(dir, 'state'), { mode: 0o755 })
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, dir }))
  await server.waitForSession((s) => s.closed, 20_000)
  await agent.online()
  await status.waitFor('online')
  const before = status.values.length

  const exit = await agent.stop()
  t.equal(exit.code, 0, 'exit 0')
  t.ok(exit.ms < 5000, `stopped within 5 s (${exit.ms} ms)`)
  await status.waitFor('offline', before)
  t.equal(await StatusWatcher.retained(broker.url), 'offline', 'offline is retained')
  t.ok(agent.logs.some((l) => l.msg === 'stopped'), 'the log says so')

  const stateDir = join(dir, 'state')
  t.equal(statSync(stateDir).mode & 0o777, 0o700, 'the state directory is 0700')
  const files = readdirSync(stateDir)
  t.ok(files.length >= 2, `state files written (${files.join(', ')})`)
  for (const file of files) t.equal(statSync(join(stateDir, file)).mode & 0o777, 0o600, `${file} is 0600`)
})

t.test('no secret appears in the debug log of a full session', async (t) => {
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const secrets = {
    brokerPassword: 'broker-password-7f3a',
    userPin: 'user-pin-2211',
    networkId: 'network-id-9c0d',
    addedSecret: 'added-hmac-secret-55e1',
  }
  // The server reads what it may, tries a secret, and adds an HMAC entry with a secret of its own.
  const entry = './DMAcc/dms/AppAuth/3'
  server.queueSession(
    [get('./DevInfo/DevId'), get('./DMAcc/dms/AppAuth/2/AAuthSecret')],
    [atomic(addNode(entry), add(`${entry}/AAuthLevel`, 'SRVCRED'), add(`${entry}/AAuthType`, 'HMAC'),
      add(`${entry}/AAuthName`, 'hmac-user'), add(`${entry}/AAuthSecret`, secrets.addedSecret))],
  )
  const agent = cleanUpAgent(t, AgentProcess.start({
    brokerUrl: broker.url,
    logLevel: 'debug',
    config: { broker: { url: broker.url, username: usernameFor(FACTORY.deviceId), password: secrets.brokerPassword }, userPin: secrets.userPin, networkId: secrets.networkId },
  }))
  const first = await server.waitForSession((s) => s.closed, 20_000)
  await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === first.sessionId)
  t.equal(first.statuses.find((s) => s.cmd === 'Atomic')?.code, '200', 'the entry with a secret was added')

  // A refused party, a pushed session and a notified one: more code paths that handle credentials.
  await server.stop()
  const impostor = new Party({ ...factoryServer(broker.url), partyId: FACTORY.serverId, serverPassword: 'impostor-secret-01', maxAuthRetries: 0 })
  await impostor.start()
  const refused = await impostor.pushSession([get('./DevInfo/DevId')])
  await impostor.waitForSession((s) => s === refused && s.received.length > 0, 15_000)
  await impostor.stop()
  const again = await startDmServer({ ...factoryServer(broker.url, t), serverNonce: server.serverNonce, clientNonce: server.clientNonce })
  t.teardown(() => again.stop())
  const pushed = await again.pushSession([get('./DevInfo/Mod')])
  await again.waitForSession((s) => s === pushed && s.closed, 20_000)
  await again.sendNotification({ sessionId: 0x99 })
  await again.waitForSession((s) => s.sessionId === '99' && s.closed, 20_000)
  t.equal((await agent.stop()).code, 0)

  t.ok(agent.logs.filter((l) => l.level === 'debug' && l.msg === 'publishing').length > 5, 'the log was at debug level')
  const sessions = [...server.sessions, ...impostor.sessions, ...again.sessions]
  const wire = sessions.flatMap((s) => [...s.received.map((m) => m.message), ...s.sent.map((m) => m.xml)])
  const nonces = new Set<string>()
  for (const m of wire) {
    const text = typeof m === 'string' ? m : JSON.stringify(m)
    for (const match of text.matchAll(/"nextNonce":"([^"]+)"|<NextNonce[^>]*>([^<]+)</g)) nonces.add(match[1] ?? match[2]!)
    for (const match of text.matchAll(/"cred":\{[^}]*"data":"([^"]+)"|<Cred>.*?<Data>([^<]+)<\/Data>/g)) nonces.add(match[1] ?? match[2]!)
  }
  t.ok(nonces.size >= 4, `nonces and digests seen on the wire (${nonces.size})`)
  const forbidden = [
    FACTORY.clientPassword, FACTORY.serverPassword, 'impostor-secret-01', ...Object.values(secrets),
    ...[...nonces].flatMap((b64) => [b64, Buffer.from(b64, 'base64').toString('hex')]),
  ]
  for (const secret of forbidden) {
    if (agent.stdout.includes(secret)) t.fail(`the log holds a secret: ${secret}`)
  }
  t.pass(`none of ${forbidden.length} secrets, nonces and digests in ${agent.logs.length} log lines`)
})

function rmDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
}
