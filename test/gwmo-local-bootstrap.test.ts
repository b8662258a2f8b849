import { createHmac } from 'node:crypto'
import t from 'tap'
import { BOOTSTRAP_THROTTLE, BootstrapThrottle } from '../src/gwmo/bootstrap-throttle.ts'
import { handleLocalBootstrap, type LocalBootstrapOptions } from '../src/gwmo/local-bootstrap.ts'
import type { InboundMessage } from '../src/session/port.ts'
import { findAccount, readAccounts } from '../src/tree/accounts.ts'
import { MemoryStore } from '../src/store/index.ts'
import { durableTree, failingStore } from './helpers/stores.ts'
import { createStandardTree } from '../src/tree/standard-tree.ts'
import { ManagementTree } from '../src/tree/tree.ts'
import { buildAccountCommands, buildBootstrap, type AccountSpec } from './peers/bootstrap-server.ts'
import { add, addNode, alert, del, replace, type OutCommand } from './peers/commands.ts'
import { buildMessage } from './peers/syncml.ts'
import { captureLog, gwmoWorld } from './helpers/gwmo-harness.ts'
import { detectionAlert } from './peers/gateway.ts'

const DEVICE = 'mac:01-ab-34-ef-69-0c'
const SECRETS = { userPin: '246813', networkId: 'net-secret-9f' }

const SERVER: AccountSpec = {
  id: 'srv',
  serverId: 'http://www.someDMServer.com',
  addr: 'mqtt://broker.example:1883/omadm/v1/srv',
  clientName: DEVICE,
  clientPassword: 'client-pass',
  serverName: 'http://www.someDMServer.com',
  serverPassword: 'server-pass',
}
const NEW: AccountSpec = {
  id: 'new',
  serverId: 'http://new.example.com',
  addr: 'mqtt://broker.example:1883/omadm/v1/new',
  clientName: DEVICE,
  clientPassword: 'new-client-pass',
  serverName: 'http://new.example.com',
  serverPassword: 'new-server-pass',
}
const GATEWAY: AccountSpec = {
  id: 'gw',
  serverId: 'http://gw.local',
  addr: 'mqtt://broker.example:1883/omadm/v1/gw',
  clientName: DEVICE,
  clientPassword: 'gw-client-pass',
  serverName: 'http://gw.local',
  serverPassword: 'gw-server-pass',
  serverNonce: Buffer.from('gw-nonce').toString('base64'),
  role: 'gateway',
}

async function fixture() {
  const tree = createStandardTree({ devId: DEVICE, man: 'Acme', mod: 'Sensor 1', lang: 'en-US' })
  const store = new MemoryStore()
  tree.attachStore(store)
  await tree.flush()
  const opened: string[] = []
  const log = captureLog()
  /** The device's clock, moved by the test. */
  const clock = { now: 1_000_000 }
  const options: LocalBootstrapOptions = {
    tree,
    deviceId: DEVICE,
    secrets: SECRETS,
    openSession: async (serverId) => {
      opened.push(serverId)
    },
    throttle: new BootstrapThrottle(() => clock.now),
    logger: log.logger,
  }
  return { tree, store, opened, log, options, clock }
}

function inbound(built: { payload: Uint8Array; contentType: string; userProperties: Record<string, string> }): InboundMessage {
  return { channel: 'bootstrap', payload: built.payload, contentType: built.contentType, properties: { ...built.userProperties } }
}

const snapshot = (tree: ManagementTree) => Buffer.from(tree.serialize()).toString('base64')

