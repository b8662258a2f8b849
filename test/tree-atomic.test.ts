// Transactions: nesting, rollback, folding, validation on commit, concurrent commits, dirty flag and flush.
import t from 'tap'
import { addAccount, chr, node, populatedTree, standardTree } from './fixtures/tree/trees.ts'
import { MemoryStore } from '../src/store/index.ts'
import { ManagementTree } from '../src/tree/tree.ts'
import type { Principal } from '../src/tree/types.ts'
import { durableTree, GatedStore } from './helpers/stores.ts'

const srv: Principal = { serverId: 'srv1' }
const dev: Principal = 'device'
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')

t.test('an Atomic with one failing command leaves the tree exactly as before (507 mechanism)', async (t) => {
  const tree = populatedTree()
  const message = tree.begin()
  t.equal(message.add('./Vendor/before', chr('outside the Atomic'), srv), 200)
  const before = hex(tree.serialize())
  const atomic = message.begin()
  const statuses = [
    atomic.add('./Vendor/a1', chr('v'), srv),
    atomic.replace('./Vendor/leaf', chr('changed'), srv),
    atomic.delete('./Vendor/dir', srv),
    atomic.add('./Vendor/leaf', chr('v'), srv), // 418: the Atomic fails
    atomic.add('./Vendor/a2', chr('v'), srv),
  ]
  t.same(statuses, [200, 200, 200, 418, 200])
  t.equal(atomic.get('./Vendor/leaf', srv).value?.data, 'changed', 'the working copy saw its own changes')
  atomic.rollback()
  t.equal(message.get('./Vendor/a1', srv).status, 404)
  t.equal(message.get('./Vendor/leaf', srv).value?.data, 'value')
  t.equal(message.get('./Vendor/dir/inner', srv).status, 200)
  t.equal(message.get('./Vendor/before', srv).status, 200, 'the enclosing transaction keeps its own work')
  t.equal(hex(tree.serialize()), before, 'the tree itself has not changed yet')
  t.equal(message.commit().ok, true)
  t.equal(tree.get('./Vendor/before', srv).status, 200)
  t.equal(tree.get('./Vendor/a1', srv).status, 404)
})

t.test('a rolled-back transaction leaves the serialization byte for byte', async (t) => {
  const tree = populatedTree()
  const before = hex(tree.serialize())
  const tx = tree.begin()
  tx.add('./Vendor/x/y', chr('v'), srv)
  tx.replace('./DMAcc/srv/Name?prop=ACL', chr('Get=*'), dev)
  tx.delete('./DMAcc/gw', dev)
  tx.replace('./DevDetail/SwV', chr('9'), dev)
  tx.rollback()
  t.equal(hex(tree.serialize()), before)
  t.equal(tree.dirty, true, 'still dirty from building it, not from the rollback')
})

t.test('an inner commit folds into the outer transaction; only the outer commit reaches the tree', async (t) => {
  const tree = populatedTree()
  const outer = tree.begin()
  const inner = outer.begin()
  t.equal(inner.add('./Vendor/n', chr('inner'), srv), 200)
  t.equal(outer.add('./Vendor/o', chr('outer'), srv), 500, 'the outer refuses writes while the inner is open')
  t.match(inner.commit(), { ok: true })
  t.equal(outer.get('./Vendor/n', srv).value?.data, 'inner')
  t.equal(tree.get('./Vendor/n', srv).status, 404)
  const deeper = outer.begin()
  deeper.begin().add('./Vendor/deep', chr('3'), srv) // left open: the commit below rolls it back
  t.equal(deeper.add('./Vendor/d2', chr('2'), srv), 500)
  t.match(deeper.commit(), { ok: true })
  t.equal(outer.get('./Vendor/deep', srv).status, 404)
  t.match(outer.commit(), { ok: true })
  t.equal(tree.get('./Vendor/n', srv).value?.data, 'inner')
  // An outer rollback discards what inner commits had folded into it.
  const o2 = tree.begin()
  const i2 = o2.begin()
  i2.delete('./Vendor/n', srv)
  t.match(i2.commit(), { ok: true })
  o2.rollback()
  t.equal(tree.get('./Vendor/n', srv).value?.data, 'inner')
})

