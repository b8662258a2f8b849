/**
 * What the device's durable state costs the disk (binding.md §11: the bytes a small change writes do not grow
 * with the tree), in the bench process on the real modules:
 * - bytes written per small Replace and per persisted Generic Alert, for trees of 100, 1,000 and 2,000 nodes:
 *   a counting store (MemoryFiles counts what the store asks a disk to write and sync), over enough changes
 *   that checkpoints are part of the average; floor: the bytes of the change itself;
 * - fsyncs per DM session that changes one leaf, and per Device Detection Alert (Share true, two DM Servers):
 *   the real session engine and GwMO layer (the test harnesses, no broker) on one counting store, as the agent;
 * - restore time of a 2,000-node tree with a long journal (just under the checkpoint bound) from a real disk;
 *   floor: reading the two files.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AgentState } from '../../src/session/agent-state.ts'
import { CHECKPOINT_POLICY, DiskFiles, JournalStore, MemoryFiles, MemoryStore } from '../../src/store/index.ts'
import { createStandardTree, ManagementTree } from '../../src/tree/index.ts'
import { detectionAlert } from '../../test/peers/gateway.ts'
import { gwmoWorld, type PartySpec } from '../../test/helpers/gwmo-harness.ts'
import { createHarness, Party, push, replace, SERVER, settle, status } from '../../test/helpers/session-harness.ts'
import { summarize, type Summary } from '../lib/stats.ts'

export interface ChangeFigures {
  nodes: number
  /** The whole state as a checkpoint holds it. */
  checkpointBytes: number
  /** What the first change wrote: one journal record. */
  recordBytes: number
  /** Every byte written over `changes` changes (records and checkpoints), per change. */
  averageBytes: number
  checkpoints: number
  changes: number
  floorBytes: number
  syncsPerChange: number
}

export interface StoreFigures {
  replace: ChangeFigures[]
  alert: ChangeFigures[]
  session: { syncs: number; bytes: number }
  detection: { syncs: number; bytes: number }
  restore: { ms: Summary; floorMs: Summary; journalBytes: number; checkpointBytes: number; nodes: number }
}

const STATE_FILES = { checkpoint: 'state.checkpoint', journal: 'state.journal' }

/** A tree of `nodes` nodes: the standard objects and leaves of 60 bytes under ./Vendor, like a device's. */
function treeOf(nodes: number): ManagementTree {
  const tree = createStandardTree({ devId: 'mac:02-be-00-00-00-99', man: 'Acme', mod: 'Pi-4', lang: 'en-US', limits: { maxNodes: nodes + 10 } })
  const tx = tree.begin()
  tx.add('./Vendor/leaf', { format: 'chr', data: 'value-0000' }, 'device')
  let k = 0
  while (tree.committed.size() + k + 3 < nodes) {
    tx.add(`./Vendor/group${Math.floor(k / 50)}/item${k}`, { format: 'chr', data: `${k}`.padEnd(60, '.') }, 'device')
    k++
  }
  const committed = tx.commit()
  if (!committed.ok) throw new Error(committed.failure.messages.join('; '))
  return tree
}

/** A device's store holding a tree of `nodes` nodes and an agent state, folded into a checkpoint. */
async function deviceStore(nodes: number): Promise<{ files: MemoryFiles; store: MemoryStore; tree: ManagementTree; state: AgentState }> {
  const files = new MemoryFiles()
  const store = new MemoryStore(files)
  const opened = await ManagementTree.open(store, { factory: () => treeOf(nodes) })
  if (!opened.ok) throw new Error(opened.error)
  const state = await AgentState.open(store, (n) => new Uint8Array(n).fill(3))
  if (!state.ok) throw new Error(state.error)
  await store.checkpoint()
  return { files, store, tree: opened.tree, state: state.state }
}

