// ACLs as DM TND 1.2, 7.7.1 defines them, and the nodes no one reads through Get.
import t from 'tap'
import { addAccount, chr, node, populatedTree, standardTree } from './fixtures/tree/trees.ts'
import type { Principal } from '../src/tree/types.ts'

const s1: Principal = { serverId: 'srv1' }
const s2: Principal = { serverId: 'srv2' }
const s3: Principal = { serverId: 'srv3' }
const dev: Principal = 'device'

function aclTree() {
  const tree = standardTree()
  tree.add('./A', node(), dev)
  tree.replace('./A?prop=ACL', chr('Add=srv1&Get=srv1+srv2&Replace=srv1&Delete=srv1&Exec=srv1'), dev)
  tree.add('./A/leaf', chr('a'), dev)
  tree.add('./A/B/leaf', chr('b'), dev)
  tree.replace('./A/B?prop=ACL', chr('Get=*&Replace=srv2'), dev)
  return tree
}

t.test('a node without an ACL inherits the nearest ancestor\'s, whole', async (t) => {
  const tree = aclTree()
  t.equal(tree.get('./A/leaf', s1).status, 200)
  t.equal(tree.get('./A/leaf', s2).status, 200)
  t.equal(tree.get('./A/leaf', s3).status, 425)
  t.equal(tree.get('./A/B/leaf', s3).status, 200, 'Get=* on B overrides A')
  t.equal(tree.replace('./A/B/leaf', chr('x'), s2), 200, 'Replace=srv2 on B')
  t.equal(tree.replace('./A/B/leaf', chr('x'), s1), 425, 'B\'s ACL replaces A\'s entirely: no Replace for srv1')
  t.equal(tree.delete('./A/B/leaf', s1), 425, 'no Delete entry on B: nobody may delete below it')
})

t.test('rights are per server and per command; * grants any server', async (t) => {
  const tree = aclTree()
  t.equal(tree.replace('./A/leaf', chr('x'), s1), 200)
  t.equal(tree.replace('./A/leaf', chr('y'), s2), 425, 'srv2 has Get only')
  t.equal(tree.get('./A/leaf', s1).value?.data, 'x')
  t.equal(tree.add('./A/new', chr('v'), s2), 425)
  t.equal(tree.add('./A/new', chr('v'), s1), 200)
  t.equal(tree.delete('./A/new', s2), 425)
  t.equal(tree.delete('./A/new', s1), 200)
  t.equal(tree.exec('./A/leaf', undefined, s2), 425)
  t.equal(tree.exec('./A/leaf', undefined, s1), 405, 'allowed, but no handler')
  t.equal(tree.get('./DevInfo/Man', { serverId: 'anyone.example' }).status, 200, 'Get=* on DevInfo')
  t.equal(tree.get('./A', { serverId: 'srv1x' }).status, 425, 'ids match whole, not by prefix')
})

t.test('missing nodes: 404 to whoever could read them, 425 to the others', async (t) => {
  const tree = aclTree()
  t.equal(tree.get('./A/missing', s1).status, 404)
  t.equal(tree.get('./A/missing', s3).status, 425, 'srv3 learns nothing about what ./A holds')
  t.equal(tree.get('./A/leaf', s3).status, 425, 'the same answer as for an existing node')
  t.equal(tree.get('./A/x/y/z', s3).status, 425)
  t.equal(tree.replace('./A/missing', chr('v'), s2), 425)
  t.equal(tree.replace('./A/missing', chr('v'), s1), 404)
  t.equal(tree.delete('./A/missing', s2), 425)
  t.equal(tree.delete('./A/missing', s1), 404)
  t.equal(tree.get('./nowhere', s3).status, 404, 'root is Get=*')
})

