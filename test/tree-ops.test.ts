// Tree operations and their DM 1.2 status codes: URIs, formats, permanent nodes, Exec, properties.
import t from 'tap'
import { chr, node, populatedTree, standardTree } from './fixtures/tree/trees.ts'
import type { NodeValue, Principal } from '../src/tree/types.ts'

const srv: Principal = { serverId: 'srv1' }
const dev: Principal = 'device'

t.test('both URI notations name the same node, and the root is "."', async (t) => {
  const tree = standardTree()
  const a = tree.get('./DevInfo/DevId', srv)
  const b = tree.get('DevInfo/DevId', srv)
  t.equal(a.status, 200)
  t.same(a, b)
  t.equal(a.value?.data, 'mac:01-ab-34-ef-69-0c')
  t.same(tree.get('.', srv), { status: 200, value: { format: 'node', data: 'DevInfo/DevDetail/DMAcc/Inbox' } })
  t.equal(tree.add('DMAcc/acc/AppID', chr('w7'), dev), 500, 'a lone AppID is an invalid account either way')
  t.equal(tree.add('Vendor2', node(), dev), 200)
  t.equal(tree.get('./Vendor2', dev).status, 200, 'added without ./, found with it')
})

t.test('malformed URIs are refused with 400', async (t) => {
  const tree = standardTree()
  for (const uri of ['', './', 'DevInfo/', './DevInfo/', './DevInfo/./DevId', './DevInfo/../DevInfo', '../DevInfo',
    'DevInfo//DevId', '/DevInfo', './.', '..', 'DevInfo/DevId?', 'DevInfo?foo=bar']) {
    t.equal(tree.get(uri, dev).status, 400, `get ${JSON.stringify(uri)}`)
    t.equal(tree.add(uri === '' ? uri : uri + '/x', chr('v'), dev) === 200 ? 'added' : 'refused', 'refused', `add under ${JSON.stringify(uri)}`)
  }
  t.equal(tree.replace('./DevInfo/../DMAcc', chr('v'), dev), 400)
  t.equal(tree.delete('DMAcc//x', dev), 400)
})

t.test('URIs past the DevDetail/URI limits are refused with 414', async (t) => {
  const tree = standardTree()
  t.equal(tree.get('./DevDetail/URI/MaxDepth', srv).value?.data, '16')
  const deep = './' + Array.from({ length: 17 }, (_, i) => `n${i}`).join('/')
  t.equal(tree.get(deep, dev).status, 414, 'depth 17 > 16')
  t.equal(tree.add(deep, chr('v'), dev), 414)
  t.equal(tree.get('./' + Array.from({ length: 16 }, (_, i) => `n${i}`).join('/'), dev).status, 404, 'depth 16 is fine')
  t.equal(tree.get('./Vendor/' + 'a'.repeat(65), dev).status, 414, 'segment of 65 > 64')
  t.equal(tree.get('./Vendor/' + 'a'.repeat(64), dev).status, 404)
  const long = './' + Array.from({ length: 10 }, () => 'b'.repeat(60)).join('/') // 609 characters
  t.equal(tree.get(long, dev).status, 414, 'total length > 512')
  // The device lowers a limit: it applies from then on, in either notation.
  t.equal(tree.replace('./DevDetail/URI/MaxDepth', chr('3'), dev), 200)
  t.equal(tree.get('./a/b/c/d', dev).status, 414)
  t.equal(tree.get('a/b/c/d', dev).status, 414)
  t.equal(tree.get('./a/b/c', dev).status, 404)
})

t.test('properties: ACL, Format and Type are served; other ?prop= and ?list= are 406', async (t) => {
  const tree = populatedTree()
  t.same(tree.get('./DevInfo?prop=ACL', srv), { status: 200, value: { format: 'chr', data: 'Get=*' } })
  t.same(tree.get('./DevInfo/DevId?prop=ACL', srv), { status: 200, value: { format: 'chr', data: '' } }, 'inherited: no value')
  t.same(tree.get('./DevInfo/DevId?prop=Format', srv).value?.data, 'chr')
  t.same(tree.get('./DevInfo?prop=Format', srv).value?.data, 'node')
  t.same(tree.get('./DevInfo/DevId?prop=Type', srv).value?.data, 'text/plain')
  t.same(tree.get('./DevInfo?prop=Type', srv).value?.data, 'urn:oma:mo:oma-dm-devinfo:1.0')
  t.same(tree.get('./DevDetail/LrgObj?prop=Format', srv).value?.data, 'bool')
  for (const q of ['?prop=Name', '?prop=Size', '?prop=TStamp', '?prop=VerNo', '?prop=Title', '?list=Struct', '?list=StructData', '?list=TNDS']) {
    t.equal(tree.get('./DevInfo' + q, srv).status, 406, q)
  }
  t.equal(tree.replace('./Vendor/leaf?prop=Format', chr('int'), dev), 405, 'Format is read-only')
  t.equal(tree.replace('./Vendor/leaf?prop=Type', chr('text/xml'), dev), 405, 'Type is read-only')
  t.equal(tree.add('./Vendor/new?prop=ACL', chr('Get=*'), dev), 405)
  t.equal(tree.delete('./Vendor/leaf?prop=ACL', dev), 405)
  t.equal(tree.get('./Vendor/missing?prop=ACL', srv).status, 404)
})

