// The store's journal and checkpoint: framing, checksums, a torn or corrupt tail cut at every byte offset of a
// record restoring exactly the state before it, checkpoint + journal replay equal to the live state, the
// checkpoint policy, failed writes, and the files on disk.
import t from 'tap'
import fc from 'fast-check'
import * as zlib from 'node:zlib'
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { crc32 } from '../src/store/crc32.ts'
import { encodeCheckpoint, encodeRecord, type Namespaces } from '../src/store/format.ts'
import { DiskFiles, JournalStore, MemoryFiles, MemoryStore, readDurable, type Store } from '../src/store/index.ts'

const enc = (s: string) => new TextEncoder().encode(s)
const dec = (b: Uint8Array) => new TextDecoder().decode(b)

/** A namespace's owner for these tests: a Map kept in step with the store, as the tree and the state are. */
class Owner {
  readonly map = new Map<string, string>()
  constructor(readonly store: Store, readonly ns: string) {
    store.attach(ns, () => [...this.map].map(([k, v]): [string, Uint8Array] => [k, enc(v)]))
  }
  put(key: string, value: string): void {
    this.map.set(key, value)
    this.store.put(this.ns, key, enc(value))
  }
  delete(key: string): void {
    this.map.delete(key)
    this.store.delete(this.ns, key)
  }
  clear(): void {
    this.map.clear()
    this.store.clear(this.ns)
  }
}

/** Namespaces as plain arrays of [key, text], in order: what `t.same` compares, order included. */
function plain(namespaces: Namespaces): Record<string, [string, string][]> {
  const out: Record<string, [string, string][]> = {}
  for (const ns of [...namespaces.keys()].sort()) out[ns] = [...namespaces.get(ns)!].map(([k, v]) => [k, dec(v)])
  return out
}

function owned(...owners: Owner[]): Record<string, [string, string][]> {
  const out: Record<string, [string, string][]> = {}
  for (const owner of [...owners].sort((a, b) => (a.ns < b.ns ? -1 : 1))) if (owner.map.size > 0) out[owner.ns] = [...owner.map]
  return out
}

async function durable(files: MemoryFiles | DiskFiles): Promise<Record<string, [string, string][]>> {
  const read = await readDurable(files)
  if (!read.ok) throw new Error(read.error)
  return plain(read.namespaces)
}

t.test('CRC-32 is zlib\'s', async (t) => {
  t.equal(crc32(enc('123456789')), 0xcbf43926, 'the standard check value')
  const z = (zlib as unknown as { crc32?: (b: Uint8Array) => number }).crc32
  if (z === undefined) return t.comment('zlib.crc32 missing on this Node')
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => crc32(bytes) === z(bytes)))
})

t.test('a record is framed: length, CRC-32, version, sequence number, then the operations', async (t) => {
  const record = encodeRecord(7, [{ kind: 'put', ns: 'tree', key: 'A', value: enc('v') }])
  const view = new DataView(record.buffer)
  t.equal(view.getUint32(0), record.length - 8, 'body length')
  t.equal(view.getUint32(4), crc32(record.subarray(8)), 'checksum of the body')
  t.equal(record[8], 1, 'format version')
  t.equal(view.getUint32(9) * 2 ** 32 + view.getUint32(13), 7, 'sequence number')
  t.same([...record.subarray(17)], [1, 4, ...enc('tree'), 1, ...enc('A'), 1, ...enc('v')], 'put tree A v')
  t.equal(record.length, 17 + 1 + 5 + 2 + 2, 'a one-byte change costs a record of 27 bytes')
})

t.test('commits append one record each; a new store restores every namespace, order included', async (t) => {
  const files = new MemoryFiles()
  const store = new MemoryStore(files)
  t.same(await store.load('tree'), { ok: true, entries: undefined }, 'nothing stored yet')
  const tree = new Owner(store, 'tree')
  const state = new Owner(store, 'state')
  tree.put('', 'root')
  tree.put('A', 'a')
  tree.put('B', 'b')
  state.put('deviceKey', 'k')
  await store.commit()
  t.equal(files.counts.writes, 1, 'one record for the commit')
  tree.put('A', 'a2') // put again: keeps its place
  tree.delete('B')
  tree.put('B', 'b2') // deleted and put again: goes last
  tree.put('C', 'c')
  tree.put('C', 'c2')
  await store.commit()
  t.equal(files.counts.writes, 2)
  t.same(await durable(files), owned(tree, state), 'what a restart finds is the live state')
  t.same([...tree.map.keys()], ['', 'A', 'B', 'C'])

  const again = new MemoryStore(files)
  const loaded = await again.load('tree')
  t.same(loaded.ok && [...loaded.entries!].map(([k, v]) => [k, dec(v)]), [['', 'root'], ['A', 'a2'], ['B', 'b2'], ['C', 'c2']])
  await store.commit()
  t.equal(files.counts.writes, 2, 'a commit with nothing to write writes nothing')
})

