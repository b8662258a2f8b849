// The least-privilege broker ACL the project ships (targets/mosquitto/make-acl.mjs; binding.md §6): what the
// generator writes and refuses, and, under it, the real agent hears its parties and nothing a stranger publishes
// to its topics (the broker refuses the publish; the device never sees it), while a stranger reading its
// traffic gets nothing. The same strangers on an open broker reach the device: the checks can tell.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt, { type MqttClient } from 'mqtt'
import { makeAcl, type AclWorld } from '../targets/mosquitto/make-acl.mjs'
import { AgentProcess, cleanUpAgent, FACTORY, factoryServer, StatusWatcher } from './helpers/agent-process.ts'
import { BOOTSTRAP_SERVER, STATUS_OBSERVER, usernameFor } from './helpers/broker-world.ts'
import { startMosquitto, type Mosquitto } from './helpers/mosquitto.ts'
import { buildAccountCommands, buildBootstrap, sendBootstrap } from './peers/bootstrap-server.ts'
import { startDmServer } from './peers/dm-server.ts'
import { CONTENT_TYPE, topicFor } from './peers/mqtt.ts'
import { resultFor } from './peers/session-record.ts'
import { buildMessage, get, replace } from './peers/syncml.ts'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const GENERATOR = join(ROOT, 'targets', 'mosquitto', 'make-acl.mjs')
const EXAMPLE = join(ROOT, 'targets', 'mosquitto', 'world.example.json')

