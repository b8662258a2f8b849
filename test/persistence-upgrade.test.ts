// Upgrade of a device from the files of earlier versions (tree.dat, agent-state.dat) to the store: read whole,
// written as the first checkpoint, removed only once that is durable; a stop at any point of it loses nothing;
// a corrupt or newer old file is refused with one line and nothing is written. Then the real agent, started on
// the files an earlier version left, goes on where that version stopped.
import t, { type Test } from 'tap'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { migrateLegacyFiles, LEGACY_STATE_FILES } from '../src/runtime/migrate.ts'
import { STATE_FILES } from '../src/runtime/agent.ts'
import { AgentState } from '../src/session/agent-state.ts'
import { encodeLegacyStateFile, type LegacyStateDocument } from '../src/session/legacy-state-file.ts'
import { DiskFiles, JournalStore, restore } from '../src/store/index.ts'
import { ManagementTree, TREE_NAMESPACE } from '../src/tree/tree.ts'
import { populatedTree } from './fixtures/tree/trees.ts'
import { captureLog } from './helpers/gwmo-harness.ts'
import { AgentProcess, cleanUpAgent, factoryServer, finalStatus } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer } from './peers/dm-server.ts'
import { resultFor } from './peers/session-record.ts'
import { get, replace } from './peers/syncml.ts'

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')

const LEGACY_STATE: LegacyStateDocument = {
  deviceKey: Buffer.alloc(32, 5).toString('base64'),
  nonceReservedUntil: '192',
  alertSeq: 7,
  pendingAlerts: { srv1: [{ id: '7', type: 'urn:oma:gwmo:1.0:LocationUpdate', text: '<x/>', queuedAt: 1000 }] },
  accounts: { srv1: { firstSessionDone: true, spentNonces: { './DMAcc/srv/AppAuth/2': 'AAEC' } } },
  slots: { 'runtime.running': true, 'gwmo.location': { location: { addresses: ['10.0.0.2'] } } },
}

function stateDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-upgrade-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function writeLegacy(dir: string, tree: ManagementTree, state: LegacyStateDocument): void {
  writeFileSync(join(dir, LEGACY_STATE_FILES.tree), tree.serialize(), { mode: 0o600 })
  writeFileSync(join(dir, LEGACY_STATE_FILES.state), encodeLegacyStateFile(state), { mode: 0o600 })
}

async function openBoth(dir: string) {
  const store = new JournalStore(new DiskFiles(dir, STATE_FILES))
  const tree = await ManagementTree.open(store, { factory: () => ({ error: 'the factory tree was built' }) })
  const state = await AgentState.open(store, () => {
    throw new Error('a new device key was made')
  })
  if (!tree.ok) throw new Error(tree.error)
  if (!state.ok) throw new Error(state.error)
  return { store, tree: tree.tree, state: state.state }
}

t.test('the old files are read whole, written as the first checkpoint, then removed', async (t) => {
  const dir = stateDir(t)
  const tree = populatedTree()
  writeLegacy(dir, tree, LEGACY_STATE)
  const log = captureLog('debug')
  t.same(await migrateLegacyFiles(dir, new JournalStore(new DiskFiles(dir, STATE_FILES)), log.logger), { ok: true })
  t.same(readdirSync(dir).sort(), [STATE_FILES.checkpoint, STATE_FILES.journal].filter((f) => existsSync(join(dir, f))).sort(), 'only the store is left')
  t.ok(existsSync(join(dir, STATE_FILES.checkpoint)), 'written as a checkpoint')
  t.match(log.lines, [{ level: 'info', msg: 'state of an earlier version moved into the store', tree: true, state: true }])

  const opened = await openBoth(dir)
  t.equal(hex(opened.tree.serialize()), hex(tree.serialize()), 'the tree, node for node and in order')
  t.same(opened.state.deviceKey, new Uint8Array(32).fill(5), 'the device key')
  t.equal(opened.state.nonceReservedUntil, 192n, 'the nonce reservation (a crash never brings an older nonce back)')
  t.same(opened.state.pendingAlerts('srv1').map((a) => [a.id, a.alert.data]), [['7', '<x/>']], 'the queued alerts')
  t.same(opened.state.accountFlag('srv1', 'spentNonces'), { './DMAcc/srv/AppAuth/2': 'AAEC' }, 'the spent nonces')
  t.equal(opened.state.slot('runtime.running'), true, 'and the note of a run that did not stop cleanly')

  t.same(await migrateLegacyFiles(dir, new JournalStore(new DiskFiles(dir, STATE_FILES)), log.logger), { ok: true }, 'a later start has nothing to do')
  t.equal(log.lines.length, 1)
})

