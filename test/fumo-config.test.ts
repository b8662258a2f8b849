/**
 * The `fumo` configuration (binding.md §9) and the object's ACL through the real agent: defaults, each bad value
 * refused with one line naming its key, a module anyone else could change refused at start, and `fumo.acl` held
 * like any object's (a server it does not name neither sets PkgURL nor Execs; State is the device's alone).
 */
import t from 'tap'
import { chmodSync } from 'node:fs'
import { parseConfig } from '../src/config.ts'
import { AgentProcess, cleanUpAgent, FACTORY, factoryServer } from './helpers/agent-process.ts'
import { idle, makeModule, ROOT, TYPE, waitForResult } from './helpers/fumo.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer } from './peers/dm-server.ts'
import { exec, get, replace } from './peers/syncml.ts'
import { statusOf } from './peers/session-record.ts'

const base = {
  deviceId: 'mac:01-ab-34-ef-69-0c',
  broker: { url: 'mqtt://broker.example:1883' },
  stateDir: '/var/lib/gwmo-agent',
  factoryBootstrap: '/etc/gwmo-agent/factory.xml',
}

t.test('fumo: defaults, and each bad value named', async (t) => {
  const plain = parseConfig(base, {})
  t.ok(plain.ok && plain.config.fumo === undefined, 'no fumo section: no FUMO object')
  const parsed = parseConfig({ ...base, fumo: { module: '/usr/lib/gwmo-agent/fumo-deb-module' } }, {})
  if (!parsed.ok) throw new Error(parsed.error)
  t.same(parsed.config.fumo, {
    name: '1', acl: 'Get=*', module: '/usr/lib/gwmo-agent/fumo-deb-module', installer: 'direct',
    spoolDir: '/var/lib/gwmo-agent/fumo-spool', spoolResult: '/var/lib/gwmo-agent-installer/result',
    maxBytes: 256 * 1024 * 1024, timeoutSeconds: 1800,
  })
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{}, /^config: fumo\.module: required$/],
    [{ module: '/m', installer: 'sudo' }, /^config: fumo\.installer: must be one of "spool", "direct"$/],
    [{ module: '/m', name: 'a/b' }, /^config: fumo\.name: must be one node name/],
    [{ module: '/m', maxBytes: 0 }, /^config: fumo\.maxBytes: must be an integer/],
    [{ module: '/m', timeoutSeconds: 'long' }, /^config: fumo\.timeoutSeconds: must be an integer/],
    [{ module: '/m', sudo: true }, /^config: unknown key "fumo\.sudo"$/],
  ]
  for (const [fumo, message] of bad) {
    const result = parseConfig({ ...base, fumo }, {})
    t.match(result.ok ? '(accepted)' : result.error, message, JSON.stringify(fumo))
  }
})

t.test('the agent refuses a module anyone else could change, an ACL that is not one, and a CA it cannot read', async (t) => {
  const module = makeModule()
  chmodSync(module.path, 0o775)
  const writable = AgentProcess.start({ brokerUrl: 'mqtt://127.0.0.1:9', config: { fumo: { module: module.path } } })
  const exit = await writable.waitForExit()
  t.not(exit.code, 0)
  t.match(writable.stderr, new RegExp(`fumo\\.module: ${module.path} is writable by group or others`))
  chmodSync(module.path, 0o755)
  const badAcl = AgentProcess.start({ brokerUrl: 'mqtt://127.0.0.1:9', config: { fumo: { module: module.path, acl: 'Exec=' } } })
  t.not((await badAcl.waitForExit()).code, 0)
  t.match(badAcl.stderr, /fumo\.acl/)
  const noCa = AgentProcess.start({ brokerUrl: 'mqtt://127.0.0.1:9', config: { fumo: { module: module.path, ca: '/nonexistent/ca.pem' } } })
  t.not((await noCa.waitForExit()).code, 0)
  t.match(noCa.stderr, /fumo\.ca: cannot read \/nonexistent\/ca\.pem \(ENOENT\)/, 'a CA file that cannot be read stops the start')
})

t.test('fumo.acl as any object\'s ACL: what it does not grant is refused (425) and changes nothing', async (t) => {
  const broker = await startMosquitto()
  t.teardown(() => broker.stop())
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const module = makeModule()
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, config: { fumo: { module: module.path, acl: `Get=*&Exec=${FACTORY.serverId}` } } }))
  await server.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
  await idle(agent)
  const setUrl = replace(`${ROOT}/DownloadAndUpdate/PkgURL`, 'http://127.0.0.1:9/evil')
  const setState = replace(`${ROOT}/State`, '100', 'int')
  const run = exec(`${ROOT}/DownloadAndUpdate`, undefined, 'acl-1')
  const pushed = await server.pushSession([setUrl, setState, get(`${ROOT}/DownloadAndUpdate/PkgURL`), run])
  const session = await server.waitForSession((s) => s === pushed && s.closed, 20_000)
  await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === session.sessionId, 20_000)
  const code = (command: Parameters<typeof statusOf>[1]) => statusOf(session, command)
  t.equal(code(setUrl), '425', 'Replace of PkgURL not granted: 425')
  t.equal(code(setState), '425', 'State is written by the device alone')
  t.equal(session.results.flatMap((r) => r.items).find((i) => i.source === `${ROOT}/DownloadAndUpdate/PkgURL`)?.data ?? '', '', 'PkgURL unchanged')
  t.equal(code(run), '202', 'the Exec it grants is run')
  t.match(await waitForResult(server, agent, 'acl-1'), { type: TYPE.DownloadAndUpdate, data: '411' }, 'with no URL: 411')
  t.same(module.calls(), [], 'nothing installed')
})
