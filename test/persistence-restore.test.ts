// Persistence of the tree: its entries in the store, the versioned, checksummed whole-tree file of earlier
// versions (read to migrate a device), and opening a tree from a store.
import t, { type Test } from 'tap'
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, statSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeNodeEntries, encodeNode, encodeTreeFile } from '../src/tree/tree-file.ts'
import { TreeNode } from '../src/tree/node.ts'
import { DiscardingStore, DiskFiles, JournalStore, MemoryFiles, MemoryStore } from '../src/store/index.ts'
import { durableTree } from './helpers/stores.ts'
import { AgentState } from '../src/session/agent-state.ts'
import { ManagementTree, type TreeOptions } from '../src/tree/tree.ts'

const serializeTree = (tree: ManagementTree) => tree.serialize()
const restoreTree = (bytes: Uint8Array, options?: TreeOptions) => ManagementTree.restore(bytes, options)
import { chr, populatedTree, standardTree } from './fixtures/tree/trees.ts'

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')
const HEADER = 46

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-tree-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('a tree survives a round trip, byte for byte and node for node', async (t) => {
  const tree = populatedTree()
  tree.add('./Vendor/bin', { format: 'bin', data: new Uint8Array([0, 1, 254, 255]) }, 'device')
  tree.add('./Vendor/typed', { format: 'xml', type: 'application/xml', data: '<a>é</a>' }, 'device')
  tree.add('./Vendor/empty', { format: 'null' }, 'device')
  tree.add('./Vendor/big', chr('x'.repeat(70000)), 'device')
  const bytes = serializeTree(tree)
  const restored = restoreTree(bytes)
  if (!restored.ok) return t.fail(restored.error)
  t.equal(hex(serializeTree(restored.tree)), hex(bytes))
  t.equal(restored.tree.dirty, false, 'a restored tree is what the store holds')
  for (const uri of ['./Vendor/bin', './Vendor/typed', './Vendor/empty', './DevInfo', './DMAcc/srv/ServerID', './Vendor/big']) {
    t.same(restored.tree.get(uri, 'device'), tree.get(uri, 'device'), uri)
  }
  for (const uri of ['./DMAcc/srv?prop=ACL', './Vendor?prop=ACL', '.?prop=ACL', './DevInfo?prop=Type']) {
    t.same(restored.tree.get(uri, 'device'), tree.get(uri, 'device'), uri)
  }
  t.same(restored.tree.readSecret('./DMAcc/srv/AppAuth/1/AAuthData'), new Uint8Array([1, 2, 3]))
  t.equal(restored.tree.get('./DMAcc/srv/Name', { serverId: 'gw1' }).status, 425, 'ACLs still apply')
  t.equal(restored.tree.add('./Vendor/more', chr('v'), { serverId: 'x' }), 200, 'and the tree works on')
  t.same(restoreTree(serializeTree(standardTree())).ok, true)

  const store = new MemoryStore()
  tree.attachStore(store)
  await tree.flush()
  const journaled = await durableTree(store)
  if (!journaled.ok) return t.fail(journaled.error)
  t.equal(hex(serializeTree(journaled.tree)), hex(bytes), 'through the store too, node for node and in order')
  t.same(journaled.tree.readSecret('./DMAcc/srv/AppAuth/1/AAuthData'), new Uint8Array([1, 2, 3]))
})