t.test('changes to one key between commits are folded into one operation', async (t) => {
  const files = new MemoryFiles()
  const store = new MemoryStore(files)
  const owner = new Owner(store, 'state')
  owner.put('big', 'x'.repeat(1000))
  await store.commit()
  const before = files.counts.bytes
  for (let k = 0; k < 100; k++) owner.put('nonce', String(k))
  await store.commit()
  t.ok(files.counts.bytes - before < 40, `100 puts of one key: one record of ${files.counts.bytes - before} bytes`)
  t.same(await durable(files), owned(owner))
})

t.test('any sequence of changes, commits and checkpoints restores to the live state, order included', async () => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('put' as const), ns: fc.constantFrom('a', 'b'), key: fc.constantFrom('k1', 'k2', 'k3', 'k4'), value: fc.string({ maxLength: 20 }) }),
    fc.record({ kind: fc.constant('delete' as const), ns: fc.constantFrom('a', 'b'), key: fc.constantFrom('k1', 'k2', 'k3', 'k4') }),
    fc.record({ kind: fc.constant('clear' as const), ns: fc.constantFrom('a', 'b') }),
    fc.constant({ kind: 'commit' as const }),
    fc.constant({ kind: 'checkpoint' as const }),
  )
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 60 }), fc.integer({ min: 30, max: 400 }), async (ops, minJournalBytes) => {
      const files = new MemoryFiles()
      const store = new MemoryStore(files, { policy: { minJournalBytes, journalPerCheckpoint: 1 } })
      const owners = { a: new Owner(store, 'a'), b: new Owner(store, 'b') }
      for (const o of ops) {
        if (o.kind === 'put') owners[o.ns].put(o.key, o.value)
        else if (o.kind === 'delete') owners[o.ns].delete(o.key)
        else if (o.kind === 'clear') owners[o.ns].clear()
        else if (o.kind === 'commit') await store.commit()
        else await store.checkpoint()
      }
      await store.commit()
      const restored = await durable(files)
      if (JSON.stringify(restored) !== JSON.stringify(owned(owners.a, owners.b))) throw new Error(`restored ${JSON.stringify(restored)}`)
    }),
    { numRuns: 300 },
  )
})

/** A journal of records, and the state after each of them. */
async function history(): Promise<{ files: MemoryFiles; states: Record<string, [string, string][]>[]; ends: number[] }> {
  const files = new MemoryFiles()
  const store = new MemoryStore(files)
  const tree = new Owner(store, 'tree')
  const state = new Owner(store, 'state')
  const states = [owned(tree, state)]
  const ends = [0]
  const steps: Array<() => void> = [
    () => { tree.put('', 'root'); tree.put('DevInfo', 'n'); state.put('deviceKey', 'key') },
    () => { tree.put('DevInfo/Mod', 'Pi-4'); state.put('nonce', '64') },
    () => { tree.put('DevInfo/Mod', 'Pi-5'); tree.delete('DevInfo'); state.put('alert/1', '{"type":"urn:x","text":"é"}') },
  ]
  for (const step of steps) {
    step()
    await store.commit()
    states.push(owned(tree, state))
    ends.push(files.journal!.length)
  }
  return { files, states, ends }
}

