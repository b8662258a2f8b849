// The session calls external nodes (binding.md §8): Get awaits `get`, Replace writes through `replace` after the
// message's commit is durable (or at its Atomic's end, set back when one fails), Exec awaits `exec`; every
// failure is its command's status and one log line, never a crash.
import t from 'tap'
import type { Command, Results, SyncMLMessage } from '../src/codec/syncml-model.ts'
import { SyncMLStatusError } from '../src/errors.ts'
import type { ExternalCall, ExternalNode, ExternalValue } from '../src/tree/external.ts'
import { durableTree, failingStore } from './helpers/stores.ts'
import { atomic, copy, createHarness, exec, get, Party, push, replace, SERVER, settle, status, statusCodes, type Harness } from './helpers/session-harness.ts'

const SRV = SERVER.serverId

let sessions = 0x200
/** The server pushes a session holding `body` (the harness's `push`: after the 401 it draws), then closes it. */
async function pushAndClose(h: Harness, server: Party, body: Command[]): Promise<SyncMLMessage> {
  const sessionId = (sessions++).toString(16).toUpperCase()
  const { reply, nextMsgId } = await push(h, server, sessionId, body)
  if (reply === undefined) throw new Error('no reply from the device')
  await h.manager.receive(server.message({ sessionId, msgId: nextMsgId, body: [status(reply.hdr.msgId, '0', 'SyncHdr', 212)] }))
  await settle(5)
  return reply
}

const results = (msg: SyncMLMessage) => msg.body.filter((c): c is Results => c.kind === 'Results').flatMap((r) => r.items)
const text = (v: ExternalValue) => (typeof v === 'string' ? v : Buffer.from(v).toString('utf8'))
const logged = (h: Harness, msg: string) => h.log.lines.filter((l) => l.msg === msg)

/** A node backed by a variable, recording every call. */
function backed(initial: string, options: { failWrite?: (v: string) => unknown } = {}) {
  const calls: Array<{ op: string; value?: string; call: ExternalCall }> = []
  const box = { value: initial, calls }
  const node: ExternalNode = {
    get: async (call) => {
      calls.push({ op: 'get', call })
      return box.value
    },
    replace: async (value, call) => {
      calls.push({ op: 'replace', value: text(value), call })
      const failure = options.failWrite?.(text(value))
      if (failure !== undefined) throw failure
      box.value = text(value)
    },
  }
  return { box, node }
}

t.test('Get awaits the callback and serves its value with the node\'s format and type', async (t) => {
  const h = await createHarness()
  const temp = backed('45000')
  t.ok(h.tree.mount('./Vendor/Sensors/CpuTemp', { format: 'int', type: 'text/x-millicelsius', acl: `Get=${SRV}` }, temp.node).ok)
  await h.tree.flush()
  const reply = await pushAndClose(h, new Party(SERVER), [get('./Vendor/Sensors/CpuTemp', './Vendor/Sensors')])
  t.same(statusCodes(reply), { '0': '212', '1': '200,200' })
  t.same(results(reply)[0], { source: { locUri: './Vendor/Sensors/CpuTemp' }, meta: { format: 'int', type: 'text/x-millicelsius' }, data: '45000' })
  t.equal(results(reply)[1]?.data, 'CpuTemp', 'the interior node on its way lists it')
  const call = temp.box.calls[0]!.call
  t.equal(call.serverId, SRV)
  t.equal(call.uri, './Vendor/Sensors/CpuTemp')
  t.equal(call.signal.aborted, false)
  await h.manager.stop()
  t.equal(call.signal.aborted, true, 'aborted when the agent stops')
})