async function measureChanges(nodes: number, changes: number, floorBytes: number, change: (k: number, d: Awaited<ReturnType<typeof deviceStore>>) => Promise<void>): Promise<ChangeFigures> {
  const device = await deviceStore(nodes)
  const { files } = device
  const checkpointBytes = files.checkpoint!.length
  const start = { ...files.counts }
  let recordBytes = 0
  let checkpoints = 0
  for (let k = 0; k < changes; k++) {
    const before = files.counts.bytes
    const journal = files.journal?.length ?? 0
    await change(k, device)
    if (k === 0) recordBytes = files.counts.bytes - before
    if ((files.journal?.length ?? 0) < journal) checkpoints++
  }
  return {
    nodes,
    checkpointBytes,
    recordBytes,
    averageBytes: (files.counts.bytes - start.bytes) / changes,
    checkpoints,
    changes,
    floorBytes,
    syncsPerChange: (files.counts.syncs - start.syncs) / changes,
  }
}

/** Replaces of a short leaf, each flushed as a message's commit is: enough for checkpoints to come. */
function replaces(nodes: number): Promise<ChangeFigures> {
  const value = (k: number) => `value-${String(k % 10000).padStart(4, '0')}`
  const floor = 'Vendor/leaf'.length + value(0).length
  return measureChanges(nodes, 20_000, floor, async (k, { tree }) => {
    tree.replace('./Vendor/leaf', { format: 'chr', data: value(k) }, 'device')
    await tree.flush()
  })
}

/** Generic Alerts queued and saved one by one (an Associated Gateway each), as 250 detections would. */
function alerts(nodes: number): Promise<ChangeFigures> {
  const data = (k: number) => `<GwAddress>2002:0:0:0:0:0:9da6:${(k % 65536).toString(16)}</GwAddress>`
  const type = 'urn:oma:gwmo:1.0:AssociatedGateway'
  return measureChanges(nodes, 250, type.length + data(0).length, async (k, { state }) => {
    state.enqueueAlert('http://www.someDMServer.com', { type, data: data(k), source: 'mac:02-be-00-00-00-99' }, 1_700_000_000_000 + k)
    await state.save()
  })
}

/** Syncs and bytes of a DM session that replaces one leaf (steady state: the nonce block is reserved). */
async function session(): Promise<{ syncs: number; bytes: number }> {
  const store = new MemoryStore()
  const h = await createHarness({ treeStore: store, stateStore: store })
  const server = new Party(SERVER)
  const counts: Array<{ syncs: number; bytes: number }> = []
  for (let k = 0; k < 6; k++) {
    const before = { ...store.files.counts }
    const sessionId = `5${k}`
    const { nextMsgId } = await push(h, server, sessionId, [replace('./DevInfo/Lang', `l${k}`)])
    await h.manager.receive(server.message({ sessionId, msgId: nextMsgId, body: [status(String(nextMsgId - 1), '0', 'SyncHdr', 200)] }))
    await settle()
    h.clock.advance(h.clock.now() + 60_000) // the lazy save of the nonce bookkeeping
    await settle()
    counts.push({ syncs: store.files.counts.syncs - before.syncs, bytes: store.files.counts.bytes - before.bytes })
  }
  await h.manager.stop()
  const steady = counts.slice(1) // the first reserves the nonce block
  return { syncs: steady.reduce((n, c) => n + c.syncs, 0) / steady.length, bytes: steady.reduce((n, c) => n + c.bytes, 0) / steady.length }
}

/** Syncs and bytes of a Device Detection Alert with Share true (two DM Servers get an Associated Gateway). */
async function detection(): Promise<{ syncs: number; bytes: number }> {
  const store = new MemoryStore()
  const accounts: PartySpec[] = [
    { x: 'srv1', serverId: 'http://www.someDMServer.com' },
    { x: 'srv2', serverId: 'http://www.nextDMServer.com' },
    { x: 'gw', serverId: 'http://gw.local', role: 'gateway' },
  ]
  const w = await gwmoWorld({ accounts, stores: { tree: store, state: store } })
  const counts: Array<{ syncs: number; bytes: number }> = []
  for (let k = 0; k < 6; k++) {
    await w.settle()
    const before = { ...store.files.counts }
    await w.party('http://gw.local').push([detectionAlert({ gwAddress: `2002:0:0:0:0:0:9da6:e2${10 + k}`, share: true })])
    await w.settle()
    counts.push({ syncs: store.files.counts.syncs - before.syncs, bytes: store.files.counts.bytes - before.bytes })
  }
  await w.stop()
  const steady = counts.slice(1)
  return { syncs: steady.reduce((n, c) => n + c.syncs, 0) / steady.length, bytes: steady.reduce((n, c) => n + c.bytes, 0) / steady.length }
}

