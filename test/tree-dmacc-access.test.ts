// Who may do what in ./DMAcc (binding.md §6, "Who may change what"): the tree's own rules, which hold whatever
// an ACL says. Each account is read and changed only by its own server; gateways change nothing; a DM Server
// adds only a gateway's account (GwMO 1.0, 8.4.1), which then belongs to the gateway.
import t from 'tap'
import { creatorAcl } from '../src/tree/acl.ts'
import { findAccount, markGateway } from '../src/tree/accounts.ts'
import type { ManagementTree } from '../src/tree/tree.ts'
import type { NodeValue, Principal, Transaction } from '../src/tree/types.ts'
import { addAccount, chr, node, standardTree } from './fixtures/tree/trees.ts'

const SRV = 'http://srv.example'
const GW = 'http://gw.example'
/** A ServerID the ACL grammar cannot name: it holds `=` (TND 1.2, 7.7.1.5). */
const ODD = 'http://dms.example.com/dm?dev=1'
const srv: Principal = { serverId: SRV }
const gw: Principal = { serverId: GW }
const odd: Principal = { serverId: ODD }
const dev: Principal = 'device'
const ALL = 'Add=*&Delete=*&Exec=*&Get=*&Replace=*'

/** A DM Server's account, a gateway's, and one for a ServerID no ACL can name, as a factory bootstrap leaves them. */
function accountsTree(): ManagementTree {
  const tree = standardTree()
  addAccount(tree, { x: 'srv', serverId: SRV, acl: creatorAcl(SRV) })
  addAccount(tree, { x: 'gw', serverId: GW, acl: creatorAcl(GW), extra: [['Ext/GwMO/Role', chr('gateway')]] })
  addAccount(tree, { x: 'odd', serverId: ODD })
  return tree
}

const snapshot = (tree: ManagementTree) => Buffer.from(tree.serialize()).toString('hex')

/** The Adds of a complete account below ./DMAcc/<x>, in order. */
function accountAdds(x: string, serverId: string, role?: string): [string, NodeValue][] {
  return [
    [`./DMAcc/${x}`, node()],
    [`./DMAcc/${x}/AppID`, chr('w7')],
    [`./DMAcc/${x}/ServerID`, chr(serverId)],
    [`./DMAcc/${x}/AppAddr/1/Addr`, chr(serverId)],
    [`./DMAcc/${x}/AppAuth/1/AAuthLevel`, chr('SRVCRED')],
    [`./DMAcc/${x}/AppAuth/1/AAuthType`, chr('DIGEST')],
    [`./DMAcc/${x}/AppAuth/1/AAuthName`, chr(serverId)],
    [`./DMAcc/${x}/AppAuth/1/AAuthSecret`, chr('chosen-by-the-creator')],
    ...(role === undefined ? [] : [[`./DMAcc/${x}/Ext/GwMO/Role`, chr(role)] as [string, NodeValue]]),
  ]
}

/** Runs the Adds in `tx` as `who`; the statuses. */
function addAll(tx: Transaction, adds: [string, NodeValue][], who: Principal): number[] {
  return adds.map(([uri, value]) => tx.add(uri, value, who))
}

t.test('no party lists ./DMAcc; the device does', async (t) => {
  const tree = accountsTree()
  for (const who of [srv, gw, odd, { serverId: 'stranger' }]) {
    t.equal(tree.get('./DMAcc', who).status, 425, `${JSON.stringify(who)}: Get ./DMAcc`)
    t.equal(tree.get('DMAcc', who).status, 425, 'in either notation')
    t.equal(tree.get('./DMAcc?prop=ACL', who).status, 425, 'nor its properties')
  }
  tree.replace('./DMAcc?prop=ACL', chr(ALL), dev)
  t.equal(tree.get('./DMAcc', srv).status, 425, 'whatever its ACL says')
  t.equal(tree.get('./DMAcc', dev).value?.data, 'srv/gw/odd')
  t.equal(tree.get('.', srv).value?.data, 'DevInfo/DevDetail/DMAcc/Inbox', 'the root names DMAcc, not the accounts')
})