t.test('corrupt, truncated, foreign, newer and invalid files are refused with a one-line reason', async (t) => {
  const good = serializeTree(populatedTree())
  const flip = (at: number) => {
    const b = good.slice()
    b[at]! ^= 0x01
    return b
  }
  const withVersion = (v: number) => {
    const b = good.slice()
    new DataView(b.buffer).setUint16(8, v)
    return b
  }
  const invalid = populatedTree()
  const nodes = new Map(invalid.committed)
  nodes.set('DMAcc/srv/AppID', new TreeNode('chr', undefined, 'w9', undefined))
  const rows: [string, Uint8Array, RegExp][] = [
    ['a flipped body bit', flip(HEADER + 100), /^checksum mismatch/],
    ['a flipped checksum bit', flip(20), /^checksum mismatch/],
    ['a flipped last byte', flip(good.length - 1), /^checksum mismatch/],
    ['a truncated body', good.subarray(0, good.length - 10), /^truncated or padded: body is \d+ bytes, header says \d+$/],
    ['trailing bytes', new Uint8Array([...good, 0]), /^truncated or padded/],
    ['a truncated header', good.subarray(0, 20), /^truncated: 20 bytes/],
    ['an empty file', new Uint8Array(0), /^truncated: 0 bytes/],
    ['bad magic', flip(0), /^not a tree file \(bad magic\)$/],
    ['a JSON file', new TextEncoder().encode('{"tree": "no"}'.padEnd(100)), /bad magic/],
    ['a newer version', withVersion(2), /^version 2 is newer than this agent reads \(1\)$/],
    ['version 0', withVersion(0), /^unknown version 0$/],
    ['an invalid account', encodeTreeFile(nodes), /^invalid account: \.\/DMAcc\/srv\/AppID: must be w7, not 'w9'$/],
  ]
  for (const [name, bytes, reason] of rows) {
    const result = restoreTree(bytes)
    t.equal(result.ok, false, name)
    if (!result.ok) {
      t.match(result.error, reason, name)
      t.notOk(result.error.includes('\n'), `${name}: one line`)
    }
  }
})

t.test('structurally broken bodies are refused even with a correct checksum', async (t) => {
  const root = new TreeNode('node', undefined, undefined, 'Get=*')
  const rows: [string, [string, TreeNode][], RegExp][] = [
    ['no root', [['A', new TreeNode('node', undefined, undefined, undefined)]], /root is not the first record/],
    ['an orphan', [['', root], ['A/B', new TreeNode('chr', undefined, 'v', undefined)]], /^\.\/A\/B: its parent is missing or a leaf$/],
    ['a child of a leaf', [['', root], ['A', new TreeNode('chr', undefined, 'v', undefined)], ['A/B', new TreeNode('chr', undefined, 'v', undefined)]], /parent is missing or a leaf/],
    ['a path twice', [['', root], ['A', new TreeNode('chr', undefined, 'v', undefined)], ['A', new TreeNode('chr', undefined, 'v', undefined)]], /^\.\/A: stored twice$/],
    ['bytes in a chr leaf', [['', root], ['A', new TreeNode('chr', undefined, new Uint8Array([1]), undefined)]], /data does not fit format chr/],
    ['text in a bin leaf', [['', root], ['A', new TreeNode('bin', undefined, 'x', undefined)]], /data does not fit format bin/],
    ['data on an interior node', [['', root], ['A', new TreeNode('node', undefined, 'x', undefined)]], /data does not fit format node/],
    ['nothing at all', [], /no root node/],
  ]
  for (const [name, entries, reason] of rows) {
    const result = restoreTree(encodeTreeFile(entries))
    t.match(result, { ok: false, error: reason }, name)
    const fromStore = ManagementTree.fromEntries(entries.map(([path, node]): [string, Uint8Array] => [path, encodeNode(node)]))
    t.match(fromStore, { ok: false, error: reason }, `${name}, in the store`)
  }
  t.match(decodeNodeEntries([['', new Uint8Array([0, 2, 5])]]), { ok: false, error: /^\.: malformed node$/ }, 'a node cut short')
  t.match(decodeNodeEntries([['', Uint8Array.of(...encodeNode(root), 0)]]), { ok: false, error: /^\.: malformed node$/ }, 'a node with bytes after it')
})

t.test('open: a first start builds and stores the factory tree; later starts restore it', async (t) => {
  const store = new MemoryStore()
  let built = 0
  const factory = () => {
    built++
    return standardTree()
  }
  const first = await ManagementTree.open(store, { factory })
  if (!first.ok) return t.fail(first.error)
  t.equal(first.created, true)
  t.equal(first.tree.dirty, false, 'the factory tree is durable before open resolves')
  t.equal(store.saves, 1)
  first.tree.add('./Vendor/x', chr('kept'), 'device')
  await first.tree.flush()
  const second = await ManagementTree.open(store, { factory })
  if (!second.ok) return t.fail(second.error)
  t.equal(second.created, false)
  t.equal(built, 1)
  t.equal(second.tree.get('./Vendor/x', 'device').value?.data, 'kept')
  second.tree.add('./Vendor/y', chr('v'), 'device')
  await second.tree.flush()
  t.equal(store.saves, 3, 'the restored tree flushes to the same store')
  t.match(await ManagementTree.open(new MemoryStore(), { factory: () => ({ error: 'no bootstrap document' }) }),
    { ok: false, error: 'factory tree: no bootstrap document' })
})