t.test('Add needs Add rights on the nearest existing ancestor', async (t) => {
  const tree = aclTree()
  t.equal(tree.add('./A/B/x', chr('v'), s1), 425, 'B has no Add entry')
  t.equal(tree.add('./top', chr('v'), s1), 425, 'the root grants Get only')
  t.equal(tree.add('./A/p/q/r', chr('v'), s1), 200, 'A grants srv1 Add; parents are created')
  t.equal(tree.add('./A/p/q/r', chr('v'), s3), 425, 'an Add refused by ACL answers 425 even if the node exists')
  t.equal(tree.add('./A/p/q/r', chr('v'), s1), 418)
  t.equal(tree.add('./DevInfo/Ext/x', chr('v'), s1), 425, 'DevInfo is not writable by servers')
})

t.test('what a server adds it may manage; other servers may not see it', async (t) => {
  const tree = populatedTree()
  tree.replace('./Vendor?prop=ACL', chr('Add=*&Get=*'), dev)
  t.equal(tree.add('./Vendor/p/q', chr('v'), s1), 200)
  t.equal(tree.get('./Vendor/p?prop=ACL', dev).value?.data, 'Add=srv1&Delete=srv1&Get=srv1&Replace=srv1',
    'the topmost created node names its creator')
  t.equal(tree.get('./Vendor/p/q?prop=ACL', dev).value?.data, '', 'below it the ACL is inherited')
  t.equal(tree.replace('./Vendor/p/q', chr('w'), s1), 200)
  t.equal(tree.get('./Vendor/p/q', s2).status, 425)
  t.equal(tree.delete('./Vendor/p', s2), 425)
  t.equal(tree.delete('./Vendor/p', s1), 200)
  t.equal(tree.add('./Vendor/odd', chr('v'), { serverId: 'has space' }), 200)
  t.equal(tree.get('./Vendor/odd?prop=ACL', dev).value?.data, '', 'a ServerID no ACL can name leaves the node to its inherited ACL')
  // Where the inherited ACL already lets the creator manage the node, no ACL is added.
  const vendor = populatedTree()
  t.equal(vendor.add('./Vendor/mine', chr('v'), s1), 200)
  t.equal(vendor.get('./Vendor/mine?prop=ACL', dev).value?.data, '')
})

t.test('Replace of ?prop=ACL: interior nodes by their own Replace right or the parent\'s, leaves by the parent\'s only', async (t) => {
  const tree = aclTree()
  // ./A/B grants srv2 Replace: srv2 may change B's ACL (an interior node).
  t.equal(tree.replace('./A/B?prop=ACL', chr('Get=*&Replace=srv2+srv3'), s2), 200)
  t.equal(tree.get('./A/B?prop=ACL', s3).value?.data, 'Get=*&Replace=srv2+srv3')
  // ./A/B/leaf inherits Replace=srv2+srv3, yet a leaf's own ACL never grants changing that ACL...
  t.equal(tree.replace('./A/B/leaf?prop=ACL', chr('Get=*'), s3), 200, '...but srv3 has Replace on the parent B')
  tree.add('./A/B/C/leaf2', chr('c'), dev)
  tree.replace('./A/B/C/leaf2?prop=ACL', chr('Get=*&Replace=srv1'), dev)
  t.equal(tree.replace('./A/B/C/leaf2', chr('value'), s1), 200, 'srv1 may replace the value')
  t.equal(tree.replace('./A/B/C/leaf2?prop=ACL', chr('Get=*&Replace=srv1&Delete=srv1'), s1), 425,
    'but not the leaf\'s ACL: C inherits B\'s ACL, which gives srv1 no Replace')
  t.equal(tree.replace('./A/B/C?prop=ACL', chr('Replace=srv1'), s1), 425, 'nor C\'s')
  t.equal(tree.replace('./A/B/C?prop=ACL', chr('Replace=srv1'), s2), 200, 'srv2 may (Replace on C, inherited)')
  t.equal(tree.replace('./A/B/C/leaf2?prop=ACL', chr('Get=srv1'), s1), 200, 'now srv1 has Replace on the parent')
  t.equal(tree.get('./A/B/C/leaf2', s3).status, 425)
  t.equal(tree.replace('./A/missing?prop=ACL', chr('Get=*'), s1), 404)
  t.equal(tree.replace('./A/missing?prop=ACL', chr('Get=*'), s3), 425)
})

