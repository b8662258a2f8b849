import t from 'tap'
import { md5Digest } from '../src/auth/md5.ts'
import type { Alert, ItemCommand } from '../src/codec/syncml-model.ts'
import {
  bytes, createHarness, DEVICE_ID, get, headerStatus, md5Chal, Party, SERVER, settle, status,
} from './helpers/session-harness.ts'
import { durableState } from './helpers/stores.ts'

t.test('Package 1: Alert 1201, DevInfo Replace, md5 Cred, pending Generic Alerts, Final', async (t) => {
  const h = await createHarness()
  await h.manager.queueGenericAlert(SERVER.serverId, { type: 'urn:oma:gwmo:1.0:LocationUpdate', data: '<LocationUpdate/>' })
  await h.manager.openSession(SERVER.serverId, { alert: 1201 })
  t.equal(h.sent.length, 1)
  const out = h.sent[0]!
  t.equal(out.to, SERVER.serverId)
  t.equal(out.contentType, 'application/vnd.syncml.dm+xml')
  const msg = h.decoded()
  t.equal(msg.hdr.verDTD, '1.2')
  t.equal(msg.hdr.verProto, 'DM/1.2')
  t.equal(msg.hdr.msgId, '1')
  t.match(msg.hdr.sessionId, /^[1-9A-F][0-9A-F]{0,3}$/)
  t.equal(msg.hdr.target.locUri, SERVER.serverId)
  t.equal(msg.hdr.source.locUri, DEVICE_ID)
  t.equal(msg.hdr.source.locName, 'device-user')
  t.equal(msg.hdr.meta?.maxMsgSize, 65536)
  // OMA DM Security 1.2: B64(H(B64(H(user:password)):nonce)), computed here with the spec's formula.
  const { createHash } = await import('node:crypto')
  const h1 = createHash('md5').update('device-user:device-secret').digest('base64')
  const expected = createHash('md5').update(Buffer.concat([Buffer.from(h1 + ':'), Buffer.from('client-nonce-0')])).digest('base64')
  t.equal(msg.hdr.cred?.data, expected)
  t.equal(msg.hdr.cred?.meta?.type, 'syncml:auth-md5')
  t.ok(msg.final)
  const [first, second, third] = msg.body as [Alert, ItemCommand, Alert]
  t.equal(first.kind, 'Alert')
  t.equal(first.data, '1201')
  t.equal(second.kind, 'Replace')
  const devInfo = Object.fromEntries(second.items.map((i) => [i.source?.locUri, i.data]))
  t.same(devInfo, { './DevInfo/DevId': DEVICE_ID, './DevInfo/Man': 'Acme', './DevInfo/Mod': 'Pi-4', './DevInfo/DmV': '1.2', './DevInfo/Lang': 'en-US' })
  t.equal(third.kind, 'Alert')
  t.equal(third.data, '1226')
  t.equal(third.items[0]?.meta?.type, 'urn:oma:gwmo:1.0:LocationUpdate')
  t.equal(third.items[0]?.data, '<LocationUpdate/>')
  t.same(msg.body.map((c) => c.cmdId), ['1', '2', '3'])
})

/** Opens a client session and returns its SessionID (from Package 1). */
async function open(h: Awaited<ReturnType<typeof createHarness>>): Promise<string> {
  await h.manager.openSession(SERVER.serverId, { alert: 1201 })
  return h.decoded().hdr.sessionId
}

