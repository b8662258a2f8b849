// The tree's bounds (binding.md §11): a byte cap on the tree and on each leaf, and a quota per party of the nodes
// it added; past one an Add or Replace answers 420 and nothing else changes, and one party never starves another.
import t from 'tap'
import { nodeBytes } from '../src/tree/node.ts'
import { createStandardTree } from '../src/tree/standard-tree.ts'
import { ManagementTree } from '../src/tree/tree.ts'
import type { TreeLimits } from '../src/tree/limits.ts'
import type { NodeValue, Principal } from '../src/tree/types.ts'
import { chr, node } from './fixtures/tree/trees.ts'

const A: Principal = { serverId: 'srvA' }
const B: Principal = { serverId: 'srvB' }
const dev: Principal = 'device'

/** A standard tree with the limits given and a `./Vendor` area where every party may do anything. */
function vendorTree(limits: Partial<TreeLimits>): ManagementTree {
  const tree = createStandardTree({ devId: 'mac:01-ab-34-ef-69-0c', man: 'Acme', mod: 'Sensor 1', lang: 'en-US', limits })
  tree.add('./Vendor', node(), dev)
  tree.replace('./Vendor?prop=ACL', chr('Add=*&Delete=*&Get=*&Replace=*'), dev)
  return tree
}

/** Every node of the tree as path → value, to see that a refusal changed nothing. */
function snapshot(tree: ManagementTree): string {
  return JSON.stringify([...tree.committed].map(([path, n]) => [path, n.f, n.t, n.a, n.c, typeof n.d === 'string' ? n.d : n.d && [...n.d]]))
}

/** The tree's weight counted afresh, node by node: what its running totals must equal. */
function recount(tree: ManagementTree): { bytes: number; parties: Record<string, { nodes: number; bytes: number }> } {
  let bytes = 0
  const parties: Record<string, { nodes: number; bytes: number }> = {}
  for (const [path, n] of tree.committed) {
    const b = nodeBytes(path, n)
    bytes += b
    if (n.c === undefined) continue
    const u = (parties[n.c] ??= { nodes: 0, bytes: 0 })
    u.nodes += 1
    u.bytes += b
  }
  return { bytes, parties }
}

const text = (n: number): NodeValue => chr('x'.repeat(n))

t.test('a leaf over its byte cap is refused with 420, by Add and by Replace, and nothing changes', async (t) => {
  const tree = vendorTree({ leafBytes: 100 })
  t.equal(tree.add('./Vendor/fits', text(100), A), 200, 'a leaf of exactly the cap')
  const before = snapshot(tree)
  t.equal(tree.add('./Vendor/big', text(101), A), 420, 'one byte more')
  t.equal(tree.add('./Vendor/deep/er/big', text(101), A), 420, 'with parents to create')
  t.equal(tree.replace('./Vendor/fits', text(101), A), 420, 'a Replace that makes it too big')
  t.equal(tree.add('./Vendor/utf8', chr('é'.repeat(51)), A), 420, 'bytes are counted in UTF-8 (102 bytes)')
  t.equal(tree.add('./Vendor/bytes', { format: 'bin', data: new Uint8Array(101) }, A), 420, 'binary data too')
  t.equal(tree.add('./Vendor/own', text(101), dev), 420, 'the device is held to it too (a bootstrap comes from the network)')
  t.equal(snapshot(tree), before, 'nothing changed')
  t.equal(tree.replace('./Vendor/fits', text(50), A), 200, 'a smaller value is taken')
})

t.test('the tree\'s byte cap: Adds past it get 420, the tree stays as it was, and shrinking is always allowed', async (t) => {
  const probe = vendorTree({})
  const base = probe.committed.bytes()
  const tree = vendorTree({ treeBytes: base + 1000 })
  t.equal(tree.committed.bytes(), base)
  let added = 0
  while (tree.add(`./Vendor/n${added}`, text(90), A) === 200) added++
  t.equal(added, 10, 'ten nodes of 99 bytes (path "Vendor/nK" and 90 bytes of data): 10 bytes left')
  t.ok(tree.committed.bytes() <= base + 1000, 'never over the cap')
  const before = snapshot(tree)
  t.equal(tree.add('./Vendor/more', text(1), B), 420, 'another party, a small leaf: the tree is full')
  t.equal(tree.replace('./Vendor/n0', text(200), A), 420, 'a Replace that grows the tree')
  t.equal(tree.replace('./Vendor?prop=ACL', chr('Add=*&Delete=*&Exec=srvA+srvB+srvC&Get=*&Replace=*'), A), 420, 'so does a longer ACL')
  t.equal(snapshot(tree), before, 'nothing changed')
  t.equal(tree.replace('./Vendor/n0', text(10), A), 200, 'a Replace that shrinks a leaf is taken')
  t.equal(tree.add('./Vendor/x', text(70), B), 200, 'and frees room for an Add')
  // The device's own bookkeeping (a nonce, a gateway's mark) never fails for want of room.
  t.equal(tree.add('./Vendor/own', text(20), dev), 420, 'a device Add is held to the cap')
  t.equal(tree.replace('./Vendor/x', text(85), dev), 200, 'a device Replace that grows a leaf is not')
})