t.test('a stop at any point of the upgrade loses nothing', async (t) => {
  // Before the checkpoint was renamed into place: the old files are still the state.
  const before = stateDir(t)
  const tree = populatedTree()
  writeLegacy(before, tree, LEGACY_STATE)
  writeFileSync(join(before, `.${STATE_FILES.checkpoint}.tmp`), new Uint8Array(40))
  t.same(await migrateLegacyFiles(before, new JournalStore(new DiskFiles(before, STATE_FILES)), captureLog().logger), { ok: true })
  t.equal(hex((await openBoth(before)).tree.serialize()), hex(tree.serialize()))

  // After the checkpoint was durable, before the old files were removed: the store holds the state (changed
  // since by this version), and the old files are only removed.
  const after = stateDir(t)
  writeLegacy(after, tree, LEGACY_STATE)
  await migrateLegacyFiles(after, new JournalStore(new DiskFiles(after, STATE_FILES)), captureLog().logger)
  const running = await openBoth(after)
  t.equal(running.tree.replace('./Vendor/leaf', { format: 'chr', data: 'changed by this version' }, 'device'), 200)
  await running.tree.flush()
  writeLegacy(after, tree, LEGACY_STATE)
  t.same(await migrateLegacyFiles(after, new JournalStore(new DiskFiles(after, STATE_FILES)), captureLog().logger), { ok: true })
  t.notOk(existsSync(join(after, LEGACY_STATE_FILES.tree)) || existsSync(join(after, LEGACY_STATE_FILES.state)), 'the old files are removed')
  t.equal((await openBoth(after)).tree.get('./Vendor/leaf', 'device').value?.data, 'changed by this version', 'never read over the store')

  // Only a tree (an earlier version stopped before its first state save): the state is made afresh.
  const treeOnly = stateDir(t)
  writeFileSync(join(treeOnly, LEGACY_STATE_FILES.tree), tree.serialize())
  t.same(await migrateLegacyFiles(treeOnly, new JournalStore(new DiskFiles(treeOnly, STATE_FILES)), captureLog().logger), { ok: true })
  const store = new JournalStore(new DiskFiles(treeOnly, STATE_FILES))
  t.ok((await ManagementTree.open(store, { factory: () => ({ error: 'built' }) })).ok)
  t.match(await AgentState.open(store, (n) => new Uint8Array(n)), { ok: true, created: true })
})

t.test('a corrupt or newer old file is refused with one line, and nothing is written', async (t) => {
  const good = populatedTree().serialize()
  const corrupt = good.slice()
  corrupt[corrupt.length - 2]! ^= 0xff
  const newer = good.slice()
  new DataView(newer.buffer).setUint16(8, 2)
  const rows: [string, Uint8Array, Uint8Array, string][] = [
    ['a corrupt tree', corrupt, encodeLegacyStateFile(LEGACY_STATE), 'tree: checksum mismatch: the file is corrupt'],
    ['a newer tree', newer, encodeLegacyStateFile(LEGACY_STATE), 'tree: version 2 is newer than this agent reads (1)'],
    ['a newer state', good, new Uint8Array(Buffer.from(Buffer.from(encodeLegacyStateFile(LEGACY_STATE)).toString().replace('GWMO-AGENT-STATE 1', 'GWMO-AGENT-STATE 2'))),
      'agent state: version 2 is newer than this agent reads (1)'],
  ]
  for (const [name, treeBytes, stateBytes, error] of rows) {
    const dir = stateDir(t)
    writeFileSync(join(dir, LEGACY_STATE_FILES.tree), treeBytes)
    writeFileSync(join(dir, LEGACY_STATE_FILES.state), stateBytes)
    t.same(await migrateLegacyFiles(dir, new JournalStore(new DiskFiles(dir, STATE_FILES)), captureLog().logger), { ok: false, error }, name)
    t.same(readdirSync(dir).sort(), [LEGACY_STATE_FILES.state, LEGACY_STATE_FILES.tree].sort(), `${name}: nothing written, nothing removed`)
    t.equal(hex(readFileSync(join(dir, LEGACY_STATE_FILES.tree))), hex(treeBytes), `${name}: left as it was`)
  }
})