t.test('a power cut at every byte offset of the last record restores the whole state before it', async (t) => {
  const { files, states, ends } = await history()
  const full = files.journal!
  const start = ends[ends.length - 2]!
  const problems: string[] = []
  for (let cut = start; cut <= full.length; cut++) {
    const cutFiles = new MemoryFiles({ journal: full.subarray(0, cut) })
    const warnings: string[] = []
    const store = new MemoryStore(cutFiles, { warn: (line) => warnings.push(line) })
    const loaded = await store.load('tree')
    if (!loaded.ok) {
      problems.push(`cut at ${cut}: ${loaded.error}`)
      continue
    }
    const whole = cut === full.length
    const expected = whole ? states[states.length - 1] : states[states.length - 2]
    const got = await durable(cutFiles)
    if (JSON.stringify(got) !== JSON.stringify(expected)) problems.push(`cut at ${cut}: restored ${JSON.stringify(got)}`)
    if (cutFiles.journal!.length !== (whole ? full.length : start)) problems.push(`cut at ${cut}: the journal was left ${cutFiles.journal!.length} bytes long`)
    const torn = cut !== start && !whole
    if (warnings.length !== (torn ? 1 : 0)) problems.push(`cut at ${cut}: ${warnings.length} warnings`)
    if (torn && !/^store: the journal ends in .* at byte \d+ \(\d+ bytes dropped\); restored without it$/.test(warnings[0]!)) problems.push(`cut at ${cut}: ${warnings[0]}`)
    // The store goes on after the cut: a new record lands after the last whole one and is read back.
    const owner = new Owner(store, 'more')
    owner.put('after', 'cut')
    await store.commit()
    const after = await durable(cutFiles)
    if (JSON.stringify(after.more) !== JSON.stringify([['after', 'cut']]) || JSON.stringify(after.tree) !== JSON.stringify(expected!.tree)) {
      problems.push(`cut at ${cut}: a record appended after the cut is not read back whole`)
    }
  }
  t.same(problems, [], `${full.length - start + 1} cuts, each restored whole`)
})

t.test('a byte changed anywhere in the last record drops that record, never half of it', async (t) => {
  const { files, states, ends } = await history()
  const full = files.journal!
  const start = ends[ends.length - 2]!
  const problems: string[] = []
  for (let at = start; at < full.length; at++) {
    for (const mask of [0x01, 0x80, 0xff]) {
      const bad = full.slice()
      bad[at]! ^= mask
      const got = await durable(new MemoryFiles({ journal: bad }))
      if (JSON.stringify(got) !== JSON.stringify(states[states.length - 2])) problems.push(`byte ${at} ^ ${mask}: ${JSON.stringify(got)}`)
    }
  }
  t.same(problems, [])
})

t.test('a record of the middle that is corrupt drops the tail from there, with one line', async (t) => {
  const { files, states, ends } = await history()
  const bad = files.journal!.slice()
  bad[ends[1]! + 12]! ^= 0x10
  const warnings: string[] = []
  const store = new MemoryStore(new MemoryFiles({ journal: bad }), { warn: (l) => warnings.push(l) })
  t.ok((await store.load('tree')).ok)
  t.same(await durable(store.files), states[1])
  t.equal(warnings.length, 1)
  t.match(warnings[0], /a record with a wrong checksum at byte \d+/)
})

t.test('records the checkpoint already holds are skipped, and the journal emptied', async (t) => {
  const { files, states } = await history()
  const journal = files.journal!
  // A crash after a checkpoint was renamed into place but before the journal was emptied.
  const store = new MemoryStore(files)
  for (const ns of ['tree', 'state']) await store.load(ns)
  await store.checkpoint()
  t.equal(files.journal!.length, 0, 'a checkpoint empties the journal')
  files.journal = journal
  const again = new MemoryStore(files)
  t.ok((await again.load('tree')).ok)
  t.same(await durable(files), states[states.length - 1], 'the stale records change nothing')
  t.equal(files.journal!.length, 0, 'and are dropped at the next open')
})

