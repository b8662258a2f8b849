// HTTPS (binding.md §10), through the real agent against the DM Server peer's HTTPS mode, with a CA that openssl
// makes for the test: the server is verified against the account's own CA (and refused without it: verification is
// never turned off), the device presents its account's client certificate, no server reads the client key back,
// and a RespURI that would leave https for http is refused.
import t, { type Test } from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cleanUpAgent, finalStatus, recordTraffic, type AgentProcess } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { makeCertificates } from './helpers/test-certificates.ts'
import { startDmServer, type DmServer } from './peers/dm-server.ts'
import type { HttpModeOptions } from './peers/party-options.ts'
import { resultFor } from './peers/session-record.ts'
import { get } from './peers/syncml.ts'
import { overHttp, SERVER_A, serverOptions, startGwmoAgent } from './fixtures/gwmo/parties.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())
const DEVICE = 'mac:01-ab-34-ef-69-0c'

const pki = mkdtempSync(join(tmpdir(), 'gwmo-https-'))
t.teardown(() => rmSync(pki, { recursive: true, force: true }))
makeCertificates(pki)
const pem = (name: string) => readFileSync(join(pki, name), 'utf8')
const CA = pem('ca.pem')
const CLIENT = { ClientCert: pem('client.pem'), ClientKey: pem('client.key') }
const SERVER_TLS = { cert: pem('server.pem'), key: pem('server.key'), ca: CA }
const ACCOUNT = './DMAcc/dmsA/Ext/GwmoAgent'

async function world(t: Test, leaves: Record<string, string>, http: Partial<HttpModeOptions> = {}): Promise<{ server: DmServer; agent: AgentProcess }> {
  const server = await startDmServer({ ...serverOptions(broker.url, DEVICE, SERVER_A), http: { tls: SERVER_TLS, ...http }, onTraffic: recordTraffic(t, 'https server') })
  t.teardown(() => server.stop())
  const agent = cleanUpAgent(t, startGwmoAgent({ brokerUrl: broker.url, deviceId: DEVICE, parties: [overHttp(SERVER_A, server.url, leaves)] }))
  return { server, agent }
}

t.test('with the account\'s CA: the server is trusted, the device shows its client certificate, and keeps its key', async (t) => {
  const { server, agent } = await world(t, { CA, ...CLIENT })
  t.match(server.url, /^https:\/\//)
  server.queueSession([get(`${ACCOUNT}/ClientKey`), get(`${ACCOUNT}/CA`), get('./DevInfo/Man')])
  const session = await server.waitForSession((s) => s.origin === 'device' && s.closed, 15_000)
  t.ok(session.deviceAuthenticated, 'the session went through')
  t.ok(server.requests.length >= 2)
  t.ok(server.requests.every((r) => r.clientAuthorized === true), 'each POST came with a client certificate the server\'s CA verified')
  t.equal(finalStatus(session, `${ACCOUNT}/ClientKey`), '405', 'no Get of the client key, not even by the account\'s own server')
  t.equal(resultFor(session, `${ACCOUNT}/CA`)?.trim(), CA.trim(), 'the CA, a public thing, reads back')
  t.notOk(agent.stdout.includes('PRIVATE KEY'), 'the key is in no log line')
})

t.test('without the account\'s CA: the test CA is not among the system\'s, so the server is refused', async (t) => {
  const { server, agent } = await world(t, {})
  const refused = await agent.waitForLog((l) => l.msg === 'server certificate not trusted')
  t.match(refused, { party: SERVER_A.serverId })
  await agent.waitForLog((l) => l.msg === 'session failed')
  t.equal(server.requests.length, 0, 'no request reached the server')
})

t.test('a RespURI that would leave https for http is refused', async (t) => {
  let port = ''
  const { server, agent } = await world(t, { CA, ...CLIENT }, { respUri: () => `http://127.0.0.1:${port}/plain` })
  port = new URL(server.url).port
  server.queueSession([get('./DevInfo/Man')])
  const refused = await agent.waitForLog((l) => l.msg === 'RespURI refused')
  t.match(refused, { party: SERVER_A.serverId, reason: 'RespURI would leave https for http' })
  await agent.waitForLog((l) => l.msg === 'session failed')
  t.same(server.requests.map((r) => r.path).filter((p) => p !== '/dm'), [], 'nothing went to the RespURI')
})