t.test('a finished transaction refuses everything', async (t) => {
  const tree = populatedTree()
  const tx = tree.begin()
  tx.add('./Vendor/x', chr('v'), srv)
  t.match(tx.commit(), { ok: true })
  t.equal(tx.add('./Vendor/y', chr('v'), srv), 500)
  t.equal(tx.get('./Vendor/x', srv).status, 500)
  t.equal(tx.commit().ok, false)
  t.equal(tx.begin().add('./Vendor/z', chr('v'), srv), 500)
  tx.rollback() // harmless
  t.equal(tree.get('./Vendor/x', srv).status, 200)
  t.equal(tree.get('./Vendor/y', srv).status, 404)
})

t.test('a commit that would leave an account invalid is refused, naming the path, with nothing applied', async (t) => {
  const tree = populatedTree()
  const before = hex(tree.serialize())
  const tx = tree.begin()
  tx.delete('./DMAcc/gw/AppAddr/1', dev)
  tx.replace('./DMAcc/srv/AppID', chr('w8'), dev)
  tx.add('./Vendor/unrelated', chr('v'), dev)
  const result = tx.commit()
  t.same(result, {
    ok: false,
    failure: { status: 500, messages: ['./DMAcc/gw/AppAddr: no Addr', './DMAcc/srv/AppID: must be w7, not \'w8\''] },
  })
  t.equal(hex(tree.serialize()), before)
  t.equal(tree.delete('./DMAcc/gw/AppAddr/1/Addr', dev), 500, 'a single operation is a transaction too')
  t.equal(tree.get('./DMAcc/gw/AppAddr/1/Addr', dev).status, 200)
  t.equal(tree.delete('./DMAcc/gw', dev), 200, 'deleting a whole account is fine')
  // A nested commit validates what it touched, in its own view.
  const outer = tree.begin()
  const inner = outer.begin()
  inner.add('./DMAcc/half/AppID', chr('w7'), dev)
  const failed = inner.commit()
  t.same(failed, {
    ok: false,
    failure: { status: 500, messages: ['./DMAcc/half/ServerID: missing', './DMAcc/half/AppAddr: no Addr'] },
  })
  t.equal(outer.get('./DMAcc/half', dev).status, 404, 'the failed inner commit changed nothing')
  outer.rollback()
})

t.test('accounts may be built across commands of one transaction; validation waits for the commit', async (t) => {
  const tree = standardTree()
  const tx = tree.begin()
  tx.add('./DMAcc/a', node(), srv)
  tx.add('./DMAcc/a/AppID', chr('w7'), srv)
  tx.add('./DMAcc/a/ServerID', chr('gw-a'), srv)
  tx.add('./DMAcc/a/AppAddr/1/Addr', chr('mqtt://a'), srv)
  tx.add('./DMAcc/a/Ext/GwMO/Role', chr('gateway'), srv)
  t.match(tx.commit(), { ok: true })
  t.equal(tree.get('./DMAcc/a/ServerID', { serverId: 'gw-a' }).value?.data, 'gw-a')
})