for (const encoding of ['xml', 'wbxml'] as const) {
  for (const sec of ['NETWORKID', 'USERPIN', 'USERPIN_NETWORKID'] as const) {
    t.test(`a ${encoding} bootstrap under ${sec} is applied, stored, and followed by a 1201 session with each server`, async (t) => {
      const f = await fixture()
      const savesBefore = f.store.saves
      const message = buildBootstrap({
        deviceId: DEVICE, encoding, sec, ...SECRETS,
        commands: [...buildAccountCommands(SERVER), ...buildAccountCommands(GATEWAY)],
      })
      const outcome = await handleLocalBootstrap(inbound(message), f.options)
      t.same(outcome, { ok: true, serverIds: [SERVER.serverId, GATEWAY.serverId] })
      t.same(f.opened, [SERVER.serverId, GATEWAY.serverId])
      t.ok(f.store.saves > savesBefore, 'flushed before the sessions')
      t.notOk(f.tree.dirty)
      t.equal(findAccount(f.tree, GATEWAY.serverId)?.role, 'gateway')
      t.equal(findAccount(f.tree, SERVER.serverId)?.role, 'server')
      t.equal(f.tree.readSecret('./DMAcc/gw/AppAuth/2/AAuthSecret'), 'gw-server-pass')
      const text = f.log.text()
      for (const secret of [SECRETS.userPin, SECRETS.networkId, message.mac, 'gw-server-pass']) {
        t.notOk(text.includes(secret), 'no secret or MAC in the log')
      }
    })
  }
}

t.test('SEC and MAC properties are found whatever the case of their names', async (t) => {
  const f = await fixture()
  const message = buildBootstrap({ deviceId: DEVICE, encoding: 'xml', sec: 'USERPIN', ...SECRETS, commands: buildAccountCommands(SERVER) })
  const outcome = await handleLocalBootstrap(
    { channel: 'bootstrap', payload: message.payload, properties: { sec: 'USERPIN', mac: message.mac.toUpperCase() } },
    f.options,
  )
  t.ok(outcome.ok, 'no content type: XML recognised from the bytes')
})

interface Refusal {
  name: string
  stage: string
  build(): InboundMessage
  secrets?: LocalBootstrapOptions['secrets']
}

const good = (commands: OutCommand[] = buildAccountCommands(GATEWAY), sec: 'USERPIN' | 'NETWORKID' = 'NETWORKID') =>
  buildBootstrap({ deviceId: DEVICE, encoding: 'wbxml', sec, ...SECRETS, commands })

const refusals: Refusal[] = [
  { name: 'a wrong MAC', stage: 'mac', build: () => inbound({ ...good(), userProperties: { SEC: 'NETWORKID', MAC: 'ab'.repeat(20) } }) },
  { name: 'a MAC made with another key', stage: 'mac', build: () => inbound(buildBootstrap({ deviceId: DEVICE, encoding: 'xml', sec: 'NETWORKID', key: 'guess', commands: buildAccountCommands(GATEWAY) })) },
  { name: 'no MAC', stage: 'mac', build: () => inbound({ ...good(), userProperties: { SEC: 'NETWORKID' } }) },
  { name: 'no SEC', stage: 'mac', build: () => inbound({ ...good(), userProperties: { MAC: good().mac } }) },
  { name: 'a CP-profile SEC name', stage: 'mac', build: () => inbound({ ...good(), userProperties: { SEC: 'NETWPIN', MAC: good().mac } }) },
  {
    name: 'a SEC method whose secret is not configured', stage: 'mac', secrets: { networkId: SECRETS.networkId },
    build: () => inbound(good(buildAccountCommands(GATEWAY), 'USERPIN')),
  },
  {
    name: 'a payload changed after the MAC', stage: 'mac',
    build: () => {
      const m = good()
      const payload = m.payload.slice()
      payload[payload.length - 3]! ^= 0x01
      return inbound({ ...m, payload })
    },
  },
  {
    name: 'a malformed payload with a good MAC', stage: 'decode',
    build: () => {
      const payload = new Uint8Array(Buffer.from('<SyncML><SyncHdr>', 'utf8'))
      return inbound({ payload, contentType: 'application/vnd.syncml.dm+xml', userProperties: { SEC: 'USERPIN', MAC: macOf(SECRETS.userPin, payload) } })
    },
  },
  {
    name: 'a bootstrap addressed to another device', stage: 'target',
    build: () => inbound(buildBootstrap({ deviceId: 'IMEI:493005100592800', encoding: 'xml', sec: 'NETWORKID', ...SECRETS, commands: buildAccountCommands(GATEWAY) })),
  },
  { name: 'a Delete in the bootstrap', stage: 'apply', build: () => inbound(good([...buildAccountCommands(GATEWAY), del('./DMAcc/srv')])) },
  { name: 'an Alert in the bootstrap', stage: 'apply', build: () => inbound(good([alert('1201'), ...buildAccountCommands(GATEWAY)])) },
  {
    name: 'an account that breaks the DMAcc rules (no AppAddr)', stage: 'apply',
    build: () => inbound(good(buildAccountCommands(GATEWAY).filter((c) => !('items' in c) || !(c.items ?? []).some((i) => i.target?.includes('AppAddr'))))),
  },
  { name: 'an Add of a node that exists (the second half fails)', stage: 'apply', build: () => inbound(good([...buildAccountCommands(GATEWAY), add('./DevInfo/DevId', 'x')])) },
  {
    name: 'no Final', stage: 'apply',
    build: () => {
      const xml = buildMessage({ sessionId: '0', msgId: '1', target: DEVICE, source: 'bootstrap' }, buildAccountCommands(GATEWAY), false).xml
      return inbound(buildBootstrap({ deviceId: DEVICE, encoding: 'wbxml', sec: 'NETWORKID', ...SECRETS, xml }))
    },
  },
]