t.test('a Get that fails is answered with its status, logged once, and the session goes on', async (t) => {
  const h = await createHarness()
  const mount = (name: string, get: () => Promise<ExternalValue>, maxBytes?: number) =>
    t.ok(h.tree.mount(`./Vendor/${name}`, { format: 'int', ...(maxBytes !== undefined && { maxBytes }) }, { get }).ok)
  mount('Big', async () => '1234567', 4)
  mount('Gone', async () => Promise.reject(new SyncMLStatusError(404, 'no sensor')))
  mount('Broken', async () => Promise.reject(new Error('EIO: i/o error')))
  mount('Throws', () => {
    throw new Error('synchronously')
  })
  mount('NotInt', async () => 'hot')
  mount('Bytes', async () => new Uint8Array(Buffer.from('12')))
  t.ok(h.tree.mount('./Vendor/Hidden', { format: 'chr', acl: 'Get=someone-else' }, { get: async () => t.fail('never read') as never }).ok)
  const reply = await pushAndClose(h, new Party(SERVER), [
    get('./Vendor/Big'), get('./Vendor/Gone'), get('./Vendor/Broken'), get('./Vendor/Throws'), get('./Vendor/NotInt'),
    get('./Vendor/Hidden'), get('./Vendor/Bytes'), get('./Vendor/Big?prop=Format'),
  ])
  t.same(statusCodes(reply), { '0': '212', '1': '413', '2': '404', '3': '500', '4': '500', '5': '500', '6': '425', '7': '200', '8': '200' })
  t.same(results(reply).map((i) => i.data), ['12', 'int'], 'bytes of an int node served as its text; properties from the tree')
  t.equal(logged(h, 'external node read failed').length, 3)
  t.equal(logged(h, 'external node read a value over its maxBytes').length, 1)
  t.equal(logged(h, 'external node read a value that does not fit its format').length, 1)
  t.match(logged(h, 'external node read failed')[1], { uri: './Vendor/Broken', status: 500, error: { message: 'EIO: i/o error' } })
})

t.test('Replace: 415, 425 and 413 before anything runs; the write once the commit is durable, in command order', async (t) => {
  const h = await createHarness()
  const a = backed('1')
  const b = backed('x')
  const order: string[] = []
  const stored: ExternalNode = {
    replace: async (value, call) => {
      // The tree already holds the new value, durably, when the write runs.
      const durable = await durableTree(h.treeStore)
      order.push(`stored=${text(value)} durable=${durable.ok ? String(durable.tree.get(call.uri, 'device').value?.data) : durable.error}`)
    },
  }
  const recordOrder = (name: string, node: ExternalNode): ExternalNode => ({
    ...node,
    replace: async (v, c) => {
      order.push(`${name}=${text(v)}`)
      await node.replace!(v, c)
    },
  })
  const acl = `Get=*&Replace=${SRV}`
  t.ok(h.tree.mount('./Vendor/A', { format: 'int', acl, maxBytes: 3 }, recordOrder('A', a.node)).ok)
  t.ok(h.tree.mount('./Vendor/B', { format: 'chr', acl }, recordOrder('B', b.node)).ok)
  t.ok(h.tree.mount('./Vendor/S', { format: 'int', acl, value: '60' }, stored).ok)
  t.ok(h.tree.mount('./Vendor/RO', { format: 'chr' }, { replace: async () => void t.fail('no ACL, no write') }).ok)
  t.ok(h.tree.mount('./Vendor/ReadOnly', { format: 'chr', acl }, { get: async () => 'r' }).ok)
  await h.tree.flush()
  const reply = await pushAndClose(h, new Party(SERVER), [
    replace('./Vendor/A', '7', 'chr'), // 1: explicit other format
    { kind: 'Replace', cmdId: '', items: [{ target: { locUri: './Vendor/A' }, data: 'seven' }] }, // 2: not an int
    { kind: 'Replace', cmdId: '', items: [{ target: { locUri: './Vendor/A' }, data: '1234' }] }, // 3: over maxBytes
    replace('./Vendor/RO', 'x'), // 4: ACL
    replace('./Vendor/B', 'second'), // 5
    { kind: 'Replace', cmdId: '', items: [{ target: { locUri: './Vendor/A' }, data: '42' }] }, // 6: the node's format
    replace('./Vendor/S', '15', 'int'), // 7
    copy('./Vendor/B', './Vendor/A'), // 8
    replace('./Vendor/ReadOnly', 'w'), // 9: read from outside, written nowhere
  ])
  t.same(statusCodes(reply), { '0': '212', '1': '415', '2': '415', '3': '413', '4': '425', '5': '200', '6': '200', '7': '200', '8': '406', '9': '405' })
  t.same(order, ['B=second', 'A=42', 'stored=15 durable=15'], 'after the commit, in command order')
  t.equal(a.box.value, '42')
  t.equal(h.tree.get('./Vendor/A', 'device').value?.data, undefined, 'a node read through get stores no value')
  t.equal(h.tree.get('./Vendor/A?prop=Format', 'device').value?.data, 'int')
  t.equal(h.tree.get('./Vendor/S', 'device').value?.data, '15')
})

