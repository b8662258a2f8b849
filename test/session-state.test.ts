import t from 'tap'
import { encodeNonce } from '../src/auth/nonce.ts'
import { AgentState } from '../src/session/agent-state.ts'
import { NonceIssuer } from '../src/session/nonces.ts'
import { MemoryFiles, MemoryStore, readDurable } from '../src/store/index.ts'
import { encodeCheckpoint } from '../src/store/format.ts'
import { encodeLegacyStateFile } from '../src/session/legacy-state-file.ts'
import { copyOf } from './helpers/stores.ts'
import { alert, createHarness, get, headerStatus, Party, replace, SERVER, settle, status } from './helpers/session-harness.ts'

const random = (n: number) => new Uint8Array(n).map((_, k) => (k * 13 + 5) & 0xff)

async function openState(store: MemoryStore): Promise<AgentState> {
  const opened = await AgentState.open(store, random)
  if (!opened.ok) throw new Error(opened.error)
  return opened.state
}

t.test('agent state: created once, restored whole; alerts, flags and slots survive a restart', async (t) => {
  const store = new MemoryStore()
  const created = await AgentState.open(store, random)
  t.ok(created.ok && created.created)
  const state = (created as { state: AgentState }).state
  const first = state.enqueueAlert('srv', { type: 'urn:x', data: new Uint8Array([0, 1, 255]), mark: 'critical' }, 42)
  state.enqueueAlert('srv', { type: 'urn:y', data: 'text' }, 43)
  state.setAccountFlag('srv', 'firstSessionDone', true)
  state.setSlot('location', { addresses: ['10.0.0.2'], gateway: 'http://gw.local' })
  await state.save()

  const again = await AgentState.open(store, () => {
    throw new Error('a restored state needs no new key')
  })
  t.ok(again.ok && !again.created)
  const restored = (again as { state: AgentState }).state
  t.same(restored.deviceKey, state.deviceKey)
  t.same(restored.pendingAlerts('srv'), state.pendingAlerts('srv'))
  t.same(restored.pendingAlerts('srv')[0]!.alert.data, new Uint8Array([0, 1, 255]))
  t.equal(restored.accountFlag('srv', 'firstSessionDone'), true)
  t.same(restored.slot('location'), { addresses: ['10.0.0.2'], gateway: 'http://gw.local' })
  t.ok(restored.removeAlert('srv', first.id))
  t.notOk(restored.removeAlert('srv', first.id), 'gone')
  const third = restored.enqueueAlert('srv', { type: 'urn:z', data: 'z' }, 44)
  t.not(third.id, first.id, 'ids are never reused')
})

t.test('agent state: entries that are not a whole state are refused clearly and left alone', async (t) => {
  const good = new MemoryStore()
  await openState(good)
  const read = await readDurable(good.files)
  const entries = read.ok ? read.namespaces.get('state')! : new Map<string, Uint8Array>()
  const text = (s: string) => new Uint8Array(Buffer.from(s))
  const edit = (change: (m: Map<string, Uint8Array>) => void) => {
    const copy = new Map(entries)
    change(copy)
    return copy
  }
  const cases: Array<[string, Map<string, Uint8Array>, RegExp]> = [
    ['a short key', edit((m) => m.set('deviceKey', new Uint8Array(31))), /^agent state: deviceKey: not a 32-byte key$/],
    ['no key', edit((m) => m.delete('deviceKey')), /^agent state: deviceKey: missing$/],
    ['a bad counter', edit((m) => m.set('nonceReservedUntil', text('-1'))), /^agent state: nonceReservedUntil: not a counter$/],
    ['an alert without data', edit((m) => m.set('alert/1', text('{"server":"srv","type":"urn:x"}'))), /^agent state: alert\/1: an alert without data$/],
    ['a slot that is not JSON', edit((m) => m.set('slot/x', text('{'))), /^agent state: slot\/x: not UTF-8 JSON$/],
    ['an unknown entry', edit((m) => m.set('firmware/1', text('{}'))), /^agent state: firmware\/1: not an entry this agent knows$/],
  ]
  for (const [name, bad, reason] of cases) {
    const checkpoint = encodeCheckpoint(1, [...bad].map(([k, v]): [string, string, Uint8Array] => ['state', k, v]))
    const store = new MemoryStore(new MemoryFiles({ checkpoint }))
    const opened = await AgentState.open(store, random)
    t.notOk(opened.ok, name)
    if (!opened.ok) t.match(opened.error, reason, name)
    t.equal(store.saves, 0, `${name}: not overwritten`)
  }
})