t.test('a party reads its own account and no other, whatever an ACL says', async (t) => {
  const tree = accountsTree()
  t.equal(tree.get('./DMAcc/srv/ServerID', srv).value?.data, SRV)
  t.equal(tree.get('./DMAcc/srv', srv).status, 200)
  t.equal(tree.get('./DMAcc/gw/Name', gw).status, 200)
  t.equal(tree.get('./DMAcc/gw/Name', srv).status, 425, 'a server does not read the gateway\'s account')
  t.equal(tree.get('./DMAcc/srv/Name', gw).status, 425, 'nor the gateway the server\'s')
  t.equal(tree.get('./DMAcc/missing/Name', srv).status, 425, 'a missing account answers as another party\'s')
  tree.replace('./DMAcc/gw?prop=ACL', chr(ALL), dev)
  t.equal(tree.get('./DMAcc/gw/Name', srv).status, 425, 'an ACL granting every server changes nothing')
  t.equal(tree.replace('./DMAcc/gw/AppAuth/2/AAuthSecret', chr('stolen'), srv), 425)
  t.equal(tree.get('./DMAcc/gw?prop=ACL', srv).status, 425)
  t.equal(tree.readSecret('./DMAcc/gw/AppAuth/2/AAuthSecret'), 'server-secret')
})

t.test('a gateway changes nothing in ./DMAcc, whatever an ACL says', async (t) => {
  const tree = accountsTree()
  tree.replace('./DMAcc?prop=ACL', chr(ALL), dev)
  tree.replace('./DMAcc/gw?prop=ACL', chr(ALL), dev)
  const before = snapshot(tree)
  t.equal(tree.replace('./DMAcc/gw/Name', chr('mine'), gw), 425, 'not its own account\'s Name')
  t.equal(tree.replace('./DMAcc/gw/AppAuth/2/AAuthSecret', chr('new'), gw), 425, 'nor its credentials')
  t.equal(tree.add('./DMAcc/gw/AppAuth/3/AAuthLevel', chr('SRVCRED'), gw), 425)
  t.equal(tree.delete('./DMAcc/gw/AppAuth/1', gw), 425)
  t.equal(tree.delete('./DMAcc/gw/Ext/GwMO/Role', gw), 425, 'nor its mark')
  t.equal(tree.replace('./DMAcc/gw?prop=ACL', chr('Get=*'), gw), 425)
  t.equal(tree.exec('./DMAcc/gw', undefined, gw), 425)
  const tx = tree.begin()
  t.equal(addAll(tx, accountAdds('dms2', 'http://dms2.example'), gw)[0], 425, 'nor does it add a DM Server\'s account')
  t.equal(addAll(tx, accountAdds('gw2', 'http://gw2.example', 'gateway'), gw)[0], 425, 'or a gateway\'s')
  tx.rollback()
  t.equal(tree.get('./DMAcc/gw/Name', gw).value?.data, 'Account gw', 'it still reads its own account')
  t.equal(snapshot(tree), before, 'nothing changed')
})

t.test('an account whose ServerID no ACL can name is closed to every party, never left to an inherited ACL', async (t) => {
  const tree = accountsTree()
  t.equal(tree.get('./DMAcc/odd?prop=ACL', dev).value?.data, '', 'the account has no ACL of its own')
  tree.replace('.?prop=ACL', chr(ALL), dev)
  tree.replace('./DMAcc?prop=ACL', chr(ALL), dev)
  const before = snapshot(tree)
  for (const who of [odd, srv, gw]) {
    const what = JSON.stringify(who)
    t.equal(tree.add('./DMAcc/odd/AppAuth/3/AAuthLevel', chr('SRVCRED'), who), 425, `${what}: no Add of a credential`)
    t.equal(tree.replace('./DMAcc/odd/AppAuth/2/AAuthSecret', chr('x'), who), 425, `${what}: no Replace`)
    t.equal(tree.get('./DMAcc/odd/Name', who).status, 425, `${what}: no Get`)
  }
  t.equal(snapshot(tree), before)
})

