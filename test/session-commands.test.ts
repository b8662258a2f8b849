import t from 'tap'
import type { Command, Results, SyncMLMessage } from '../src/codec/syncml-model.ts'
import { decodeMessage } from '../src/codec/syncml.ts'
import type { InboundMessage } from '../src/session/port.ts'
import { durableState, durableTree, failingStore, GatedStore } from './helpers/stores.ts'
import {
  add, alert, atomic, copy, createHarness, del, exec, get, headerStatus, Party, replace, sequence, SERVER, settle,
  status, statusCodes, type Harness,
} from './helpers/session-harness.ts'

const OPEN_ACL = 'Add=*&Delete=*&Exec=*&Get=*&Replace=*'

/** A harness with a `./Vendor` subtree any server may change. */
async function setup(): Promise<{ h: Harness; server: Party }> {
  const h = await createHarness()
  t.equal(h.tree.add('./Vendor', { format: 'node' }, 'device'), 200)
  t.equal(h.tree.replace('./Vendor?prop=ACL', { format: 'chr', data: OPEN_ACL }, 'device'), 200)
  t.equal(h.tree.add('./Vendor/keep', { format: 'chr', data: 'kept' }, 'device'), 200)
  await h.tree.flush()
  return { h, server: new Party(SERVER) }
}

let sessions = 0x100
/**
 * The server pushes a new session holding `body` (after the challenge its spent nonce draws, binding.md §6), then
 * closes it; returns the device's reply to the commands.
 */
async function push(h: Harness, server: Party, body: Command[], inject?: string): Promise<SyncMLMessage> {
  const sessionId = (sessions++).toString(16).toUpperCase()
  const send = async (msgId: number): Promise<SyncMLMessage> => {
    const before = h.sent.length
    let inbound: InboundMessage = server.message({ sessionId, msgId, body })
    if (inject !== undefined) {
      const text = Buffer.from(inbound.payload).toString('utf8').replace('<Final/>', `${inject}<Final/>`)
      inbound = { ...inbound, payload: new Uint8Array(Buffer.from(text, 'utf8')) }
    }
    await h.manager.receive(inbound)
    if (h.sent.length !== before + 1) throw new Error(`expected one reply, got ${h.sent.length - before}`)
    const reply = h.decoded()
    server.learnNonce(reply)
    return reply
  }
  let msgId = 1
  let reply = await send(msgId)
  if (headerStatus(reply)?.data === '401') reply = await send(++msgId)
  // Package 4 with nothing but Status ends the session (binding.md §3).
  await h.manager.receive(server.message({ sessionId, msgId: msgId + 1, body: [status(reply.hdr.msgId, '0', 'SyncHdr', 212)] }))
  await settle(5)
  return reply
}

const leaf = (h: Harness, uri: string) => h.tree.get(uri, 'device').value?.data
const results = (msg: SyncMLMessage) => msg.body.filter((c): c is Results => c.kind === 'Results')

t.test('Get: Results with Source LocURI and Meta Format/Type, 200; or the tree code', async (t) => {
  const { h, server } = await setup()
  const reply = await push(h, server, [get('./DevInfo/Mod'), get('./Nope'), get('./DevInfo')])
  t.equal(headerStatus(reply)?.data, '212')
  t.same(statusCodes(reply), { '0': '212', '1': '200', '2': '404', '3': '200' })
  const [mod, info] = results(reply)
  t.equal(mod?.cmdRef, '1')
  t.same(mod?.items, [{ source: { locUri: './DevInfo/Mod' }, meta: { format: 'chr' }, data: 'Pi-4' }])
  t.equal(info?.cmdRef, '3')
  t.equal(info?.items[0]?.meta?.format, 'node')
  t.equal(info?.items[0]?.data, 'DevId/Man/Mod/DmV/Lang')
  t.equal(results(reply).length, 2, 'no Results for the missing node')
})