t.test('a failed write answers its own status; the others stand, and a stored leaf is set back', async (t) => {
  const h = await createHarness()
  const acl = `Get=*&Replace=${SRV}`
  const a = backed('1', { failWrite: (v) => (v === '2' ? new Error('device busy') : undefined) })
  const c = backed('1', { failWrite: () => new SyncMLStatusError(503, 'later') })
  t.ok(h.tree.mount('./Vendor/A', { format: 'int', acl }, a.node).ok)
  t.ok(h.tree.mount('./Vendor/C', { format: 'int', acl }, c.node).ok)
  t.ok(h.tree.mount('./Vendor/S', { format: 'int', acl, value: '60' }, { replace: async () => Promise.reject(new Error('no')) }).ok)
  const ok = backed('0')
  t.ok(h.tree.mount('./Vendor/OK', { format: 'int', acl }, ok.node).ok)
  await h.tree.flush()
  const reply = await pushAndClose(h, new Party(SERVER), [
    replace('./Vendor/A', '2', 'int'), replace('./Vendor/C', '3', 'int'), replace('./Vendor/S', '4', 'int'), replace('./Vendor/OK', '5', 'int'),
  ])
  t.same(statusCodes(reply), { '0': '212', '1': '500', '2': '503', '3': '500', '4': '200' })
  t.equal(ok.box.value, '5')
  t.equal(h.tree.get('./Vendor/S', 'device').value?.data, '60', 'the stored value is what it was')
  const durable = await durableTree(h.treeStore)
  t.equal(durable.ok && durable.tree.get('./Vendor/S', 'device').value?.data, '60', 'durably')
  t.equal(logged(h, 'external node write failed').length, 3)
})

t.test('Atomic: writes once all its commands succeeded; one failing sets the earlier ones back and the Atomic answers 507', async (t) => {
  const h = await createHarness()
  const acl = `Get=*&Replace=${SRV}`
  const a = backed('1')
  const b = backed('1')
  const c = backed('1', { failWrite: () => new Error('refused by the device') })
  t.ok(h.tree.mount('./Vendor/A', { format: 'int', acl }, a.node).ok)
  t.ok(h.tree.mount('./Vendor/B', { format: 'int', acl }, b.node).ok)
  t.ok(h.tree.mount('./Vendor/C', { format: 'int', acl }, c.node).ok)
  const s = { value: '' }
  t.ok(h.tree.mount('./Vendor/S', { format: 'int', acl, value: '60' }, { replace: async (v) => void (s.value = text(v)) }).ok)
  await h.tree.flush()
  let reply = await pushAndClose(h, new Party(SERVER), [
    atomic(replace('./Vendor/A', '2', 'int'), replace('./Vendor/S', '61', 'int'), replace('./Vendor/C', '2', 'int'), replace('./Vendor/B', '2', 'int')),
  ])
  t.same(statusCodes(reply), { '0': '212', '1': '507', '2': '216', '3': '216', '4': '500', '5': '216' })
  t.same(a.box.calls.map((x) => [x.op, x.value]), [['get', undefined], ['replace', '2'], ['replace', '1']], 'read before, written, set back')
  t.equal(a.box.value, '1')
  t.equal(s.value, '60', 'a stored leaf is set back to its stored value')
  t.equal(h.tree.get('./Vendor/S', 'device').value?.data, '60', 'and the tree keeps it')
  t.same(b.box.calls, [], 'not reached')

  // A command of the Atomic that fails in the tree: no write at all.
  a.box.calls.length = 0
  reply = await pushAndClose(h, new Party(SERVER), [atomic(replace('./Vendor/A', '3', 'int'), replace('./Vendor/Missing', '3'))])
  t.same(statusCodes(reply), { '0': '212', '1': '507', '2': '216', '3': '425' })
  t.same(a.box.calls, [], 'nothing written, nothing read')

  // All succeed: written at the Atomic's end, answered 200.
  reply = await pushAndClose(h, new Party(SERVER), [atomic(replace('./Vendor/A', '4', 'int'), replace('./Vendor/B', '4', 'int'))])
  t.same(statusCodes(reply), { '0': '212', '1': '200', '2': '200', '3': '200' })
  t.equal(a.box.value, '4')
  t.equal(b.box.value, '4')
})

t.test('Atomic: a failed restore is logged as an error; the Atomic still answers 507', async (t) => {
  const h = await createHarness()
  const acl = `Get=*&Replace=${SRV}`
  let writes = 0
  t.ok(h.tree.mount('./Vendor/A', { format: 'int', acl }, {
    get: async () => '1',
    replace: async () => {
      if (++writes > 1) throw new Error('stuck')
    },
  }).ok)
  t.ok(h.tree.mount('./Vendor/B', { format: 'int', acl }, { get: async () => Promise.reject(new Error('unreadable')), replace: async () => void t.fail('not written') }).ok)
  const reply = await pushAndClose(h, new Party(SERVER), [atomic(replace('./Vendor/A', '2', 'int'), replace('./Vendor/B', '2', 'int'))])
  t.same(statusCodes(reply), { '0': '212', '1': '507', '2': '216', '3': '500' })
  t.equal(logged(h, 'external node not read before its write').length, 1)
  t.match(h.log.lines.find((l) => l.msg === 'external node not set back after its Atomic failed'), { level: 'error', uri: './Vendor/A' })
})

