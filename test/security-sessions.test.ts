// Sessions under attack from the broker (binding.md §6), against the real bundle over mosquitto, driven the way a
// security review broke them: someone who can publish and subscribe on any topic, knows no secret, and copies
// what the real DM Server and gateway send. Each test names the finding it pins.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import t, { type Test } from 'tap'
import { AgentProcess, AGENT_FIXTURES, cleanUpAgent, FACTORY, factoryServer } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { basicCred, md5Digest, nonceBytes } from './peers/auth.ts'
import { startDmServer } from './peers/dm-server.ts'
import { DEVICE_DETECTION_ALERT, startGateway } from './peers/gateway.ts'
import { connectPeer, CONTENT_TYPE, disconnect, publish, subscribe, topicFor } from './peers/mqtt.ts'
import { alert, buildMessage, get, parseMessage, replace, type OutCommand, type ParsedMessage } from './peers/syncml.ts'
import { GATEWAY, gatewayOptions, SERVER_A, serverOptions, startGwmoAgent } from './fixtures/gwmo/parties.ts'

// The attacker of the security review: it can publish and subscribe on any topic (an open broker, no ACL).
const broker = await startMosquitto({ open: true })
t.teardown(() => broker.stop())

const NAME = './DMAcc/dms/Name'
const FACTORY_NAME = 'Example DM Server'

function hdrStatus(m: ParsedMessage | undefined) {
  return m?.commands.find((c) => c.name === 'Status' && (c.cmdRef === '0' || c.cmd === 'SyncHdr'))
}

/**
 * A DM Server written out by hand, so that each message is exactly what the test says: it keeps the nonce the
 * device gave it last (binding.md §6) and reads every message the device sends it.
 */
class HandServer {
  nonce = ''
  readonly inbox: ParsedMessage[] = []
  /** The sessions it sent messages in: a nonce handed out in anyone else's is not its own. */
  readonly #own = new Set<string>()
  #waiting: (() => void) | undefined

