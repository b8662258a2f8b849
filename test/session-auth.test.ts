import t from 'tap'
import { md5Digest } from '../src/auth/md5.ts'
import { decodeNonce, encodeNonce } from '../src/auth/nonce.ts'
import type { SyncMLMessage } from '../src/codec/syncml-model.ts'
import {
  add, bytes, createHarness, get, headerStatus, md5Chal, Party, replace, SERVER, settle, status, statusCodes, type AccountSpec,
  type AuthSpec, type CredMode, type Harness,
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

t.test('wrong Cred: 401 with a Chal whose nonce is not stored; the right Cred with it: 212 and a fresh NextNonce', async (t) => {
  const h = await createHarness()
  const server = new Party(SERVER)
  const denied = await pushOnce(h, server, 'bad')
  t.same(statusCodes(denied!), { '0': '401', '1': '401' })
  t.equal(h.tree.get('./DevDetail/FwV', 'device').value?.data, '')
  t.equal(denied!.hdr.cred, undefined, 'a refusal carries no Cred of the device')
  // Regression: one forged message rotated the stored nonce and knocked the real server out of step.
  t.same(h.tree.readSecret('./DMAcc/dms/AppAuth/2/AAuthData'), bytes('server-nonce-0'), 'the stored nonce is untouched')
  const given = decodeNonce(chalNonce(denied)!)!
  t.not(encodeNonce(given), encodeNonce(bytes('server-nonce-0')))

  // The refused session goes on with the Chal's nonce (binding.md §6).
  server.nonce = given
  await h.manager.receive(server.message({ sessionId: denied!.hdr.sessionId, msgId: 2, cred: 'good', body: [get('./DevInfo/Mod')] }))
  const accepted = h.decoded()
  t.equal(headerStatus(accepted)?.data, '212')
  const fresh = chalNonce(accepted)
  t.ok(fresh)
  t.not(fresh, encodeNonce(given), 'a fresh NextNonce')
  t.same(h.tree.readSecret('./DMAcc/dms/AppAuth/2/AAuthData'), decodeNonce(fresh!), 'stored for the next message or session')
  t.equal(statusCodes(accepted)['1'], '200')
  // The device's own Cred goes in every message it sends.
  t.equal(accepted.hdr.cred?.data, md5Digest('device-user', 'device-secret', bytes('client-nonce-0')))
  // The nonce that reply handed out, unused, also opens the party's next session (this one timed out).
  server.learnNonce(accepted)
  for (let k = 0; k < 5; k++) {
    h.clock.advance(30_000)
    await settle()
  }
  const other = await pushOnce(h, server, 'good', [get('./DevInfo/Mod')])
  t.equal(headerStatus(other!)?.data, '212')
})

t.test('a nonce is single-use: a captured Cred replayed in a new session is refused', async (t) => {
  const h = await createHarness()
  const server = new Party(SERVER)
  const first = await pushOnce(h, server, 'good', [get('./DevInfo/Mod')])
  t.equal(headerStatus(first!)?.data, '212')
  const sessionId = first!.hdr.sessionId
  server.learnNonce(first!)
  // The party closes with Status only: no reply carries a next nonce, yet the one it used is spent.
  await h.manager.receive(server.message({ sessionId, msgId: 2, body: [status('1', '0', 'SyncHdr', 212)] }))
  await settle()
  const sent = h.sent.length
  // Regression: the Cred of that closing message, copied into a new session (a new SessionID), was accepted.
  const replay = await pushOnce(h, server, 'good', [replace('./DevDetail/FwV', 'evil')])
  t.equal(h.sent.length, sent + 1)
  t.equal(headerStatus(replay!)?.data, '401', 'refused: the nonce is spent')
  t.equal(h.tree.get('./DevDetail/FwV', 'device').value?.data, '', 'nothing ran')
  // So is the first message's (its nonce was spent first).
  const keep = server.nonce
  server.nonce = bytes('server-nonce-0')
  t.equal(headerStatus((await pushOnce(h, server, 'good', [get('./DevInfo/Mod')]))!)?.data, '401')
  server.nonce = keep
  // The spent nonce stays refused after a clean restart of the engine.
  await h.manager.stop()
  const h2 = await createHarness({ treeStore: h.treeStore, stateStore: h.stateStore })
  t.equal(headerStatus((await pushOnce(h2, server, 'good', [get('./DevInfo/Mod')]))!)?.data, '401', 'after a restart too')
  // The real party answers the challenge and gets in: one round trip, never a replay.
  server.learnNonce(h2.decoded())
  await h2.manager.receive(server.message({ sessionId: h2.decoded().hdr.sessionId, msgId: 2, body: [get('./DevInfo/Mod')] }))
  t.equal(headerStatus(h2.decoded())?.data, '212')
})

t.test('every message of a session authenticates: one without, or with a spent nonce, runs nothing and changes nothing', async (t) => {
  const h = await createHarness()
  h.tree.add('./Vendor', { format: 'node' }, 'device')
  h.tree.replace('./Vendor?prop=ACL', { format: 'chr', data: 'Add=*&Delete=*&Get=*&Replace=*' }, 'device')
  const server = new Party(SERVER)
  const first = await pushOnce(h, server, 'good', [get('./DevInfo/Mod')])
  const sessionId = first!.hdr.sessionId
  const spent = server.nonce
  server.learnNonce(first!)
  const sent = h.sent.length
  // Regression: after the party authenticated, Cred-less messages with the next MsgID ran with its rights.
  await h.manager.receive(server.message({ sessionId, msgId: 2, cred: 'none', body: [add('./Vendor/backdoor', 'x')] }))
  await h.manager.receive(server.message({ sessionId, msgId: 2, cred: 'bad', body: [add('./Vendor/backdoor', 'x')] }))
  const fresh = server.nonce
  server.nonce = spent
  await h.manager.receive(server.message({ sessionId, msgId: 2, cred: 'good', body: [add('./Vendor/backdoor', 'x')] }))
  server.nonce = fresh
  // Regression: one Cred-less message with a huge MsgID made every later message of the session "old".
  await h.manager.receive(server.message({ sessionId, msgId: 2147483647, cred: 'none', body: [add('./Vendor/backdoor', 'x')] }))
  t.equal(h.sent.length, sent, 'none of them is answered')
  t.equal(h.tree.get('./Vendor/backdoor', 'device').status, 404, 'none of them ran')
  t.ok(h.log.lines.some((l) => l.msg === 'message that does not authenticate dropped'), 'logged')
  // The real party's next message, made with the nonce of the device's last message, runs as if nothing happened.
  await h.manager.receive(server.message({ sessionId, msgId: 2, body: [status('1', '0', 'SyncHdr', 212), add('./Vendor/real', 'y')] }))
  const answer = h.decoded()
  t.equal(answer.hdr.msgId, '2')
  t.same(statusCodes(answer), { '0': '200', '2': '200' })
  t.equal(h.tree.get('./Vendor/real', 'device').value?.data, 'y')
  t.ok(answer.hdr.cred, 'the device authenticates in every message')
  t.ok(chalNonce(answer), 'and hands the next nonce in every message')
})

t.test('a Chal is obeyed only from a message that authenticates, and never for a weaker scheme', async (t) => {
  const spec: AccountSpec = {
    ...SERVER,
    clientAuth: [SERVER.clientAuth as AuthSpec, { type: 'BASIC', name: 'device-user', secret: 'basic-password' }],
  }
  const h = await createHarness({ accounts: [spec] })
  const server = new Party(spec)
  const first = await pushOnce(h, server, 'good', [get('./DevInfo/Mod')])
  const sessionId = first!.hdr.sessionId
  server.learnNonce(first!)
  const sent = h.sent.length
  // Regression: a forged 401 + Chal made the device answer with its Cred for the forger's nonce, or its password.
  await h.manager.receive(server.message({ sessionId, msgId: 2, cred: 'bad', body: [status('1', '0', 'SyncHdr', 401, md5Chal(bytes('forger-nonce')))] }))
  t.equal(h.sent.length, sent, 'an unauthenticated challenge gets nothing')
  // Even from the real party: a basic Chal to an md5 account is not obeyed.
  const basicChal = { meta: { type: 'syncml:auth-basic', format: 'b64' } }
  await h.manager.receive(server.message({ sessionId, msgId: 2, body: [status('1', '0', 'SyncHdr', 401, basicChal), get('./DevInfo/Lang')] }))
  const answer = h.decoded()
  t.equal(answer.hdr.cred?.meta?.type, 'syncml:auth-md5', 'still md5')
  const everything = h.sent.map((m) => Buffer.from(m.payload).toString('utf8')).join('\n')
  t.notOk(everything.includes(Buffer.from('device-user:basic-password').toString('base64')), 'the basic password never left')
  t.ok(h.log.lines.some((l) => String(l.msg).includes('weaker scheme')))
})

t.test('answers to failed authentication are rate-limited per party; every refusal has a nonce of its own', async (t) => {
  const h = await createHarness({ constants: { authFailureBurst: 3, authFailureAnswersPerSecond: 2 } })
  const server = new Party(SERVER)
  const replies: Array<SyncMLMessage | undefined> = []
  for (let k = 0; k < 10; k++) replies.push(await pushOnce(h, server, 'bad'))
  const answered = replies.filter((r) => r !== undefined)
  t.equal(answered.length, 3, 'a burst of 3, the rest dropped')
  t.equal(h.log.lines.filter((l) => String(l.msg).includes('rate limit')).length, 1, 'the drops are logged once within the second')
  h.clock.advance(1000)
  const later = [await pushOnce(h, server, 'bad'), await pushOnce(h, server, 'bad'), await pushOnce(h, server, 'bad')]
  t.equal(later.filter((r) => r !== undefined).length, 2, 'refilled at 2 per second')
  const nonces = [...answered, ...later].filter((r) => r !== undefined).map(chalNonce)
  t.equal(new Set(nonces).size, nonces.length, 'no nonce handed out twice')
  t.ok(h.log.lines.some((l) => String(l.msg).includes('rate limit') && Number(l.suppressed) > 0), 'with the count left out')
  // The stored nonce never moved: the legitimate server gets in at the first try.
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
  // A message signed over a stale nonce runs nothing and is not answered (the party authenticated before).
  server.nonce = n1
  const sent = h.sent.length
  await h.manager.receive(server.message({ sessionId: '31', msgId: 3, hmac: 'good', body: [replace('./DevInfo/Lang', 'xx')] }))
  t.equal(h.sent.length, sent)
  t.equal(h.tree.get('./DevInfo/Lang', 'device').value?.data, 'en-US')
})

t.test('logs never carry a secret, a nonce or a credential', async (t) => {
  const h = await createHarness()
  const server = new Party(SERVER)
  const denied = await pushOnce(h, server, 'bad')
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
  await h.manager.receive(server.message({ sessionId: 'R1', msgId: 2, cred: 'good', body: [get('./DevInfo/Mod')] }))
  const accepted = h.decoded()
  t.equal(accepted.hdr.sessionId, 'R1')
  t.equal(accepted.hdr.msgId, '2', 'our MsgIDs go on from the refused one')
  t.equal(headerStatus(accepted)?.data, '212')
  t.equal(statusCodes(accepted)['1'], '200')
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

t.test('a message refused twice (it went twice) may be answered with either refusal\'s nonce', async (t) => {
  const h = await createHarness()
  const server = new Party(SERVER)
  const stale = server.message({ sessionId: 'R2', msgId: 1, cred: 'bad', body: [get('./DevInfo/Mod')] })
  await h.manager.receive(stale)
  const first = decodeNonce(chalNonce(h.decoded())!)!
  await h.manager.receive(stale)
  const second = decodeNonce(chalNonce(h.decoded())!)!
  t.not(encodeNonce(first), encodeNonce(second), 'each refusal hands out a nonce of its own')
  // Regression: the second refusal's nonce replaced the first, and the party's answer to the first was refused.
  server.nonce = first
  await h.manager.receive(server.message({ sessionId: 'R2', msgId: 2, body: [get('./DevInfo/Mod')] }))
  t.equal(headerStatus(h.decoded())?.data, '212', 'the answer to the first refusal gets in')
})