t.test('Add, Replace, Delete, Copy, Exec: one Status per item with the tree code', async (t) => {
  const { h, server } = await setup()
  h.tree.registerExec('./Vendor/run', () => 200)
  t.equal(h.tree.add('./Vendor/run', { format: 'chr', data: '' }, 'device'), 200)
  const reply = await push(h, server, [
    add('./Vendor/a', 'one'), // 1
    add('./Vendor/a', 'again'), // 2: exists
    replace('./Vendor/keep', 'changed'), // 3
    replace('./Vendor/missing', 'x'), // 4
    del('./DevInfo/Mod'), // 5: permanent
    copy('./DevInfo/Man', './Vendor/man'), // 6
    exec('./Vendor/run'), // 7
    exec('./Vendor/keep'), // 8: no handler
    del('./Vendor/a'), // 9
    replace('./DevInfo/Mod', 'hacked'), // 10: not for servers
  ])
  t.same(statusCodes(reply), {
    '0': '212', '1': '200', '2': '418', '3': '200', '4': '404', '5': '405', '6': '200', '7': '200', '8': '405', '9': '200', '10': '405',
  })
  const adds = reply.body.filter((c) => c.kind === 'Status' && c.cmdRef === '1')
  t.same(adds.map((s) => s.kind === 'Status' && s.targetRefs), [['./Vendor/a']], 'TargetRef names the item')
  t.equal(leaf(h, './Vendor/keep'), 'changed')
  t.equal(leaf(h, './Vendor/man'), 'Acme')
  t.equal(leaf(h, './DevInfo/Mod'), 'Pi-4')
  t.equal(h.tree.get('./Vendor/a', 'device').status, 404)
})

t.test('Atomic: all or nothing, 507 with 216 / own code / 215', async (t) => {
  const { h, server } = await setup()
  const failed = await push(h, server, [
    atomic(add('./Vendor/x', '1'), replace('./Vendor/keep', 'atomic'), add('./Vendor/x', '2'), add('./Vendor/y', '3'), get('./Vendor/keep')),
  ])
  // CmdIDs: Atomic 1, inner 2..6
  t.same(statusCodes(failed), { '0': '212', '1': '507', '2': '216', '3': '216', '4': '418', '5': '215', '6': '215' })
  t.equal(h.tree.get('./Vendor/x', 'device').status, 404, 'rolled back')
  t.equal(leaf(h, './Vendor/keep'), 'kept', 'rolled back')
  t.equal(results(failed).length, 0)

  const good = await push(h, server, [atomic(add('./Vendor/x', '1'), replace('./Vendor/keep', 'atomic'), get('./Vendor/x'))])
  t.same(statusCodes(good), { '0': '212', '1': '200', '2': '200', '3': '200', '4': '200' })
  t.equal(leaf(h, './Vendor/x'), '1')
  t.equal(leaf(h, './Vendor/keep'), 'atomic')
  t.equal(results(good)[0]?.items[0]?.data, '1', 'Get inside Atomic sees the Atomic writes')

  const nested = await push(h, server, [atomic(add('./Vendor/z', '1'), atomic(add('./Vendor/w', '2')))])
  t.equal(statusCodes(nested)['1'], '507', 'a nested Atomic fails its parent')
  t.equal(statusCodes(nested)['3'], '500')
  t.equal(h.tree.get('./Vendor/z', 'device').status, 404)
})

t.test('Sequence: in order, each with its own Status', async (t) => {
  const { h, server } = await setup()
  const reply = await push(h, server, [sequence(add('./Vendor/s', 'first'), replace('./Vendor/s', 'second'), del('./Vendor/nothing'), get('./Vendor/s'))])
  t.same(statusCodes(reply), { '0': '212', '1': '200', '2': '200', '3': '200', '4': '404', '5': '200' })
  t.equal(results(reply)[0]?.items[0]?.data, 'second')
})