t.test('401 + Chal on our SyncHdr: Package 1 again, new MsgID, Cred over the new nonce', async (t) => {
  const h = await createHarness()
  const server = new Party(SERVER)
  const sessionId = await open(h)
  const challenge = bytes('fresh-from-server')
  await h.manager.receive(
    server.message({
      sessionId,
      msgId: 1,
      body: [status('1', '0', 'SyncHdr', 401, md5Chal(challenge)), status('1', '1', 'Alert', 401), status('1', '2', 'Replace', 401)],
    }),
  )
  t.equal(h.sent.length, 2, 'Package 1 sent again')
  const again = h.decoded()
  t.equal(again.hdr.msgId, '2')
  t.equal(again.hdr.sessionId, sessionId)
  t.equal(again.hdr.cred?.data, md5Digest('device-user', 'device-secret', challenge))
  t.equal(headerStatus(again)?.data, '212', 'the server authenticated itself in that message')
  t.same(
    again.body.filter((c) => c.kind !== 'Status').map((c) => (c.kind === 'Alert' ? `Alert ${c.data}` : c.kind)),
    ['Alert 1201', 'Replace'],
  )
  // The server accepts: the session ends with its status-only Final message (made with the nonce the device's
  // last message gave it), and nothing more is sent.
  server.learnNonce(again)
  await h.manager.receive(server.message({ sessionId, msgId: 2, body: [status('2', '0', 'SyncHdr', 212)] }))
  await settle()
  t.equal(h.sent.length, 2)
  t.same(h.ended.map((e) => e.outcome), ['completed'])
})

t.test('a party that keeps challenging our credentials fails the session after the resend limit', async (t) => {
  const h = await createHarness({ constants: { maxPackage1Resends: 1 } })
  const server = new Party(SERVER)
  const sessionId = await open(h)
  for (let msgId = 1; msgId <= 2; msgId++) {
    await h.manager.receive(server.message({ sessionId, msgId, body: [status(String(msgId), '0', 'SyncHdr', 401, md5Chal(bytes(`n${msgId}`)))] }))
    server.learnNonce(h.decoded())
  }
  await settle()
  t.equal(h.sent.length, 2, 'one resend only')
  t.same(h.ended.map((e) => e.outcome), ['failed'])
})

t.test('212 + Chal: the NextNonce is stored and the next session uses it', async (t) => {
  const h = await createHarness()
  const server = new Party(SERVER)
  const first = await open(h)
  const next = bytes('next-session-nonce')
  await h.manager.receive(server.message({ sessionId: first, msgId: 1, body: [status('1', '0', 'SyncHdr', 212, md5Chal(next))] }))
  await settle()
  t.same(h.ended.map((e) => e.outcome), ['completed'])
  t.same(h.tree.readSecret('./DMAcc/dms/AppAuth/1/AAuthData'), next)
  await h.manager.openSession(SERVER.serverId, { alert: 1201 })
  const second = h.decoded()
  t.not(second.hdr.sessionId, first, 'a new SessionID')
  t.equal(second.hdr.cred?.data, md5Digest('device-user', 'device-secret', next))
})

t.test('a NextNonce from a party that did not authenticate is never used or stored', async (t) => {
  const h = await createHarness()
  const server = new Party(SERVER)
  const sessionId = await open(h)
  await h.manager.receive(
    server.message({ sessionId, msgId: 1, cred: 'bad', body: [status('1', '0', 'SyncHdr', 401, md5Chal(bytes('from-an-impostor')))] }),
  )
  t.same(h.tree.readSecret('./DMAcc/dms/AppAuth/1/AAuthData'), bytes('client-nonce-0'))
  t.equal(headerStatus(h.decoded())?.data, '401', 'the impostor is refused')
  t.equal(h.decoded().hdr.cred, undefined, 'and gets no Cred of ours, for its nonce or any other')
})