t.test('the generator: each client its own topics by pattern, each device and party the other\'s by name', async (t) => {
  const made = makeAcl({
    devices: [{ id: 'mac:01', parties: [
      { id: 'http://dms', role: 'server' },
      { id: 'http://gw', role: 'gateway', topic: 'site/gw/dm' },
      { id: 'boot', role: 'bootstrap' },
    ] }],
    observers: ['dash board'],
  })
  t.same(made.ok && made.text.split('\n').filter((l) => l !== '' && !l.startsWith('#')), [
    'pattern read omadm/v1/%u/#',
    'pattern write omadm/v1/%u/status',
    'user mac%3A01',
    'topic write omadm/v1/http%3A%2F%2Fdms/dm',
    'topic write site/gw/dm',
    'user http%3A%2F%2Fdms',
    'topic write omadm/v1/mac%3A01/dm',
    'topic write omadm/v1/mac%3A01/notification',
    'topic read omadm/v1/mac%3A01/status',
    'user http%3A%2F%2Fgw',
    'topic write omadm/v1/mac%3A01/dm',
    'topic write omadm/v1/mac%3A01/notification',
    'topic read site/gw/dm',
    'topic read omadm/v1/mac%3A01/status',
    'user boot',
    'topic write omadm/v1/mac%3A01/bootstrap',
    'user dash%20board',
    'topic read omadm/v1/mac%3A01/status',
  ])
  const prefixed = makeAcl({ prefix: 'fleet/7', devices: [{ id: 'd', parties: [{ id: 's', role: 'server', channels: ['bootstrap'] }] }] })
  t.match(prefixed.ok && prefixed.text, /^pattern read fleet\/7\/%u\/#$/m, 'the prefix in every line')
  t.match(prefixed.ok && prefixed.text, /^user s\ntopic write fleet\/7\/d\/bootstrap\ntopic read fleet\/7\/d\/status$/m, 'channels as given')
  t.ok(makeAcl(JSON.parse(readFileSync(EXAMPLE, 'utf8'))).ok, 'the shipped example is a valid world')
})

t.test('the generator refuses a bad world with one line naming where', async (t) => {
  const device = (parties: unknown[]) => ({ devices: [{ id: 'd', parties }] })
  const cases: Array<[unknown, string]> = [
    [[], 'must be an object'],
    [{ devices: [], extra: 1 }, 'extra: unknown key (known: prefix, devices, observers)'],
    [{}, 'devices: must be a list'],
    [{ prefix: 'a/+/b', devices: [] }, 'prefix: must be topic levels without "+", "#", "%", blanks or empty levels'],
    [{ prefix: 'a//b', devices: [] }, 'prefix: must be topic levels without "+", "#", "%", blanks or empty levels'],
    [{ devices: [{ id: '', parties: [] }] }, 'devices[0].id: must be a non-empty string'],
    [{ devices: [{ id: 'd\ud800', parties: [] }] }, 'devices[0].id: is not valid Unicode'],
    [{ devices: [{ id: 'd' }] }, 'devices[0].parties: must be a list'],
    [device([{ id: 's', role: 'boss' }]), 'devices[0].parties[0].role: must be one of server, gateway, bootstrap'],
    [device([{ id: 's', role: 'server', channels: ['status'] }]), 'devices[0].parties[0].channels: must list some of dm, notification, bootstrap'],
    [device([{ id: 's', role: 'server', channels: [] }]), 'devices[0].parties[0].channels: must list some of dm, notification, bootstrap'],
    [device([{ id: 's', role: 'server', topic: 'a/#' }]), 'devices[0].parties[0].topic: must be a topic without "+", "#", "%", blanks or empty levels'],
    [device([{ id: 'b', role: 'bootstrap', topic: 'a/b' }]), 'devices[0].parties[0].topic: a bootstrap server gets nothing from the device'],
    [device([{ id: 's', role: 'server', password: 'x' }]), 'devices[0].parties[0].password: unknown key (known: id, role, channels, topic)'],
    [{ devices: [], observers: [7] }, 'observers[0]: must be a non-empty string'],
  ]
  for (const [world, error] of cases) t.same(makeAcl(world), { ok: false, error }, error)
})

t.test('the generator\'s command line: stdout or a file replaced whole; a bad world writes nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-acl-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const run = (...args: string[]) => spawnSync(process.execPath, [GENERATOR, ...args], { encoding: 'utf8' })
  const expected = makeAcl(JSON.parse(readFileSync(EXAMPLE, 'utf8')))
  const printed = run(EXAMPLE)
  t.same([printed.status, printed.stdout, printed.stderr], [0, expected.ok && expected.text, ''])

  const out = join(dir, 'gwmo-agent.acl')
  writeFileSync(out, 'the previous ACL\n')
  t.same([run(EXAMPLE, out).status, readFileSync(out, 'utf8')], [0, expected.ok && expected.text], 'written to the file')

  writeFileSync(out, 'the previous ACL\n')
  const bad = join(dir, 'bad.json')
  writeFileSync(bad, JSON.stringify({ devices: [{ id: 'd', parties: [{ id: 's', role: 'boss' }] }] }))
  const refused = run(bad, out)
  t.same([refused.status, refused.stdout, refused.stderr],
    [1, '', `make-acl: ${bad}: devices[0].parties[0].role: must be one of server, gateway, bootstrap\n`])
  writeFileSync(bad, '{"devices": [')
  t.match(run(bad, out).stderr, /^make-acl: .*bad\.json: not JSON \(.*\)\n$/)
  t.match(run(join(dir, 'missing.json')).stderr, /^make-acl: .*missing\.json: cannot read \(ENOENT\)\n$/)
  t.equal(readFileSync(out, 'utf8'), 'the previous ACL\n', 'the file is untouched by a refused world')
  const usage = run()
  t.same([usage.status, usage.stderr], [2, 'usage: node make-acl.mjs WORLD.json [ACL_FILE]\n'])
})