/** Written out here rather than taken from the code under test. */
function macOf(key: string, payload: Uint8Array): string {
  return createHmac('sha1', key).update(payload).digest('hex')
}

for (const refusal of refusals) {
  t.test(`refused with the tree unchanged: ${refusal.name}`, async (t) => {
    const f = await fixture()
    if (refusal.secrets !== undefined) f.options.secrets = refusal.secrets
    const before = snapshot(f.tree)
    const saves = f.store.saves
    const outcome = await handleLocalBootstrap(refusal.build(), f.options)
    t.equal(outcome.ok, false)
    t.equal(!outcome.ok && outcome.stage, refusal.stage)
    t.equal(snapshot(f.tree), before, 'tree unchanged')
    t.equal(f.store.saves, saves, 'nothing stored')
    t.same(f.opened, [], 'no session')
    t.match(f.log.lines.at(-1), { level: 'warn', msg: 'bootstrap refused', stage: refusal.stage })
    t.notOk(f.log.text().includes(SECRETS.networkId) || f.log.text().includes(SECRETS.userPin))
  })
}

t.test('a duplicate delivery of an Add bootstrap fails whole, with nothing changed and no second session', async (t) => {
  const f = await fixture()
  const message = inbound(good([...buildAccountCommands(SERVER), ...buildAccountCommands(GATEWAY)]))
  t.ok((await handleLocalBootstrap(message, f.options)).ok)
  const after = snapshot(f.tree)
  const outcome = await handleLocalBootstrap(message, f.options)
  t.match(outcome, { ok: false, stage: 'apply', reason: /418/ })
  t.equal(snapshot(f.tree), after)
  t.same(f.opened, [SERVER.serverId, GATEWAY.serverId], 'sessions of the first delivery only')
  t.equal(readAccounts(f.tree).length, 2)
})

