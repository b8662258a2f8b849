import t from 'tap'
import { md5Digest } from '../src/auth/md5.ts'
import { decodeNonce, encodeNonce } from '../src/auth/nonce.ts'
import type { SyncMLMessage } from '../src/codec/syncml-model.ts'
import {
  bytes, createHarness, get, headerStatus, Party, replace, SERVER, settle, status, statusCodes, type AccountSpec, type CredMode,
  type Harness,
} from './helpers/session-harness.ts'

let sessions = 0x200

/** The server pushes one message opening a new session; returns the reply, if any. */
async function pushOnce(h: Harness, server: Party, cred: CredMode, body = [replace('./DevDetail/FwV', 'evil')]): Promise<SyncMLMessage | undefined> {
  const before = h.sent.length
  await h.manager.receive(server.message({ sessionId: (sessions++).toString(16).toUpperCase(), msgId: 1, cred, body }))
  return h.sent.length > before ? h.decoded() : undefined
}

const chalNonce = (msg: SyncMLMessage | undefined) => headerStatus(msg!)?.chal?.meta.nextNonce

t.test('missing Cred: 407 with a Chal, and no command runs', async (t) => {
  const h = await createHarness()
  const reply = await pushOnce(h, new Party(SERVER), 'none', [get('./DevInfo/Mod'), replace('./DevInfo/Lang', 'fr')])
  t.ok(reply)
  t.same(statusCodes(reply!), { '0': '407', '1': '407', '2': '407' })
  t.equal(headerStatus(reply!)?.chal?.meta.type, 'syncml:auth-md5')
  t.equal(headerStatus(reply!)?.chal?.meta.format, 'b64')
  t.ok(chalNonce(reply))
  t.notOk(reply!.body.some((c) => c.kind === 'Results'), 'only Status commands')
  t.same(h.ended.map((e) => e.outcome), [], 'no session was started')
})

t.test('wrong Cred: 401 with a Chal, nothing runs; the right Cred with that nonce: 212 and a fresh NextNonce', async (t) => {
  const h = await createHarness()
  const server = new Party(SERVER)
  const denied = await pushOnce(h, server, 'bad')
  t.same(statusCodes(denied!), { '0': '401', '1': '401' })
  t.equal(h.tree.get('./DevDetail/FwV', 'device').value?.data, '')
  const given = server.learnNonce(denied!)!
  t.not(encodeNonce(given), encodeNonce(bytes('server-nonce-0')), 'a failure rotates the nonce')

  const accepted = await pushOnce(h, server, 'good', [get('./DevInfo/Mod')])
  t.equal(headerStatus(accepted!)?.data, '212')
  const fresh = chalNonce(accepted)
  t.ok(fresh)
  t.not(fresh, encodeNonce(given), 'a fresh NextNonce')
  t.same(h.tree.readSecret('./DMAcc/dms/AppAuth/2/AAuthData'), decodeNonce(fresh!), 'stored for the next session')
  t.equal(statusCodes(accepted!)['1'], '200')
  // The device's own Cred goes in its first reply of a pushed session.
  t.equal(accepted!.hdr.cred?.data, md5Digest('device-user', 'device-secret', bytes('client-nonce-0')))
})

t.test('a nonce is not accepted twice across sessions', async (t) => {
  const h = await createHarness()
  const server = new Party(SERVER)
  const first = await pushOnce(h, server, 'good', [get('./DevInfo/Mod')])
  t.equal(headerStatus(first!)?.data, '212')
  const sessionId = first!.hdr.sessionId
  await h.manager.receive(server.message({ sessionId, msgId: 2, cred: 'none', body: [status('1', '0', 'SyncHdr', 212)] }))
  await settle()
  // Replay: the same credentials, over the nonce already used.
  const replay = await pushOnce(h, server, 'good', [get('./DevInfo/Mod')])
  t.equal(headerStatus(replay!)?.data, '401')
  // With the nonce the device gave (after the replay's rotation, the latest one).
  server.learnNonce(replay!)
  const next = await pushOnce(h, server, 'good', [get('./DevInfo/Mod')])
  t.equal(headerStatus(next!)?.data, '212')
})

t.test('answers to failed authentication are rate-limited per party; nonce rotation at most once a second', async (t) => {
  const h = await createHarness({ constants: { authFailureBurst: 3, authFailureAnswersPerSecond: 2, nonceRotationIntervalMs: 1000 } })
  const server = new Party(SERVER)
  const replies: Array<SyncMLMessage | undefined> = []
  for (let k = 0; k < 10; k++) replies.push(await pushOnce(h, server, 'bad'))
  const answered = replies.filter((r) => r !== undefined)
  t.equal(answered.length, 3, 'a burst of 3, the rest dropped')
  t.ok(h.log.lines.some((l) => String(l.msg).includes('rate limit')), 'drops are logged')
  const nonces = answered.map(chalNonce)
  t.equal(new Set(nonces).size, 1, 'one rotation within the second: every Chal names the same nonce')
  t.not(nonces[0], encodeNonce(bytes('server-nonce-0')))

  h.clock.advance(1000)
  const later = [await pushOnce(h, server, 'bad'), await pushOnce(h, server, 'bad'), await pushOnce(h, server, 'bad')]
  t.equal(later.filter((r) => r !== undefined).length, 2, 'refilled at 2 per second')
  t.not(chalNonce(later[0]), nonces[0], 'a second later the nonce may rotate again')
  t.equal(chalNonce(later[1]), chalNonce(later[0]))

  // The legitimate server, with the latest nonce, gets in.
  server.learnNonce(later[0]!)
  const ok = await pushOnce(h, server, 'good', [get('./DevInfo/Mod')])
  t.equal(headerStatus(ok!)?.data, '212')
})

