/**
 * FUMO through the real agent (binding.md §9): a DM Server sets `PkgURL` and Execs `Download`, `Update` or
 * `DownloadAndUpdate` over a real broker; the package comes from the test's own HTTP server (whole, slow,
 * dropping, failing, missing, or not the package the checksum names) and a test update module records what it
 * was called with. Every result code reaches the server in one Generic Alert with the Exec's Correlator, `State`
 * reads as FUMO says along the way, a second Exec while one runs gets 417, a SIGKILL mid-download resumes with a
 * `Range` request, a SIGKILL mid-install ends, after the restart and `verify`, in exactly one alert, and HTTPS is
 * verified against `fumo.ca`.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync } from 'node:fs'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cleanUpAgent } from './helpers/agent-process.ts'
import { alertsFor, PACKAGE, readState, ROOT, setup, sha, SHA256, startOperation, TYPE, url, waitForResult } from './helpers/fumo.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { makeCertificates } from './helpers/test-certificates.ts'
import { replace, type OutCommand } from './peers/syncml.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

t.test('every result code, each in one alert with the Exec\'s Correlator, the node as Source and State as FUMO says', async (t) => {
  const { server, packages, module, agent } = await setup(t, broker.url)
  t.equal(await readState(server, agent), '10', 'Idle before any operation')

  const cases: Array<{ what: string; node: keyof typeof TYPE; setup: OutCommand[]; module?: () => void; result: string; state: string; calls?: string[] }> = [
    { what: 'installed', node: 'DownloadAndUpdate', setup: [url('DownloadAndUpdate', packages.url('/pkg')), sha(SHA256)], result: '200', state: '100', calls: [`check ${SHA256}`, `install ${SHA256}`] },
    { what: 'checksum mismatch', node: 'DownloadAndUpdate', setup: [sha('0'.repeat(64))], result: '402', state: '20', calls: [] },
    { what: 'a PkgSHA256 that is no SHA-256', node: 'Download', setup: [url('Download', packages.url('/pkg')), sha('not-a-digest')], result: '402', state: '20', calls: [] },
    { what: 'device mismatch (check exits 3)', node: 'DownloadAndUpdate', setup: [sha(SHA256)], module: () => module.set('check', { exit: 3 }), result: '403', state: '80', calls: [`check ${SHA256}`] },
    { what: 'not acceptable (check exits 1)', node: 'DownloadAndUpdate', setup: [], module: () => module.set('check', { exit: 1 }), result: '405', state: '80', calls: [`check ${SHA256}`] },
    { what: 'install failed', node: 'DownloadAndUpdate', setup: [], module: () => module.set('install', { exit: 1 }), result: '410', state: '80', calls: [`check ${SHA256}`, `install ${SHA256}`] },
    { what: 'malformed URL', node: 'Download', setup: [url('Download', 'not a url')], result: '411', state: '20', calls: [] },
    { what: '404', node: 'Download', setup: [url('Download', packages.url('/missing'))], result: '411', state: '20', calls: [] },
    { what: 'unreachable', node: 'Download', setup: [url('Download', 'http://127.0.0.1:9/pkg')], result: '412', state: '20', calls: [] },
    { what: 'server error', node: 'Download', setup: [url('Download', packages.url('/fail'))], result: '500', state: '20', calls: [] },
    { what: 'too large', node: 'Download', setup: [url('Download', packages.url('/big'))], result: '501', state: '20', calls: [] },
    { what: 'dropped every time', node: 'Download', setup: [url('Download', packages.url('/drop'))], result: '503', state: '20', calls: [] },
  ]
  for (const c of cases) {
    module.reset()
    c.module?.()
    const { correlator, execCode } = await startOperation(server, agent, c.node, c.setup)
    t.equal(execCode, '202', `${c.what}: Exec answered 202`)
    const alert = await waitForResult(server, agent, correlator)
    t.match(alert, { type: TYPE[c.node], format: 'int', data: c.result, source: `${ROOT}/${c.node}` }, `${c.what}: result ${c.result}`)
    t.equal(await readState(server, agent), c.state, `${c.what}: State ${c.state}`)
    if (c.calls !== undefined) t.same(module.calls(), c.calls, `${c.what}: the module was called with the package`)
    t.equal(alertsFor(server, correlator).length, 1, `${c.what}: one alert`)
  }
})

t.test('Download then Update, an Update with nothing to install, and an inline Update/PkgData', async (t) => {
  const { server, packages, module, agent } = await setup(t, broker.url)
  const down = await startOperation(server, agent, 'Download', [url('Download', packages.url('/pkg')), sha(SHA256)])
  t.equal(down.execCode, '202')
  t.match(await waitForResult(server, agent, down.correlator), { data: '200', type: TYPE.Download })
  t.equal(await readState(server, agent), '40', 'Download Complete')
  t.same(module.calls(), [], 'nothing installed by a Download')
  const up = await startOperation(server, agent, 'Update', [])
  t.equal(up.execCode, '202')
  t.match(await waitForResult(server, agent, up.correlator), { data: '200', type: TYPE.Update, source: `${ROOT}/Update` })
  t.same(module.calls(), [`check ${SHA256}`, `install ${SHA256}`], 'the downloaded package installed')
  t.equal(await readState(server, agent), '100')

  const none = await startOperation(server, agent, 'Update', [])
  t.equal(none.execCode, '405', 'Update with no package: refused at once')

  module.reset()
  const small = Buffer.from('a small inline package\n')
  const inline = await startOperation(server, agent, 'Update', [replace(`${ROOT}/Update/PkgData`, small.toString('base64'), 'b64'), sha('')])
  t.equal(inline.execCode, '202')
  t.match(await waitForResult(server, agent, inline.correlator), { data: '200', type: TYPE.Update })
  const inlineSha = createHash('sha256').update(small).digest('hex')
  t.same(module.calls(), [`check ${inlineSha}`, `install ${inlineSha}`], 'the inline package installed as sent')
})

t.test('a second Exec while one runs gets 417; State 30 while downloading; SIGKILL mid-download resumes with Range: one alert', async (t) => {
  const { server, packages, module, agent } = await setup(t, broker.url)
  const first = await startOperation(server, agent, 'DownloadAndUpdate', [url('DownloadAndUpdate', packages.url('/slow')), sha(SHA256)])
  t.equal(first.execCode, '202')
  await agent.waitForLog((l) => l.msg === 'package download progress', 20_000)
  t.equal(await readState(server, agent), '30', 'Download Progressing')
  const second = await startOperation(server, agent, 'Download', [])
  t.equal(second.execCode, '417', 'one operation at a time')
  await agent.kill()
  t.same(alertsFor(server, first.correlator), [], 'no result yet')
  const again = cleanUpAgent(t, agent.restart())
  const alert = await waitForResult(server, again, first.correlator, 60_000)
  t.match(alert, { data: '200', type: TYPE.DownloadAndUpdate })
  const resumed = packages.requests.filter((r) => r.path === '/slow')
  t.ok(resumed.length >= 2 && /^bytes=[1-9]\d*-$/.test(resumed.at(-1)?.range ?? ''), 'the restarted agent asked for the rest with Range')
  t.same(module.calls(), [`check ${SHA256}`, `install ${SHA256}`], 'the whole package installed')
  t.equal(second.correlator !== first.correlator && alertsFor(server, second.correlator).length, 0, 'nothing for the refused Exec')
  await again.stop()
  t.equal(alertsFor(server, first.correlator).length, 1, 'one alert')
})

t.test('SIGKILL during install: the next start runs verify and reports once; an install that asks for a restart waits for it', async (t) => {
  const { server, packages, module, agent } = await setup(t, broker.url)
  module.set('install', { sleep: 30 })
  const op = await startOperation(server, agent, 'DownloadAndUpdate', [url('DownloadAndUpdate', packages.url('/pkg')), sha(SHA256)])
  await agent.waitForLog((l) => l.msg === 'FUMO module ran' && l.verb === 'check', 20_000)
  await server.waitFor(() => module.calls().find((c) => c.startsWith('install')), 10_000, 'install begun')
  await agent.kill()
  module.set('install', {})
  let restarted = cleanUpAgent(t, agent.restart())
  t.match(await waitForResult(server, restarted, op.correlator), { data: '200', type: TYPE.DownloadAndUpdate })
  t.match(module.calls().at(-1), /^verify /, 'verify ran at the restart')
  t.ok(restarted.logs.some((l) => l.msg === 'FUMO operation taken up after a restart' && l.phase === 'install'), 'the install it was in the middle of, taken up')
  await restarted.stop()
  restarted = cleanUpAgent(t, restarted.restart())
  // An operation left in the store is taken up before the start is logged: none may be left once it was reported.
  await restarted.waitForLog((l) => l.msg === 'started', 20_000)
  t.notOk(restarted.logs.some((l) => l.msg === 'FUMO operation taken up after a restart'), 'nothing left to take up after the report')
  t.equal(alertsFor(server, op.correlator).length, 1, 'exactly one alert, after two restarts')

  module.reset()
  module.set('install', { out: 'restart\n' })
  const waiting = await startOperation(server, restarted, 'DownloadAndUpdate', [])
  await restarted.waitForLog((l) => l.msg === 'FUMO install done; the result waits for verify after the restart', 20_000)
  t.equal(await readState(server, restarted), '60', 'Update Progressing until verify')
  t.same(alertsFor(server, waiting.correlator), [], 'no result before the restart')
  module.set('verify', { exit: 1 })
  await restarted.stop()
  restarted = cleanUpAgent(t, restarted.restart())
  t.match(await waitForResult(server, restarted, waiting.correlator), { data: '410' }, 'verify failed after the restart: 410')
  t.same(module.calls().map((c) => c.split(' ')[0]), ['check', 'install', 'verify'])
})

t.test('HTTPS: a package server fumo.ca vouches for is trusted; without fumo.ca the same server is refused (412)', async (t) => {
  const certs = mkdtempSync(join(tmpdir(), 'gwmo-fumo-tls-'))
  makeCertificates(certs)
  const requests: string[] = []
  const https = createHttpsServer({ key: readFileSync(join(certs, 'server.key')), cert: readFileSync(join(certs, 'server.pem')) }, (req, res) => {
    requests.push(req.url ?? '')
    res.writeHead(200, { 'content-length': PACKAGE.length, etag: '"v1"' })
    res.end(PACKAGE)
  })
  await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    https.closeAllConnections()
    https.close(() => resolve())
  }))
  const packageUrl = `https://localhost:${(https.address() as AddressInfo).port}/pkg`

  const trusted = await setup(t, broker.url, { ca: join(certs, 'ca.pem') })
  const ok = await startOperation(trusted.server, trusted.agent, 'Download', [url('Download', packageUrl), sha(SHA256)])
  t.match(await waitForResult(trusted.server, trusted.agent, ok.correlator), { data: '200' }, 'verified against fumo.ca')
  await trusted.agent.stop()
  await trusted.server.stop()
  const seen = requests.length

  const untrusted = await setup(t, broker.url)
  const refused = await startOperation(untrusted.server, untrusted.agent, 'Download', [url('Download', packageUrl)])
  t.match(await waitForResult(untrusted.server, untrusted.agent, refused.correlator), { data: '412' }, 'not verified by the system\'s CAs: 412')
  t.equal(requests.length, seen, 'the untrusted server never saw a request')
})
