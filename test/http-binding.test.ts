// The HTTP binding's own rules (binding.md §10), through the real agent against the DM Server peer's HTTP mode:
// RespURI followed, HMAC in x-syncml-hmac both ways, WBXML bodies (read back with libwbxml), one connection kept
// alive for a session, a 503 sent again, a redirect refused, a response over MaxMsgSize refused, polling, and a
// push in an HTTP server's name over the broker dropped.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import http from 'node:http'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cleanUpAgent, recordTraffic, type AgentProcess } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer, type DmServer, type DmServerOptions } from './peers/dm-server.ts'
import type { HttpFault } from './peers/http-endpoint.ts'
import { resultFor } from './peers/session-record.ts'
import { get } from './peers/syncml.ts'
import { overHttp, SERVER_A, serverOptions, startGwmoAgent, type PartySpec } from './fixtures/gwmo/parties.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())
const DEVICE = 'mac:01-ab-34-ef-69-0c'

interface WorldOptions {
  spec?: PartySpec
  /** More Ext/GwmoAgent leaves of the account. */
  leaves?: Record<string, string>
  peer?: Partial<DmServerOptions>
  /** Answers of the first POSTs, before the agent starts. */
  faults?: HttpFault[]
  config?: Record<string, unknown>
}

/** A DM Server in HTTP mode and the real agent whose only account is for it. */
async function world(t: Test, options: WorldOptions = {}): Promise<{ server: DmServer; agent: AgentProcess }> {
  const spec = options.spec ?? SERVER_A
  const server = await startDmServer({ ...serverOptions(broker.url, DEVICE, spec), http: {}, onTraffic: recordTraffic(t, spec.serverId), ...options.peer })
  t.teardown(() => server.stop())
  if (options.faults) server.fault(...options.faults)
  const agent = cleanUpAgent(t, startGwmoAgent({
    brokerUrl: broker.url, deviceId: DEVICE, parties: [overHttp(spec, server.url, options.leaves)], ...(options.config && { config: options.config }),
  }))
  return { server, agent }
}

const closedByDevice = (s: { origin: string; closed: boolean }) => s.origin === 'device' && s.closed

t.test('RespURI: after the first POST, the device POSTs where the server said, over one kept-alive connection', async (t) => {
  const { server } = await world(t, { peer: { http: { respUri: (sessionId) => `/dm/session/${sessionId}` } } })
  server.queueSession([get('./DevInfo/Man')], [get('./DevInfo/Lang')])
  const session = await server.waitForSession(closedByDevice, 15_000)
  t.ok(resultFor(session, './DevInfo/Lang'), 'the session went through both turns')
  const paths = server.requests.map((r) => r.path)
  t.equal(paths[0], '/dm', 'Package 1 to the account\'s URL')
  t.ok(paths.length >= 3, `then the others (${paths.length} POSTs)`)
  t.same(paths.slice(1), paths.slice(1).map(() => `/dm/session/${session.sessionId}`), 'each later message to the RespURI')
  t.equal(server.connections, 1, 'one connection, kept alive, carried the session')
})

t.test('HMAC: x-syncml-hmac on every POST and every response, no Cred', async (t) => {
  const spec: PartySpec = { ...SERVER_A, authType: 'HMAC' }
  const { server } = await world(t, { spec, peer: { authType: 'hmac' } })
  server.queueSession([get('./DevInfo/Man')])
  const session = await server.waitForSession(closedByDevice, 15_000)
  t.ok(session.deviceAuthenticated, 'the server verified the device\'s HMAC')
  t.ok(resultFor(session, './DevInfo/Man'), 'the device verified the server\'s (it ran the Get)')
  t.ok(server.requests.length >= 2)
  for (const request of server.requests) {
    t.match(request.headers['x-syncml-hmac'], /algorithm=MD5, username="device-at-dmsA", mac=/i, 'the POST carries x-syncml-hmac')
  }
  t.ok(session.received.every((r) => r.message.hdr.cred === undefined), 'and no Cred')
})

