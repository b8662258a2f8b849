// A tree on a shared base (TreeOptions.base, what a simulated fleet gives each device): it must read, write,
// validate, roll back and persist exactly as a tree holding every node itself, and never see or make a change
// through the base.
import t from 'tap'
import fc from 'fast-check'
import { MemoryStore, readDurable } from '../src/store/index.ts'
import { ManagementTree } from '../src/tree/tree.ts'
import type { NodeValue, Principal } from '../src/tree/types.ts'
import { addAccount, chr, node, populatedTree } from './fixtures/tree/trees.ts'

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')

/** A plain tree and the same tree restored onto a base made from another tree built alike. */
function twins(): { plain: ManagementTree; based: ManagementTree } {
  const base = populatedTree().asBase()
  const plain = populatedTree()
  const restored = ManagementTree.restore(plain.serialize(), { base })
  if (!restored.ok) throw new Error(restored.error)
  return { plain, based: restored.tree }
}

const URIS = [
  './Vendor/leaf', './Vendor/dir', './Vendor/dir/inner', './Vendor/new', './Vendor/new/deep', './DevInfo/DevId',
  './DMAcc/srv/Name', './DMAcc/srv/AppAuth/1/AAuthData', './DMAcc/srv', './DMAcc/gw/ServerID', './DMAcc/fresh', './Inbox/x',
]
const PRINCIPALS: Principal[] = ['device', { serverId: 'srv1' }, { serverId: 'gw1' }]

type Op =
  | { kind: 'add' | 'replace'; uri: string; value: NodeValue; who: number }
  | { kind: 'delete'; uri: string; who: number }
  | { kind: 'atomic'; ops: Array<{ uri: string; value: NodeValue }>; commit: boolean }
  | { kind: 'account'; x: string }

const value: fc.Arbitrary<NodeValue> = fc.oneof(
  fc.constantFrom('value', 'x', 'other', 'Acme').map(chr),
  fc.constant(node()),
  fc.uint8Array({ maxLength: 4 }).map((data): NodeValue => ({ format: 'bin', data })),
)
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constantFrom('add' as const, 'replace' as const), uri: fc.constantFrom(...URIS), value, who: fc.nat(2) }),
  fc.record({ kind: fc.constant('delete' as const), uri: fc.constantFrom(...URIS), who: fc.nat(2) }),
  fc.record({
    kind: fc.constant('atomic' as const),
    ops: fc.array(fc.record({ uri: fc.constantFrom(...URIS), value }), { maxLength: 4 }),
    commit: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('account' as const), x: fc.constantFrom('srv', 'gw', 'fresh') }),
)

function apply(tree: ManagementTree, o: Op): unknown {
  switch (o.kind) {
    case 'add':
      return tree.add(o.uri, o.value, PRINCIPALS[o.who]!)
    case 'replace':
      return tree.replace(o.uri, o.value, PRINCIPALS[o.who]!)
    case 'delete':
      return tree.delete(o.uri, PRINCIPALS[o.who]!)
    case 'atomic': {
      const tx = tree.begin()
      const statuses = o.ops.map((w) => tx.add(w.uri, w.value, 'device'))
      if (!o.commit) {
        tx.rollback()
        return statuses
      }
      const result = tx.commit()
      return [statuses, result.ok ? 200 : result.failure.status]
    }
    case 'account':
      return addAccount(tree, { x: o.x, serverId: `${o.x}-server` })
  }
}

