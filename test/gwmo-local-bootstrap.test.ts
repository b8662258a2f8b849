import { createHmac } from 'node:crypto'
import t from 'tap'
import { handleLocalBootstrap, type LocalBootstrapOptions } from '../src/gwmo/local-bootstrap.ts'
import type { InboundMessage } from '../src/transport/port.ts'
import { findAccount, readAccounts } from '../src/tree/accounts.ts'
import { MemoryStore } from '../src/tree/memory-store.ts'
import { createStandardTree } from '../src/tree/standard-tree.ts'
import { ManagementTree } from '../src/tree/tree.ts'
import { buildAccountCommands, buildBootstrap, type AccountSpec } from './peers/bootstrap-server.ts'
import { add, alert, del, type OutCommand } from './peers/commands.ts'
import { buildMessage } from './peers/syncml.ts'
import { captureLog, gwmoWorld } from './helpers/gwmo-harness.ts'
import { detectionAlert } from './peers/gateway.ts'

const DEVICE = 'mac:01-ab-34-ef-69-0c'
const SECRETS = { userPin: '1234', networkId: 'net-secret-9f' }

const SERVER: AccountSpec = {
  id: 'srv',
  serverId: 'http://www.someDMServer.com',
  addr: 'mqtt://broker.example:1883/omadm/v1/srv',
  clientName: DEVICE,
  clientPassword: 'client-pass',
  serverName: 'http://www.someDMServer.com',
  serverPassword: 'server-pass',
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
  const options: LocalBootstrapOptions = {
    tree,
    deviceId: DEVICE,
    secrets: SECRETS,
    openSession: async (serverId) => {
      opened.push(serverId)
    },
    logger: log.logger,
  }
  return { tree, store, opened, log, options }
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

t.test('a Replace bootstrap updates an existing account and opens a session with its server', async (t) => {
  const f = await fixture()
  await handleLocalBootstrap(inbound(good(buildAccountCommands(GATEWAY))), f.options)
  const outcome = await handleLocalBootstrap(
    inbound(good([{ name: 'Replace', items: [{ target: './DMAcc/gw/AppAddr/1/Addr', meta: { format: 'chr' }, data: 'mqtt://other:1883/gw' }] }])),
    f.options,
  )
  t.same(outcome, { ok: true, serverIds: [GATEWAY.serverId] })
  t.same(findAccount(f.tree, GATEWAY.serverId)?.addresses[0]?.addr, 'mqtt://other:1883/gw')
  t.same(f.opened, [GATEWAY.serverId, GATEWAY.serverId])
})

t.test('a store that fails: nothing applied, no session; the next delivery applies', async (t) => {
  const f = await fixture()
  let failing = true
  const saved: Uint8Array[] = []
  f.tree.attachStore({
    load: async () => undefined,
    save: async (bytes) => {
      if (failing) throw new Error('disk full')
      saved.push(bytes)
    },
  })
  const outcome = await handleLocalBootstrap(inbound(good()), f.options)
  t.match(outcome, { ok: false, stage: 'flush', reason: 'disk full' })
  t.same(f.opened, [])
  t.equal(findAccount(f.tree, GATEWAY.serverId), undefined, 'the account is not in the tree either')
  t.match(f.log.text(), /disk full.*bootstrap not stored, so not applied/)

  failing = false
  t.same(await handleLocalBootstrap(inbound(good()), f.options), { ok: true, serverIds: [GATEWAY.serverId] }, 'the same message again applies')
  const stored = ManagementTree.restore(saved.at(-1)!)
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
