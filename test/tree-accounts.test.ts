// DMAcc (w7) account validation, the typed account view, and the device's own writes to accounts.
import t from 'tap'
import { accountNodes, addAccount, chr, standardTree, type AccountSpec } from './fixtures/tree/trees.ts'
import { findAccount, markGateway, readAccounts, setNonce } from '../src/tree/accounts.ts'
import type { NodeValue } from '../src/tree/types.ts'

/** Builds an account from `spec`, then applies `edit` to its node list, and commits. */
function tryAccount(edit: (nodes: [string, NodeValue][]) => [string, NodeValue][], spec: Partial<AccountSpec> = {}) {
  const tree = standardTree()
  addAccount(tree, { x: 'other', serverId: 'taken' })
  const tx = tree.begin()
  for (const [rel, value] of edit(accountNodes({ x: 'acc', serverId: 'srv1', ...spec }))) {
    const status = tx.add(`./DMAcc/acc/${rel}`, value, 'device')
    if (status !== 200) throw new Error(`setup: ${rel} ${status}`)
  }
  return { tree, result: tx.commit() }
}

const without = (...names: string[]) => (nodes: [string, NodeValue][]) => nodes.filter(([rel]) => !names.includes(rel))
const replacing = (name: string, data: string) => (nodes: [string, NodeValue][]) =>
  nodes.map(([rel, v]): [string, NodeValue] => (rel === name ? [rel, chr(data)] : [rel, v]))
const adding = (...extra: [string, string][]) => (nodes: [string, NodeValue][]) =>
  [...nodes, ...extra.map(([rel, data]): [string, NodeValue] => [rel, chr(data)])]

t.test('a complete account is valid, and so are the optional parts left out', async (t) => {
  t.match(tryAccount((n) => n).result, { ok: true })
  const minimal = tryAccount(without('Name', 'AppAddr/1/AddrType', 'AppAddr/1/Port/1/PortNbr', 'AAuthPref',
    'AppAuth/1/AAuthLevel', 'AppAuth/1/AAuthType', 'AppAuth/1/AAuthName', 'AppAuth/1/AAuthSecret', 'AppAuth/1/AAuthData',
    'AppAuth/2/AAuthLevel', 'AppAuth/2/AAuthType', 'AppAuth/2/AAuthName', 'AppAuth/2/AAuthSecret'))
  t.match(minimal.result, { ok: true }, 'AppID, ServerID and one Addr suffice')
  for (const role of ['gateway', 'server']) t.match(tryAccount(adding(['Ext/GwMO/Role', role])).result, { ok: true }, role)
  for (const type of ['URI', 'IPv4', 'IPv6']) t.match(tryAccount(replacing('AppAddr/1/AddrType', type)).result, { ok: true }, type)
  t.match(tryAccount(adding(['AppAuth/3/AAuthLevel', 'HTTP'], ['AppAuth/3/AAuthType', 'HTTP-DIGEST'])).result, { ok: true })
  t.match(tryAccount(adding(['Ext/Vendor/x', 'anything'])).result, { ok: true }, 'other Ext content is left alone')
})

