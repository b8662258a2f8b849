import t from 'tap'
import { encodeNonce } from '../src/auth/nonce.ts'
import { AgentState } from '../src/session/agent-state.ts'
import { NonceIssuer } from '../src/session/nonces.ts'
import { MemoryStore } from '../src/tree/memory-store.ts'
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

t.test('agent state: a corrupt, foreign or newer file is refused clearly and left alone', async (t) => {
  const good = new MemoryStore()
  await openState(good)
  const bytes = (await good.load())!
  const text = Buffer.from(bytes).toString('utf8')
  const cases: Array<[string, string, RegExp]> = [
    ['flipped body', text.slice(0, -3) + (text.at(-3) === 'a' ? 'b' : 'a') + text.slice(-2), /checksum/],
    ['truncated', text.slice(0, text.length - 10), /checksum/],
    ['foreign', 'hello world', /not an agent state file/],
    ['newer', text.replace('GWMO-AGENT-STATE 1 ', 'GWMO-AGENT-STATE 2 '), /version 2 is newer/],
  ]
  for (const [name, content, reason] of cases) {
    const store = new MemoryStore(new Uint8Array(Buffer.from(content, 'utf8')))
    const opened = await AgentState.open(store, random)
    t.notOk(opened.ok, name)
    if (!opened.ok) t.match(opened.error, reason, name)
    t.equal(store.saves, 0, `${name}: not overwritten`)
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
