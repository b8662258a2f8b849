// Bootstrap messages (OMA DM Bootstrap 1.2, DM profile) applied all or nothing.
import t from 'tap'
import { applyBootstrap } from '../src/tree/bootstrap.ts'
import { readAccounts } from '../src/tree/accounts.ts'
import { addAccount, standardTree } from './fixtures/tree/trees.ts'
import type { Command, Item, ItemCommand, Meta, SyncMLMessage } from '../src/codec/syncml-model.ts'

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')

let cmdId = 0
function item(uri: string, data?: string | Uint8Array, meta?: Meta): Item {
  const it: Item = { target: { locUri: uri } }
  if (data !== undefined) it.data = data
  if (meta !== undefined) it.meta = meta
  return it
}
function cmd(kind: ItemCommand['kind'], items: Item[], meta?: Meta): ItemCommand {
  const c: ItemCommand = { kind, cmdId: String(++cmdId), items }
  if (meta !== undefined) c.meta = meta
  return c
}
const add = (uri: string, data?: string | Uint8Array, meta?: Meta) => cmd('Add', [item(uri, data, meta)])
const addNode = (uri: string) => add(uri, undefined, { format: 'node' })
function message(body: Command[], final = true): SyncMLMessage {
  return {
    hdr: { verDTD: '1.2', verProto: 'DM/1.2', sessionId: '1', msgId: '1', target: { locUri: 'mac:01' }, source: { locUri: 'bootstrap' } },
    body,
    final,
  }
}

/** The gateway account of GwMO 8.4.2, as a local DM Bootstrap Server would send it. */
function gatewayAccount(x = 'gw', serverId = 'gw.example'): Command[] {
  return [
    addNode(`./DMAcc/${x}`),
    add(`./DMAcc/${x}/AppID`, 'w7'),
    add(`./DMAcc/${x}/ServerID`, serverId),
    add(`./DMAcc/${x}/Name`, 'Home gateway'),
    add(`./DMAcc/${x}/AppAddr/1/Addr`, 'mqtt://192.0.2.1'),
    add(`./DMAcc/${x}/AppAddr/1/AddrType`, 'URI'),
    cmd('Add', [
      item(`./DMAcc/${x}/AppAuth/1/AAuthLevel`, 'SRVCRED'),
      item(`./DMAcc/${x}/AppAuth/1/AAuthType`, 'DIGEST'),
      item(`./DMAcc/${x}/AppAuth/1/AAuthName`, serverId),
      item(`./DMAcc/${x}/AppAuth/1/AAuthSecret`, new TextEncoder().encode('s3cret')),
      item(`./DMAcc/${x}/AppAuth/1/AAuthData`, 'AAECAw==', { format: 'b64' }),
    ]),
    add(`./DMAcc/${x}/Ext/GwMO/Role`, 'gateway'),
  ]
}

t.test('a bootstrap creates accounts and reports their ServerIDs', async (t) => {
  const tree = standardTree()
  const result = applyBootstrap(tree, message([
    ...gatewayAccount(),
    { kind: 'Atomic', cmdId: '90', commands: gatewayAccount('dms', 'http://dms.example').slice(0, 5) },
  ]))
  t.same(result.ok && result.serverIds, ['gw.example', 'http://dms.example'])
  const [gw, dms] = readAccounts(tree)
  t.equal(gw?.role, 'gateway')
  t.equal(gw?.serverEntries[0]?.name, 'gw.example')
  t.equal(dms?.role, 'server')
  t.equal(tree.readSecret('./DMAcc/gw/AppAuth/1/AAuthSecret'), 's3cret', 'chr data given as bytes is stored as text')
  t.same(tree.readSecret('./DMAcc/gw/AppAuth/1/AAuthData'), new Uint8Array([0, 1, 2, 3]), 'b64 from the item Meta')
  t.equal(tree.get('./DMAcc/gw/AppAuth/1/AAuthData?prop=Format', 'device').value?.data, 'b64')
  t.equal(tree.get('./DMAcc/gw?prop=ACL', 'device').value?.data, 'Add=gw.example&Delete=gw.example&Get=gw.example&Replace=gw.example',
    'an account left without an ACL is given to its own server')
  t.equal(tree.get('./DMAcc/gw/Name', { serverId: 'gw.example' }).value?.data, 'Home gateway')
  t.equal(tree.get('./DMAcc/gw/Name', { serverId: 'http://dms.example' }).status, 425)
  t.equal(tree.dirty, true)
})

t.test('duplicate delivery of an Add bootstrap fails cleanly and changes nothing', async (t) => {
  const tree = standardTree()
  const msg = message(gatewayAccount())
  t.equal(applyBootstrap(tree, msg).ok, true)
  const before = hex(tree.serialize())
  t.same(applyBootstrap(tree, msg), { ok: false, reason: `Add ./DMAcc/gw (CmdID ${(msg.body[0] as ItemCommand).cmdId}): 418 already exists` })
  t.equal(hex(tree.serialize()), before)
})