t.test('a party\'s quota of nodes: past it its Adds get 420, another party still adds, and a Delete frees room', async (t) => {
  const tree = vendorTree({ nodesPerParty: 5 })
  t.equal(tree.add('./Vendor/a/b/c', chr('v'), A), 200, 'three nodes: the parents it creates count')
  t.equal(tree.add('./Vendor/a/d', chr('v'), A), 200)
  t.equal(tree.add('./Vendor/a/e', chr('v'), A), 200, 'five')
  t.same(tree.committed.usage('srvA'), { nodes: 5, bytes: recount(tree).parties.srvA!.bytes })
  const before = snapshot(tree)
  t.equal(tree.add('./Vendor/a/f', chr('v'), A), 420, 'the sixth is refused')
  t.equal(tree.add('./Vendor/g/h', chr('v'), A), 420, 'so are two at once')
  t.equal(snapshot(tree), before, 'nothing changed')
  t.equal(tree.add('./Vendor/a/f', chr('v'), B), 200, 'another party adds within its own quota')
  t.equal(tree.add('./Vendor/mine', chr('v'), dev), 200, 'the device\'s nodes count for no party')
  t.equal(tree.committed.usage('srvB').nodes, 1)
  t.equal(tree.replace('./Vendor/a/d', chr('longer value'), B), 200, 'a Replace by another party…')
  t.equal(tree.committed.usage('srvA').nodes, 5, '…leaves the node its adder\'s')
  t.equal(tree.committed.usage('srvB').nodes, 1)
  t.equal(tree.delete('./Vendor/a/e', A), 200)
  t.equal(tree.add('./Vendor/a/g', chr('v'), A), 200, 'a Delete freed one')
  t.equal(tree.delete('./Vendor/a', B), 200, 'another party deletes the subtree (its ACL allows)')
  t.same(tree.committed.usage('srvA'), { nodes: 0, bytes: 0 }, 'which frees the adder\'s whole quota')
  t.same(tree.committed.usage('srvB'), { nodes: 0, bytes: 0 }, 'and the node B had added below it')
})

t.test('a party\'s quota of bytes: one party cannot take the tree\'s bytes from another', async (t) => {
  const tree = vendorTree({ bytesPerParty: 500, treeBytes: vendorTree({}).committed.bytes() + 1200 })
  let added = 0
  while (tree.add(`./Vendor/a${added}`, text(90), A) === 200) added++
  t.equal(added, 5, 'A fills 495 of its 500 bytes')
  t.equal(tree.replace('./Vendor/a0', text(96), A), 420, 'and cannot grow a leaf of its own past them')
  t.equal(tree.replace('./Vendor/a0', text(96), B), 420, 'nor can another party grow it for A')
  t.equal(tree.replace('./Vendor/a0', text(95), B), 200, 'up to them it can')
  let others = 0
  while (tree.add(`./Vendor/b${others}`, text(90), B) === 200) others++
  t.equal(others, 5, 'B still has its own 500 bytes')
})

t.test('in a transaction, its own Adds count; a commit checks the bounds again against the tree as it is now', async (t) => {
  const tree = vendorTree({ nodesPerParty: 3 })
  const tx = tree.begin()
  t.equal(tx.add('./Vendor/a', chr('v'), A), 200)
  t.equal(tx.add('./Vendor/b', chr('v'), A), 200)
  const atomic = tx.begin()
  t.equal(atomic.add('./Vendor/c', chr('v'), A), 200)
  t.equal(atomic.add('./Vendor/d', chr('v'), A), 420, 'a nested transaction sees the outer one\'s Adds')
  t.ok(atomic.commit().ok)
  t.equal(tx.add('./Vendor/e', chr('v'), A), 420, 'and the outer one those of the nested it took over')
  t.ok(tx.commit().ok)
  t.equal(tree.committed.usage('srvA').nodes, 3)

  // Two transactions of the same party, each within the quota alone: the second to commit is refused whole.
  const other = vendorTree({ nodesPerParty: 3 })
  const one = other.begin()
  const two = other.begin()
  t.equal(one.add('./Vendor/x/y', chr('v'), B), 200)
  t.equal(two.add('./Vendor/z/w', chr('v'), B), 200)
  t.ok(one.commit().ok)
  const refused = two.commit()
  t.notOk(refused.ok)
  if (!refused.ok) {
    t.equal(refused.failure.status, 420)
    t.match(refused.failure.messages[0], /srvB has added all the nodes it may/)
  }
  t.equal(other.get('./Vendor/z', dev).status, 404, 'nothing of it was applied')
})