t.test('status codes of the operations', async (t) => {
  type Row = [string, (tree: ReturnType<typeof populatedTree>) => number, number]
  const rows: Row[] = [
    ['Add of an existing node', (tr) => tr.add('./Vendor/leaf', chr('v'), srv), 418],
    ['Add of the root', (tr) => tr.add('.', node(), dev), 418],
    ['Add under a leaf', (tr) => tr.add('./Vendor/leaf/child', chr('v'), srv), 405],
    ['Add deep under a leaf', (tr) => tr.add('./Vendor/leaf/a/b', chr('v'), srv), 405],
    ['Add creating parents', (tr) => tr.add('./Vendor/a/b/c', chr('v'), srv), 200],
    ['Add of an interior node', (tr) => tr.add('./Vendor/d', node(), srv), 200],
    ['Replace of a missing node', (tr) => tr.replace('./Vendor/missing', chr('v'), srv), 404],
    ['Replace of a leaf', (tr) => tr.replace('./Vendor/leaf', chr('other'), srv), 200],
    ['Replace of an interior node', (tr) => tr.replace('./Vendor/dir', chr('v'), srv), 405],
    ['Replace of a leaf by an interior node', (tr) => tr.replace('./Vendor/leaf', node(), srv), 405],
    ['Delete of a subtree', (tr) => tr.delete('./Vendor/dir', srv), 200],
    ['Delete of a missing node', (tr) => tr.delete('./Vendor/missing', srv), 404],
    ['Delete of the root', (tr) => tr.delete('.', dev), 405],
    ['Delete of ./DevInfo', (tr) => tr.delete('./DevInfo', dev), 405],
    ['Delete of ./DevInfo/DevId', (tr) => tr.delete('./DevInfo/DevId', dev), 405],
    ['Delete of ./DevDetail/URI/MaxDepth', (tr) => tr.delete('./DevDetail/URI/MaxDepth', dev), 405],
    ['Delete of ./DMAcc', (tr) => tr.delete('./DMAcc', dev), 405],
    ['Delete of ./Inbox', (tr) => tr.delete('./Inbox', dev), 405],
    ['Replace of ./DevInfo/DevId by a server', (tr) => tr.replace('./DevInfo/DevId', chr('x'), srv), 405],
    ['Replace of ./DevDetail/FwV by a server', (tr) => tr.replace('./DevDetail/FwV', chr('x'), srv), 405],
    ['Replace of ./DevDetail/SwV by the device', (tr) => tr.replace('./DevDetail/SwV', chr('2.0'), dev), 200],
    ['Replace of ./DMAcc by the device', (tr) => tr.replace('./DMAcc', chr('x'), dev), 405],
    ['Replace of the root', (tr) => tr.replace('.', chr('x'), dev), 405],
    ['Exec without a handler', (tr) => tr.exec('./Vendor/leaf', undefined, srv) as number, 405],
    ['Exec of a missing node', (tr) => tr.exec('./Vendor/missing', undefined, srv) as number, 404],
    ['Get of ./Inbox', (tr) => tr.get('./Inbox', srv).status, 405],
    ['Add into ./Inbox', (tr) => tr.add('./Inbox/tnds', { format: 'xml', data: '<MgmtTree/>' }, srv), 406],
    ['Add into ./Inbox by the device', (tr) => tr.add('./Inbox/tnds', { format: 'xml', data: '<MgmtTree/>' }, dev), 406],
  ]
  for (const [name, run, expected] of rows) t.equal(run(populatedTree()), expected, name)
})