t.test('invalid accounts are refused, each reason naming its path', async (t) => {
  const rows: [string, (n: [string, NodeValue][]) => [string, NodeValue][], string][] = [
    ['no AppID', without('AppID'), './DMAcc/acc/AppID: missing'],
    ['AppID not w7', replacing('AppID', 'w8'), './DMAcc/acc/AppID: must be w7, not \'w8\''],
    ['no ServerID', without('ServerID'), './DMAcc/acc/ServerID: missing'],
    ['empty ServerID', replacing('ServerID', ''), './DMAcc/acc/ServerID: missing'],
    ['ServerID taken', replacing('ServerID', 'taken'), './DMAcc/acc/ServerID: \'taken\' is already the ServerID of ./DMAcc/other'],
    ['no AppAddr', without('AppAddr/1/Addr', 'AppAddr/1/AddrType', 'AppAddr/1/Port/1/PortNbr'), './DMAcc/acc/AppAddr: no Addr'],
    ['an AppAddr without Addr', without('AppAddr/1/Addr'), './DMAcc/acc/AppAddr/1/Addr: missing'],
    ['empty Addr', replacing('AppAddr/1/Addr', ''), './DMAcc/acc/AppAddr/1/Addr: missing'],
    ['bad AddrType', replacing('AppAddr/1/AddrType', 'MQTT'), './DMAcc/acc/AppAddr/1/AddrType: must be URI, IPv4 or IPv6, not \'MQTT\''],
    ['bad PortNbr', replacing('AppAddr/1/Port/1/PortNbr', '70000'), './DMAcc/acc/AppAddr/1/Port/1/PortNbr: must be a port number, not \'70000\''],
    ['bad AAuthPref', replacing('AAuthPref', 'syncml:auth-md5'), './DMAcc/acc/AAuthPref: \'syncml:auth-md5\' is not an AAuthType'],
    ['bad AAuthLevel', replacing('AppAuth/1/AAuthLevel', 'CLIENT'), './DMAcc/acc/AppAuth/1/AAuthLevel: must be CLCRED, SRVCRED, OBEX or HTTP, not \'CLIENT\''],
    ['no AAuthLevel', without('AppAuth/2/AAuthLevel'), './DMAcc/acc/AppAuth/2/AAuthLevel: must be CLCRED, SRVCRED, OBEX or HTTP, not \'\''],
    ['bad AAuthType', replacing('AppAuth/1/AAuthType', 'MD5'), './DMAcc/acc/AppAuth/1/AAuthType: \'MD5\' is not an AAuthType'],
    ['no AAuthType', without('AppAuth/1/AAuthType'), './DMAcc/acc/AppAuth/1/AAuthType: \'\' is not an AAuthType'],
    ['DIGEST at HTTP level', adding(['AppAuth/3/AAuthLevel', 'HTTP'], ['AppAuth/3/AAuthType', 'DIGEST']),
      './DMAcc/acc/AppAuth/3/AAuthType: \'DIGEST\' is not an HTTP-level AAuthType'],
    ['bad role', adding(['Ext/GwMO/Role', 'master']), './DMAcc/acc/Ext/GwMO/Role: must be gateway or server, not \'master\''],
  ]
  for (const [name, edit, message] of rows) {
    const { tree, result } = tryAccount(edit)
    t.same(result, { ok: false, failure: { status: 500, messages: [message] } }, name)
    t.equal(tree.get('./DMAcc/acc', 'device').status, 404, `${name}: nothing applied`)
  }
  const several = tryAccount((n) => replacing('AppID', 'x')(without('ServerID')(n)))
  t.same(several.result, { ok: false, failure: { status: 500, messages: ['./DMAcc/acc/AppID: must be w7, not \'x\'', './DMAcc/acc/ServerID: missing'] } })
})

t.test('a leaf directly under ./DMAcc is not an account', async (t) => {
  const tree = standardTree()
  t.equal(tree.add('./DMAcc/stray', chr('x'), 'device'), 500)
  const tx = tree.begin()
  tx.add('./DMAcc/stray', chr('x'), 'device')
  t.same(tx.commit(), { ok: false, failure: { status: 500, messages: ['./DMAcc/stray: an account must be an interior node'] } })
})

t.test('an account may change while it stays valid', async (t) => {
  const tree = standardTree()
  addAccount(tree, { x: 'a', serverId: 'A' })
  t.equal(tree.add('./Vendor/x', chr('v'), 'device'), 200)
  t.equal(tree.replace('./DMAcc/a/Name', chr('renamed'), 'device'), 200)
  t.equal(tree.replace('./DMAcc/a/ServerID', chr('B'), 'device'), 200, 'a ServerID may change while it stays unique')
})