/** Restore of a 2,000-node tree from a checkpoint and a journal just under the checkpoint bound, on disk. */
async function restoreTime(runs: number): Promise<StoreFigures['restore']> {
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-bench-store-'))
  try {
    const nodes = 2000
    const store = new JournalStore(new DiskFiles(dir, STATE_FILES))
    const opened = await ManagementTree.open(store, { factory: () => treeOf(nodes) })
    if (!opened.ok) throw new Error(opened.error)
    const state = await AgentState.open(store, (n) => new Uint8Array(n).fill(3))
    if (!state.ok) throw new Error(state.error)
    await store.checkpoint()
    const checkpoint = readFileSync(join(dir, STATE_FILES.checkpoint))
    const checkpointBytes = checkpoint.length
    const bound = Math.max(CHECKPOINT_POLICY.minJournalBytes, CHECKPOINT_POLICY.journalPerCheckpoint * checkpointBytes)
    // A journal of many small commits, as a device builds up between checkpoints (replaces of leaves all over),
    // made in memory from the same checkpoint (so its records follow it) and written to the disk whole: one
    // fdatasync a record would make this setup take longer than the rest of the bench.
    const files = new MemoryFiles({ checkpoint })
    const grown = await ManagementTree.open(new MemoryStore(files), { factory: () => ({ error: 'nothing stored' }) })
    if (!grown.ok) throw new Error(grown.error)
    const paths = [...grown.tree.committed].filter(([, n]) => n.f !== 'node').map(([p]) => p)
    for (let k = 0; (files.journal?.length ?? 0) < bound * 0.95; k++) {
      grown.tree.replace(`./${paths[k % paths.length]!}`, { format: 'chr', data: `changed ${k}` }, 'device')
      await grown.tree.flush()
    }
    writeFileSync(join(dir, STATE_FILES.journal), files.journal!)
    const journalBytes = readFileSync(join(dir, STATE_FILES.journal)).length
    const ms: number[] = []
    const floor: number[] = []
    for (let run = -1; run < runs; run++) {
      const t0 = performance.now()
      const restored = new JournalStore(new DiskFiles(dir, STATE_FILES))
      const tree = await ManagementTree.open(restored, { factory: () => ({ error: 'nothing stored' }) })
      const agent = await AgentState.open(restored, () => new Uint8Array(32))
      const t1 = performance.now()
      if (!tree.ok || !agent.ok) throw new Error('restore failed')
      if (tree.tree.committed.size() !== opened.tree.committed.size() || tree.tree.dirty) throw new Error('restored a different tree')
      const f0 = performance.now()
      readFileSync(join(dir, STATE_FILES.checkpoint))
      readFileSync(join(dir, STATE_FILES.journal))
      const f1 = performance.now()
      if (run >= 0) {
        ms.push(t1 - t0)
        floor.push(f1 - f0)
      }
    }
    return { ms: summarize(ms), floorMs: summarize(floor), journalBytes, checkpointBytes, nodes: opened.tree.committed.size() }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function storeFigures(options: { runs: number }): Promise<StoreFigures> {
  const sizes = [100, 1000, 2000]
  const replace: ChangeFigures[] = []
  const alert: ChangeFigures[] = []
  for (const nodes of sizes) replace.push(await replaces(nodes))
  for (const nodes of sizes) alert.push(await alerts(nodes))
  return { replace, alert, session: await session(), detection: await detection(), restore: await restoreTime(options.runs) }
}
