// Persistence: the versioned, checksummed tree file, the atomic file store, and opening a tree from a store.
import t, { type Test } from 'tap'
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, statSync, existsSync, readdirSync, chmodSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { restoreTree, serializeTree } from '../src/tree/persistence.ts'
import { encodeTreeFile } from '../src/tree/tree-file.ts'
import { TreeNode } from '../src/tree/node.ts'
import { AtomicFileStore } from '../src/tree/file-store.ts'
import { DiscardingStore, MemoryStore } from '../src/tree/memory-store.ts'
import { AgentState } from '../src/session/agent-state.ts'
import { ManagementTree } from '../src/tree/tree.ts'
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
  }
})

t.test('AtomicFileStore: round trip, mode 0600, nothing stored yet', async (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'tree.bin')
  const store = new AtomicFileStore(path)
  t.equal(await store.load(), undefined, 'nothing stored yet')
  const bytes = serializeTree(populatedTree())
  await store.save(bytes)
  t.equal(hex((await store.load())!), hex(bytes))
  t.equal(statSync(path).mode & 0o777, 0o600)
  chmodSync(path, 0o644)
  await store.save(new Uint8Array([1, 2, 3]))
  t.equal(statSync(path).mode & 0o777, 0o600, 'a save restores the mode')
  t.same([...readFileSync(path)], [1, 2, 3])
  t.same(readdirSync(dir), ['tree.bin'], 'no temporary file left behind')
  const [a, b] = [new Uint8Array([4]), new Uint8Array([5])]
  await Promise.all([store.save(a), store.save(b), store.load()])
  t.same([...(await new AtomicFileStore(path).load())!], [5], 'concurrent saves land in call order')
})

t.test('AtomicFileStore: a leftover temporary file is ignored and removed', async (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'tree.bin')
  const bytes = serializeTree(populatedTree())
  writeFileSync(path, bytes)
  const temp = join(dir, '.tree.bin.tmp')
  writeFileSync(temp, bytes.subarray(0, 50)) // a save torn by a crash
  const loaded = await new AtomicFileStore(path).load()
  t.equal(hex(loaded!), hex(bytes))
  t.equal(existsSync(temp), false)
  writeFileSync(temp, bytes)
  t.equal(await new AtomicFileStore(join(dir, 'other.bin')).load(), undefined, 'another store\'s temp is not its own')
  t.equal(await new AtomicFileStore(path).load().then((b) => b?.length), bytes.length)
  t.equal(existsSync(temp), false, 'a temp file is never promoted, even when whole')
  const onlyTemp = join(dir, 'fresh.bin')
  writeFileSync(join(dir, '.fresh.bin.tmp'), bytes)
  t.equal(await new AtomicFileStore(onlyTemp).load(), undefined, 'a crash before the first rename: nothing stored')
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

t.test('open: a refused file is reported and left untouched', async (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'tree.bin')
  const corrupt = serializeTree(populatedTree())
  corrupt[HEADER + 3]! ^= 0xff
  writeFileSync(path, corrupt)
  const result = await ManagementTree.open(new AtomicFileStore(path), { factory: () => standardTree() })
  t.same(result, { ok: false, error: 'checksum mismatch: the file is corrupt' })
  t.equal(hex(readFileSync(path)), hex(corrupt), 'not replaced by a factory tree')
  const failing = { load: () => Promise.reject(new Error('EIO')), save: () => Promise.resolve() }
  t.same(await ManagementTree.open(failing, { factory: () => standardTree() }), { ok: false, error: 'cannot read the stored tree: EIO' })
})

t.test('open on a file store: stored with mode 0600 and reopened', async (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'state', 'tree.bin')
  mkdirSync(join(dir, 'state'))
  const opened = await ManagementTree.open(new AtomicFileStore(path), { factory: () => populatedTree() })
  t.equal(opened.ok, true)
  t.equal(statSync(path).mode & 0o777, 0o600)
  const again = await ManagementTree.open(new AtomicFileStore(path), { factory: () => standardTree() })
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
  t.equal(await store.load(), undefined)
})