/** The store of `stateDir` turned back into the files an earlier version kept. */
function downgrade(stateDir: string): void {
  const read = (name: string) => (existsSync(join(stateDir, name)) ? new Uint8Array(readFileSync(join(stateDir, name))) : undefined)
  const stored = restore(read(STATE_FILES.checkpoint), read(STATE_FILES.journal))
  if (!stored.ok) throw new Error(stored.error)
  const tree = ManagementTree.fromEntries(stored.namespaces.get(TREE_NAMESPACE)!)
  if (!tree.ok) throw new Error(tree.error)
  const doc: LegacyStateDocument = { deviceKey: '', nonceReservedUntil: '0', alertSeq: 0, pendingAlerts: {}, accounts: {}, slots: {} }
  for (const [key, value] of stored.namespaces.get('state')!) {
    const text = Buffer.from(value).toString()
    if (key === 'deviceKey') doc.deviceKey = Buffer.from(value).toString('base64')
    else if (key === 'nonceReservedUntil') doc.nonceReservedUntil = text
    else if (key === 'alertSeq') doc.alertSeq = Number(text)
    else if (key.startsWith('alert/')) {
      const { server, ...alert } = JSON.parse(text) as { server: string; type: string; queuedAt: number }
      ;(doc.pendingAlerts[server] ??= []).push({ ...alert, id: key.slice(6) })
    } else if (key.startsWith('flag/')) {
      const [name, ...server] = key.slice(5).split('/')
      ;(doc.accounts[server.join('/')] ??= {})[name!] = JSON.parse(text)
    } else if (key.startsWith('slot/')) doc.slots[key.slice(5)] = JSON.parse(text)
  }
  for (const name of [STATE_FILES.checkpoint, STATE_FILES.journal]) rmSync(join(stateDir, name), { force: true })
  writeLegacy(stateDir, tree.tree, doc)
}

t.test('the real agent, started on the files of an earlier version, goes on where it stopped', async (t) => {
  const broker = await startMosquitto()
  t.teardown(() => broker.stop())
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  server.queueSession([replace('./DMAcc/dms/Name', 'Renamed before the upgrade')])
  const first = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url }))
  const factorySession = await server.waitForSession((s) => s.origin === 'device' && s.closed, 25_000)
  await first.waitForLog((l) => l.msg === 'session ended' && l.sessionId === factorySession.sessionId, 15_000)
  t.equal((await first.stop()).code, 0)
  downgrade(first.stateDir)
  t.same(readdirSync(first.stateDir).sort(), [LEGACY_STATE_FILES.state, LEGACY_STATE_FILES.tree].sort(), 'the files of an earlier version')

  const upgraded = cleanUpAgent(t, first.restart())
  await upgraded.online()
  const started = await upgraded.waitForLog((l) => l.msg === 'started')
  t.equal(started.firstStart, false, 'not a first start: the factory bootstrap does not run again')
  t.ok(upgraded.logs.some((l) => l.msg === 'state of an earlier version moved into the store'), 'the upgrade says so')
  t.notOk(existsSync(join(first.stateDir, LEGACY_STATE_FILES.tree)) || existsSync(join(first.stateDir, LEGACY_STATE_FILES.state)), 'the old files are gone')
  const pushed = await server.pushSession([get('./DMAcc/dms/Name')])
  const done = await server.waitForSession((s) => s === pushed && s.closed, 20_000)
  t.equal(finalStatus(done, './DMAcc/dms/Name'), '200', 'the server\'s credentials and nonces carried over')
  t.equal(resultFor(done, './DMAcc/dms/Name'), 'Renamed before the upgrade', 'and the tree')
  t.equal((await upgraded.stop()).code, 0)
})
