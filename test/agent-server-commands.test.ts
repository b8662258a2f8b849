// A DM Server's commands against the real agent (OMA DM Protocol 1.2, 6; binding.md §3): every command gets
// the right Status, every Get its Results, refused and malformed commands change nothing, and everything
// acknowledged with 200 survives a SIGKILL (a 200 for a change leaves only once the change is durable).
import t from 'tap'
import mqtt from 'mqtt'
import { AgentProcess, cleanUpAgent, FACTORY, factoryServer, finalStatus, type TeardownHost } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { md5Digest, nonceBytes } from './peers/auth.ts'
import { startDmServer } from './peers/dm-server.ts'
import { CONTENT_TYPE, topicFor, usernameOf } from './peers/mqtt.ts'
import { statusOf, resultFor, type PartySession } from './peers/session-record.ts'
import { add, addNode, atomic, buildMessage, del, get, raw, replace, sequence } from './peers/syncml.ts'
import { parseWbxmlMessage, xmlToWbxml } from './peers/wbxml.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

const EXT = './DMAcc/dms/Ext'

function statusByCmdRef(session: PartySession, cmdRef: string): { cmd: string; code: string } | undefined {
  return session.statuses.find((s) => s.cmdRef === cmdRef)
}

/** A plain MQTT client in the server's place: sends raw payloads to the device and hands over its answers. */
async function rawParty(t: TeardownHost, brokerUrl: string) {
  const client = mqtt.connect(brokerUrl, { protocolVersion: 5, clientId: `raw-server-${process.pid}`, username: usernameOf(FACTORY.serverId), reconnectPeriod: 0 })
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', reject)
  })
  t.teardown(() => client.endAsync())
  const inbox: Buffer[] = []
  const waiting: ((payload: Buffer) => void)[] = []
  client.on('message', (_topic, payload) => {
    const waiter = waiting.shift()
    if (waiter) waiter(payload)
    else inbox.push(payload)
  })
  await client.subscribeAsync(topicFor(FACTORY.serverId, 'dm'), { qos: 1 })
  return {
    send: (payload: Uint8Array) =>
      client.publishAsync(topicFor(FACTORY.deviceId, 'dm'), Buffer.from(payload), { qos: 1, properties: { contentType: CONTENT_TYPE.wbxml } }),
    next: (): Promise<Buffer> => {
      const ready = inbox.shift()
      if (ready) return Promise.resolve(ready)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no answer from the device within 20 s')), 20_000)
        waiting.push((payload) => {
          clearTimeout(timer)
          resolve(payload)
        })
      })
    },
  }
}

/** Every payload the device sent in a session, as text. */
function deviceText(session: PartySession): string {
  return session.received.map((m) => (typeof m.payload === 'string' ? m.payload : Buffer.from(m.payload).toString('latin1'))).join('\n')
}