t.test('Add creates missing interior parents, and an interior Get lists the children', async (t) => {
  const tree = populatedTree()
  t.equal(tree.add('./Vendor/a/b/c', chr('v'), srv), 200)
  t.same(tree.get('./Vendor/a', srv).value, { format: 'node', data: 'b' })
  t.same(tree.get('./Vendor/a/b', srv).value, { format: 'node', data: 'c' })
  t.same(tree.get('./Vendor/a/b/c', srv).value, { format: 'chr', data: 'v' })
  t.equal(tree.get('./Vendor/a?prop=Format', srv).value?.data, 'node')
  tree.add('./Vendor/a/z', chr('v'), srv)
  t.equal(tree.get('./Vendor/a', srv).value?.data, 'b/z', 'children in creation order')
  t.same(tree.children('./Vendor/a'), ['b', 'z'])
  t.equal(tree.children('./Vendor/leaf'), undefined)
  t.equal(tree.children('./Vendor/nothing'), undefined)
  t.same(tree.get('./DMAcc', dev).value?.data, 'srv/gw')
})

t.test('Delete removes the whole subtree', async (t) => {
  const tree = populatedTree()
  tree.add('./Vendor/dir/deeper/leaf', chr('v'), srv)
  t.equal(tree.delete('./Vendor/dir', srv), 200)
  for (const uri of ['./Vendor/dir', './Vendor/dir/inner', './Vendor/dir/deeper', './Vendor/dir/deeper/leaf']) {
    t.equal(tree.get(uri, srv).status, 404, uri)
  }
  t.equal(tree.get('./Vendor', srv).value?.data, 'leaf')
  t.equal(tree.add('./Vendor/dir', chr('now a leaf'), srv), 200, 'the name is free again')
})

t.test('formats are checked on write (415 when the data does not fit)', async (t) => {
  type Row = [NodeValue, number, (string | Uint8Array)?]
  const rows: Row[] = [
    [{ format: 'int', data: '42' }, 200, '42'],
    [{ format: 'int', data: '-7' }, 200, '-7'],
    [{ format: 'int', data: 'abc' }, 415],
    [{ format: 'int', data: '1.5' }, 415],
    [{ format: 'int', data: '' }, 415],
    [{ format: 'int', data: '99999999999' }, 415],
    [{ format: 'bool', data: 'true' }, 200, 'true'],
    [{ format: 'bool', data: 'FALSE' }, 200, 'false'],
    [{ format: 'bool', data: 'yes' }, 415],
    [{ format: 'bool', data: '1' }, 415],
    [{ format: 'chr', data: 'héllo' }, 200, 'héllo'],
    [{ format: 'chr', data: new TextEncoder().encode('bytes as text') }, 200, 'bytes as text'],
    [{ format: 'chr', data: new Uint8Array([0xff, 0xfe]) }, 415],
    [{ format: 'chr' }, 200, ''],
    [{ format: 'xml', data: '<a/>' }, 200, '<a/>'],
    [{ format: 'bin', data: new Uint8Array([0, 255]) }, 200, new Uint8Array([0, 255])],
    [{ format: 'b64', data: new Uint8Array([1, 2]) }, 200, new Uint8Array([1, 2])],
    [{ format: 'b64', data: 'aGVsbG8=' }, 200, new TextEncoder().encode('hello')],
    [{ format: 'b64', data: 'not base64!' }, 415],
    [{ format: 'b64', data: 'abc' }, 415],
    [{ format: 'b64', data: 'aGVs\r\nbG8=\n' }, 200, new TextEncoder().encode('hello')],
    [{ format: 'b64', data: 'aGVs\fbG8=' }, 415],
    [{ format: 'b64', data: 'aGVs\u00a0bG8=' }, 415],
    [{ format: 'float', data: '1.5e3' }, 200, '1.5e3'],
    [{ format: 'float', data: 'one' }, 415],
    [{ format: 'date', data: '2024-01-31' }, 200, '2024-01-31'],
    [{ format: 'date', data: 'tomorrow' }, 415],
    [{ format: 'time', data: '12:30:00Z' }, 200, '12:30:00Z'],
    [{ format: 'time', data: 'noon' }, 415],
    [{ format: 'null' }, 200, undefined],
    [{ format: 'null', data: 'x' }, 415],
    [{ format: 'node', data: 'x' }, 415],
    [{ format: 'weird' as 'chr', data: 'x' }, 415],
  ]
  for (const [value, status, stored] of rows) {
    const tree = populatedTree()
    const label = `${value.format} ${JSON.stringify(value.data instanceof Uint8Array ? [...value.data] : value.data)}`
    t.equal(tree.add('./Vendor/v', value, srv), status, `add ${label}`)
    t.equal(tree.replace('./Vendor/leaf', value, srv), value.format === 'node' ? 405 : status, `replace ${label}`)
    if (status !== 200) {
      t.equal(tree.get('./Vendor/v', srv).status, 404, `nothing stored for ${label}`)
      t.equal(tree.get('./Vendor/leaf', srv).value?.data, 'value', `leaf unchanged for ${label}`)
      continue
    }
    const got = tree.get('./Vendor/v', srv)
    t.equal(got.value?.format, value.format, `format kept for ${label}`)
    t.same(got.value?.data, stored, `stored form of ${label}`)
  }
})