t.test('an Atomic\'s writes are set back when the message\'s changes cannot be stored; later writes never run', async (t) => {
  let full = false
  const h = await createHarness({ treeStore: failingStore(() => full) })
  const acl = `Get=*&Replace=${SRV}`
  const a = backed('1')
  const b = backed('1')
  const c = backed('1')
  t.ok(h.tree.mount('./Vendor/A', { format: 'int', acl }, a.node).ok)
  t.ok(h.tree.mount('./Vendor/B', { format: 'int', acl }, b.node).ok)
  t.ok(h.tree.mount('./Vendor/C', { format: 'int', acl }, c.node).ok)
  await h.tree.flush()
  full = true
  const reply = await pushAndClose(h, new Party(SERVER), [atomic(replace('./Vendor/A', '2', 'int'), replace('./Vendor/B', '2', 'int')), replace('./Vendor/C', '2', 'int')])
  t.same(statusCodes(reply), { '0': '212', '1': '500', '2': '500', '3': '500', '4': '500' }, 'every write 500: nothing was stored')
  t.same(b.box.calls.map((x) => [x.op, x.value]), [['get', undefined], ['replace', '2'], ['replace', '1']], 'written at the Atomic\'s end, then set back')
  t.same([a.box.value, b.box.value], ['1', '1'])
  t.same(c.box.calls, [], 'a write outside an Atomic waits for the commit, which did not happen')
})

t.test('Exec awaits the callback: its status, 202 passed through, errors mapped; registerExec still works', async (t) => {
  const h = await createHarness()
  const calls: Array<{ data: string | undefined; call: ExternalCall }> = []
  const acl = `Exec=${SRV}`
  const mount = (name: string, run: () => Promise<number>) =>
    t.ok(h.tree.mount(`./Vendor/Ops/${name}`, { format: 'chr', acl }, {
      exec: async (data, call) => {
        calls.push({ data: data === undefined ? undefined : text(data), call })
        return run()
      },
    }).ok)
  mount('Now', async () => 200)
  mount('Later', async () => 202)
  mount('Busy', async () => Promise.reject(new SyncMLStatusError(417, 'still running')))
  mount('Broken', async () => Promise.reject(new Error('boom')))
  mount('Odd', async () => 42)
  t.ok(h.tree.mount('./Vendor/Ops/Closed', { format: 'chr' }, { exec: async () => t.fail('no ACL') as never }).ok)
  h.tree.registerExec('./Vendor/Ops/Now', () => 200)
  t.ok(h.tree.mount('./Vendor/Ops/Reg', { format: 'chr', acl }, {}).ok)
  h.tree.registerExec('./Vendor/Ops/Reg', (_data, principal, correlator) => (correlator === 'c-9' && principal !== 'device' ? 202 : 500))
  const withCorrelator: Command = { kind: 'Exec', cmdId: '', correlator: 'c-7', items: [{ target: { locUri: './Vendor/Ops/Later' }, data: 'go' }] }
  const reply = await pushAndClose(h, new Party(SERVER), [
    withCorrelator, exec('./Vendor/Ops/Busy'), exec('./Vendor/Ops/Broken'), exec('./Vendor/Ops/Odd'), exec('./Vendor/Ops/Closed'),
    exec('./Vendor/Ops/Now'), { kind: 'Exec', cmdId: '', correlator: 'c-9', items: [{ target: { locUri: './Vendor/Ops/Reg' } }] },
  ])
  t.same(statusCodes(reply), { '0': '212', '1': '202', '2': '417', '3': '500', '4': '500', '5': '425', '6': '200', '7': '202' })
  t.same(calls[0], { data: 'go', call: { serverId: SRV, uri: './Vendor/Ops/Later', correlator: 'c-7', signal: calls[0]!.call.signal } })
  t.equal(calls.length, 4, 'the registered handler takes precedence over the mounted Exec')
  t.equal(logged(h, 'exec failed').length, 2)
  t.equal(logged(h, 'exec answered no status code').length, 1)
})