t.test('a DM Server adds a gateway\'s account; at commit it becomes the gateway\'s own', async (t) => {
  const tree = accountsTree()
  const tx = tree.begin()
  t.same(addAll(tx, accountAdds('gw2', 'http://gw2.example', 'gateway'), srv).filter((s) => s !== 200), [], 'every Add: 200')
  t.equal(tx.get('./DMAcc/gw2/ServerID', srv).value?.data, 'http://gw2.example', 'until the commit the account is its creator\'s to build')
  t.equal(tx.replace('./DMAcc/gw2/AppAddr/1/Addr', chr('mqtt://gw2.example'), srv), 200)
  t.equal(tx.get('./DMAcc/gw2/ServerID', { serverId: 'http://other.example' }).status, 425, 'and no other party\'s')
  t.equal(tx.add('./DMAcc/gw2/AppAuth/2/AAuthLevel', chr('CLCRED'), { serverId: 'http://other.example' }), 425)
  t.match(tx.commit(), { ok: true })
  t.equal(tree.get('./DMAcc/gw2?prop=ACL', dev).value?.data, creatorAcl('http://gw2.example'), 'the ACL of its own server, not the creator\'s')
  t.equal(tree.get('./DMAcc/gw2/ServerID', srv).status, 425, 'the creator reads it no more')
  t.equal(tree.replace('./DMAcc/gw2/AppAuth/1/AAuthSecret', chr('later'), srv), 425, 'nor changes it')
  t.equal(tree.delete('./DMAcc/gw2', srv), 425)
  t.equal(tree.get('./DMAcc/gw2/ServerID', { serverId: 'http://gw2.example' }).status, 200, 'the gateway reads it')
  t.equal(tree.replace('./DMAcc/gw2/Name', chr('x'), { serverId: 'http://gw2.example' }), 425, 'and changes nothing')
  t.equal(findAccount(tree, 'http://gw2.example')?.role, 'gateway')

  // A gateway whose ServerID no ACL can name: deny-all. A creator whose own ServerID no ACL can name may add one.
  const odd2 = 'http://gw3.example/dm?dev=2'
  const tx2 = tree.begin()
  t.same(addAll(tx2, accountAdds('gw3', odd2, 'gateway'), odd).filter((s) => s !== 200), [])
  t.match(tx2.commit(), { ok: true })
  t.equal(tree.get('./DMAcc/gw3?prop=ACL', dev).value?.data, '', 'no ACL: nothing inherited')
  t.equal(tree.get('./DMAcc/gw3/Name', { serverId: odd2 }).status, 425)
  t.equal(tree.get('./DMAcc/gw3/AppID', odd).status, 425)
})

t.test('an account a party adds must be a gateway\'s, or the commit is refused naming the path', async (t) => {
  const tree = accountsTree()
  const before = snapshot(tree)
  for (const [role, why] of [[undefined, 'missing'], ['server', "must be gateway, not 'server'"]] as const) {
    const tx = tree.begin()
    t.same(addAll(tx, accountAdds('dms2', 'http://dms2.example', role), srv).filter((s) => s !== 200), [], 'the Adds themselves pass')
    t.same(tx.commit(), {
      ok: false,
      failure: { status: 425, messages: [`./DMAcc/dms2/Ext/GwMO/Role: ${why}: a DM Server adds only a gateway's account (GwMO 1.0, 8.4.1)`] },
    }, `Role ${role ?? 'absent'}`)
  }
  // In an Atomic: the inner commit is refused, and the outer transaction holds none of it.
  const outer = tree.begin()
  const inner = outer.begin()
  addAll(inner, accountAdds('dms3', 'http://dms3.example'), srv)
  t.match(inner.commit(), { ok: false, failure: { status: 425 } })
  t.equal(outer.get('./DMAcc/dms3', dev).status, 404)
  t.match(outer.commit(), { ok: true })
  // One operation is a transaction too.
  t.equal(tree.add('./DMAcc/dms4/AppID', chr('w7'), srv), 425)
  // The role cannot be settled later: a Replace of the Role after the account exists is refused.
  const tx = tree.begin()
  addAll(tx, accountAdds('gw4', 'http://gw4.example', 'gateway'), srv)
  t.match(tx.commit(), { ok: true })
  const after = snapshot(tree)
  t.equal(tree.replace('./DMAcc/gw4/Ext/GwMO/Role', chr('server'), { serverId: 'http://gw4.example' }), 425)
  t.equal(snapshot(tree), after)
  t.not(after, before, 'the gateway\'s account alone was added')
  t.same(tree.children('./DMAcc'), ['srv', 'gw', 'odd', 'gw4'])
})