t.test('agent state of an earlier version: read whole, or refused with one line', async (t) => {
  const doc = {
    deviceKey: Buffer.alloc(32, 9).toString('base64'), nonceReservedUntil: '128', alertSeq: 4,
    pendingAlerts: { srv: [{ id: '4', type: 'urn:x', b64: 'AAH/', mark: 'critical', queuedAt: 42 }] },
    accounts: { srv: { firstSessionDone: true } },
    slots: { 'gwmo.location': { location: { addresses: ['10.0.0.2'] } } },
  }
  const file = encodeLegacyStateFile(doc)
  const read = AgentState.fromLegacyFile(file)
  if (!read.ok) return t.fail(read.error)
  const store = new MemoryStore()
  read.state.attachStore(store)
  await read.state.save()
  const state = await openState(copyOf(store))
  t.same(state.deviceKey, new Uint8Array(32).fill(9))
  t.equal(state.nonceReservedUntil, 128n)
  t.same(state.pendingAlerts('srv'), [{ id: '4', alert: { type: 'urn:x', data: new Uint8Array([0, 1, 255]), mark: 'critical' }, queuedAt: 42 }])
  t.equal(state.accountFlag('srv', 'firstSessionDone'), true)
  t.same(state.slot('gwmo.location'), doc.slots['gwmo.location'])
  t.equal(state.enqueueAlert('srv', { type: 'urn:y', data: 'y' }, 43).id, '5', 'ids go on from the old count')

  const text = Buffer.from(file).toString('utf8')
  const cases: Array<[string, string, RegExp]> = [
    ['flipped body', text.slice(0, -3) + (text.at(-3) === 'a' ? 'b' : 'a') + text.slice(-2), /checksum/],
    ['truncated', text.slice(0, text.length - 10), /checksum/],
    ['foreign', 'hello world', /not an agent state file/],
    ['newer', text.replace('GWMO-AGENT-STATE 1 ', 'GWMO-AGENT-STATE 2 '), /version 2 is newer/],
  ]
  for (const [name, content, reason] of cases) {
    const refused = AgentState.fromLegacyFile(new Uint8Array(Buffer.from(content, 'utf8')))
    t.notOk(refused.ok, name)
    if (!refused.ok) t.match(refused.error, reason, name)
  }
})

t.test('nonces: unique, a disk write per block only, and a crash never brings one back', async (t) => {
  const store = new MemoryStore()
  const issued = new Set<string>()
  let state = await openState(store)
  const savesAtStart = store.saves
  let issuer = new NonceIssuer(state, { block: 4 })
  for (let k = 0; k < 10; k++) issued.add(encodeNonce(await issuer.issue()))
  t.equal(issued.size, 10)
  t.equal(store.saves - savesAtStart, 3, 'ten nonces in blocks of four: three reservations')
  // Crashes at various points: the process dies without saving anything more; a new one starts from the store.
  for (const count of [1, 3, 4, 5, 0, 2]) {
    state = await openState(store)
    issuer = new NonceIssuer(state, { block: 4 })
    for (let k = 0; k < count; k++) {
      const nonce = encodeNonce(await issuer.issue())
      t.notOk(issued.has(nonce), `restart issuing ${count}: nonce ${k} is new`)
      issued.add(nonce)
    }
  }
})

t.test('the engine restarted from its stores never hands out a nonce it gave before', async (t) => {
  const treeStore = new MemoryStore()
  const stateStore = new MemoryStore()
  const given = new Set<string>()
  for (let run = 0; run < 3; run++) {
    const h = await createHarness({ treeStore, stateStore, constants: { authFailureBurst: 100 } })
    const server = new Party(SERVER)
    for (let k = 0; k < 5; k++) {
      // Bad credentials: every refusal carries a fresh nonce.
      await h.manager.receive(server.message({ sessionId: `${run}${k}`, msgId: 1, cred: 'bad', body: [get('./DevInfo/Mod')] }))
      const nonce = headerStatus(h.decoded())?.chal?.meta.nextNonce
      t.ok(nonce)
      t.notOk(given.has(nonce!), `run ${run}, answer ${k}: a new nonce`)
      given.add(nonce!)
    }
    // "Crash": nothing flushed or stopped; the next run starts from whatever the stores hold.
  }
})

t.test('firstSessionDone is set (and persisted) when the first session with a server completes', async (t) => {
  const h = await createHarness()
  const server = new Party(SERVER)
  t.equal(h.state.accountFlag(SERVER.serverId, 'firstSessionDone'), undefined)
  await h.manager.receive(server.message({ sessionId: '1', msgId: 1, body: [replace('./DevInfo/Lang', 'de')] }))
  server.learnNonce(h.decoded())
  await h.manager.receive(server.message({ sessionId: '1', msgId: 2, body: [status('1', '0', 'SyncHdr', 212)] }))
  await settle()
  t.equal(h.state.accountFlag(SERVER.serverId, 'firstSessionDone'), true)
  // Handlers learn whether a session is the first one (GwMO 1.0, 8.4.1).
  const firsts: boolean[] = []
  h.manager.registerAlert(1299, (ctx) => {
    firsts.push(ctx.session.first)
    return 200
  })
  // The closing message spent the nonce the reply gave: the next session begins with one challenge (binding.md §6).
  await h.manager.receive(server.message({ sessionId: '2', msgId: 1, body: [alert('1299')] }))
  t.equal(headerStatus(h.decoded())?.data, '401')
  server.learnNonce(h.decoded())
  await h.manager.receive(server.message({ sessionId: '2', msgId: 2, body: [alert('1299')] }))
  t.same(firsts, [false])
  await h.manager.stop()
  const reopened = await openState(h.stateStore)
  t.equal(reopened.accountFlag(SERVER.serverId, 'firstSessionDone'), true)
})
