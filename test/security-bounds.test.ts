// The device's bounds under the findings of a review (binding.md §11), against the real bundle over mosquitto: a
// legitimately bootstrapped but misbehaving gateway growing the tree and flooding detections, and a DM Server
// drawing replies far larger than its requests. The broker is open, as the review's attacker had it. Each test
// names the finding it pins and fails on the bundle before the bounds (GWMO_TEST_BUNDLE).
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { AgentProcess, cleanUpAgent } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer, type DmServer } from './peers/dm-server.ts'
import { ASSOCIATED_GATEWAY, detectionAlert, LOCATION_UPDATE, startGateway, type Gateway } from './peers/gateway.ts'
import type { PartySession, ReceivedMessage } from './peers/session-record.ts'
import { add, get, replace, type OutCommand, type ParsedCommand } from './peers/syncml.ts'
import { factoryBootstrapXml, GATEWAY, gatewayOptions, SERVER_A, serverOptions } from './fixtures/gwmo/parties.ts'

const broker = await startMosquitto({ open: true })
t.teardown(() => broker.stop())

const DEVICE = 'mac:01-ab-34-ef-69-0c'
/** The broker's limit on a packet (binding.md §2, the agent's default `maxPacketSize`). */
const BROKER_LIMIT = 65536

/**
 * The factory bootstrap of these tests: the DM Server and the gateway, and a root every party may add below (a
 * device whose servers add their own objects there, as the review's did).
 */
function factoryWithOpenRoot(dir: string): string {
  const open = '<Replace><CmdID>900</CmdID><Item><Target><LocURI>.?prop=ACL</LocURI></Target><Meta><Format xmlns="syncml:metinf">chr</Format></Meta>' +
    '<Data>Add=*&amp;Delete=*&amp;Get=*&amp;Replace=*</Data></Item></Replace>'
  const path = join(dir, 'factory-open-root.xml')
  writeFileSync(path, factoryBootstrapXml(DEVICE, [SERVER_A, GATEWAY]).replace('<Final/>', `${open}<Final/>`))
  return path
}

interface World {
  agent: AgentProcess
  server: DmServer
  gateway: Gateway
}

/** The agent on that factory, the DM Server and the gateway, once the device's first session with each is over. */
async function world(t: Test, serverMaxMsgSize?: number): Promise<World> {
  const server = await startDmServer({ ...serverOptions(broker.url, DEVICE, SERVER_A), ...(serverMaxMsgSize !== undefined && { maxMsgSize: serverMaxMsgSize }) })
  const gateway = await startGateway(gatewayOptions(broker.url, DEVICE, GATEWAY))
  const dir = AgentProcess.makeDir()
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, dir, deviceId: DEVICE, factoryBootstrap: factoryWithOpenRoot(dir) }))
  t.teardown(async () => {
    await server.stop()
    await gateway.stop()
  })
  for (const peer of [server, gateway]) await peer.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
  return { agent, server, gateway }
}

/** The device's answer to the commands of a pushed session: its first message that is not a refusal (§6). */
function answerOf(session: PartySession): ReceivedMessage {
  const answer = session.received.find((r) => !r.message.commands.some((c) => c.name === 'Status' && c.cmd === 'SyncHdr' && (c.data === '401' || c.data === '407')))
  if (answer === undefined) throw new Error(`no answer in session ${session.sessionId}`)
  return answer
}

/** Pushes a session and waits until the device has answered it; its answer, and that answer's size on the wire. */
async function pushed(party: DmServer | Gateway, commands: OutCommand[]): Promise<{ answer: ParsedCommand[]; bytes: number; hdr: string | undefined }> {
  const session = await party.pushSession(commands)
  await party.waitForSession((s) => s === session && s.closed, 30_000)
  const { message, payload } = answerOf(session)
  const bytes = typeof payload === 'string' ? Buffer.byteLength(payload, 'utf8') : payload.length
  return { answer: message.commands, bytes, hdr: message.commands.find((c) => c.name === 'Status' && c.cmd === 'SyncHdr')?.data }
}