t.test('the typed view of the accounts', async (t) => {
  const tree = standardTree()
  addAccount(tree, { x: 'srv', serverId: 'http://dms.example', addr: 'mqtt://broker.example/dms' })
  addAccount(tree, { x: 'gw', serverId: 'gw1', extra: [['Ext/GwMO/Role', chr('gateway')], ['AppAddr/2/Addr', chr('192.0.2.7')], ['AppAddr/2/AddrType', chr('IPv4')]] })
  const accounts = readAccounts(tree)
  t.same(accounts, [
    {
      node: 'srv',
      uri: './DMAcc/srv',
      serverId: 'http://dms.example',
      name: 'Account srv',
      addresses: [{ addr: 'mqtt://broker.example/dms', addrType: 'URI', port: 1883 }],
      authPref: 'DIGEST',
      clientEntries: [{ uri: './DMAcc/srv/AppAuth/1', level: 'CLCRED', type: 'DIGEST', name: 'device-user' }],
      serverEntries: [{ uri: './DMAcc/srv/AppAuth/2', level: 'SRVCRED', type: 'DIGEST', name: 'http://dms.example' }],
      role: 'server',
    },
    {
      node: 'gw',
      uri: './DMAcc/gw',
      serverId: 'gw1',
      name: 'Account gw',
      addresses: [
        { addr: 'mqtt://broker.example/gw', addrType: 'URI', port: 1883 },
        { addr: '192.0.2.7', addrType: 'IPv4' },
      ],
      authPref: 'DIGEST',
      clientEntries: [{ uri: './DMAcc/gw/AppAuth/1', level: 'CLCRED', type: 'DIGEST', name: 'device-user' }],
      serverEntries: [{ uri: './DMAcc/gw/AppAuth/2', level: 'SRVCRED', type: 'DIGEST', name: 'gw1' }],
      role: 'gateway',
    },
  ])
  t.equal(findAccount(tree, 'gw1')?.node, 'gw')
  t.equal(findAccount(tree, 'nobody'), undefined)
  t.same(readAccounts(standardTree()), [])
  const secret = tree.readSecret(accounts[0]!.clientEntries[0]!.uri + '/AAuthSecret')
  t.equal(secret, 'device-secret', 'secrets are fetched by the entry\'s URI')
  t.notOk(JSON.stringify(accounts).includes('secret'), 'and are not part of the view')
})

t.test('markGateway writes Ext/GwMO/Role, creating or replacing it', async (t) => {
  const tree = standardTree()
  addAccount(tree, { x: 'a', serverId: 'A' })
  addAccount(tree, { x: 'b', serverId: 'B', extra: [['Ext/GwMO/Role', chr('server')]] })
  for (const id of ['A', 'B']) {
    t.equal(markGateway(tree, findAccount(tree, id)!), 200)
    t.equal(findAccount(tree, id)?.role, 'gateway')
  }
  t.equal(tree.get('./DMAcc/a/Ext/GwMO/Role', 'device').value?.data, 'gateway')
  const tx = tree.begin()
  addAccount(tx, { x: 'c', serverId: 'C' })
  t.equal(markGateway(tx, findAccount(tx, 'C')!), 200, 'works on a transaction too')
  t.equal(findAccount(tree, 'C'), undefined)
  t.match(tx.commit(), { ok: true })
  t.equal(findAccount(tree, 'C')?.role, 'gateway')
})

t.test('setNonce stores AAuthData as bytes that only readSecret returns', async (t) => {
  const tree = standardTree()
  addAccount(tree, { x: 'a', serverId: 'A', extra: [] })
  const account = findAccount(tree, 'A')!
  const nonce = new Uint8Array([9, 8, 7, 6])
  t.equal(setNonce(tree, account.serverEntries[0]!, nonce), 200, 'created where there was none')
  t.same(tree.readSecret(account.serverEntries[0]!.uri + '/AAuthData'), nonce)
  t.equal(setNonce(tree, account.clientEntries[0]!, new Uint8Array([1])), 200, 'replaced where there was one')
  t.same(tree.readSecret('./DMAcc/a/AppAuth/1/AAuthData'), new Uint8Array([1]))
  t.equal(tree.get('./DMAcc/a/AppAuth/1/AAuthData?prop=Format', 'device').value?.data, 'bin')
  t.equal(tree.get('./DMAcc/a/AppAuth/1/AAuthData', 'device').status, 405)
  t.equal(setNonce(tree, { uri: './DMAcc/none/AppAuth/1', level: 'SRVCRED', type: 'DIGEST' }, nonce), 500, 'no account there: refused')
})

t.test('an AppAuth entry with an empty or missing secret is no credential (binding.md §6)', async (t) => {
  const tree = standardTree()
  addAccount(tree, { x: 'a', serverId: 'A' })
  const tx = tree.begin()
  tx.replace('./DMAcc/a/AppAuth/2/AAuthSecret', chr(''), 'device')
  tx.add('./DMAcc/a/AppAuth/3', { format: 'node' }, 'device')
  tx.add('./DMAcc/a/AppAuth/3/AAuthLevel', chr('SRVCRED'), 'device')
  tx.add('./DMAcc/a/AppAuth/3/AAuthType', chr('BASIC'), 'device')
  t.match(tx.commit(), { ok: true })
  const account = findAccount(tree, 'A')!
  t.same(account.serverEntries, [], 'neither the emptied SRVCRED nor the one without AAuthSecret is listed')
  t.equal(account.clientEntries.length, 1, 'the CLCRED with a secret still is')
})