t.test('statuses and results of a management session, and what survives a SIGKILL right after it', async (t) => {
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())

  // Turn 1: build a subtree the server may manage (it holds Add/Delete/Get/Replace on its own account).
  const addExt = addNode(EXT)
  const addTmp = add(`${EXT}/Tmp`, 'temporary')
  const addNote = add(`${EXT}/Note`, 'added by the server')
  // Turn 2: everything else.
  const getDevInfo = get('./DevInfo/Man')
  const getDevDetail = get('./DevDetail')
  const getDevTyp = get('./DevDetail/DevTyp')
  const replaceName = replace('./DMAcc/dms/Name', 'Renamed')
  const deleteTmp = del(`${EXT}/Tmp`)
  const atomicAdd = add(`${EXT}/AtomicA`, 'never')
  const atomicBad = replace('./DevInfo/Mod', 'hacked')
  const atomicAfter = add(`${EXT}/AtomicB`, 'never either')
  const failingAtomic = atomic(atomicAdd, atomicBad, atomicAfter)
  const seqAdd = add(`${EXT}/Seq`, 'first')
  const seqReplace = replace(`${EXT}/Seq`, 'second')
  const seq = sequence(seqAdd, seqReplace)
  const unknown = raw('<Sync><CmdID>90</CmdID></Sync>')
  const getSecret = get('./DMAcc/dms/AppAuth/2/AAuthSecret')
  const getClientSecret = get('./DMAcc/dms/AppAuth/1/AAuthSecret')
  // Malformed: b64 data that is not base64 (it would have added a node), and a Replace without an Item.
  const malformedAdd = raw(`<Add><CmdID>91</CmdID><Item><Target><LocURI>${EXT}/Bad</LocURI></Target><Meta><Format xmlns="syncml:metinf">b64</Format></Meta><Data>!!not base64!!</Data></Item></Add>`)
  const malformedReplace = raw('<Replace><CmdID>92</CmdID></Replace>')
  const replaceDevInfo = replace('./DevInfo/Mod', 'hacked')
  const addDevInfo = add('./DevInfo/Extra', 'x')
  server.queueSession(
    [addExt, addTmp, addNote],
    [getDevInfo, getDevDetail, getDevTyp, replaceName, deleteTmp, failingAtomic, seq, unknown, getSecret, getClientSecret,
      malformedAdd, malformedReplace, replaceDevInfo, addDevInfo],
  )

  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, config: { devInfo: { man: 'Acme', mod: 'M1' } } }))
  const session = await server.waitForSession((s) => s.closed, 25_000)
  t.equal(session.initiation, '1201')

  t.equal(statusOf(session, addExt), '200', 'Add of an interior node under the account')
  t.equal(statusOf(session, addTmp), '200')
  t.equal(statusOf(session, addNote), '200')

  t.equal(statusOf(session, getDevInfo), '200')
  t.equal(resultFor(session, './DevInfo/Man'), 'Acme')
  t.equal(statusOf(session, getDevDetail), '200')
  t.same(resultFor(session, './DevDetail')?.split('/').sort(), ['DevTyp', 'Ext', 'FwV', 'HwV', 'LrgObj', 'OEM', 'SwV', 'URI'],
    'an interior node answers with its children (TND 1.2, 7.4)')
  t.equal(resultFor(session, './DevDetail/DevTyp'), 'gateway-end-device')
  t.equal(statusOf(session, replaceName), '200')
  t.equal(statusOf(session, deleteTmp), '200')

  t.equal(statusOf(session, failingAtomic), '507', 'Atomic with a failing command: 507')
  t.equal(statusOf(session, atomicAdd), '216', 'what had succeeded is rolled back')
  t.match(statusOf(session, atomicBad), /^4\d\d$/, 'the failing command keeps its own code')
  t.equal(statusOf(session, atomicAfter), '215', 'what was not reached is not executed')

  t.equal(statusOf(session, seq), '200')
  t.equal(statusOf(session, seqAdd), '200')
  t.equal(statusOf(session, seqReplace), '200')

  t.match(statusByCmdRef(session, '90'), { cmd: 'Sync', code: '406' }, 'an unknown command: 406')
  t.equal(statusOf(session, getSecret), '405', 'no Get of AAuthSecret')
  t.equal(statusOf(session, getClientSecret), '405')
  t.equal(resultFor(session, './DMAcc/dms/AppAuth/2/AAuthSecret'), undefined, 'and no Results for it')
  t.match(statusByCmdRef(session, '91'), { cmd: 'Add', code: '400' }, 'malformed Add: 400')
  t.match(statusByCmdRef(session, '92'), { cmd: 'Replace', code: '400' }, 'malformed Replace: 400')
  t.match(statusOf(session, replaceDevInfo), /^(405|425)$/, 'DevInfo is not the server\'s to change')
  t.match(statusOf(session, addDevInfo), /^(405|425)$/)
  const text = deviceText(session)
  t.notMatch(text, FACTORY.serverPassword, 'no secret in anything the device sent')
  t.notMatch(text, FACTORY.clientPassword)

  // A message that cannot be read at all cannot be answered: logged and dropped (binding.md §3).
  await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === session.sessionId, 15_000)
  const sessionsBefore = server.sessions.length
  const logged = agent.logs.length
  await server.rawSend('<SyncML xmlns="SYNCML:SYNCML1.2"><SyncHdr><VerDTD>1.2</VerDTD><SessionID>77</Sessi')
  const dropped = await agent.waitForLogAfter(logged, (l) => l.msg === 'undecodable message dropped')
  t.equal(dropped.level, 'warn')
  t.equal(server.sessions.length, sessionsBefore, 'no answer to it')
  t.same(server.malformed, [], 'and nothing unreadable from the device')

  // Everything acknowledged with 200 is durable now: kill the agent without a chance to flush.
  const killed = await agent.kill()
  t.equal(killed.signal, 'SIGKILL')

  const again = cleanUpAgent(t, agent.restart())
  await again.online()
  const check = [
    get('./DMAcc/dms/Name'), get(`${EXT}/Note`), get(`${EXT}/Tmp`), get(`${EXT}/AtomicA`), get(`${EXT}/AtomicB`),
    get(`${EXT}/Seq`), get(`${EXT}/Bad`), get('./DevInfo/Mod'), get('./DevInfo/Extra'), get(EXT),
  ]
  const pushed = await server.pushSession(check)
  const after = await server.waitForSession((s) => s === pushed && s.closed, 20_000)
  t.equal(resultFor(after, './DMAcc/dms/Name'), 'Renamed', 'Replace survived')
  t.equal(resultFor(after, `${EXT}/Note`), 'added by the server', 'Add survived')
  t.equal(finalStatus(after, `${EXT}/Tmp`), '404', 'Delete survived')
  t.equal(finalStatus(after, `${EXT}/AtomicA`), '404', 'nothing of the failed Atomic')
  t.equal(finalStatus(after, `${EXT}/AtomicB`), '404')
  t.equal(resultFor(after, `${EXT}/Seq`), 'second', 'the Sequence ran in order')
  t.equal(finalStatus(after, `${EXT}/Bad`), '404', 'nothing of the malformed Add')
  t.equal(resultFor(after, './DevInfo/Mod'), 'M1', 'the refused Replace changed nothing')
  t.match(finalStatus(after, './DevInfo/Extra'), /^(404|425)$/, 'the refused Add changed nothing')
  t.same(resultFor(after, EXT)?.split('/').sort(), ['Note', 'Seq'])
})