  private constructor(readonly client: MqttClient) {
    client.on('message', (_topic, payload) => {
      const parsed = parseMessage(payload.toString('utf8'))
      if (!parsed.ok) return
      this.inbox.push(parsed.message)
      const next = hdrStatus(parsed.message)?.chal?.nextNonce
      if (next !== undefined && this.#own.has(parsed.message.hdr.sessionId)) this.nonce = next
      this.#waiting?.()
    })
  }

  static async start(t: Test, serverId: string = FACTORY.serverId): Promise<HandServer> {
    const client = await connectPeer(broker.url, { as: serverId })
    t.teardown(() => disconnect(client))
    await subscribe(client, topicFor(serverId, 'dm'))
    return new HandServer(client)
  }

  cred(nonce: string = this.nonce, password: string = FACTORY.serverPassword) {
    return { type: 'syncml:auth-md5', data: md5Digest(FACTORY.serverName, password, nonceBytes(nonce)) }
  }

  /** Publishes a message as the server; `cred: null` sends none. */
  send(sessionId: string, msgId: number, commands: OutCommand[], cred: { type: string; data: string } | null = this.cred()): Promise<void> {
    this.#own.add(sessionId)
    const xml = buildMessage({ sessionId, msgId: String(msgId), target: FACTORY.deviceId, source: FACTORY.serverId, locName: FACTORY.serverName, ...(cred && { cred }) }, commands).xml
    return publish(this.client, topicFor(FACTORY.deviceId, 'dm'), xml, { contentType: CONTENT_TYPE.xml })
  }

  /** The first message of session `sessionId` the device sent the server after the first `after` ones. */
  next(sessionId: string, after: number, timeoutMs = 10_000): Promise<ParsedMessage> {
    return this.waitForMessage((m) => m.hdr.sessionId === sessionId, after, timeoutMs, `a message of session ${sessionId}`)
  }

  /** The first message from the device, after the first `after` ones, that satisfies `predicate`. */
  waitForMessage(predicate: (m: ParsedMessage) => boolean, after: number, timeoutMs = 10_000, what = 'the message awaited'): Promise<ParsedMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} from the device within ${timeoutMs} ms`)), timeoutMs)
      const probe = () => {
        const message = this.inbox.slice(after).find(predicate)
        if (message === undefined) return
        clearTimeout(timer)
        this.#waiting = undefined
        resolve(message)
      }
      this.#waiting = probe
      probe()
    })
  }

  /** The first Package 1 (a session the device opens) after the first `after` messages. */
  async nextOpening(after: number, timeoutMs = 20_000): Promise<ParsedMessage> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const opening = this.inbox.slice(after).find((m) => m.commands.some((c) => c.name === 'Alert' && (c.data === '1201' || c.data === '1200')))
      if (opening !== undefined) return opening
      if (Date.now() > deadline) throw new Error(`no Package 1 within ${timeoutMs} ms`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  /** Closes a session: the Statuses for the device's `answer`, nothing more (no reply follows, binding.md §3). */
  close(answer: ParsedMessage, msgId: number): Promise<void> {
    return this.send(answer.hdr.sessionId, msgId, [
      { name: 'Status', msgRef: answer.hdr.msgId, cmdRef: '0', cmd: 'SyncHdr', data: '212' },
      ...answer.commands.filter((c) => c.name !== 'Status').map((c): OutCommand => ({ name: 'Status', msgRef: answer.hdr.msgId, cmdRef: c.cmdId, cmd: c.name, data: '200' })),
    ])
  }

  /** Messages of session `sessionId` the device sent the server so far. */
  of(sessionId: string): ParsedMessage[] {
    return this.inbox.filter((m) => m.hdr.sessionId === sessionId)
  }

  /**
   * Opens a session by pushing `commands`, answering the one challenge a session may begin with (§6); resolves
   * with the device's answer and the MsgID the server's next message of the session takes.
   */
  async push(sessionId: string, commands: OutCommand[]): Promise<{ answer: ParsedMessage; nextMsgId: number }> {
    let msgId = 1
    for (let tries = 0; ; tries++) {
      const seen = this.inbox.length
      await this.send(sessionId, msgId, commands)
      // Unanswered, it sends again, as a server does: answers to failed authentication are rate-limited (§6).
      const answer = await this.next(sessionId, seen, 3000).catch((error: unknown) => {
        if (tries >= 4) throw error
        return undefined
      })
      if (answer === undefined) continue
      if (hdrStatus(answer)?.data !== '401' || msgId > 2) return { answer, nextMsgId: msgId + 1 }
      msgId++
    }
  }
}

/** A syncml:auth-basic CLCRED beside the account's md5 one: a basic Chal would have its password sent in clear. */
const BASIC_ENTRY = [
  ['AAuthLevel', 'CLCRED'], ['AAuthType', 'BASIC'], ['AAuthName', 'device-user'], ['AAuthSecret', 'basic-password'],
].map(([leaf, data], k) => `<Add><CmdID>${20 + k}</CmdID><Item><Target><LocURI>./DMAcc/dms/AppAuth/3/${leaf}</LocURI></Target><Meta><Format xmlns="syncml:metinf">chr</Format></Meta><Data>${data}</Data></Item></Add>`).join('')

/** The factory document with the account's entries changed by `edit` (text replacements). */
function factoryWith(dir: string, edit: (xml: string) => string): string {
  const path = join(dir, 'factory-edited.xml')
  writeFileSync(path, edit(readFileSync(join(AGENT_FIXTURES, 'factory-bootstrap.xml'), 'utf8')))
  return path
}

/**
 * The agent on the factory account and the real server, written out by hand, which answers the factory session
 * with its Statuses (the session ends; the nonce that answer used is spent, binding.md §6).
 */
async function startWorld(t: Test, factoryBootstrap?: (dir: string) => string, closeFactorySession = true): Promise<{ agent: AgentProcess; server: HandServer }> {
  const server = await HandServer.start(t)
  const dir = AgentProcess.makeDir()
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, dir, ...(factoryBootstrap && { factoryBootstrap: factoryBootstrap(dir) }) }))
  const p1 = await server.nextOpening(0)
  if (closeFactorySession) {
    await server.close(p1, 1)
    await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === p1.hdr.sessionId)
  }
  return { agent, server }
}

/** The account's name as the real server reads it, in a session of its own. */
async function nameSeenBy(server: HandServer, sessionId: string): Promise<string | undefined> {
  const { answer } = await server.push(sessionId, [get(NAME)])
  return answer.commands.find((c) => c.name === 'Results')?.items[0]?.data
}

t.test('finding 1: a Cred copied off the broker is not accepted again, not even in a session of the attacker\'s own', async (t) => {
  const { agent, server } = await startWorld(t)
  // The real server: a session that ends on its own Status-only message, which no reply follows.
  const { answer, nextMsgId } = await server.push('A1', [get('./DevInfo/Mod')])
  const results = answer.commands.find((c) => c.name === 'Results')!
  const closing = server.cred()
  await server.send('A1', nextMsgId, [{ name: 'Status', msgRef: answer.hdr.msgId, cmdRef: '0', cmd: 'SyncHdr', data: '212' },
    { name: 'Status', msgRef: answer.hdr.msgId, cmdRef: results.cmdId, cmd: 'Results', data: '200' }])
  await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === 'A1')

  // Regression: that closing message's Cred, in a session the attacker pushed with a new SessionID, got 212 and
  // its commands ran.
  const seen = server.inbox.length
  await server.send('B0B', 1, [replace(NAME, 'taken over')], closing)
  const refusal = await server.next('B0B', seen)
  t.equal(hdrStatus(refusal)?.data, '401', 'the replayed Cred is refused')
  t.equal(refusal.hdr.cred, undefined, 'and the refusal carries no Cred of the device')
  t.equal(await nameSeenBy(server, 'C1'), FACTORY_NAME, 'nothing of it ran')
})

t.test('finding 2: a session is not hijacked by messages without credentials, during it or while it lingers', async (t) => {
  const { agent, server } = await startWorld(t)
  const attacker = await HandServer.start(t, 'http://attacker.example')

  // Racing the real server: its next MsgID, no Cred, first. Regression: the attacker's Replace ran and the real
  // message was then taken for a duplicate.
  const { answer, nextMsgId } = await server.push('D1', [get('./DevInfo/Mod')])
  t.ok(answer.commands.some((c) => c.name === 'Results'))
  const seen = server.inbox.length
  const before = server.of('D1').length
  await attacker.send('D1', nextMsgId, [replace(NAME, 'hijacked')], null)
  // Regression: a Cred-less message with the largest MsgID made every later message of the session "old".
  await attacker.send('D1', 2147483647, [replace(NAME, 'hijacked')], null)
  await server.send('D1', nextMsgId, [get(NAME)])
  const real = await server.next('D1', seen)
  t.equal(real.commands.find((c) => c.name === 'Status' && c.cmd === 'SyncHdr')?.msgRef, String(nextMsgId), 'the real message is answered')
  t.equal(real.commands.find((c) => c.name === 'Results')?.items[0]?.data, FACTORY_NAME, 'and nothing of the attacker\'s ran')
  t.equal(server.of('D1').length, before + 1, 'the attacker\'s messages got no answer')
  await server.close(real, nextMsgId + 1)

  // While a session lingers after the device's Status-only answer. Regression: Adds without Cred, sent then,
  // made a new account and a backdoor credential.
  const lingering = await server.push('E1', [replace(NAME, 'renamed by the server')])
  t.same(lingering.answer.commands.map((c) => c.name), ['Status', 'Status'], 'a Status-only answer: the session lingers')
  const quiet = server.of('E1').length
  await attacker.send('E1', lingering.nextMsgId, [replace(NAME, 'hijacked while lingering')], null)
  // The device handles it before the server's next session, which waits behind the lingering one.
  t.equal(await nameSeenBy(server, 'F1'), 'renamed by the server', 'not run')
  t.equal(server.of('E1').length, quiet, 'nor answered')
  t.ok(await agent.waitForLog((l) => l.msg === 'message that does not authenticate dropped', 10_000).catch(() => undefined), 'logged')
})

t.test('finding 5: in a session of the real server, a forged Chal is not obeyed, nor the server\'s own for a weaker scheme', async (t) => {
  const { agent, server } = await startWorld(t, (dir) => factoryWith(dir, (xml) => xml.replace('<Final/>', `${BASIC_ENTRY}<Final/>`)))
  const attacker = await HandServer.start(t, 'http://attacker.example')
  const { nextMsgId } = await server.push('G1', [get('./DevInfo/Mod')])
  const seen = server.inbox.length
  // Regression: a forged 401 + Chal made the device answer with its md5 Cred for the attacker's nonce, and a basic
  // Chal made it publish user:password.
  const forgedNonce = Buffer.from('the attacker chose this').toString('base64')
  await attacker.send('G1', nextMsgId, [{ name: 'Status', msgRef: '1', cmdRef: '0', cmd: 'SyncHdr', data: '401', chal: { type: 'syncml:auth-md5', format: 'b64', nextNonce: forgedNonce } }], null)
  await attacker.send('H1', 1, [{ name: 'Status', msgRef: '1', cmdRef: '0', cmd: 'SyncHdr', data: '401', chal: { type: 'syncml:auth-basic', format: 'b64' } }, get('./DevInfo/Mod')], null)
  // Even the real server, authenticated, cannot move the device to basic.
  await server.send('G1', nextMsgId, [{ name: 'Status', msgRef: '2', cmdRef: '0', cmd: 'SyncHdr', data: '401', chal: { type: 'syncml:auth-basic', format: 'b64' } }, get('./DevInfo/Lang')])
  // Its answer (the Results of that Get) comes after whatever the forged messages drew.
  const answered = await server.waitForMessage((m) => m.hdr.sessionId === 'G1' && m.commands.some((c) => c.name === 'Results' && c.items[0]?.source === './DevInfo/Lang'), seen)
    .catch(() => undefined)
  t.ok(answered, 'the real server\'s Get is answered')
  // The agent's stdout is read apart from MQTT: its line may come after the answer.
  t.ok(await agent.waitForLog((l) => String(l.msg).includes('weaker scheme'), 10_000).catch(() => undefined), 'the weaker Chal is logged as ignored')
  const sent = server.inbox.slice(seen)
  const creds = sent.map((m) => m.hdr.cred?.data).filter((c): c is string => c !== undefined)
  t.notOk(creds.includes(md5Digest(FACTORY.clientName, FACTORY.clientPassword, nonceBytes(forgedNonce))), 'no Cred for the attacker\'s nonce')
  t.notOk(creds.includes(basicCred('device-user', 'basic-password')), 'the basic password never left the device')
  t.ok(sent.filter((m) => m.hdr.cred !== undefined).every((m) => m.hdr.cred!.type === 'syncml:auth-md5'), 'every Cred it sent is md5')
})

t.test('finding 5: a forged answer to the device\'s Package 1 gets no Cred of it, for the attacker\'s nonce or in basic', async (t) => {
  const { server } = await startWorld(t, (dir) => factoryWith(dir, (xml) => xml.replace('<Final/>', `${BASIC_ENTRY}<Final/>`)), false)
  const attacker = await HandServer.start(t, 'http://attacker.example')
  const p1 = await server.nextOpening(0)
  const seen = server.inbox.length
  // Regression: the device answered a forged 401 + Chal with its Cred for the forger's nonce, or its password in
  // syncml:auth-basic for a basic Chal.
  const forgedNonce = Buffer.from('the attacker chose this').toString('base64')
  const answerP1 = (chal: { type: string; format: string; nextNonce?: string }, msgId: number) => attacker.send(p1.hdr.sessionId, msgId,
    [{ name: 'Status', msgRef: p1.hdr.msgId, cmdRef: '0', cmd: 'SyncHdr', data: '401', chal }], attacker.cred('', 'not-the-secret'))
  await answerP1({ type: 'syncml:auth-md5', format: 'b64', nextNonce: forgedNonce }, 1)
  await answerP1({ type: 'syncml:auth-basic', format: 'b64' }, 2)
  const refusals = [await server.next(p1.hdr.sessionId, seen), await server.next(p1.hdr.sessionId, seen + 1)]
  t.same(refusals.map((m) => hdrStatus(m)?.data), ['401', '401'], 'each forged answer is refused')
  t.same(refusals.map((m) => m.hdr.cred), [undefined, undefined], 'with no Cred of the device')
  const text = server.inbox.slice(seen).map((m) => JSON.stringify(m)).join('\n')
  t.notOk(text.includes(md5Digest(FACTORY.clientName, FACTORY.clientPassword, nonceBytes(forgedNonce))), 'no Cred for the attacker\'s nonce')
  t.notOk(text.includes(basicCred('device-user', 'basic-password')), 'the basic password never left the device')
})

t.test('finding 6: one forged message as the DM Server does not put the real server out of step', async (t) => {
  const dms = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => dms.stop())
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url }))
  await dms.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
  const pushed = await dms.pushSession([get('./DevInfo/Mod')])
  await dms.waitForSession((s) => s === pushed && s.closed, 20_000)
  await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === pushed.sessionId)
  // Regression: a single message with a bad digest rotated the stored nonce, and the server's next real
  // notification was dropped as a bad digest.
  const attacker = await HandServer.start(t, 'http://attacker.example')
  await attacker.send('BAD', 1, [get('./DevInfo/Mod')], attacker.cred('', 'not-the-secret'))
  // The refusal reaches the server's topic (the device handled it); the real server takes nothing of it.
  const refused = await dms.waitFor(() => dms.strays.find((m) => m.hdr.sessionId === 'BAD'), 10_000, 'the refusal')
  t.equal(hdrStatus(refused)?.data, '401', 'the forged message is refused')
  const from = agent.logs.length
  await dms.sendNotification({ sessionId: 0x606 })
  const verdict = await agent.waitForLogAfter(from, (l) => l.msg === 'notification accepted' || l.msg === 'notification dropped')
  t.equal(verdict.msg, 'notification accepted', 'the real server\'s notification is still accepted')
  t.equal(verdict.matched, 'stored', 'with the nonce it holds')
  const session = await dms.waitForSession((s) => s.sessionId === '606' && s.closed, 20_000)
  t.equal(session.initiation, '1200', 'and the session it asks for opens')
})

t.test('finding 8: an SRVCRED with no secret is no credential', async (t) => {
  // The account's SRVCRED entry without AAuthName and AAuthSecret (CmdIDs 14 and 15 of the fixture).
  // (Its factory session cannot end: nothing the server sends could authenticate it.)
  const { agent, server: attacker } = await startWorld(t, (dir) => factoryWith(dir, (xml) => xml.replace(/<Add><CmdID>1[45]<\/CmdID>.*?<\/Add>\s*/gs, '')), false)
  // Regression: md5 over `ServerID:` (no name, an empty secret, the empty factory nonce) was accepted.
  const empty = { type: 'syncml:auth-md5', data: md5Digest(FACTORY.serverId, '', new Uint8Array(0)) }
  await attacker.send('E0', 1, [replace(NAME, 'no secret needed')], empty)
  const answer = await attacker.next('E0', 0)
  t.equal(hdrStatus(answer)?.data, '401', 'refused')
  t.equal(hdrStatus(answer)?.chal, undefined, 'with no Chal: nothing could authenticate this party')
  t.notOk(answer.commands.some((c) => c.name === 'Status' && c.cmd === 'Replace' && c.data === '200'), 'the Replace did not run')
  await agent.waitForLog((l) => l.msg === 'authentication failed' && l.code === 'AUTH_NO_CREDENTIAL')
})

t.test('finding 10: a flood in the gateway\'s name takes no place in its line, and its next detection is answered', async (t) => {
  const server = await startDmServer(serverOptions(broker.url, FACTORY.deviceId, SERVER_A))
  const gateway = await startGateway(gatewayOptions(broker.url, FACTORY.deviceId, GATEWAY))
  const agent = startGwmoAgent({ brokerUrl: broker.url, deviceId: FACTORY.deviceId, parties: [SERVER_A, GATEWAY] })
  t.teardown(async () => {
    if (!t.passing()) t.comment(agent.tail(40))
    await agent.remove()
    await server.stop()
    await gateway.stop()
  })
  for (const peer of [server, gateway]) await peer.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
  // A real detection, captured off the broker.
  const first = await gateway.detect({ gwAddress: '192.0.2.1', share: false })
  t.same(first, [SERVER_A.serverId])
  const captured = gateway.sessions.flatMap((s) => s.sent).find((m) => m.commands.some((c) => c.name === 'Alert' && c.data === DEVICE_DETECTION_ALERT))!.xml
  // The gateway keeps a session open (the device's Status-only answer lingers), then the flood: the captured
  // detection again and again, each with a SessionID of its own. Regression: the copies queued behind that
  // session until the queue was full, the gateway's next detection was dropped with them, and every drop was a
  // log line of its own.
  const linger = await gateway.pushSession([alert('1222')])
  await gateway.waitForSession((s) => s === linger && s.received.length > 0, 10_000)
  const from = agent.logs.length
  const flooder = await connectPeer(broker.url)
  t.teardown(() => disconnect(flooder))
  const FLOOD = 2000
  const published: Promise<void>[] = []
  for (let k = 0; k < FLOOD; k++) {
    const copy = captured.replace(/<SessionID>[^<]*<\/SessionID>/, `<SessionID>FL${k}</SessionID>`)
    published.push(publish(flooder, topicFor(FACTORY.deviceId, 'dm'), copy, { contentType: CONTENT_TYPE.xml }))
  }
  await Promise.all(published)
  // Within seconds of the flood's end the real gateway is answered. It tries again when its try goes unanswered,
  // as a gateway does: the answers to failed authentication are rate-limited per party (§6).
  let list: string[] | undefined
  for (let attempt = 0; attempt < 5 && list === undefined; attempt++) {
    list = await gateway.detect({ gwAddress: '192.0.2.1', share: false, timeoutMs: 3000 }).catch(() => undefined)
  }
  t.same(list, [SERVER_A.serverId], 'the real gateway\'s detection is answered')
  const warnings = agent.logs.slice(from).filter((l) => l.level === 'warn')
  t.ok(warnings.length < 40, `a flood of ${FLOOD} makes a few warning lines, not one each (${warnings.length})`)
  t.notOk(agent.logs.slice(from).some((l) => l.msg === 'session started' && String(l.sessionId).startsWith('FL')),
    'no copy started a session')
})

t.test('what held and holds: a party\'s credentials under another party\'s Source, and 1,600 mutated messages', async (t) => {
  const { agent, server } = await startWorld(t)
  const { answer, nextMsgId } = await server.push('K1', [get(NAME)])
  await server.close(answer, nextMsgId)
  await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === 'K1')
  const captured = server.inbox.map((m) => m)
  t.ok(captured.length > 0)
  // Credentials that are right for one party do not make a message of another: the account named by the
  // Source is the one checked (here a stranger's password under the server's Source and name).
  const seen = server.inbox.length
  await server.send('K2', 1, [replace(NAME, 'by another party')], server.cred(server.nonce, 'another party\'s secret'))
  t.equal(hdrStatus(await server.next('K2', seen))?.data, '401', 'another party\'s credentials: refused')

  // Byte-mutated copies of a real message of the server, with a fixed seed: each is dropped, refused or
  // answered as what it has become, and none brings the agent down or changes the tree.
  const xml = buildMessage({ sessionId: 'K3', msgId: '1', target: FACTORY.deviceId, source: FACTORY.serverId, locName: FACTORY.serverName, cred: server.cred() },
    [replace(NAME, 'mutated'), get('./DevInfo/Mod'), alert('1230', [{ data: '<GwAddress>x</GwAddress><Share>true</Share>' }])]).xml
  const flooder = await connectPeer(broker.url)
  t.teardown(() => disconnect(flooder))
  let seed = 0x2545f491
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32)
  const sent: Promise<void>[] = []
  for (let k = 0; k < 1600; k++) {
    const bytes = Buffer.from(xml, 'utf8')
    for (let m = 1 + Math.floor(random() * 4); m > 0; m--) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256)
    sent.push(publish(flooder, topicFor(FACTORY.deviceId, 'dm'), bytes, { contentType: CONTENT_TYPE.xml }))
  }
  await Promise.all(sent)
  t.equal(await nameSeenBy(server, 'K4'), FACTORY_NAME, 'the agent answers the real server afterwards, nothing changed')
  t.ok(agent.running, 'and still runs')
})