/** The codes of an answer's Statuses for our commands named `cmd`. */
const codes = (answer: ParsedCommand[], cmd: string) => answer.filter((c) => c.name === 'Status' && c.cmd === cmd).map((c) => c.data)
const count = (list: (string | undefined)[], code: string) => list.filter((c) => c === code).length

t.test('finding: a gateway\'s messages grew the tree to the node cap, and the DM Server\'s Adds got 420', async (t) => {
  const { server, gateway } = await world(t)
  // Regression: a 55 KB leaf was taken (and thirty of them grew the tree file from 2.6 KB to 1.65 MB).
  const big = await pushed(gateway, [add('./Junk/big', 'x'.repeat(55_000))])
  t.same(codes(big.answer, 'Add'), ['420'], 'a leaf over limits.leafBytes is refused: 420')

  // Leaves within the leaf cap, one a message: the gateway's bytes quota (limits.bytesPerParty, 128 KiB) ends them.
  let taken = 0
  for (let k = 0; k < 12; k++) taken += count(codes((await pushed(gateway, [add(`./Junk/b${k}`, String(k % 10).repeat(15_000))])).answer, 'Add'), '200')
  t.ok(taken >= 7 && taken <= 8, `${taken} leaves of 15 KB taken of 12: the gateway's 128 KiB`)

  // Small nodes, 200 a message: its quota of nodes (limits.nodesPerParty, 250) ends them, long before the tree's.
  let nodes = 0
  let refused = 0
  for (let m = 0; m < 12; m++) {
    const adds = Array.from({ length: 200 }, (_, k) => add(`./Junk/m${m}/n${k}`, 'v'))
    const got = codes((await pushed(gateway, adds)).answer, 'Add')
    t.equal(got.length, 200, `message ${m}: a Status for every Add`)
    nodes += count(got, '200')
    refused += count(got, '420')
  }
  t.ok(nodes <= 250, `the gateway added ${nodes} nodes (with the interior ones it created, at most its 250)`)
  t.equal(nodes + refused, 2400, 'every other Add is refused with 420')

  // Regression: once the gateway had filled the tree, the real DM Server's Adds got 420.
  const own = await pushed(server, [add('./Dms/config', 'server-value'), replace('./Dms/config', 'changed')])
  t.same(codes(own.answer, 'Add'), ['200'], 'the DM Server still adds within its own quota')
  t.same(codes(own.answer, 'Replace'), ['200'])
  const read = await pushed(server, [get('./Junk/big'), get('./Dms/config')])
  t.same(codes(read.answer, 'Get'), ['404', '200'], 'nothing of the refused Adds is in the tree')
})

t.test('finding: a message of 250 Device Detection Alerts queued hundreds of persisted alerts and drew a 136 KB reply', async (t) => {
  const { agent, server, gateway } = await world(t)
  const detections = Array.from({ length: 250 }, (_, k) => detectionAlert({ gwAddress: `10.${k >> 8}.${k & 255}.1`, share: true }))
  const from = agent.logs.length
  const { answer, bytes } = await pushed(gateway, detections)
  t.ok(bytes <= BROKER_LIMIT, `the reply is ${bytes} bytes: within the broker's 64 KiB`)
  const got = codes(answer, 'Alert')
  t.equal(got.length, 250, 'every alert has its Status')
  t.equal(count(got, '200'), 1, 'one detection counts')
  t.equal(count(got, '406'), 249, 'the others are answered 406')
  t.equal(answer.filter((c) => c.name === 'Alert' && c.data === '1226').length, 1, 'one Bootstrapped DMS List')

  // The DM Server hears of the gateway in the sessions the device opens with it: once, however many detections.
  await server.waitForGenericAlert(ASSOCIATED_GATEWAY, 20_000)
  // Regression: ~500 alerts were queued for the server a message; it got them 16 a session for as long as it took.
  await new Promise((resolve) => setTimeout(resolve, 4000))
  const alerts = server.sessions.flatMap((s) => s.genericAlerts)
  t.equal(alerts.filter((a) => a.type === ASSOCIATED_GATEWAY).length, 1, 'one Associated Gateway reaches the server')
  t.match(alerts.find((a) => a.type === ASSOCIATED_GATEWAY)?.data, /10\.0\.0\.1/, 'the one that counted')
  t.ok(alerts.filter((a) => a.type === LOCATION_UPDATE).length <= 1, 'at most one Location Update')
  const lines = agent.logs.slice(from).filter((l) => l.msg === 'device detection refused: one a message counts')
  t.equal(lines.length, 1, 'and one log line for the 249')
})