t.test('Generic Alerts stay queued (persisted) until a 200/202 and go out again next session', async (t) => {
  const h = await createHarness()
  const server = new Party(SERVER)
  const id = await h.manager.queueGenericAlert(SERVER.serverId, { type: 'urn:x:test', data: 'payload' })
  t.same((await durableState(h.stateStore)).pendingAlerts(SERVER.serverId).map((a) => a.id), [id], 'persisted before queueGenericAlert resolves')

  let sessionId = await open(h)
  t.equal(h.decoded().body[2]?.cmdId, '3')
  // The server cannot take it now (500): it stays.
  await h.manager.receive(
    server.message({ sessionId, msgId: 1, body: [status('1', '0', 'SyncHdr', 212), status('1', '3', 'Alert', 500)] }),
  )
  await settle()
  t.same(h.state.pendingAlerts(SERVER.serverId).map((a) => a.id), [id])

  // Package 2 held only Statuses, so no reply carried the server's next nonce: the one it used is spent, and the
  // next session's first answer is refused with a Chal and our Package 1 again (binding.md §6).
  sessionId = await open(h)
  t.equal(h.decoded().body.filter((c) => c.kind === 'Alert' && c.data === '1226').length, 1, 'sent again')
  await h.manager.receive(server.message({ sessionId, msgId: 1, body: [status('1', '0', 'SyncHdr', 212), status('1', '3', 'Alert', 202)] }))
  const refusal = h.decoded()
  t.equal(headerStatus(refusal)?.data, '401')
  t.same(h.state.pendingAlerts(SERVER.serverId).map((a) => a.id), [id], 'an answer that does not authenticate acknowledges nothing')
  // The server sends its message again, with the refusal's nonce.
  server.learnNonce(refusal)
  await h.manager.receive(server.message({ sessionId, msgId: 2, body: [status('1', '0', 'SyncHdr', 212), status('1', '3', 'Alert', 202)] }))
  await settle()
  t.same(h.state.pendingAlerts(SERVER.serverId), [], 'dropped on 202')
  t.same((await durableState(h.stateStore)).pendingAlerts(SERVER.serverId), [], 'and the drop persisted')

  await open(h)
  t.equal(h.decoded().body.filter((c) => c.kind === 'Alert' && c.data === '1226').length, 0)
})

t.test('AAuthPref picks among CLCRED entries; a Chal of another type switches to that entry, never to a weaker one', async (t) => {
  const spec = {
    ...SERVER,
    authPref: 'DIGEST',
    clientAuth: [
      { type: 'HMAC' as const, name: 'hmac-user', secret: 'hmac-secret', nonce: bytes('hmac-0') },
      { type: 'DIGEST' as const, name: 'device-user', secret: 'device-secret', nonce: bytes('client-nonce-0') },
      { type: 'BASIC' as const, name: 'basic-user', secret: 'basic-secret' },
    ],
  }
  const h = await createHarness({ accounts: [spec] })
  const server = new Party(spec)
  await h.manager.openSession(SERVER.serverId, { alert: 1201 })
  const first = h.decoded()
  t.equal(first.hdr.cred?.meta?.type, 'syncml:auth-md5')
  t.equal(first.hdr.source.locName, 'device-user')
  await h.manager.receive(
    server.message({
      sessionId: first.hdr.sessionId,
      msgId: 1,
      body: [status('1', '0', 'SyncHdr', 401, { meta: { type: 'syncml:auth-basic', format: 'b64' } }), get('./DevInfo/Mod')],
    }),
  )
  const answer = h.decoded()
  t.equal(answer.hdr.cred?.meta?.type, 'syncml:auth-md5', 'a basic Chal to a DIGEST account is not obeyed')
  server.learnNonce(answer)
  await h.manager.receive(
    server.message({
      sessionId: first.hdr.sessionId,
      msgId: 2,
      body: [status('2', '0', 'SyncHdr', 401, { meta: { type: 'syncml:auth-MAC', format: 'b64', nextNonce: Buffer.from('mac-n').toString('base64') } })],
    }),
  )
  const again = h.decoded()
  t.equal(again.hdr.cred, undefined, 'an HMAC Chal: the HMAC entry, no Cred')
  t.equal(again.hdr.source.locName, 'hmac-user')
  t.match(h.sent.at(-1)!.properties?.['x-syncml-hmac'], /username="hmac-user"/)
})