t.test('a store that cannot be read whole is refused with one line and left as it is', async (t) => {
  const good = encodeCheckpoint(3, [['tree', '', enc('root')]])
  const flip = (bytes: Uint8Array, at: number) => {
    const b = bytes.slice()
    b[at]! ^= 1
    return b
  }
  const newer = good.slice()
  new DataView(newer.buffer).setUint16(8, 2)
  const newerRecord = encodeRecord(4, [{ kind: 'put', ns: 'tree', key: 'x', value: enc('y') }])
  newerRecord[8] = 2
  new DataView(newerRecord.buffer).setUint32(4, crc32(newerRecord.subarray(8)))
  const rows: [string, MemoryFiles, RegExp][] = [
    ['a flipped checkpoint body bit', new MemoryFiles({ checkpoint: flip(good, good.length - 1) }), /^checkpoint: checksum mismatch: the file is corrupt$/],
    ['a truncated checkpoint', new MemoryFiles({ checkpoint: good.subarray(0, good.length - 2) }), /^checkpoint: truncated or padded/],
    ['a foreign file', new MemoryFiles({ checkpoint: enc('{"tree": "no"}'.padEnd(80)) }), /^checkpoint: not a store checkpoint \(bad magic\)$/],
    ['a newer checkpoint', new MemoryFiles({ checkpoint: newer }), /^checkpoint: version 2 is newer than this agent reads \(1\)$/],
    ['a newer journal record', new MemoryFiles({ checkpoint: good, journal: newerRecord }), /^journal: a record of version 2, newer than this agent reads \(1\)$/],
  ]
  for (const [name, files, reason] of rows) {
    const before = JSON.stringify([files.checkpoint && [...files.checkpoint], files.journal && [...files.journal]])
    const store = new MemoryStore(files)
    const loaded = await store.load('tree')
    t.equal(loaded.ok, false, name)
    if (!loaded.ok) {
      t.match(loaded.error, reason, name)
      t.notOk(loaded.error.includes('\n'), `${name}: one line`)
    }
    await t.rejects(store.commit().then(() => store.checkpoint()), `${name}: nothing can be written over it`)
    t.equal(JSON.stringify([files.checkpoint && [...files.checkpoint], files.journal && [...files.journal]]), before, `${name}: left as it is`)
  }
  const readFails = new MemoryFiles()
  readFails.readJournal = () => Promise.reject(new Error('EIO: i/o error, read'))
  t.same(await new MemoryStore(readFails).load('tree'), { ok: false, error: 'cannot read the store: EIO: i/o error, read' })
})

t.test('the journal is folded into a checkpoint past its bound, which grows with the checkpoint', async (t) => {
  const files = new MemoryFiles()
  const store = new MemoryStore(files, { policy: { minJournalBytes: 1000, journalPerCheckpoint: 2 } })
  const owner = new Owner(store, 'tree')
  for (let k = 0; k < 200; k++) owner.put(`n${k}`, 'v'.repeat(20))
  await store.commit()
  const checkpoints = () => files.counts.writes - appends
  let appends = 1
  let largest = 0
  for (let k = 0; k < 300; k++) {
    owner.put(`n${k % 200}`, `w${k}`.padEnd(20, '.'))
    const journalBefore = files.journal?.length ?? 0
    await store.commit()
    if ((files.journal?.length ?? 0) > journalBefore) appends++
    largest = Math.max(largest, files.journal?.length ?? 0)
  }
  const size = files.checkpoint!.length
  t.ok(checkpoints() >= 1, `${checkpoints()} checkpoint(s) of ${size} bytes`)
  t.ok(largest < 2 * size + 100, `the journal stays under twice the checkpoint (${largest} bytes)`)
  t.same(await durable(files), owned(owner))
})

t.test('a failed append rejects its commit; the next write is a checkpoint of the live state', async (t) => {
  const files = new MemoryFiles()
  const store = new MemoryStore(files)
  const owner = new Owner(store, 'tree')
  owner.put('a', '1')
  await store.commit()
  let fail = true
  files.beforeWrite = (kind) => {
    if (fail && kind === 'append') throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })
  }
  owner.put('b', '2')
  await t.rejects(store.commit(), /ENOSPC/)
  t.same(await durable(files), { tree: [['a', '1']] }, 'nothing of the failed commit is durable')
  owner.delete('b') // the owner takes its change back (as the tree's CommitUndo does)
  owner.put('c', '3')
  fail = false
  const writes = files.counts.writes
  await store.commit()
  t.equal(files.counts.writes, writes + 1)
  t.same(await durable(files), owned(owner), 'the live state, whole')
  t.equal(files.journal!.length, 0, 'written as a checkpoint')
  owner.put('d', '4')
  await store.commit()
  t.ok(files.journal!.length > 0, 'then appends again')
})

t.test('commits while a write runs share one follow-up; a held write holds its callers', async (t) => {
  const files = new MemoryFiles()
  const store = new MemoryStore(files)
  await store.load('state')
  const owner = new Owner(store, 'state')
  const gates: Array<() => void> = []
  files.beforeWrite = () => new Promise<void>((resolve) => gates.push(resolve))
  owner.put('a', '1')
  const first = store.commit()
  t.equal(store.commit(), first, 'nothing new: the write under way')
  owner.put('b', '2')
  const second = store.commit()
  owner.put('c', '3')
  t.equal(store.commit(), second, 'changes during a write share one follow-up')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(gates.length, 1)
  gates.shift()!()
  await first
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(gates.length, 1, 'one follow-up')
  gates.shift()!()
  await second
  t.same(await durable(files), owned(owner))
})