t.test('Type is kept on leaves and interior nodes', async (t) => {
  const tree = populatedTree()
  t.equal(tree.add('./Vendor/x', { format: 'xml', type: 'application/xml', data: '<a/>' }, srv), 200)
  t.same(tree.get('./Vendor/x', srv).value, { format: 'xml', type: 'application/xml', data: '<a/>' })
  t.equal(tree.get('./Vendor/x?prop=Type', srv).value?.data, 'application/xml')
  t.equal(tree.add('./Vendor/mo', { format: 'node', type: 'urn:example:mo:1.0' }, srv), 200)
  t.same(tree.get('./Vendor/mo', srv).value, { format: 'node', type: 'urn:example:mo:1.0', data: '' })
  t.equal(tree.replace('./Vendor/x', chr('plain'), srv), 200)
  t.equal(tree.get('./Vendor/x?prop=Type', srv).value?.data, 'text/plain', 'a Replace without Type is text/plain')
})

t.test('stored bytes are copies: the caller may reuse its buffer', async (t) => {
  const tree = populatedTree()
  const bytes = new Uint8Array([1, 2, 3])
  tree.add('./Vendor/bin', { format: 'bin', data: bytes }, srv)
  bytes[0] = 99
  t.same(tree.get('./Vendor/bin', srv).value?.data, new Uint8Array([1, 2, 3]))
})

t.test('Exec runs a registered handler, after the ACL check', async (t) => {
  const tree = populatedTree()
  const calls: unknown[] = []
  t.equal(tree.registerExec('Vendor/leaf', (data, principal) => {
    calls.push([data, principal])
    return 202
  }), true)
  t.equal(tree.registerExec('./bad//uri', () => 200), false)
  t.equal(tree.exec('./Vendor/leaf', 'go', srv), 202)
  t.same(calls, [['go', srv]])
  t.equal(tree.exec('./Vendor/dir', 'go', srv), 405, 'other nodes still have none')
  tree.replace('./Vendor/leaf?prop=ACL', chr('Get=*'), dev)
  t.equal(tree.exec('./Vendor/leaf', 'go', srv), 425, 'no Exec right')
  t.equal(calls.length, 1)
  const tx = tree.begin()
  t.equal(tx.exec('./Vendor/leaf', 'in tx', dev), 202, 'a transaction reaches the same handlers')
  tx.rollback()
})

t.test('the node limit answers 420 and changes nothing', async (t) => {
  const tree = standardTree(25)
  const before = tree.serialize()
  let status = 200
  let i = 0
  for (; status === 200 && i < 50; i++) status = tree.add(`./n${i}`, chr('v'), 'device')
  t.equal(status, 420)
  t.equal(tree.get(`./n${i - 1}`, 'device').status, 404)
  t.ok(before.length < tree.serialize().length)
  t.equal(tree.add('./a/b/c/d/e/f/g/h/i/j/k', chr('v'), 'device'), 420, 'implicit parents count too')
})

t.test('readSecret reads any leaf for the device, never an interior node', async (t) => {
  const tree = populatedTree()
  t.equal(tree.readSecret('./DMAcc/srv/AppAuth/1/AAuthSecret'), 'device-secret')
  t.same(tree.readSecret('DMAcc/srv/AppAuth/1/AAuthData'), new Uint8Array([1, 2, 3]))
  t.equal(tree.readSecret('./DMAcc/srv/AppAuth/1'), undefined)
  t.equal(tree.readSecret('./DMAcc/srv/AppAuth/9/AAuthSecret'), undefined)
  t.equal(tree.readSecret('./DMAcc/../x'), undefined)
})
