// Mounting external nodes (binding.md §8): the node and its way made as the device, the shape applied at every
// start (the configuration wins), a stored leaf's value kept across restarts, and the refusals.
import t from 'tap'
import { MemoryStore } from '../src/store/index.ts'
import { ManagementTree } from '../src/tree/index.ts'
import type { ExternalNode } from '../src/tree/external.ts'
import { standardTree } from './fixtures/tree/trees.ts'
import { copyOf } from './helpers/stores.ts'

const srv = { serverId: 'srv1' }
const reader: ExternalNode = { get: async () => '42' }
const stored: ExternalNode = {}

t.test('a mount creates the node and the interior nodes on its way, with the shape\'s format, type and ACL', async (t) => {
  const tree = standardTree()
  t.same(tree.mount('./Vendor/Sensors/CpuTemp', { format: 'int', type: 'text/x-celsius', acl: 'Get=srv1' }, reader), { ok: true })
  t.equal(tree.get('./Vendor/Sensors', 'device').value?.format, 'node')
  t.same(tree.get('./Vendor/Sensors/CpuTemp?prop=Format', srv).value?.data, 'int')
  t.same(tree.get('./Vendor/Sensors/CpuTemp?prop=Type', srv).value?.data, 'text/x-celsius')
  t.same(tree.get('./Vendor/Sensors/CpuTemp?prop=ACL', srv).value?.data, 'Get=srv1')
  t.equal(tree.get('./Vendor/Sensors/CpuTemp', { serverId: 'other' }).status, 425, 'the ACL holds')
  t.equal(tree.get('./Vendor/Sensors/CpuTemp', srv).value?.data, undefined, 'a node read through get stores no value')
  t.equal(tree.external('Vendor/Sensors/CpuTemp')?.node, reader, 'found by either URI notation')
  t.equal(tree.external('./Vendor/Sensors/CpuTemp')?.maxBytes, 4096, 'maxBytes defaults to 4096')
  t.equal(tree.external('./Vendor/Sensors'), undefined, 'the way is not mounted')
  t.ok(tree.dirty, 'committed, for the next flush')
})

t.test('a leaf without an ACL gets Get=* and nothing more', async (t) => {
  const tree = standardTree()
  t.ok(tree.mount('./Vendor/Ops/Restart', { format: 'chr' }, { exec: async () => 200 }).ok)
  t.equal(tree.get('./Vendor/Ops/Restart?prop=ACL', srv).value?.data, 'Get=*')
  t.equal(tree.replace('./Vendor/Ops/Restart', { format: 'chr', data: 'x' }, srv), 425)
  t.equal(tree.delete('./Vendor/Ops/Restart', srv), 425)
})

t.test('paths the agent keeps for itself are refused unless internal, and clashes are refused', async (t) => {
  const tree = standardTree()
  for (const uri of ['./DMAcc/x', './DevInfo/Extra', './Inbox/x', './FUMO/Pkg/Download', 'DevInfo/Extra']) {
    const result = tree.mount(uri, { format: 'chr' }, stored)
    t.match(result, { ok: false, error: new RegExp(`^${uri.replace(/[./]/g, '\\$&')}: \\./\\w+ is the agent's own$`) }, uri)
  }
  t.ok(tree.mount('./FUMO/Pkg/Download', { format: 'node', acl: 'Get=*&Exec=srv1' }, { exec: async () => 202 }, { internal: true }).ok, 'internal')
  t.match(tree.mount('.', { format: 'node' }, stored), { ok: false, error: /not the URI of a node below the root/ })
  t.match(tree.mount('./A?prop=ACL', { format: 'chr' }, stored), { ok: false })
  t.match(tree.mount('./A/../B', { format: 'chr' }, stored), { ok: false })
  t.match(tree.mount('./A', { format: 'text' as never }, stored), { ok: false, error: /^\.\/A: unknown format text$/ })
  t.match(tree.mount('./A', { format: 'chr', acl: 'Read=*' }, stored), { ok: false, error: /not a DM ACL/ })
  t.match(tree.mount('./A', { format: 'chr', maxBytes: 0 }, stored), { ok: false, error: /maxBytes/ })
  t.match(tree.mount('./A', { format: 'int', value: 'ten' }, stored), { ok: false, error: /^\.\/A: value does not fit the format int$/ })
  t.match(tree.mount('./A', { format: 'chr', value: 'x'.repeat(9), maxBytes: 8 }, stored), { ok: false, error: /longer than maxBytes/ })
  t.match(tree.mount('./A', { format: 'chr', value: 'x' }, reader), { ok: false, error: /keeps none/ })
  t.ok(tree.mount('./A/Leaf', { format: 'chr' }, stored).ok)
  t.match(tree.mount('./A/Leaf', { format: 'chr' }, stored), { ok: false, error: /mounted twice/ })
  t.match(tree.mount('./A/Leaf/Below', { format: 'chr' }, stored), { ok: false, error: /below the leaf \.\/A\/Leaf/ })
  t.match(tree.mount('./A', { format: 'chr' }, stored), { ok: false, error: /a leaf above \.\/A\/Leaf/ })
  t.ok(tree.mount('./A', { format: 'node', acl: 'Get=*' }, stored).ok, 'an interior node above a leaf is fine')
  t.equal(tree.get('./A', 'device').value?.data, 'Leaf', 'and keeps its children')
  t.equal(tree.get('./Z', 'device').status, 404, 'nothing was made of the refused mounts')
})