t.test('an account without SRVCRED cannot authenticate: its commands get 401, no Chal', async (t) => {
  const spec: AccountSpec = { node: 'open', serverId: 'http://nocred.example.com', clientAuth: SERVER.clientAuth! }
  const h = await createHarness({ accounts: [spec] })
  const party = new Party({ ...spec, serverAuth: { type: 'DIGEST', name: 'x', secret: 'y' } })
  const reply = await pushOnce(h, party, 'good', [get('./DevInfo/Mod')])
  t.same(statusCodes(reply!), { '0': '401', '1': '401' })
  t.equal(headerStatus(reply!)?.chal, undefined)
})

t.test('basic credentials: 212 without a nonce', async (t) => {
  const spec: AccountSpec = { ...SERVER, serverAuth: { type: 'BASIC', name: 'dms-user', secret: 'dms-secret' } }
  const h = await createHarness({ accounts: [spec] })
  const good = await pushOnce(h, new Party(spec), 'good', [get('./DevInfo/Mod')])
  t.equal(headerStatus(good!)?.data, '212')
  t.equal(chalNonce(good), undefined)
  const h2 = await createHarness({ accounts: [spec] })
  const bad = await pushOnce(h2, new Party(spec), 'bad', [get('./DevInfo/Mod')])
  t.equal(headerStatus(bad!)?.data, '401')
  t.equal(headerStatus(bad!)?.chal?.meta.type, 'syncml:auth-basic')
})

t.test('HMAC: every message is checked over its bytes with a fresh nonce each time; status 200', async (t) => {
  const spec: AccountSpec = {
    ...SERVER,
    serverAuth: { type: 'HMAC', name: 'dms-user', secret: 'dms-secret', nonce: bytes('hmac-0') },
    clientAuth: { type: 'HMAC', name: 'device-user', secret: 'device-secret', nonce: bytes('hmac-c') },
  }
  const h = await createHarness({ accounts: [spec] })
  const server = new Party(spec)
  await h.manager.receive(server.message({ sessionId: '31', msgId: 1, hmac: 'good', body: [get('./DevInfo/Mod')] }))
  const first = h.decoded()
  t.equal(headerStatus(first)?.data, '200')
  t.equal(first.hdr.cred, undefined, 'HMAC travels as a property, not as Cred')
  t.match(h.sent[0]!.properties?.['x-syncml-hmac'], /^algorithm=MD5, username="device-user", mac=/)
  const n1 = server.learnNonce(first)!
  await h.manager.receive(server.message({ sessionId: '31', msgId: 2, hmac: 'good', body: [get('./DevInfo/Man')] }))
  const second = h.decoded()
  t.equal(headerStatus(second)?.data, '200')
  const n2 = server.learnNonce(second)!
  t.not(encodeNonce(n2), encodeNonce(n1), 'a new nonce for every message')
  // A message signed over a stale nonce fails.
  server.nonce = n1
  await h.manager.receive(server.message({ sessionId: '31', msgId: 3, hmac: 'good', body: [get('./DevInfo/Man')] }))
  t.equal(headerStatus(h.decoded())?.data, '401')
  t.equal(statusCodes(h.decoded())['1'], '401')
})

t.test('logs never carry a secret, a nonce or a credential', async (t) => {
  const h = await createHarness()
  const server = new Party(SERVER)
  const denied = await pushOnce(h, server, 'bad')
  server.learnNonce(denied!)
  const ok = await pushOnce(h, server, 'good', [get('./DevInfo/Mod')])
  const text = h.log.text()
  for (const secret of ['dms-secret', 'device-secret', chalNonce(denied), chalNonce(ok), ok!.hdr.cred!.data, encodeNonce(bytes('client-nonce-0'))]) {
    t.notOk(text.includes(secret!), `no ${secret} in the logs`)
  }
  t.ok(h.log.lines.some((l) => l.msg === 'session started' && l.party === SERVER.serverId))
})

t.test('a party answering the refusal of its pushed message goes on in the same session', async (t) => {
  const h = await createHarness()
  const server = new Party(SERVER)
  await h.manager.receive(server.message({ sessionId: 'R1', msgId: 1, cred: 'bad', body: [get('./DevInfo/Mod')] }))
  const refused = h.decoded()
  t.equal(refused.hdr.msgId, '1')
  t.equal(headerStatus(refused)?.data, '401')
  server.learnNonce(refused)
  await h.manager.receive(
    server.message({ sessionId: 'R1', msgId: 2, cred: 'good', body: [status('1', '0', 'SyncHdr', 212), get('./DevInfo/Mod')] }),
  )
  const accepted = h.decoded()
  t.equal(accepted.hdr.sessionId, 'R1')
  t.equal(accepted.hdr.msgId, '2', 'our MsgIDs go on from the refused one')
  t.equal(headerStatus(accepted)?.data, '212')
  t.equal(statusCodes(accepted)['2'], '200')
})

t.test('a status-only message that fails authentication still gets its 401 and Chal', async (t) => {
  const h = await createHarness()
  const server = new Party(SERVER)
  await h.manager.openSession(SERVER.serverId, { alert: 1201 })
  const sessionId = h.decoded().hdr.sessionId
  await h.manager.receive(server.message({ sessionId, msgId: 1, cred: 'bad', body: [status('1', '0', 'SyncHdr', 212)] }))
  t.equal(h.sent.length, 2)
  t.equal(headerStatus(h.decoded())?.data, '401')
  t.ok(chalNonce(h.decoded()), 'the party learns the nonce to use')
})