t.test('a local bootstrap only adds new accounts: each other write refuses the whole message, nothing changed', async (t) => {
  const f = await fixture()
  t.ok((await handleLocalBootstrap(inbound(good([...buildAccountCommands(SERVER), ...buildAccountCommands(GATEWAY)])), f.options)).ok)
  const before = snapshot(f.tree)
  const opened = [...f.opened]
  const cases: Array<[string, OutCommand[], RegExp]> = [
    ['a Replace of an existing account\'s secret', [replace('./DMAcc/srv/AppAuth/2/AAuthSecret', 'chosen')],
      /^Replace \.\/DMAcc\/srv\/AppAuth\/2\/AAuthSecret \(CmdID 1\): a local bootstrap only adds new accounts \(binding\.md §6\)$/],
    ['a Replace of an existing account\'s ACL', [replace('./DMAcc/srv?prop=ACL', 'Add=*&Delete=*&Get=*&Replace=*')], /only adds new accounts/],
    ['a Replace inside an account the message creates', [...buildAccountCommands(NEW), replace('./DMAcc/new/Name', 'x')], /^Replace \.\/DMAcc\/new\/Name .*only adds new accounts/],
    ['a credential added to an existing account', [addNode('./DMAcc/srv/AppAuth/3'), add('./DMAcc/srv/AppAuth/3/AAuthLevel', 'SRVCRED')],
      /^Add \.\/DMAcc\/srv\/AppAuth\/3 \(CmdID 1\): \.\/DMAcc\/srv exists: a local bootstrap only adds new accounts/],
    ['a new account and a node outside ./DMAcc', [...buildAccountCommands(NEW), add('./DevDetail/Ext', 'x')], /^Add \.\/DevDetail\/Ext .*: outside \.\/DMAcc: a local bootstrap only adds/],
    ['an Add of ./DMAcc itself', [addNode('./DMAcc')], /outside \.\/DMAcc/],
    ['an existing account added again', buildAccountCommands(SERVER), /^Add \.\/DMAcc\/srv \(CmdID 1\): 418 already exists$/],
  ]
  for (const [what, commands, reason] of cases) {
    const outcome = await handleLocalBootstrap(inbound(good(commands)), f.options)
    t.match(outcome, { ok: false, stage: 'apply', reason }, what)
    t.equal(snapshot(f.tree), before, `${what}: the tree unchanged`)
  }
  t.same(f.opened, opened, 'no session')
  t.equal(f.tree.readSecret('./DMAcc/srv/AppAuth/2/AAuthSecret'), SERVER.serverPassword)
  t.same(await handleLocalBootstrap(inbound(good(buildAccountCommands(NEW))), f.options), { ok: true, serverIds: [NEW.serverId] }, 'a new account alone is added')
  t.equal(f.tree.get('./DMAcc/new?prop=ACL', 'device').value?.data, `Add=${NEW.serverId}&Delete=${NEW.serverId}&Get=${NEW.serverId}&Replace=${NEW.serverId}`,
    'with the ACL of its own server')
})

t.test('a store that fails: nothing applied, no session; the next delivery applies', async (t) => {
  const f = await fixture()
  let failing = true
  const store = failingStore(() => failing, () => new Error('disk full'))
  f.tree.attachStore(store)
  const outcome = await handleLocalBootstrap(inbound(good()), f.options)
  t.match(outcome, { ok: false, stage: 'flush', reason: 'disk full' })
  t.same(f.opened, [])
  t.equal(findAccount(f.tree, GATEWAY.serverId), undefined, 'the account is not in the tree either')
  t.match(f.log.text(), /disk full.*bootstrap not stored, so not applied/)

  failing = false
  t.same(await handleLocalBootstrap(inbound(good()), f.options), { ok: true, serverIds: [GATEWAY.serverId] }, 'the same message again applies')
  const stored = await durableTree(store)
  t.ok(stored.ok && findAccount(stored.tree, GATEWAY.serverId), 'and is stored')
  t.same(f.opened, [GATEWAY.serverId])
})

t.test('a failing session open is logged, not thrown', async (t) => {
  const f = await fixture()
  f.options.openSession = () => Promise.reject(new Error('no route'))
  const outcome = await handleLocalBootstrap(inbound(good()), f.options)
  t.ok(outcome.ok)
  await new Promise((r) => setImmediate(r))
  t.match(f.log.text(), /session after bootstrap failed/)
})