// The device with its DM Server and bootstrap server; another device with a DM Server of its own.
const NETWORK_ID = '310150123456789'
const OTHER_DEVICE = 'IMEI:493005100592800'
const OTHER_SERVER = 'http://other-dms.example.com'
const STRANGER = 'http://stranger.example.com'
const CREDENTIALS = { clientName: 'dev', clientPassword: 'dev-secret', serverName: 'srv', serverPassword: 'srv-secret' }
const WORLD: AclWorld = {
  devices: [
    { id: FACTORY.deviceId, parties: [{ id: FACTORY.serverId, role: 'server' }, { id: BOOTSTRAP_SERVER, role: 'bootstrap' }] },
    { id: OTHER_DEVICE, parties: [{ id: OTHER_SERVER, role: 'server' }] },
  ],
  observers: [STATUS_OBSERVER],
}

async function client(t: Test, url: string, username: string | undefined): Promise<MqttClient> {
  const c = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, ...(username !== undefined && { username }) })
  c.on('error', () => {})
  t.teardown(() => c.endAsync(true))
  await new Promise((resolve) => c.once('connect', resolve))
  return c
}

/** Publishes at QoS 1; 'refused' when the broker answers the PUBACK with an error (MQTT 5 0x87). */
async function attempt(c: MqttClient, topic: string, payload: Buffer | string, contentType: string, userProperties?: Record<string, string>): Promise<'delivered' | 'refused'> {
  const properties = { contentType, ...(userProperties && { userProperties }) }
  return c.publishAsync(topic, payload, { qos: 1, properties }).then(() => 'delivered' as const, () => 'refused' as const)
}

/** The agent's lines that tell of a message from someone it has no business with. */
const strangerLines = (agent: AgentProcess, from: number) => agent.logs.slice(from).filter((l) =>
  (l.msg === 'message from a party without an account dropped' && l.party === STRANGER) ||
  (l.msg === 'bootstrap refused') || (l.msg === 'notification dropped') || (l.msg === 'authentication failed' && l.sessionId === 'E2'))

/**
 * The device and its real parties on `broker`; strangers publish on the device's three topics and on its status,
 * and one reads the device's traffic; then the real parties' DM session, notification and bootstrap run.
 */
async function strangersThenParties(t: Test, broker: Mosquitto) {
  const status = await StatusWatcher.start(broker.url)
  t.teardown(() => status.stop())
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, config: { networkId: NETWORK_ID } }))
  await server.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)

  const from = agent.logs.length
  const eavesdropper = await client(t, broker.url, usernameFor(STRANGER))
  const overheard: string[] = []
  eavesdropper.on('message', (topic) => overheard.push(topic))
  await eavesdropper.subscribeAsync([topicFor(FACTORY.deviceId, 'dm'), topicFor(FACTORY.serverId, 'dm'), '#'], { qos: 1 })

  const push = buildMessage({ sessionId: 'E1', msgId: '1', target: FACTORY.deviceId, source: STRANGER }, [replace('./DMAcc/dms/Name', 'owned')]).xml
  const forged = buildMessage({ sessionId: 'E2', msgId: '1', target: FACTORY.deviceId, source: FACTORY.serverId }, [replace('./DMAcc/dms/Name', 'owned')]).xml
  const bootstrap = buildBootstrap({ deviceId: FACTORY.deviceId, commands: buildAccountCommands({ id: 'evil', serverId: STRANGER, addr: STRANGER, ...CREDENTIALS }), encoding: 'xml', sec: 'NETWORKID', key: 'guessed' })
  const notification = server.notificationBytes({ sessionId: 0xe3, password: 'guessed' })
  const dm = topicFor(FACTORY.deviceId, 'dm')
  const publishers = {
    intruder: await client(t, broker.url, 'intruder'),
    anonymous: await client(t, broker.url, undefined),
    otherDevicesServer: await client(t, broker.url, usernameFor(OTHER_SERVER)),
    ownServer: await client(t, broker.url, usernameFor(FACTORY.serverId)),
  }
  const outcomes = {
    'an unknown user on dm': await attempt(publishers.intruder, dm, push, CONTENT_TYPE.xml),
    'an unknown user on notification': await attempt(publishers.intruder, topicFor(FACTORY.deviceId, 'notification'), notification, CONTENT_TYPE.notification),
    'an unknown user on bootstrap': await attempt(publishers.intruder, topicFor(FACTORY.deviceId, 'bootstrap'), Buffer.from(bootstrap.payload), bootstrap.contentType, bootstrap.userProperties),
    'no user name on dm': await attempt(publishers.anonymous, dm, push, CONTENT_TYPE.xml),
    'another device\'s server on dm': await attempt(publishers.otherDevicesServer, dm, forged, CONTENT_TYPE.xml),
    'the device\'s own server on bootstrap': await attempt(publishers.ownServer, topicFor(FACTORY.deviceId, 'bootstrap'), Buffer.from(bootstrap.payload), bootstrap.contentType, bootstrap.userProperties),
    'the device\'s own server on its status': await attempt(publishers.ownServer, topicFor(FACTORY.deviceId, 'status'), 'offline', 'text/plain'),
  }

  // The real parties: a pushed session, a notification, a bootstrap.
  const pushed = await server.pushSession([get('./DMAcc/dms/Name')])
  const session = await server.waitForSession((s) => s === pushed && s.closed, 20_000)
  await server.sendNotification({ sessionId: 0x51 })
  const notified = await server.waitForSession((s) => s.sessionId === '51' && s.closed, 20_000)
  await sendBootstrap({ brokerUrl: broker.url, deviceId: FACTORY.deviceId, encoding: 'xml', sec: 'NETWORKID', networkId: NETWORK_ID,
    commands: buildAccountCommands({ id: 'gw', serverId: 'http://gw.example.net', addr: 'http://gw.example.net', role: 'gateway', ...CREDENTIALS }) })
  const applied = await agent.waitForLogAfter(from, (l) => l.msg === 'bootstrap applied', 20_000)
  // Whatever a stranger got through was queued before these; the agent has handled it by now.
  return { agent, status, outcomes, overheard, session, notified, applied, from }
}