t.test('a namespace loaded again reads what is durable, not what its earlier owner left uncommitted', async (t) => {
  const store = new MemoryStore()
  await store.load('state')
  const first = new Owner(store, 'state')
  first.put('kept', 'yes')
  await store.commit()
  first.put('lost', 'crash')
  const again = await store.load('state')
  t.same(again.ok && [...again.entries!.keys()], ['kept'])
  const second = new Owner(store, 'state')
  second.put('kept', 'yes')
  await store.commit()
  t.same(await durable(store.files), { state: [['kept', 'yes']] }, 'the dropped change never reaches the disk')
})

t.test('a look before an upgrade (peek) takes no namespace: the files are read once', async (t) => {
  const files = new MemoryFiles()
  const first = new MemoryStore(files)
  new Owner(first, 'tree').put('', 'root')
  await first.commit()
  let reads = 0
  const read = files.readJournal.bind(files)
  files.readJournal = () => {
    reads++
    return read()
  }
  const store = new MemoryStore(files)
  t.same((await store.peek('tree')).ok && [...(await store.peek('tree') as { entries: Map<string, Uint8Array> }).entries.keys()], [''])
  t.same((await store.peek('state')), { ok: true, entries: undefined })
  const loaded = await store.load('tree')
  t.same(loaded.ok && [...loaded.entries!.keys()], [''])
  t.equal(reads, 1, 'one read of the journal for the looks and the load')
})

t.test('on disk: mode 0600, a torn checkpoint never read, a power cut at every byte offset of a record', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-store-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const names = { checkpoint: 'state.checkpoint', journal: 'state.journal' }
  const files = new DiskFiles(dir, names)
  const store = new JournalStore(files)
  t.same(await store.load('tree'), { ok: true, entries: undefined })
  t.same(readdirSync(dir), [], 'nothing made by reading')
  const owner = new Owner(store, 'tree')
  owner.put('', 'root')
  await store.commit()
  t.same(readdirSync(dir), ['state.journal'])
  t.equal(statSync(files.journalPath).mode & 0o777, 0o600)
  await store.checkpoint()
  t.same(readdirSync(dir).sort(), ['state.checkpoint', 'state.journal'])
  t.equal(statSync(files.checkpointPath).mode & 0o777, 0o600)
  t.equal(statSync(files.journalPath).size, 0)
  chmodSync(files.checkpointPath, 0o644)
  await store.checkpoint()
  t.equal(statSync(files.checkpointPath).mode & 0o777, 0o644, 'nothing to fold: no checkpoint written')
  owner.put('A', 'a')
  await store.commit()
  await store.checkpoint()
  t.equal(statSync(files.checkpointPath).mode & 0o777, 0o600, 'a checkpoint restores the mode')

  owner.put('DevInfo', 'node')
  await store.commit()
  const before = owned(owner)
  const start = statSync(files.journalPath).size
  owner.put('DevInfo/Mod', 'Pi-4')
  owner.delete('A')
  await store.commit()
  const after = owned(owner)
  const full = readFileSync(files.journalPath)
  writeFileSync(join(dir, '.state.checkpoint.tmp'), readFileSync(files.checkpointPath).subarray(0, 30)) // a torn checkpoint
  const problems: string[] = []
  for (let cut = start; cut <= full.length; cut++) {
    writeFileSync(files.journalPath, full)
    truncateSync(files.journalPath, cut)
    const reopened = new JournalStore(new DiskFiles(dir, names))
    const loaded = await reopened.load('tree')
    const got = loaded.ok ? [...(loaded.entries ?? [])].map(([k, v]) => [k, dec(v)]) : loaded.error
    const expected = cut === full.length ? after.tree : before.tree
    if (JSON.stringify(got) !== JSON.stringify(expected)) problems.push(`cut at ${cut}: ${JSON.stringify(got)}`)
    if (statSync(files.journalPath).size !== (cut === full.length ? full.length : start)) problems.push(`cut at ${cut}: the torn tail stayed`)
  }
  t.same(problems, [], `${full.length - start + 1} cuts on disk, each restored whole`)
  t.notOk(existsSync(join(dir, '.state.checkpoint.tmp')), 'the torn checkpoint was removed, never read')
})