/** A USERPIN bootstrap of the account NEW, its MAC made with `pin`. */
const guess = (pin: string) => inbound(buildBootstrap({ deviceId: DEVICE, encoding: 'xml', sec: 'USERPIN', userPin: pin, commands: buildAccountCommands(NEW) }))

// Regression: a 4-digit USERPIN fell to ~735 guesses in 1.9 s; every MAC was checked, as fast as they came.
t.test('MAC failures of a method: three are free, then each starts a backoff that refuses its bootstraps unchecked', async (t) => {
  const f = await fixture()
  for (let k = 1; k <= 3; k++) {
    t.match(await handleLocalBootstrap(guess(String(100000 + k)), f.options), { ok: false, stage: 'mac', reason: 'the MAC does not verify' })
    const line = f.log.lines.at(-1)
    t.match(line, { msg: 'bootstrap refused', stage: 'mac', method: 'USERPIN', failures: k }, `failure ${k}: logged`)
    t.notOk(line && 'backoffSeconds' in line, `failure ${k}: no backoff yet`)
  }
  await handleLocalBootstrap(guess('100004'), f.options)
  t.match(f.log.lines.at(-1), { msg: 'bootstrap refused', stage: 'mac', method: 'USERPIN', failures: 4, backoffSeconds: 30 }, 'the fourth starts a backoff')

  const lines = f.log.lines.length
  const before = snapshot(f.tree)
  for (let k = 0; k < 10; k++) {
    t.same(await handleLocalBootstrap(guess(SECRETS.userPin), f.options),
      { ok: false, stage: 'throttle', reason: 'SEC=USERPIN: refused unchecked for 30 s more after repeated MAC failures' },
      `the right PIN too is refused, unchecked (${k + 1})`)
  }
  t.equal(f.log.lines.length, lines, 'no line for a refusal of the backoff')
  t.equal(snapshot(f.tree), before, 'nothing changed')
  t.same(f.opened, [])

  t.same(await handleLocalBootstrap(inbound(good()), f.options), { ok: true, serverIds: [GATEWAY.serverId] }, 'another method is not held back')

  f.clock.now += 29_999
  t.match(await handleLocalBootstrap(guess(SECRETS.userPin), f.options), { ok: false, stage: 'throttle', reason: /for 1 s more/ })
  f.clock.now += 1
  t.same(await handleLocalBootstrap(guess(SECRETS.userPin), f.options), { ok: true, serverIds: [NEW.serverId] }, 'once the backoff is over, a MAC is checked again')
  t.match(f.log.lines.at(-1), { msg: 'bootstrap applied', method: 'USERPIN', throttled: 11 }, 'its line says how many the backoff refused')

  // A MAC that verifies starts the count over: three free failures again.
  for (let k = 1; k <= 3; k++) {
    t.match(await handleLocalBootstrap(guess('0'), f.options), { ok: false, stage: 'mac' })
    t.match(f.log.lines.at(-1), { failures: k })
  }
  t.notOk(f.log.text().includes(SECRETS.userPin), 'the PIN is in no log line')
})

t.test('the backoff doubles up to its cap: 10,000 guesses take the device\'s clock over 100 days', async (t) => {
  t.same(BOOTSTRAP_THROTTLE, { freeFailures: 3, firstBackoffMs: 30_000, maxBackoffMs: 900_000 })
  let now = 0
  const throttle = new BootstrapThrottle(() => now)
  const backoffs: number[] = []
  for (let k = 0; k < 10_000; k++) {
    for (let admitted = throttle.admit('USERPIN'); !admitted.ok; admitted = throttle.admit('USERPIN')) now += admitted.retryInMs
    const { backoffMs } = throttle.failed('USERPIN')
    if (k < 9) backoffs.push(backoffMs)
  }
  t.same(backoffs, [0, 0, 0, 30_000, 60_000, 120_000, 240_000, 480_000, 900_000])
  const days = now / 86_400_000
  t.ok(days > 100, `the 10,000th guess is checked after ${days.toFixed(1)} days`)
  t.ok(throttle.admit('NETWORKID').ok, 'per method: NETWORKID is not held back')
})