t.test('finding: with no MaxMsgSize announced, 200 Gets of a large leaf drew a 10 MB reply', async (t) => {
  const { server } = await world(t)
  const leaf = await pushed(server, [add('./Dms/blob', 'b'.repeat(15_000))])
  t.same(codes(leaf.answer, 'Add'), ['200'])
  // Regression: the reply held 200 Results of the leaf (×767 the request), with no MaxMsgSize to stop it.
  const { answer, bytes } = await pushed(server, Array.from({ length: 200 }, () => get('./Dms/blob')))
  t.ok(bytes <= BROKER_LIMIT, `the reply is ${bytes} bytes: within the broker's 64 KiB`)
  const got = codes(answer, 'Get')
  t.equal(got.length, 200, 'every Get has its Status')
  const results = answer.filter((c) => c.name === 'Results')
  t.ok(results.length >= 1 && results.length <= 4, `${results.length} Results fit`)
  t.ok(results.every((r) => r.items[0]?.data === 'b'.repeat(15_000)), 'each whole')
  t.equal(count(got, '200'), results.length, 'a Get answered 200 has its Results')
  t.equal(count(got, '413'), 200 - results.length, 'the others are answered 413 (Request entity too large)')
})

t.test('finding: a reply is fitted to the smaller of the MaxMsgSize announced and the broker\'s limit', async (t) => {
  // Regression: the reply was fitted to a MaxMsgSize of 1 MB, beyond what the broker takes.
  const { server } = await world(t, 1_000_000)
  t.same(codes((await pushed(server, [add('./Dms/blob', 'b'.repeat(15_000))])).answer, 'Add'), ['200'])
  const { answer, bytes } = await pushed(server, Array.from({ length: 40 }, () => get('./Dms/blob')))
  t.ok(bytes <= BROKER_LIMIT, `the reply is ${bytes} bytes: within the broker's 64 KiB, not the 1 MB announced`)
  const got = codes(answer, 'Get')
  t.equal(got.length, 40)
  t.equal(count(got, '413'), 40 - answer.filter((c) => c.name === 'Results').length)
  t.ok(count(got, '413') >= 36)
})

t.test('a reply is fitted to a MaxMsgSize below the broker\'s limit (in time linear in the reply: bench/)', async (t) => {
  const { server } = await world(t, 25_000)
  t.same(codes((await pushed(server, [add('./Dms/blob', 'b'.repeat(15_000))])).answer, 'Add'), ['200'])
  const { answer, bytes } = await pushed(server, Array.from({ length: 40 }, () => get('./Dms/blob')))
  t.ok(bytes <= 25_000, `the reply is ${bytes} bytes: within the 25,000 announced`)
  t.equal(answer.filter((c) => c.name === 'Results').length, 1, 'one Result fits')
  t.same(count(codes(answer, 'Get'), '413'), 39)
})

t.test('a message whose Statuses alone would not fit the broker\'s limit is refused whole: 413, nothing runs', async (t) => {
  const { server } = await world(t)
  // 700 Gets of a missing node and one Add: some 55 KB in, a Status each would be over 70 KB out.
  const commands = [add('./Dms/never', 'v'), ...Array.from({ length: 700 }, () => get('./No'))]
  const { answer, bytes, hdr } = await pushed(server, commands)
  t.ok(bytes <= BROKER_LIMIT, `${bytes} bytes`)
  t.equal(hdr, '413', 'its SyncHdr is answered 413 (Request entity too large)')
  t.same(answer.filter((c) => c.name !== 'Status' || c.cmd !== 'SyncHdr'), [], 'and nothing else')
  const read = await pushed(server, [get('./Dms/never')])
  t.same(codes(read.answer, 'Get'), ['404'], 'its Add did not run')
})