t.test('a command failing midway undoes the ones before it', async (t) => {
  const tree = standardTree()
  addAccount(tree, { x: 'old', serverId: 'old.example' })
  const before = hex(tree.serialize())
  const bad = add('./DMAcc/gw/AppAddr/1/Port/1', 'x')
  const body = [...gatewayAccount(), add('./DMAcc/gw/AppAddr/1/Addr/oops', 'v'), bad]
  const result = applyBootstrap(tree, message(body))
  t.same(result, { ok: false, reason: `Add ./DMAcc/gw/AppAddr/1/Addr/oops (CmdID ${(body[body.length - 2] as ItemCommand).cmdId}): 405 not allowed` })
  t.equal(hex(tree.serialize()), before)
})

t.test('only Add and Replace (in Atomic or Sequence) are taken', async (t) => {
  const tree = standardTree()
  addAccount(tree, { x: 'old', serverId: 'old.example' })
  const before = hex(tree.serialize())
  const others: Command[] = [
    cmd('Delete', [item('./DMAcc/old')]),
    cmd('Get', [item('./DevInfo/DevId')]),
    cmd('Exec', [item('./DMAcc/old')]),
    cmd('Copy', [item('./DMAcc/copy')]),
    { kind: 'Alert', cmdId: '77', data: '1201', items: [] },
    { kind: 'Unknown', cmdId: '78', name: 'Sync' },
  ]
  for (const other of others) {
    const name = other.kind === 'Unknown' ? other.name : other.kind
    const result = applyBootstrap(tree, message([...gatewayAccount(), { kind: 'Sequence', cmdId: '99', commands: [other] }]))
    t.same(result, { ok: false, reason: `${name} (CmdID ${other.cmdId}): not allowed in a bootstrap (only Add and Replace)` }, name)
    t.equal(hex(tree.serialize()), before, `${name}: nothing changed`)
  }
})

t.test('an account that would be invalid fails the whole bootstrap, naming the path', async (t) => {
  const tree = standardTree()
  const before = hex(tree.serialize())
  const body = gatewayAccount().filter((c) => (c as ItemCommand).items?.[0]?.target?.locUri !== './DMAcc/gw/AppAddr/1/Addr')
  body.push(add('./Vendor/unrelated', 'v'))
  const result = applyBootstrap(tree, message(body))
  t.same(result, { ok: false, reason: 'invalid account: ./DMAcc/gw/AppAddr/1/Addr: missing' })
  t.equal(hex(tree.serialize()), before)
  const noAddr = gatewayAccount().slice(0, 4)
  t.same(applyBootstrap(tree, message(noAddr)), { ok: false, reason: 'invalid account: ./DMAcc/gw/AppAddr: no Addr' })
})

t.test('Replace changes an existing account; an ACL may be set through ?prop=ACL', async (t) => {
  const tree = standardTree()
  t.equal(applyBootstrap(tree, message(gatewayAccount())).ok, true)
  const result = applyBootstrap(tree, message([
    cmd('Replace', [item('./DMAcc/gw/AppAddr/1/Addr', 'mqtt://192.0.2.99')]),
    cmd('Replace', [item('./DMAcc/gw?prop=ACL', 'Get=*&Replace=gw.example')]),
  ]))
  t.same(result.ok && result.serverIds, ['gw.example'])
  t.equal(readAccounts(tree)[0]?.addresses[0]?.addr, 'mqtt://192.0.2.99')
  t.equal(tree.get('./DMAcc/gw?prop=ACL', 'device').value?.data, 'Get=*&Replace=gw.example')
  const withAcl = standardTree()
  const body = [...gatewayAccount(), cmd('Replace', [item('./DMAcc/gw?prop=ACL', 'Get=*')])]
  t.equal(applyBootstrap(withAcl, message(body)).ok, true)
  t.equal(withAcl.get('./DMAcc/gw?prop=ACL', 'device').value?.data, 'Get=*', 'an ACL the message sets is kept')
  t.same(applyBootstrap(withAcl, message([cmd('Replace', [item('./DMAcc/nobody/Name', 'x')])])),
    { ok: false, reason: `Replace ./DMAcc/nobody/Name (CmdID ${cmdId}): 404 not found` })
})