t.test('USERPIN alone is refused with a PIN shorter than 6 characters, even with the right MAC; USERPIN_NETWORKID works', async (t) => {
  const f = await fixture()
  const pin = '8642'
  f.options.secrets = { userPin: pin, networkId: SECRETS.networkId }
  for (let k = 0; k < 5; k++) {
    t.same(await handleLocalBootstrap(guess(pin), f.options),
      { ok: false, stage: 'mac', reason: 'USERPIN alone is refused: the configured PIN is shorter than 6 characters' })
  }
  t.notOk(f.log.lines.some((l) => 'failures' in l), 'no MAC was checked, so no failure was counted')
  const both = buildBootstrap({ deviceId: DEVICE, encoding: 'xml', sec: 'USERPIN_NETWORKID', userPin: pin, networkId: SECRETS.networkId, commands: buildAccountCommands(NEW) })
  t.same(await handleLocalBootstrap(inbound(both), f.options), { ok: true, serverIds: [NEW.serverId] })
  t.notOk(f.log.text().includes(pin), 'the PIN is in no log line')
})

t.test('a PIN shorter than 6 characters is reported once, at start, without the PIN', async (t) => {
  const short = await gwmoWorld({ config: { userPin: '8642', networkId: SECRETS.networkId } })
  const said = short.log.lines.filter((l) => /USERPIN/.test(String(l.msg)))
  t.equal(said.length, 1, 'one line')
  t.match(said[0], { level: 'warn', msg: 'SEC=USERPIN bootstraps refused: the configured userPin is shorter than 6 characters (NETWORKID and USERPIN_NETWORKID are not affected)' })
  t.notOk(short.log.text().includes('8642'))
  await short.stop()
  const long = await gwmoWorld({ config: { userPin: SECRETS.userPin } })
  t.notOk(long.log.lines.some((l) => /USERPIN/.test(String(l.msg))), 'no line for a PIN long enough')
  await long.stop()
})

t.test('through the device: a bootstrap opens a 1201 session with each server, and the gateway is accepted after', async (t) => {
  const w = await gwmoWorld({ config: { userPin: SECRETS.userPin, networkId: SECRETS.networkId } })
  const gateway = { ...GATEWAY, serverName: GATEWAY.serverId, serverPassword: 'server-secret', serverNonce: undefined }
  const message = buildBootstrap({
    deviceId: DEVICE, encoding: 'wbxml', sec: 'USERPIN_NETWORKID', ...SECRETS,
    commands: [...buildAccountCommands(SERVER), ...buildAccountCommands(gateway)],
  })
  const outcome = await w.gwmo.onBootstrap(inbound(message))
  t.same(outcome, { ok: true, serverIds: [SERVER.serverId, GATEWAY.serverId] })
  await w.settle()
  for (const party of [SERVER.serverId, GATEWAY.serverId]) {
    const [p1] = w.to(party)
    t.equal(p1?.message.commands.find((c) => c.name === 'Alert')?.data, '1201', `Package 1 to ${party}`)
    t.equal(p1?.out.address, party === GATEWAY.serverId ? GATEWAY.addr : SERVER.addr, 'to the AppAddr the bootstrap gave')
  }
  t.same(w.sent.filter((s) => s.to !== SERVER.serverId && s.to !== GATEWAY.serverId), [], 'nothing answers the bootstrap itself')
  await w.party(GATEWAY.serverId).closeAll()
  const replies = await w.party(GATEWAY.serverId).push([detectionAlert({ gwAddress: '192.168.4.1', share: false })])
  t.equal(replies[0]?.message.commands.find((c) => c.name === 'Status' && c.cmdRef === '1')?.data, '200', 'detection accepted')

  t.match(await w.gwmo.onBootstrap(inbound(message)), { ok: false, stage: 'apply' }, 'the duplicate is refused')
  await w.stop()
})