t.test('open: a store that cannot be read is reported and left untouched', async (t) => {
  const dir = tempDir(t)
  const names = { checkpoint: 'state.checkpoint', journal: 'state.journal' }
  const first = await ManagementTree.open(new JournalStore(new DiskFiles(dir, names)), { factory: () => populatedTree() })
  if (!first.ok) return t.fail(first.error)
  await first.tree.flush()
  const path = join(dir, names.checkpoint)
  const files = new DiskFiles(dir, names)
  await new JournalStore(files).checkpoint()
  const corrupt = readFileSync(path)
  corrupt[corrupt.length - 3]! ^= 0xff
  writeFileSync(path, corrupt)
  const result = await ManagementTree.open(new JournalStore(new DiskFiles(dir, names)), { factory: () => standardTree() })
  t.same(result, { ok: false, error: 'checkpoint: checksum mismatch: the file is corrupt' })
  t.equal(hex(readFileSync(path)), hex(corrupt), 'not replaced by a factory tree')
  const failing = new MemoryFiles()
  failing.readCheckpoint = () => Promise.reject(new Error('EIO'))
  t.same(await ManagementTree.open(new MemoryStore(failing), { factory: () => standardTree() }), { ok: false, error: 'cannot read the store: EIO' })
  const invalid = new MemoryStore()
  const tree = populatedTree()
  tree.attachStore(invalid)
  invalid.put('tree', 'DMAcc/srv/AppID', encodeNode(new TreeNode('chr', undefined, 'w9', undefined)))
  await invalid.commit()
  t.same(await ManagementTree.open(invalid, { factory: () => standardTree() }),
    { ok: false, error: "invalid account: ./DMAcc/srv/AppID: must be w7, not 'w9'" }, 'the account validator runs on a restore')
})

t.test('open on the disk store: stored with mode 0600 and reopened', async (t) => {
  const dir = tempDir(t)
  const state = join(dir, 'state')
  mkdirSync(state)
  const names = { checkpoint: 'state.checkpoint', journal: 'state.journal' }
  const opened = await ManagementTree.open(new JournalStore(new DiskFiles(state, names)), { factory: () => populatedTree() })
  t.equal(opened.ok, true)
  t.same(readdirSync(state), ['state.journal'])
  t.equal(statSync(join(state, 'state.journal')).mode & 0o777, 0o600)
  const again = await ManagementTree.open(new JournalStore(new DiskFiles(state, names)), { factory: () => standardTree() })
  t.equal(again.ok && again.tree.get('./DMAcc/srv/ServerID', 'device').value?.data, 'srv1')
})

t.test('a DiscardingStore keeps nothing: a tree and a state flushed to it are clean, and a new start finds nothing', async (t) => {
  const store = new DiscardingStore()
  const opened = await ManagementTree.open(store, { factory: () => populatedTree() })
  if (!opened.ok) return t.fail(opened.error)
  t.equal(opened.created, true)
  t.equal(opened.tree.replace('./Vendor/leaf', chr('changed'), 'device'), 200)
  t.equal(opened.tree.dirty, true)
  await opened.tree.flush()
  t.equal(opened.tree.dirty, false, 'the change counts as flushed')
  t.same(opened.tree.get('./Vendor/leaf', 'device').value?.data, 'changed', 'and lives on in memory')
  const again = await ManagementTree.open(store, { factory: () => standardTree() })
  t.equal(again.ok && again.created, true, 'a later open starts from the factory again')

  const state = await AgentState.open(store, () => new Uint8Array(32).fill(7))
  if (!state.ok) return t.fail(state.error)
  state.state.setSlot('s', { a: 1 })
  t.equal(state.state.dirty, true)
  await state.state.save()
  t.equal(state.state.dirty, false)
  t.same(state.state.slot('s'), { a: 1 })
  t.same(await store.load('state'), { ok: true, entries: undefined }, 'and the store holds nothing')
})