t.test('formats come from the item Meta, else the command Meta, else chr', async (t) => {
  const tree = standardTree()
  const body: Command[] = [
    ...gatewayAccount(),
    cmd('Add', [item('./Vendor/n', '42'), item('./Vendor/m', 'true', { format: 'bool' })], { format: 'int' }),
    add('./Vendor/c', '42'),
    cmd('Add', [item('./Vendor/dir', undefined, { format: 'node', type: 'urn:example:1.0' })]),
  ]
  t.equal(applyBootstrap(tree, message(body)).ok, true)
  t.equal(tree.get('./Vendor/n?prop=Format', 'device').value?.data, 'int')
  t.equal(tree.get('./Vendor/m?prop=Format', 'device').value?.data, 'bool')
  t.equal(tree.get('./Vendor/c?prop=Format', 'device').value?.data, 'chr')
  t.equal(tree.get('./Vendor/dir?prop=Type', 'device').value?.data, 'urn:example:1.0')
  t.match(applyBootstrap(standardTree(), message([add('./Vendor/x', 'abc', { format: 'int' })])),
    { ok: false, reason: /^Add \.\/Vendor\/x \(CmdID \d+\): 415 / })
  t.match(applyBootstrap(standardTree(), message([add('./Vendor/x', 'abc', { format: 'text' })])),
    { ok: false, reason: /unknown format 'text'/ })
})

t.test('malformed bootstraps are refused', async (t) => {
  const tree = standardTree()
  const before = hex(tree.serialize())
  t.same(applyBootstrap(tree, message(gatewayAccount(), false)), { ok: false, reason: 'the bootstrap message has no Final' })
  t.same(applyBootstrap(tree, message([])), { ok: false, reason: 'the bootstrap message holds no Add or Replace' })
  t.match(applyBootstrap(tree, message([cmd('Add', [])])), { ok: false, reason: /: no Item$/ })
  t.match(applyBootstrap(tree, message([cmd('Add', [{ data: 'x' }])])), { ok: false, reason: /an Item has no Target$/ })
  t.match(applyBootstrap(tree, message([cmd('Add', [{ ...item('./Vendor/x', 'x'), moreData: true }])])), { ok: false, reason: /large objects/ })
  t.match(applyBootstrap(tree, message([add('./Inbox/tnds', '<MgmtTree/>', { format: 'xml' })])), { ok: false, reason: /406 not supported$/ })
  t.match(applyBootstrap(tree, message([add('./DMAcc//x', 'v')])), { ok: false, reason: /400 bad request$/ })
  t.equal(hex(tree.serialize()), before)
})

t.test('a bootstrap runs inside an enclosing transaction too', async (t) => {
  const tree = standardTree()
  const tx = tree.begin()
  t.equal(applyBootstrap(tx, message(gatewayAccount())).ok, true)
  t.same(tree.children('./DMAcc'), [])
  t.match(tx.commit(), { ok: true })
  t.same(tree.children('./DMAcc'), ['gw'])
})

t.test('newAccountsOnly (a local bootstrap): Adds inside the accounts the message creates, nothing else', async (t) => {
  const tree = standardTree()
  t.equal(applyBootstrap(tree, message(gatewayAccount())).ok, true)
  const before = hex(tree.serialize())
  const only = { newAccountsOnly: true }
  const refusals: Array<[Command[], RegExp]> = [
    [[cmd('Replace', [item('./DMAcc/gw/AppAuth/1/AAuthSecret', 'x')])], /^Replace \S+ \(CmdID \d+\): a local bootstrap only adds new accounts \(binding\.md §6\)$/],
    [[cmd('Replace', [item('./DMAcc/gw?prop=ACL', 'Get=*')])], /only adds new accounts/],
    [[add('./DMAcc/gw/AppAuth/2/AAuthLevel', 'SRVCRED')], /^Add \S+ \(CmdID \d+\): \.\/DMAcc\/gw exists: a local bootstrap only adds new accounts/],
    [[...gatewayAccount('gw2', 'gw2.example'), add('./Vendor/x', 'v')], /^Add \.\/Vendor\/x \(CmdID \d+\): outside \.\/DMAcc: /],
    [[{ kind: 'Atomic', cmdId: '90', commands: [...gatewayAccount('gw2', 'gw2.example'), cmd('Replace', [item('./DMAcc/gw2/Name', 'x')])] }], /only adds new accounts/],
    [gatewayAccount(), /418 already exists$/],
  ]
  for (const [body, reason] of refusals) t.match(applyBootstrap(tree, message(body), only), { ok: false, reason })
  t.equal(hex(tree.serialize()), before, 'nothing changed')
  const added = applyBootstrap(tree, message(gatewayAccount('gw2', 'gw2.example')), only)
  t.same(added.ok && added.serverIds, ['gw2.example'], 'a new account is added')
  t.equal(tree.get('./DMAcc/gw2?prop=ACL', 'device').value?.data, 'Add=gw2.example&Delete=gw2.example&Get=gw2.example&Replace=gw2.example')
  t.equal(applyBootstrap(tree, message([cmd('Replace', [item('./DMAcc/gw/Name', 'factory')])])).ok, true, 'without it (the factory bootstrap) anything goes')
})