t.test('Unknown commands 406, malformed 400, Results 406; nothing malformed changes the tree', async (t) => {
  const { h, server } = await setup()
  const reply = await push(
    h,
    server,
    [add('./Vendor/before', 'ok')],
    '<Sync><CmdID>2</CmdID></Sync><Replace><CmdID>3</CmdID></Replace>' +
      '<Results><CmdID>4</CmdID><MsgRef>1</MsgRef><CmdRef>1</CmdRef><Item><Source><LocURI>./x</LocURI></Source><Data>1</Data></Item></Results>',
  )
  t.same(statusCodes(reply), { '0': '212', '1': '200', '2': '406', '3': '400', '4': '406' })
  const inAtomic = await push(h, server, [], '<Atomic><CmdID>1</CmdID><Add><CmdID>2</CmdID><Item><Target><LocURI>./Vendor/in</LocURI></Target><Data>x</Data></Item></Add><Add><CmdID>3</CmdID></Add></Atomic>')
  t.same(statusCodes(inAtomic), { '0': '212', '1': '507', '2': '216', '3': '400' })
  t.equal(h.tree.get('./Vendor/in', 'device').status, 404)
})

t.test('alerts: 1222 → 200, DISPLAY → 200, other user interaction → 406, unregistered → 406, registered → handler', async (t) => {
  const { h, server } = await setup()
  let seen: string | undefined
  h.manager.registerAlert(1299, async (ctx) => {
    seen = ctx.party.serverId
    await ctx.sendGenericAlert({ type: 'urn:x:answer', data: 'hello' })
    return 202
  })
  const reply = await push(h, server, [
    alert('1222'), alert('1100', [{ data: 'Hi' }]), alert('1101'), alert('1103'), alert('1298'), alert('1299'),
  ])
  t.same(statusCodes(reply), { '0': '212', '1': '200', '2': '200', '3': '406', '4': '406', '5': '406', '6': '202' })
  t.equal(seen, SERVER.serverId)
  const generic = reply.body.find((c) => c.kind === 'Alert' && c.data === '1226')
  t.ok(generic, 'the handler added a Generic Alert to the reply')
  t.same(h.state.pendingAlerts(SERVER.serverId).map((a) => a.alert.type), ['urn:x:answer'], 'queued until acknowledged')
})

t.test("a Generic Alert in the reply does not wait for the state file; it is persisted and queued all the same", async (t) => {
  // A state store whose saves stay pending until released: a reply that waited for the disk would not leave.
  const held = new GatedStore()
  held.gated = false
  const h = await createHarness({ stateStore: held })
  const server = new Party(SERVER)
  h.manager.registerAlert(1299, async (ctx) => {
    await ctx.sendGenericAlert({ type: 'urn:x:answer', data: 'hello' })
    return 200
  })
  await push(h, server, [get('./DevInfo/Mod')]) // reserves the nonces ahead, which does wait for the disk
  held.gated = true
  const saved = held.saves
  // The closing message spent the server's nonce: one challenge first (binding.md §6).
  await h.manager.receive(server.message({ sessionId: '3A1', msgId: 1, body: [alert('1299')] }))
  server.learnNonce(h.decoded())
  const before = h.sent.length
  await h.manager.receive(server.message({ sessionId: '3A1', msgId: 2, body: [alert('1299')] }))
  await settle(5)
  t.equal(h.sent.length, before + 1, 'the reply left while the save was still pending')
  t.ok(h.decoded().body.some((c) => c.kind === 'Alert' && c.data === '1226'), 'carrying the Generic Alert')
  t.same(h.state.pendingAlerts(SERVER.serverId).map((a) => a.alert.type), ['urn:x:answer'], 'queued meanwhile')
  t.equal(held.saves, saved, 'nothing written yet')
  held.gated = false
  while (held.pending() > 0) held.release()
  await settle(5)
  t.same((await durableState(held)).pendingAlerts(SERVER.serverId).map((a) => a.alert.type), ['urn:x:answer'], 'persisted once the save ran')
})