t.test('ACL values are checked, and the root keeps one', async (t) => {
  const tree = aclTree()
  for (const bad of ['Get', 'Get=', 'Fetch=*', 'Get=srv 1', 'Get=a=b', 'Get=srv1&', 'Get=*+', 'get=*']) {
    t.equal(tree.replace('./A?prop=ACL', chr(bad), s1), 400, JSON.stringify(bad))
  }
  t.equal(tree.get('./A?prop=ACL', s1).value?.data, 'Add=srv1&Get=srv1+srv2&Replace=srv1&Delete=srv1&Exec=srv1')
  t.equal(tree.replace('./A?prop=ACL', chr(''), s1), 200, 'an empty ACL: inherit again')
  t.equal(tree.get('./A?prop=ACL', dev).value?.data, '')
  t.equal(tree.get('./A', s3).status, 200, 'now the root\'s Get=* applies')
  t.equal(tree.replace('.?prop=ACL', chr(''), dev), 405)
  t.equal(tree.replace('.?prop=ACL', chr('Get=srv1'), s1), 425, 'the root grants no Replace')
  t.equal(tree.replace('.?prop=ACL', chr('Add=*&Get=*'), dev), 200)
  t.equal(tree.get('.?prop=ACL', s3).value?.data, 'Add=*&Get=*')
})

t.test('the device is not held to ACLs', async (t) => {
  const tree = aclTree()
  tree.replace('./A?prop=ACL', chr('Get=nobody'), dev)
  t.equal(tree.get('./A/leaf', dev).status, 200)
  t.equal(tree.replace('./A/leaf', chr('d'), dev), 200)
  t.equal(tree.add('./A/dev', chr('d'), dev), 200)
  t.equal(tree.delete('./A/B', dev), 200)
  t.equal(tree.get('./A/leaf', s1).status, 425)
})

t.test('AAuthSecret and AAuthData are never readable through Get', async (t) => {
  const tree = populatedTree()
  addAccount(tree, { x: 'open', serverId: 'srv3', acl: 'Add=*&Delete=*&Exec=*&Get=*&Replace=*' })
  for (const x of ['srv', 'gw', 'open']) {
    for (const y of ['1', '2']) {
      for (const leaf of ['AAuthSecret', 'AAuthData']) {
        const uri = `./DMAcc/${x}/AppAuth/${y}/${leaf}`
        for (const who of [s1, s3, { serverId: 'gw1' }, dev] as Principal[]) {
          t.equal(tree.get(uri, who).status, 405, `${uri} as ${JSON.stringify(who)}`)
        }
      }
    }
  }
  t.equal(tree.get('./DMAcc/open/AppAuth/1/AAuthName', s3).value?.data, 'device-user', 'other AppAuth leaves are readable')
  t.equal(tree.get('DMAcc/open/AppAuth/1/AAuthSecret', s3).status, 405, 'in either notation')
  const tx = tree.begin()
  t.equal(tx.get('./DMAcc/open/AppAuth/1/AAuthSecret', dev).status, 405, 'nor through a transaction')
  tx.rollback()
  t.equal(tree.replace('./DMAcc/open/AppAuth/1/AAuthSecret', chr('rotated'), s3), 200, 'a server with rights may set it')
  t.equal(tree.readSecret('./DMAcc/open/AppAuth/1/AAuthSecret'), 'rotated')
  t.equal(tree.replace('./DMAcc/srv/AppAuth/1/AAuthSecret', chr('stolen'), s3), 425, 'but only where its ACL allows')
  t.equal(tree.get('./DMAcc/open/AppAuth/1', s3).value?.data, 'AAuthLevel/AAuthType/AAuthName/AAuthSecret/AAuthData')
})

t.test('./Inbox answers Get with 405, for everyone', async (t) => {
  const tree = standardTree()
  t.equal(tree.get('./Inbox', s1).status, 405)
  t.equal(tree.get('Inbox', dev).status, 405)
  t.equal(tree.add('./Inbox/x', chr('v'), s1), 406)
  t.equal(tree.delete('./Inbox', dev), 405)
})