t.test('concurrent top-level transactions merge without orphans', async (t) => {
  const tree = populatedTree()
  const a = tree.begin()
  const b = tree.begin()
  t.equal(a.delete('./Vendor/dir', srv), 200)
  t.equal(b.add('./Vendor/dir/late', chr('v'), srv), 200)
  t.match(b.commit(), { ok: true })
  t.match(a.commit(), { ok: true }, 'the delete takes the concurrently added child along')
  t.equal(tree.get('./Vendor/dir/late', srv).status, 404)
  t.same(tree.children('./Vendor'), ['leaf'])
  const c = tree.begin()
  const d = tree.begin()
  t.equal(c.add('./Vendor/e/f', chr('v'), srv), 200)
  t.equal(d.add('./Vendor/e', chr('now a leaf'), srv), 200)
  t.match(d.commit(), { ok: true })
  const conflict = c.commit()
  t.same(conflict, { ok: false, failure: { status: 500, messages: ['./Vendor/e: changed by another transaction meanwhile'] } },
    'the first committer wins a node both wrote')
  t.equal(tree.get('./Vendor/e', srv).value?.data, 'now a leaf')
  const e = tree.begin()
  const f = tree.begin()
  t.equal(e.replace('./Vendor/leaf', chr('from e'), srv), 200)
  t.equal(f.replace('./Vendor/leaf', chr('from f'), srv), 200)
  t.match(f.commit(), { ok: true })
  t.equal(e.commit().ok, false)
  t.equal(tree.get('./Vendor/leaf', srv).value?.data, 'from f')
  const g = tree.begin()
  t.equal(g.add('./Vendor/e2/child', chr('v'), srv), 200)
  t.equal(tree.delete('./Vendor/e', srv), 200, 'unrelated writes do not conflict')
  t.match(g.commit(), { ok: true })
  const h = tree.begin()
  t.equal(h.add('./Vendor/e2/other', chr('v'), srv), 200)
  t.equal(tree.delete('./Vendor/e2', srv), 200)
  const orphan = h.commit()
  t.same(orphan, { ok: false, failure: { status: 500, messages: ['./Vendor/e2/other: its parent was removed by a concurrent change'] } })
  t.equal(tree.get('./Vendor/e2', srv).status, 404)
  t.ok(tree.serialize().length > 0)
})

t.test('dirty after a commit that changed something, until a flush', async (t) => {
  const tree = populatedTree()
  const store = new MemoryStore()
  tree.attachStore(store)
  t.equal(tree.dirty, true)
  await tree.flush()
  t.equal(tree.dirty, false)
  t.equal(store.saves, 1)
  await tree.flush()
  t.equal(store.saves, 1, 'a clean tree is not saved again')
  t.equal(tree.add('./Vendor/leaf', chr('v'), srv), 418)
  t.equal(tree.delete('./DMAcc/gw/AppAddr/1/Addr', dev), 500)
  tree.begin().commit()
  t.equal(tree.dirty, false, 'failed and empty commits do not dirty the tree')
  t.equal(tree.get('./Vendor/leaf', srv).status, 200)
  t.equal(tree.dirty, false)
  tree.replace('./Vendor/leaf', chr('new'), srv)
  t.equal(tree.dirty, true)
  await tree.flush()
  t.equal(tree.dirty, false)
  t.equal(store.saves, 2)
  await t.rejects(populatedTree().flush(), /no store/, 'a tree without a store cannot be made durable')
})

const settle = () => new Promise((resolve) => setImmediate(resolve))

t.test('concurrent flushes coalesce: one save in flight, at most one follow-up', async (t) => {
  const tree = populatedTree()
  const store = new GatedStore()
  await store.load('tree')
  tree.attachStore(store)
  const first = tree.flush()
  const same = tree.flush()
  t.equal(store.pending(), 1)
  tree.add('./Vendor/g1', chr('1'), srv)
  const f2 = tree.flush()
  tree.add('./Vendor/g2', chr('2'), srv)
  const f3 = tree.flush()
  t.equal(f2, f3, 'changes during a save share one follow-up')
  let done = 0
  void Promise.all([first, same]).then(() => done++)
  void f3.then(() => done++)
  store.release()
  await settle()
  t.equal(done, 1, 'the first callers are durable')
  t.equal(tree.dirty, true, 'the follow-up is not durable yet')
  t.equal(store.pending(), 1, 'exactly one follow-up save')
  store.release()
  await settle()
  t.equal(done, 2)
  t.equal(tree.dirty, false)
  t.equal(store.saves, 2)
  const last = populatedTree()
  t.ok(last.add('./Vendor/g1', chr('1'), srv) === 200 && last.add('./Vendor/g2', chr('2'), srv) === 200)
  const stored = await durableTree(store)
  t.equal(stored.ok && hex(stored.tree.serialize()), hex(last.serialize()), 'the follow-up holds every change')
})