t.test('a commit the validator refuses turns every write 200 into 500, and nothing is applied', async (t) => {
  const { h, server } = await setup()
  // An account without ServerID and AppAddr is invalid (DMAcc MO).
  const reply = await push(h, server, [add('./Vendor/ok', 'fine'), add('./DMAcc/bad/AppID', 'w7'), get('./Vendor/keep')])
  t.same(statusCodes(reply), { '0': '212', '1': '500', '2': '500', '3': '200' })
  t.equal(h.tree.get('./Vendor/ok', 'device').status, 404)
  t.ok(h.log.lines.some((l) => l.msg === 'commit refused by validation' && JSON.stringify(l).includes('./DMAcc/bad')))
})

t.test('the reply goes out only once the change is durable in the store', async (t) => {
  const seen: Array<string | undefined> = []
  let h: Harness | undefined
  h = await createHarness({
    onSend: async () => {
      const stored = await durableTree(h!.treeStore)
      seen.push(stored.ok ? (stored.tree.get('./Vendor/durable', 'device').value?.data as string | undefined) : 'corrupt')
    },
  })
  h.tree.add('./Vendor', { format: 'node' }, 'device')
  h.tree.replace('./Vendor?prop=ACL', { format: 'chr', data: OPEN_ACL }, 'device')
  await h.tree.flush()
  await push(h, new Party(SERVER), [add('./Vendor/durable', 'yes')])
  t.same(seen, ['yes'])
})

t.test('a store that cannot take the change (disk full): every write 500, nothing applied, the next message stores', async (t) => {
  let full = false
  const treeStore = failingStore(() => full)
  const h = await createHarness({ treeStore })
  const server = new Party(SERVER)
  t.equal(h.tree.add('./Vendor', { format: 'node' }, 'device'), 200)
  t.equal(h.tree.replace('./Vendor?prop=ACL', { format: 'chr', data: OPEN_ACL }, 'device'), 200)
  t.equal(h.tree.add('./Vendor/keep', { format: 'chr', data: 'kept' }, 'device'), 200)
  await h.tree.flush()

  full = true
  const refused = await push(h, server, [get('./Vendor/keep'), add('./Vendor/new', 'v'), replace('./Vendor/keep', 'changed'), del('./Vendor/keep')])
  t.same(statusCodes(refused), { '0': '212', '1': '200', '2': '500', '3': '500', '4': '500' }, 'the writes 500, the Get answered')
  t.same(results(refused)[0]?.items[0]?.data, 'kept')
  t.equal(h.tree.get('./Vendor/new', 'device').status, 404, 'the Add is not in the tree')
  t.equal(leaf(h, './Vendor/keep'), 'kept', 'the Replace and Delete are not either')
  t.ok(h.log.lines.some((l) => l.level === 'error' && String(l.msg).startsWith('changes not stored') && JSON.stringify(l).includes('ENOSPC')),
    'one error line names the cause')

  full = false
  const stored = await push(h, server, [add('./Vendor/new', 'v')])
  t.same(statusCodes(stored), { '0': '212', '1': '200' }, 'once the disk has room, the same Add succeeds')
  const onDisk = await durableTree(treeStore)
  t.equal(onDisk.ok && onDisk.tree.get('./Vendor/new', 'device').value?.data, 'v', 'and is durable')
})

t.test('WBXML in, WBXML out', async (t) => {
  const { h, server } = await setup()
  await h.manager.receive(server.message({ sessionId: '77', msgId: 1, body: [get('./DevInfo/Man')], encoding: 'wbxml' }))
  const out = h.sent[0]!
  t.equal(out.contentType, 'application/vnd.syncml.dm+wbxml')
  t.ok(out.payload[0]! <= 3, 'a WBXML version byte')
  const reply = decodeMessage(out.payload, out.contentType)
  t.ok(reply.ok)
  if (reply.ok) t.equal(results(reply.value)[0]?.items[0]?.data, 'Acme')
  await settle()
})