t.test('at every start the shape wins, and a stored leaf keeps the value it had', async (t) => {
  const store = new MemoryStore()
  const open = () => ManagementTree.open(copyOf(store), { factory: () => standardTree() })
  const first = await ManagementTree.open(store, { factory: () => standardTree() })
  if (!first.ok) throw new Error(first.error)
  const tree = first.tree
  t.ok(tree.mount('./Vendor/Config/ReportEvery', { format: 'int', value: '60', acl: 'Get=*&Replace=srv1' }, stored).ok)
  t.ok(tree.mount('./Vendor/Old', { format: 'chr', value: 'old' }, stored).ok)
  t.equal(tree.get('./Vendor/Config/ReportEvery', srv).value?.data, '60', 'the first value')
  t.equal(tree.replace('./Vendor/Config/ReportEvery', { format: 'int', data: '15' }, srv), 200)
  t.equal(tree.add('./Vendor/Old2', { format: 'chr', data: 'x' }, 'device'), 200)
  await tree.flush()

  const second = await open()
  if (!second.ok) throw new Error(second.error)
  const again = second.tree
  t.equal(again.get('./Vendor/Config/ReportEvery', srv).value?.data, '15', 'restored as stored')
  t.ok(again.mount('./Vendor/Config/ReportEvery', { format: 'int', value: '60', acl: 'Get=*&Replace=srv2' }, stored).ok)
  t.equal(again.get('./Vendor/Config/ReportEvery', srv).value?.data, '15', 'the stored value, not the shape\'s first one')
  t.equal(again.get('./Vendor/Config/ReportEvery?prop=ACL', srv).value?.data, 'Get=*&Replace=srv2', 'the configuration\'s ACL wins')
  t.equal(again.replace('./Vendor/Config/ReportEvery', { format: 'int', data: '16' }, srv), 425)
  t.ok(again.mount('./Vendor/Config/ReportEvery', { format: 'bool', value: 'true' }, stored).ok === false, 'mounted twice in one run')

  // A value that no longer fits a new format gives way to the shape's first value.
  const third = await open()
  if (!third.ok) throw new Error(third.error)
  t.ok(third.tree.mount('./Vendor/Config/ReportEvery', { format: 'bool', value: 'true' }, stored).ok)
  t.same(third.tree.get('./Vendor/Config/ReportEvery', srv).value, { format: 'bool', data: 'true' })
  // A leaf of an earlier configuration becomes the interior node a mount needs, and an interior node a leaf.
  t.ok(third.tree.mount('./Vendor/Old/Now', { format: 'chr', value: 'n' }, stored).ok)
  t.equal(third.tree.get('./Vendor/Old', srv).value?.format, 'node')
  t.ok(third.tree.mount('./Vendor/Config', { format: 'chr', value: 'leaf' }, stored).ok === false, 'a leaf above a mount of this run')
  t.ok(third.tree.mount('./Vendor', { format: 'node' }, stored).ok)
})

t.test('a leaf read from outside until now, stored from now on, starts from the shape\'s value', async (t) => {
  const tree = standardTree()
  t.ok(tree.mount('./Vendor/X', { format: 'chr' }, reader).ok)
  const again = ManagementTree.restore(tree.serialize())
  if (!again.ok) throw new Error(again.error)
  t.ok(again.tree.mount('./Vendor/X', { format: 'chr', value: 'first' }, stored).ok)
  t.equal(again.tree.get('./Vendor/X', srv).value?.data, 'first')
})

t.test('a mount that makes nothing new leaves the tree clean', async (t) => {
  const store = new MemoryStore()
  const first = await ManagementTree.open(store, { factory: () => standardTree() })
  if (!first.ok) throw new Error(first.error)
  t.ok(first.tree.mount('./Vendor/X', { format: 'b64', value: 'AAEC' }, stored).ok)
  await first.tree.flush()
  const second = await ManagementTree.open(copyOf(store), { factory: () => standardTree() })
  if (!second.ok) throw new Error(second.error)
  t.ok(second.tree.mount('./Vendor/X', { format: 'b64', value: 'AAEC' }, stored).ok)
  t.notOk(second.tree.dirty, 'nothing to store at a start with the same configuration')
  t.same([...(second.tree.get('./Vendor/X', srv).value?.data as Uint8Array)], [0, 1, 2])
})

t.test('a full tree refuses the mount with a reason', async (t) => {
  const tree = new ManagementTree({ limits: { maxNodes: 3 } })
  t.match(tree.mount('./A/B/C', { format: 'chr' }, stored), { ok: false, error: /^\.\/A\/B\/C: .*full/ })
})