t.test('in its own account a server changes no ACL, ServerID or Role; its ACL decides the rest', async (t) => {
  const tree = accountsTree()
  t.equal(tree.replace('./DMAcc/srv/AppAuth/2/AAuthSecret', chr('rotated'), srv), 200, 'credential rotation')
  t.equal(tree.readSecret('./DMAcc/srv/AppAuth/2/AAuthSecret'), 'rotated')
  t.equal(tree.add('./DMAcc/srv/AppAddr/2/Addr', chr('mqtt://srv2.example'), srv), 200, 'a second address')
  const before = snapshot(tree)
  t.equal(tree.replace('./DMAcc/srv/ServerID', chr('http://other.example'), srv), 425)
  t.equal(tree.add('./DMAcc/srv/Ext/GwMO/Role', chr('server'), srv), 425)
  t.equal(tree.replace('./DMAcc/srv?prop=ACL', chr(ALL), srv), 425)
  t.equal(tree.replace('./DMAcc/srv/Name?prop=ACL', chr(ALL), srv), 425)
  t.equal(tree.delete('./DMAcc/srv/ServerID', srv), 425)
  t.equal(tree.delete('./DMAcc/srv', srv), 425, 'nor does it delete its account (that takes the ServerID along)')
  t.equal(snapshot(tree), before)
  tree.replace('./DMAcc/srv?prop=ACL', chr(`Get=${SRV}`), dev)
  t.equal(tree.replace('./DMAcc/srv/Name', chr('x'), srv), 425, 'an ACL narrowed by the device holds')
  t.equal(tree.get('./DMAcc/srv/Name', srv).status, 200)
})

t.test('./DMAcc\'s ACL still decides whether a server may add an account', async (t) => {
  const tree = accountsTree()
  tree.replace('./DMAcc?prop=ACL', chr('Add=http://other.example'), dev)
  const tx = tree.begin()
  t.equal(addAll(tx, accountAdds('gw2', 'http://gw2.example', 'gateway'), srv)[0], 425)
  tx.rollback()
})

t.test('the device is held to none of it: bootstraps and its own bookkeeping', async (t) => {
  const tree = accountsTree()
  t.equal(tree.replace('./DMAcc/srv/ServerID', chr('http://renamed.example'), dev), 200)
  t.equal(tree.replace('./DMAcc/srv?prop=ACL', chr('Get=*'), dev), 200)
  const account = findAccount(tree, 'http://renamed.example')!
  t.equal(markGateway(tree, account), 200, 'a gateway\'s mark')
  const tx = tree.begin()
  t.same(addAll(tx, accountAdds('dms2', 'http://dms2.example'), dev).filter((s) => s !== 200), [])
  t.match(tx.commit(), { ok: true }, 'an account without a Role')
  t.equal(tree.get('./DMAcc/dms2?prop=ACL', dev).value?.data, '', 'given no ACL by the tree: bootstraps set their own')
  t.equal(tree.delete('./DMAcc/dms2', dev), 200)
})
