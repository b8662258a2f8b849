// The HTTP binding under Bun (binding.md §10: Node's http and https, which Bun provides too): the same bundle run by
// Bun talks HTTPS to a server it verifies with the account's CA, shows its client certificate, follows a RespURI,
// sends HMAC in x-syncml-hmac, sends a message again after a 503, refuses a server its CA did not sign, and keeps
// one connection alive for a session's messages over HTTP and HTTPS, as under Node.
import t from 'tap'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cleanUpAgent, recordTraffic } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { makeCertificates } from './helpers/test-certificates.ts'
import { startDmServer } from './peers/dm-server.ts'
import { resultFor } from './peers/session-record.ts'
import { get } from './peers/syncml.ts'
import { overHttp, SERVER_A, serverOptions, startGwmoAgent, type PartySpec } from './fixtures/gwmo/parties.ts'

const BUN = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', '.bin', 'bun')
const broker = await startMosquitto()
t.teardown(() => broker.stop())
const DEVICE = 'mac:01-ab-34-ef-69-0c'
const pki = mkdtempSync(join(tmpdir(), 'gwmo-https-'))
t.teardown(() => rmSync(pki, { recursive: true, force: true }))
makeCertificates(pki)
const pem = (name: string) => readFileSync(join(pki, name), 'utf8')
const HMAC_SERVER: PartySpec = { ...SERVER_A, authType: 'HMAC' }

t.test('HTTPS with the account\'s CA and client certificate, RespURI, HMAC and a 503, under Bun', async (t) => {
  t.ok(existsSync(BUN), 'Bun is installed as a dev dependency (npm ci)')
  const server = await startDmServer({
    ...serverOptions(broker.url, DEVICE, HMAC_SERVER),
    authType: 'hmac',
    http: { tls: { cert: pem('server.pem'), key: pem('server.key'), ca: pem('ca.pem') }, respUri: (id) => `/dm/${id}` },
    onTraffic: recordTraffic(t, 'https server'),
  })
  t.teardown(() => server.stop())
  server.fault({ status: 503 })
  server.queueSession([get('./DevInfo/Man')], [get('./DevInfo/Lang')])
  const leaves = { CA: pem('ca.pem'), ClientCert: pem('client.pem'), ClientKey: pem('client.key') }
  const agent = cleanUpAgent(t, startGwmoAgent({ brokerUrl: broker.url, deviceId: DEVICE, parties: [overHttp(HMAC_SERVER, server.url, leaves)], runtime: BUN }))
  const session = await server.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
  await agent.ready()
  t.match(agent.logs.find((l) => l.msg === 'started'), { runtime: /^bun / }, 'the agent ran under Bun')
  t.ok(resultFor(session, './DevInfo/Lang'), 'both turns of the session went through')
  t.equal(server.requests[0]?.status, 503, 'the first POST got a 503')
  t.equal(server.requests[1]?.body.toString('utf8'), server.requests[0]?.body.toString('utf8'), 'and went again')
  t.ok(server.requests.every((r) => r.clientAuthorized === true), 'with the client certificate each time')
  t.ok(server.requests.every((r) => typeof r.headers['x-syncml-hmac'] === 'string'), 'and x-syncml-hmac')
  t.same([...new Set(server.requests.slice(2).map((r) => r.path))], [`/dm/${session.sessionId}`], 'after the first answer, to the RespURI')
})

t.test('a server the account\'s CA did not sign is refused under Bun too', async (t) => {
  const other = mkdtempSync(join(tmpdir(), 'gwmo-https-'))
  t.teardown(() => rmSync(other, { recursive: true, force: true }))
  makeCertificates(other)
  const server = await startDmServer({
    ...serverOptions(broker.url, DEVICE, SERVER_A),
    http: { tls: { cert: readFileSync(join(other, 'server.pem'), 'utf8'), key: readFileSync(join(other, 'server.key'), 'utf8') } },
  })
  t.teardown(() => server.stop())
  const agent = cleanUpAgent(t, startGwmoAgent({ brokerUrl: broker.url, deviceId: DEVICE, parties: [overHttp(SERVER_A, server.url, { CA: pem('ca.pem') })], runtime: BUN }))
  await agent.waitForLog((l) => l.msg === 'server certificate not trusted')
  await agent.waitForLog((l) => l.msg === 'session failed')
  t.equal(server.requests.length, 0, 'no request reached the server')
})

for (const scheme of ['http', 'https'] as const) {
  t.test(`a session's POSTs share one kept-alive ${scheme} connection under Bun, as under Node`, async (t) => {
    const tls = scheme === 'https' ? { tls: { cert: pem('server.pem'), key: pem('server.key') } } : {}
    const server = await startDmServer({
      ...serverOptions(broker.url, DEVICE, SERVER_A),
      http: { ...tls, respUri: (id) => `/dm/${id}` },
    })
    t.teardown(() => server.stop())
    server.queueSession([get('./DevInfo/Man')], [get('./DevInfo/Lang')], [get('./DevInfo/DmV')])
    const leaves = scheme === 'https' ? { CA: pem('ca.pem') } : undefined
    const agent = cleanUpAgent(t, startGwmoAgent({ brokerUrl: broker.url, deviceId: DEVICE, parties: [overHttp(SERVER_A, server.url, leaves)], runtime: BUN }))
    const session = await server.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
    await agent.ready()
    t.match(agent.logs.find((l) => l.msg === 'started'), { runtime: /^bun / }, 'the agent ran under Bun')
    t.ok(resultFor(session, './DevInfo/DmV'), 'all three turns of the session went through')
    t.ok(server.requests.length >= 4, `the session took several POSTs (${server.requests.length})`)
    // The last one's answer may still be on its way: the session closes as the server reads it.
    t.ok(server.requests.slice(0, -1).every((r) => r.status === 200), 'each answered with its next message')
    t.equal(server.connections, 1, 'and one connection carried them all')
  })
}