t.test('the running totals always equal a count from scratch, with and without a shared base', async (t) => {
  const limits = { nodesPerParty: 12, bytesPerParty: 600, treeBytes: 5000, leafBytes: 80 }
  const plain = vendorTree(limits)
  const shared = new ManagementTree({ limits, base: vendorTree({}).asBase() }, new Map(vendorTree({}).committed))
  let seed = 7
  const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n)
  const parties: Principal[] = [A, B, dev]
  for (const tree of [plain, shared]) {
    for (let k = 0; k < 400; k++) {
      const who = parties[random(3)]!
      const path = `./Vendor/${'pqr'[random(3)]}${random(4)}${random(2) ? `/${'st'[random(2)]}` : ''}`
      const op = random(4)
      if (op === 0) tree.add(path, text(random(100)), who)
      else if (op === 1) tree.replace(path, text(random(100)), who)
      else if (op === 2) tree.delete(path, who)
      else {
        const tx = tree.begin()
        tx.add(path + '/u', text(random(60)), who)
        tx.delete(`./Vendor/${'pqr'[random(3)]}${random(4)}`, who)
        if (random(2)) tx.commit()
        else tx.rollback()
      }
      const fresh = recount(tree)
      if (tree.committed.bytes() !== fresh.bytes) {
        t.fail(`bytes drifted after step ${k}: ${tree.committed.bytes()} ≠ ${fresh.bytes}`)
        return
      }
      for (const id of ['srvA', 'srvB']) {
        const used = tree.committed.usage(id)
        const counted = fresh.parties[id] ?? { nodes: 0, bytes: 0 }
        if (used.nodes !== counted.nodes || used.bytes !== counted.bytes) {
          t.fail(`${id}'s usage drifted after step ${k}`)
          return
        }
        if (used.nodes > limits.nodesPerParty || used.bytes > limits.bytesPerParty) t.fail(`${id} over its quota`)
      }
    }
    t.pass(`${tree === plain ? 'own nodes' : 'on a base'}: 400 random steps, the totals are exact and within the bounds`)
  }
})

t.test('an account a DM Server adds counts in its quota, and keeps counting once its ACL is settled', async (t) => {
  const tree = vendorTree({})
  tree.replace('./DMAcc?prop=ACL', chr('Add=*'), dev)
  const tx = tree.begin()
  for (const [rel, value] of [['ServerID', chr('gw9')], ['AppID', chr('w7')], ['Name', chr('gw')], ['Ext/GwMO/Role', chr('gateway')],
    ['AppAddr/1/Addr', chr('gw9')], ['AppAddr/1/AddrType', chr('URI')], ['AAuthPref', chr('DIGEST')]] as const) {
    t.equal(tx.add(`./DMAcc/gw9/${rel}`, value, A), 200, rel)
  }
  t.ok(tx.commit().ok)
  t.equal(tree.committed.node('DMAcc/gw9')?.c, 'srvA', 'the account node keeps its adder with the ACL its own server got')
  t.equal(tree.committed.usage('srvA').nodes, recount(tree).parties.srvA!.nodes)
  t.ok(tree.committed.usage('srvA').nodes >= 11)
})

t.test('a tree over a lowered limit is restored and keeps working: what does not grow it is taken', async (t) => {
  const big = vendorTree({})
  for (let k = 0; k < 20; k++) big.add(`./Vendor/n${k}`, text(50), dev)
  const restored = ManagementTree.restore(big.serialize(), { limits: { treeBytes: 100, maxNodes: 10 } })
  t.ok(restored.ok)
  if (!restored.ok) return
  const tree = restored.tree
  t.equal(tree.committed.bytes(), big.committed.bytes())
  t.equal(tree.replace('./Vendor/n1', text(40), dev), 200)
  t.equal(tree.delete('./Vendor/n2', dev), 200)
  t.equal(tree.add('./Vendor/new', text(1), dev), 420)
})

t.test('who added each node survives a restart: a party\'s quota is still counted from the store', async (t) => {
  const { MemoryStore } = await import('../src/store/index.ts')
  const { durableTree } = await import('./helpers/stores.ts')
  const store = new MemoryStore()
  const opened = await ManagementTree.open(store, { limits: { nodesPerParty: 3 }, factory: () => vendorTree({ nodesPerParty: 3 }) })
  if (!opened.ok) throw new Error(opened.error)
  const tree = opened.tree
  t.equal(tree.add('./Vendor/a', chr('1'), A), 200)
  t.equal(tree.add('./Vendor/b', chr('2'), A), 200)
  await tree.flush()
  // Regression: the store kept no adder, so after a restart every party's quota began at zero again.
  const restored = await durableTree(store)
  if (!restored.ok) throw new Error(restored.error)
  t.equal(restored.tree.committed.node('Vendor/a')?.c, 'srvA', 'the adder is stored with the node')
  t.same(restored.tree.committed.usage('srvA'), tree.committed.usage('srvA'), 'and the quota counts the same')
  const again = await ManagementTree.open(store, { limits: { nodesPerParty: 3 }, factory: () => ({ error: 'the tree is stored' }) })
  if (!again.ok) throw new Error(again.error)
  t.equal(again.tree.add('./Vendor/c', chr('3'), A), 200, 'the third of three')
  t.equal(again.tree.add('./Vendor/d', chr('4'), A), 420, 'the fourth is past the quota after the restart too')
})