t.test("replies fit the party's MaxMsgSize: the largest Results give way, their Get answered 413", async (t) => {
  const h = await createHarness()
  const server = new Party(SERVER)
  t.equal(h.tree.add('./Big', { format: 'chr', data: 'x'.repeat(3000) }, 'device'), 200)
  t.equal(h.tree.replace('./Big?prop=ACL', { format: 'chr', data: 'Get=*' }, 'device'), 200)
  const inbound = server.message({ sessionId: 'M1', msgId: 1, body: [{ kind: 'Get', cmdId: '', items: [{ target: { locUri: './Big' } }] }, { kind: 'Get', cmdId: '', items: [{ target: { locUri: './DevInfo/Man' } }] }] })
  const text = Buffer.from(inbound.payload).toString('utf8').replace('<MaxMsgSize xmlns="syncml:metinf">65536</MaxMsgSize>', '<MaxMsgSize xmlns="syncml:metinf">2000</MaxMsgSize>')
  t.match(text, /MaxMsgSize xmlns="syncml:metinf">2000/)
  await h.manager.receive({ ...inbound, payload: new Uint8Array(Buffer.from(text)) })
  t.ok(h.sent[0]!.payload.length <= 2000)
  const reply = h.decoded()
  const codes = reply.body.filter((c) => c.kind === 'Status').map((c) => c.kind === 'Status' && `${c.cmdRef}:${c.data}`)
  t.same(codes, ['0:212', '1:413', '2:200'])
  t.same(reply.body.filter((c) => c.kind === 'Results').map((c) => c.kind === 'Results' && c.cmdRef), ['2'])
})

t.test('HMAC toward the party: no Cred, an x-syncml-hmac over the bytes, a new nonce from each Status', async (t) => {
  const { computeHmacMac, parseHmacHeader } = await import('../src/auth/hmac.ts')
  const spec = {
    ...SERVER,
    clientAuth: { type: 'HMAC' as const, name: 'device-user', secret: 'device-secret', nonce: bytes('c0') },
  }
  const h = await createHarness({ accounts: [spec] })
  const server = new Party(spec)
  await h.manager.openSession(SERVER.serverId, { alert: 1201 })
  const first = h.sent[0]!
  const p1 = h.decoded()
  t.equal(p1.hdr.cred, undefined)
  t.equal(p1.hdr.source.locName, 'device-user')
  const header = parseHmacHeader(first.properties!['x-syncml-hmac']!)
  t.ok(header.ok)
  if (header.ok) t.equal(header.value.mac, computeHmacMac('device-user', 'device-secret', bytes('c0'), first.payload))
  const n1 = bytes('per-message-1')
  await h.manager.receive(
    server.message({
      sessionId: p1.hdr.sessionId,
      msgId: 1,
      body: [status('1', '0', 'SyncHdr', 200, { meta: { type: 'syncml:auth-MAC', format: 'b64', nextNonce: Buffer.from(n1).toString('base64') } }), { kind: 'Get', cmdId: '', items: [{ target: { locUri: './DevInfo/Man' } }] }],
    }),
  )
  const second = h.sent[1]!
  const mac = parseHmacHeader(second.properties!['x-syncml-hmac']!)
  t.ok(mac.ok)
  if (mac.ok) t.equal(mac.value.mac, computeHmacMac('device-user', 'device-secret', n1, second.payload), 'signed over the new nonce')
  t.same(h.tree.readSecret('./DMAcc/dms/AppAuth/1/AAuthData'), n1, 'kept for later: the party authenticated')
})

t.test('a party whose account names an mqtt:// AppAddr: the message goes there, on the account\'s own connection', async (t) => {
  const spec = { ...SERVER, address: 'mqtt://broker.example.net:1883/dms/in' }
  const h = await createHarness({ accounts: [spec] })
  await h.manager.openSession(SERVER.serverId, { alert: 1201 })
  t.equal(h.sent[0]!.address, 'mqtt://broker.example.net:1883/dms/in')
  t.equal(h.sent[0]!.account, 'dms', 'the account node names the connection (binding.md §6: <clientId>/<account>)')
  const plain = await createHarness()
  await plain.manager.openSession(SERVER.serverId, { alert: 1201 })
  t.equal(plain.sent[0]!.address, undefined, 'an http:// Addr is no broker')
  t.equal(plain.sent[0]!.account, undefined)
})