t.test('WBXML: an account that says so is spoken to in WBXML, which libwbxml reads', async (t) => {
  const { server } = await world(t, { leaves: { Encoding: 'wbxml' }, peer: { encoding: 'wbxml' } })
  server.queueSession([get('./DevInfo/Man')])
  const session = await server.waitForSession(closedByDevice, 15_000)
  t.ok(resultFor(session, './DevInfo/Man'), 'the session ran')
  const first = server.requests[0]!
  t.equal(first.headers['content-type'], 'application/vnd.syncml.dm+wbxml', 'Package 1 is WBXML from the start')
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-wbxml-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'p1.wbxml'), first.body)
  const run = spawnSync('wbxml2xml', ['-m', '0', '-k', '-o', join(dir, 'p1.xml'), join(dir, 'p1.wbxml')])
  t.equal(run.status, 0, 'wbxml2xml reads the body')
  const xml = readFileSync(join(dir, 'p1.xml'), 'utf8')
  t.match(xml, /<LocURI>mac:01-ab-34-ef-69-0c<\/LocURI>/, 'the device\'s SyncHdr')
  t.match(xml, /<Data>1201<\/Data>/, 'Alert 1201')
})

t.test('a 503 is a lost message: sent again after a backoff, and the session goes on', async (t) => {
  const { server, agent } = await world(t, { faults: [{ status: 503 }, { status: 503 }] })
  server.queueSession([get('./DevInfo/Man')])
  const session = await server.waitForSession(closedByDevice, 20_000)
  t.ok(resultFor(session, './DevInfo/Man'), 'the session completed')
  t.same(server.requests.slice(0, 3).map((r) => r.status), [503, 503, 200], 'Package 1 twice refused, then taken')
  t.same(server.requests.slice(0, 3).map((r) => r.body.toString('utf8')), Array(3).fill(server.requests[0]!.body.toString('utf8')), 'the same message each time')
  t.ok(agent.logs.some((l) => l.msg === 'server error, message to be sent again' && l.status === 503))
})

t.test('a redirect is not followed: the session fails, and the next one goes to the account\'s URL', async (t) => {
  let elsewhere = 0
  const other = http.createServer((_req, res) => {
    elsewhere++
    res.end()
  })
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => other.close(resolve)))
  const location = `http://127.0.0.1:${(other.address() as AddressInfo).port}/dm`
  const { server, agent } = await world(t, { faults: [{ status: 307, headers: { Location: location } }] })
  const refused = await agent.waitForLog((l) => l.msg === 'redirect not followed')
  t.match(refused, { status: 307, location })
  await agent.waitForLog((l) => l.msg === 'session failed')
  await server.waitForSession(closedByDevice, 15_000)
  t.equal(elsewhere, 0, 'nothing went to the Location')
  t.equal(server.requests[0]!.status, 307)
})

t.test('a response over the device\'s MaxMsgSize is refused unread', async (t) => {
  const huge = '<SyncML>' + 'x'.repeat(70_000) + '</SyncML>'
  const { server, agent } = await world(t, { faults: [{ status: 200, headers: { 'Content-Type': 'application/vnd.syncml.dm+xml' }, body: huge }] })
  const refused = await agent.waitForLog((l) => l.msg === 'response larger than the device\'s MaxMsgSize refused')
  t.equal(refused.max, 65536)
  await agent.waitForLog((l) => l.msg === 'session failed')
  const next = await server.waitForSession(closedByDevice, 15_000)
  t.ok(next.deviceAuthenticated, 'a later session goes through')
})

t.test('PollSeconds: the device calls the server that often', async (t) => {
  const { server } = await world(t, { leaves: { PollSeconds: '1' } })
  await server.waitFor(() => (server.sessions.filter(closedByDevice).length >= 4 ? true : undefined), 20_000, 'four sessions')
  const sessions = server.sessions.filter(closedByDevice)
  t.ok(sessions.every((s) => s.initiation === '1201'), 'each a client-initiated session')
  t.equal(new Set(sessions.map((s) => s.sessionId)).size, sessions.length, 'each a session of its own')
})

t.test('a push in an HTTP server\'s name over the broker is dropped, however it authenticates', async (t) => {
  const { server, agent } = await world(t)
  await server.waitForSession(closedByDevice, 15_000)
  // The HTTP session does not wait for the broker; the device must hear its topic before anything is pushed there.
  await agent.online()
  // The same identity and credentials, but over MQTT: what anyone allowed to publish on the device's topic could send.
  const impostor = await startDmServer(serverOptions(broker.url, DEVICE, SERVER_A))
  t.teardown(() => impostor.stop())
  impostor.serverNonce = server.serverNonce
  const posts = server.requests.length
  const from = agent.logs.length
  const pushed = await impostor.pushSession([get('./DevInfo/Man')])
  await agent.waitForLogAfter(from, (l) => l.msg === 'message for a party reached over HTTP came through the broker; dropped')
  t.equal(pushed.received.length, 0, 'no answer over the broker')
  t.equal(server.requests.length, posts, 'and no POST to the server')
})