t.test('a server speaking WBXML is answered in WBXML; a duplicate delivery is answered again, never run twice', async (t) => {
  const server = await startDmServer({ ...factoryServer(broker.url, t), encoding: 'wbxml' })
  t.teardown(() => server.stop())
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url }))
  await server.waitForSession((s) => s.closed, 20_000)

  const addDup = add(`${EXT}/Once`, 'only once')
  const pushed = await server.pushSession([addNode(EXT), addDup, get('./DevInfo/DmV')])
  const session = await server.waitForSession((s) => s === pushed && s.closed, 20_000)
  await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === session.sessionId, 20_000)
  const answer = session.received[0]!
  t.type(answer.payload, Uint8Array, 'the answer is WBXML')
  t.equal(statusOf(session, addDup), '200')
  t.equal(resultFor(session, './DevInfo/DmV'), '1.2')

  // MQTT delivers at least once: a message delivered twice gets the same answer twice, byte for byte, and runs
  // once. (A plain client plays the server here, to send exactly the same bytes again.)
  await server.stop()
  const wire = await rawParty(t, broker.url)
  const addTwice = add(`${EXT}/Twice`, 'delivered twice')
  const hdr = (msgId: string, nonce: string) => ({
    sessionId: 'D0D', msgId, target: FACTORY.deviceId, source: FACTORY.serverId, locName: FACTORY.serverName,
    cred: { type: 'syncml:auth-md5', data: md5Digest(FACTORY.serverName, FACTORY.serverPassword, nonceBytes(nonce)) },
  })
  // The server's closing message spent the nonce it holds (binding.md §6): its first try draws a challenge.
  await wire.send(xmlToWbxml(buildMessage(hdr('1', server.serverNonce), [get('./DevInfo/DmV')]).xml))
  const refusal = parseWbxmlMessage(await wire.next())
  const chal = refusal.ok ? refusal.message.commands.find((c) => c.name === 'Status' && c.cmdRef === '0')?.chal?.nextNonce : undefined
  t.ok(chal, 'a Chal to answer')
  const message = xmlToWbxml(buildMessage(hdr('2', chal ?? ''), [addTwice, get('./DevInfo/DmV')]).xml)
  await wire.send(message)
  const first = await wire.next()
  await wire.send(message)
  const second = await wire.next()
  t.same(second, first, 'the same answer again')
  const parsed = parseWbxmlMessage(second)
  t.ok(parsed.ok)
  const statuses = parsed.ok ? parsed.message.commands.filter((c) => c.name === 'Status').map((c) => `${c.cmd} ${c.data}`) : []
  t.same(statuses, ['SyncHdr 212', 'Add 200', 'Get 200'], 'the Add ran once: no 418 for a node it had added')
  // The agent's stdout is read apart from MQTT: the line may come after the answer it tells of.
  const told = await agent.waitForLog((l) => l.msg === 'duplicate message answered again' && l.sessionId === 'D0D', 10_000)
  t.equal(told.msgId, 2, 'the duplicate was told apart in the log')
})