t.test('any sequence of operations gives the same statuses, reads and stored bytes with a base as without', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 25 }), fc.array(fc.boolean(), { minLength: 25, maxLength: 25 }), async (ops, flushes) => {
      const { plain, based } = twins()
      // The based tree also journals its changes, flushed after some operations: the store restores it whole.
      const store = new MemoryStore()
      based.attachStore(store)
      for (const [k, o] of ops.entries()) {
        const expected = JSON.stringify(apply(plain, o))
        const actual = JSON.stringify(apply(based, o))
        if (expected !== actual) throw new Error(`${JSON.stringify(o)}: ${actual} instead of ${expected}`)
        if (flushes[k]) await based.flush()
      }
      await based.flush()
      const read = await readDurable(store.files)
      const entries = read.ok ? read.namespaces.get('tree') : undefined
      if (entries === undefined) throw new Error('nothing stored')
      const journaled = ManagementTree.fromEntries(entries)
      if (!journaled.ok || hex(journaled.tree.serialize()) !== hex(plain.serialize())) throw new Error('the journaled tree does not restore')
      const journaledOnBase = ManagementTree.fromEntries(entries, { base: populatedTree().asBase() })
      if (!journaledOnBase.ok || hex(journaledOnBase.tree.serialize()) !== hex(plain.serialize())) throw new Error('the journaled tree does not restore onto the base')
      for (const uri of [...URIS, '.', './DMAcc', './Vendor']) {
        for (const who of PRINCIPALS) {
          const a = JSON.stringify(plain.get(uri, who))
          const b = JSON.stringify(based.get(uri, who))
          if (a !== b) throw new Error(`get ${uri}: ${b} instead of ${a}`)
        }
        if (JSON.stringify(plain.children(uri)) !== JSON.stringify(based.children(uri))) throw new Error(`children of ${uri} differ`)
      }
      if (hex(plain.serialize()) !== hex(based.serialize())) throw new Error('the stored trees differ')
      const restored = ManagementTree.restore(based.serialize())
      if (!restored.ok || hex(restored.tree.serialize()) !== hex(plain.serialize())) throw new Error('the stored tree does not restore')
      // Restored onto the base, a tree whose nodes were removed and added again keeps its own order too.
      const onBase = ManagementTree.restore(plain.serialize(), { base: populatedTree().asBase() })
      if (!onBase.ok || hex(onBase.tree.serialize()) !== hex(plain.serialize())) throw new Error('restored onto the base, the tree differs')
      if (JSON.stringify(onBase.tree.children('./DMAcc')) !== JSON.stringify(plain.children('./DMAcc'))) throw new Error('children out of order')
    }),
    { numRuns: 300 },
  )
})

t.test('a base is frozen: neither the tree it was made from nor the trees on it change what the others see', async (t) => {
  const source = populatedTree()
  const base = source.asBase()
  const restore = () => {
    const restored = ManagementTree.restore(populatedTree().serialize(), { base })
    if (!restored.ok) throw new Error(restored.error)
    return restored.tree
  }
  const first = restore()
  const second = restore()
  t.equal(source.replace('./Vendor/leaf', chr('changed at the source'), 'device'), 200)
  t.equal(first.delete('./Vendor/dir', 'device'), 200)
  t.equal(first.replace('./DMAcc/srv/Name', chr('renamed'), 'device'), 200)
  t.same(second.get('./Vendor/leaf', 'device').value?.data, 'value', 'the source tree changed alone')
  t.equal(second.get('./Vendor/dir/inner', 'device').status, 200, 'another tree removed its own copy alone')
  t.same(second.get('./DMAcc/srv/Name', 'device').value?.data, 'Account srv')
  t.equal(first.get('./Vendor/dir/inner', 'device').status, 404)
  t.same(first.get('./DMAcc/srv/Name', 'device').value?.data, 'renamed')
})

t.test('a node written back to the base value, and a removed one added again, read and store as without a base', async (t) => {
  const { plain, based } = twins()
  for (const tree of [plain, based]) {
    t.equal(tree.replace('./Vendor/leaf', chr('changed'), 'device'), 200)
    t.equal(tree.replace('./Vendor/leaf', chr('value'), 'device'), 200)
    t.equal(tree.delete('./Vendor/dir', 'device'), 200)
    t.equal(tree.add('./Vendor/dir/inner', chr('again'), 'device'), 200, 'the interior node is created implicitly')
  }
  t.same(based.get('./Vendor/leaf', 'device'), plain.get('./Vendor/leaf', 'device'))
  t.same(based.children('./Vendor'), plain.children('./Vendor'))
  t.equal(hex(based.serialize()), hex(plain.serialize()))
})

t.test('a first start on a base stores the same factory tree as one without', async (t) => {
  const base = populatedTree().asBase()
  const opened = await ManagementTree.open(new MemoryStore(), { base, factory: () => populatedTree() })
  if (!opened.ok) return t.fail(opened.error)
  t.equal(opened.created, true)
  t.equal(hex(opened.tree.serialize()), hex(populatedTree().serialize()))
  t.equal(opened.tree.dirty, false, 'and it is in the store')
})