t.test('a failed save rejects its callers and leaves the tree dirty', async (t) => {
  const tree = populatedTree()
  const store = new GatedStore()
  await store.load('tree')
  tree.attachStore(store)
  store.fail = true
  const flush = tree.flush()
  store.release()
  await t.rejects(flush, /disk full/)
  t.equal(tree.dirty, true)
  store.fail = false
  const retry = tree.flush()
  store.release()
  await retry
  t.equal(tree.dirty, false)
})

t.test('undo takes a commit back out: added nodes go, replaced and deleted ones return, parents first', async (t) => {
  const tree = populatedTree()
  tree.attachStore(new MemoryStore())
  const before = hex(tree.serialize())
  const tx = tree.begin()
  t.equal(tx.add('./Vendor/new/deep', chr('n'), srv), 200)
  t.equal(tx.replace('./Vendor/leaf', chr('changed'), srv), 200)
  t.equal(tx.delete('./Vendor/dir', srv), 200)
  const committed = tx.commit()
  t.ok(committed.ok && committed.undo, 'a top-level commit that changed the tree gives an undo')
  if (!committed.ok || !committed.undo) return
  const flushed = await tree.flush().then(() => tree.dirty)
  t.equal(flushed, false)
  committed.undo()
  t.equal(hex(tree.serialize()), before, 'the tree is what it was, byte for byte (a parent always before its children)')
  t.equal(tree.get('./Vendor/new', srv).status, 404)
  t.equal(tree.get('./Vendor/dir/inner', srv).value?.data, 'x')
  t.equal(tree.dirty, true, 'dirty: the next flush stores the tree as it is now')
})

t.test('undo leaves what a later commit changed since', async (t) => {
  const tree = populatedTree()
  const tx = tree.begin()
  t.equal(tx.add('./Vendor/made', node(), srv), 200)
  t.equal(tx.add('./Vendor/made/own', chr('first'), srv), 200)
  t.equal(tx.replace('./Vendor/leaf', chr('first'), srv), 200)
  t.equal(tx.add('./Vendor/solo', chr('first'), srv), 200)
  const committed = tx.commit()
  if (!committed.ok || !committed.undo) return t.fail('commit')
  t.equal(tree.replace('./Vendor/leaf', chr('later'), srv), 200)
  t.equal(tree.add('./Vendor/made/later', chr('later'), srv), 200)
  committed.undo()
  t.equal(tree.get('./Vendor/leaf', srv).value?.data, 'later', 'a node changed since keeps the later value')
  t.equal(tree.get('./Vendor/made/later', srv).value?.data, 'later', 'a node added since below an undone one stays')
  t.equal(tree.get('./Vendor/made', srv).status, 200, 'and keeps its parent')
  t.equal(tree.get('./Vendor/made/own', srv).status, 404, 'the rest of the commit is undone')
  t.equal(tree.get('./Vendor/solo', srv).status, 404)
  t.ok(ManagementTree.restore(tree.serialize()).ok, 'the tree is whole and valid')
})

t.test('accounts added by helpers are valid, and a duplicate ServerID is refused', async (t) => {
  const tree = standardTree()
  t.equal(addAccount(tree, { x: 'a', serverId: 'same' }), 200)
  t.equal(addAccount(tree, { x: 'b', serverId: 'same' }), 500)
  t.same(tree.children('./DMAcc'), ['a'])
})