t.test('under the shipped ACL a stranger\'s publish never reaches the device, and its parties\' traffic flows', async (t) => {
  const broker = await startMosquitto({ world: WORLD })
  t.teardown(() => broker.stop())
  const run = await strangersThenParties(t, broker)
  for (const [what, outcome] of Object.entries(run.outcomes)) t.equal(outcome, 'refused', `${what}: refused by the broker`)
  t.same(strangerLines(run.agent, run.from), [], 'the agent saw none of it')
  t.same(run.overheard, [], 'and the stranger read none of the device\'s traffic')

  t.equal(resultFor(run.session, './DMAcc/dms/Name'), 'Example DM Server', 'the server\'s pushed session: the account name, unchanged')
  t.equal(run.notified.initiation, '1200', 'the server\'s notification opened a session')
  t.same(run.applied.servers, ['http://gw.example.net'], 'the bootstrap server\'s bootstrap was applied')
  t.same(run.status.values, ['online'], 'the observer reads the device\'s status, which no one else wrote')
})

t.test('the same strangers on an open broker reach the device', async (t) => {
  const broker = await startMosquitto({ open: true })
  t.teardown(() => broker.stop())
  const run = await strangersThenParties(t, broker)
  for (const [what, outcome] of Object.entries(run.outcomes)) t.equal(outcome, 'delivered', `${what}: delivered`)
  t.same([...new Set(strangerLines(run.agent, run.from).map((l) => l.msg))].sort(),
    ['authentication failed', 'bootstrap refused', 'message from a party without an account dropped', 'notification dropped'],
    'the agent logged each kind of message')
  t.ok(run.overheard.includes(topicFor(FACTORY.deviceId, 'dm')), 'and the stranger read the device\'s traffic')
  t.ok(run.status.values.includes('offline'), 'a forged offline reached the observer')
  t.equal(resultFor(run.session, './DMAcc/dms/Name'), 'Example DM Server', 'the device refused every change all the same')
})
