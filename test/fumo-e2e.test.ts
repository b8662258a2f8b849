/**
 * FUMO through the real agent (binding.md §9): a DM Server sets `PkgURL` and Execs `Download`, `Update` or
 * `DownloadAndUpdate` over a real broker; the package comes from the test's own HTTP server (whole, slow,
 * dropping, failing, missing, or not the package the checksum names) and a test update module records what it
 * was called with. Every result code reaches the server in one Generic Alert with the Exec's Correlator, `State`
 * reads as FUMO says along the way, a second Exec while one runs gets 417, a SIGKILL mid-download resumes with a
 * `Range` request, and a SIGKILL mid-install ends, after the restart and `verify`, in exactly one alert.
 */
import t, { type Test } from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AgentProcess, cleanUpAgent, FACTORY, factoryServer } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer, type DmServer } from './peers/dm-server.ts'
import type { GenericAlert, PartySession } from './peers/session-record.ts'
import { exec, get, replace, type OutCommand } from './peers/syncml.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

const ROOT = './FUMO/1'
const PACKAGE = randomBytes(200 * 1024)
const SHA256 = createHash('sha256').update(PACKAGE).digest('hex')
const TYPE = {
  Download: 'org.openmobilealliance.dm.firmwareupdate.download',
  Update: 'org.openmobilealliance.dm.firmwareupdate.update',
  DownloadAndUpdate: 'org.openmobilealliance.dm.firmwareupdate.downloadandupdate',
}

/** The test update module: records each call, answers with the exit code (and stdout) its files say. */
function makeModule(): { dir: string; path: string; calls(): string[]; set(verb: string, what: { exit?: number; out?: string; sleep?: number }): void; reset(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-fumo-module-'))
  const path = join(dir, 'module')
  writeFileSync(path, [
    '#!/bin/sh',
    'd=$(dirname "$0")',
    'echo "$1 $(sha256sum < "$2" | cut -c1-64)" >> "$d/calls"',
    'case "$1" in check|install|verify) ;; *) exit 0 ;; esac',
    '[ -f "$d/$1.sleep" ] && sleep "$(cat "$d/$1.sleep")"',
    '[ -f "$d/$1.out" ] && cat "$d/$1.out"',
    'exit "$(cat "$d/$1.exit" 2>/dev/null || echo 0)"',
    '',
  ].join('\n'))
  chmodSync(path, 0o755)
  const files = (verb: string) => ['exit', 'out', 'sleep'].map((k) => join(dir, `${verb}.${k}`))
  return {
    dir,
    path,
    calls: () => (existsSync(join(dir, 'calls')) ? readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n') : []),
    set(verb, what) {
      for (const f of files(verb)) rmSync(f, { force: true })
      if (what.exit !== undefined) writeFileSync(join(dir, `${verb}.exit`), String(what.exit))
      if (what.out !== undefined) writeFileSync(join(dir, `${verb}.out`), what.out)
      if (what.sleep !== undefined) writeFileSync(join(dir, `${verb}.sleep`), String(what.sleep))
    },
    reset() {
      for (const verb of ['check', 'install', 'verify']) this.set(verb, {})
      rmSync(join(dir, 'calls'), { force: true })
    },
  }
}

interface PackageServer {
  url(path: string): string
  requests: Array<{ path: string; range?: string }>
  /** Resolves the next time a request for `path` has received `bytes` of the body. */
  slowGate?: () => void
}

/** The download server: `/pkg` whole, `/slow` in small pieces, `/drop` cut each time, `/fail` 500, `/missing` 404, `/big` too large. */
async function startPackageServer(t: Test): Promise<PackageServer> {
  const requests: PackageServer['requests'] = []
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    requests.push({ path, ...(req.headers.range !== undefined && { range: req.headers.range }) })
    const etag = '"v1"'
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '')
    const start = range && req.headers['if-range'] === etag ? Number(range[1]) : 0
    const body = PACKAGE.subarray(start)
    const head = (status: number) =>
      res.writeHead(status, { etag, 'content-length': body.length, ...(start > 0 && { 'content-range': `bytes ${start}-${PACKAGE.length - 1}/${PACKAGE.length}` }) })
    switch (path) {
      case '/pkg':
        head(start > 0 ? 206 : 200)
        return void res.end(body)
      case '/slow': {
        head(start > 0 ? 206 : 200)
        let at = 0
        const timer = setInterval(() => {
          if (res.destroyed) return clearInterval(timer)
          const piece = body.subarray(at, at + 2048)
          at += piece.length
          if (piece.length === 0) {
            clearInterval(timer)
            return void res.end()
          }
          res.write(piece)
        }, 150)
        return
      }
      case '/drop':
        head(start > 0 ? 206 : 200)
        return void res.write(body.subarray(0, 1000), () => res.socket?.destroy())
      case '/fail':
        res.writeHead(500)
        return void res.end()
      case '/big':
        res.writeHead(200, { 'content-length': 4 * 1024 * 1024 })
        return void res.end()
      default:
        res.writeHead(404)
        return void res.end()
    }
  }
  const server = createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  return { url: (path) => `http://127.0.0.1:${port}${path}`, requests }
}

let correlators = 0

/**
 * Until no session runs on the agent: a push that crosses a session the device opens (to deliver a result) has
 * its credentials computed against a nonce that session is about to change, which the peer does not recover from.
 */
async function idle(agent: AgentProcess): Promise<void> {
  for (let quiet = 0; quiet < 3; ) {
    const open = new Set<unknown>()
    for (const l of agent.logs) {
      if (l.msg === 'session started') open.add(l.sessionId)
      else if (l.msg === 'session ended' || l.msg === 'session failed') open.delete(l.sessionId)
    }
    quiet = open.size === 0 ? quiet + 1 : 0
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** Pushes a session that sets the package's URL (and SHA-256) and Execs `node`; its statuses and the correlator used. */
async function startOperation(server: DmServer, agent: AgentProcess, node: keyof typeof TYPE, setup: OutCommand[]): Promise<{ session: PartySession; correlator: string; execCode?: string }> {
  const correlator = `corr-${++correlators}`
  const command = exec(`${ROOT}/${node}`, undefined, correlator)
  await idle(agent)
  const pushed = await server.pushSession([...setup, command])
  const session = await server.waitForSession((s) => s === pushed && s.closed, 20_000)
  await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === session.sessionId, 20_000)
  if (process.env.DEBUG_FUMO) console.error(JSON.stringify(session.statuses.map((s) => [s.cmd, s.code, s.target])))
  return { session, correlator, execCode: session.statuses.filter((s) => s.command === command).at(-1)?.code }
}

function alertsFor(server: DmServer, correlator: string): GenericAlert[] {
  return server.sessions.flatMap((s) => s.genericAlerts).filter((a) => a.correlator === correlator)
}

/** The result alert; once the session that carried it has ended on both sides (the next push then finds the device idle). */
async function waitForResult(server: DmServer, agent: AgentProcess, correlator: string, timeoutMs = 30_000): Promise<GenericAlert> {
  const alert = await server.waitFor(() => alertsFor(server, correlator)[0], timeoutMs, `FUMO result alert ${correlator}`)
  const session = await server.waitForSession((s) => s.genericAlerts.includes(alert) && s.closed, 20_000).catch((e) => {
    if (process.env.DEBUG_FUMO) console.error(JSON.stringify(server.sessions.map((s) => [s.sessionId, s.origin, s.closed, s.genericAlerts.map((a) => a.correlator), s.hdrStatuses])), agent.tail(30))
    throw e
  })
  await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === session.sessionId, 20_000)
  return alert
}

/** `State` as the server reads it. */
async function readState(server: DmServer, agent: AgentProcess): Promise<string | undefined> {
  const command = get(`${ROOT}/State`)
  await idle(agent)
  const pushed = await server.pushSession([command])
  const session = await server.waitForSession((s) => s === pushed && s.closed, 20_000)
  await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === session.sessionId, 20_000)
  return session.results.flatMap((r) => r.items).find((i) => i.source === `${ROOT}/State`)?.data
}

const url = (node: string, value: string) => replace(`${ROOT}/${node}/PkgURL`, value)
const sha = (value: string) => replace(`${ROOT}/Ext/PkgSHA256`, value)

async function setup(t: Test, extra: Record<string, unknown> = {}) {
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const packages = await startPackageServer(t)
  const module = makeModule()
  const acl = `Get=*&Replace=${FACTORY.serverId}&Exec=${FACTORY.serverId}`
  const options = { brokerUrl: broker.url, config: { fumo: { module: module.path, acl, maxBytes: 1024 * 1024, installer: 'direct', ...extra } } }
  const agent = cleanUpAgent(t, AgentProcess.start(options))
  await server.waitForSession((s) => s.origin === 'device' && s.closed, 20_000)
  return { server, packages, module, agent }
}

t.test('every result code, each in one alert with the Exec\'s Correlator, the node as Source and State as FUMO says', async (t) => {
  const { server, packages, module, agent } = await setup(t)
  t.equal(await readState(server, agent), '10', 'Idle before any operation')

  const cases: Array<{ what: string; node: keyof typeof TYPE; setup: OutCommand[]; module?: () => void; result: string; state: string; calls?: string[] }> = [
    { what: 'installed', node: 'DownloadAndUpdate', setup: [url('DownloadAndUpdate', packages.url('/pkg')), sha(SHA256)], result: '200', state: '100', calls: [`check ${SHA256}`, `install ${SHA256}`] },
    { what: 'checksum mismatch', node: 'DownloadAndUpdate', setup: [sha('0'.repeat(64))], result: '402', state: '20', calls: [] },
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
  const { server, packages, module, agent } = await setup(t)
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
  const { server, packages, module, agent } = await setup(t)
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
  const { server, packages, module, agent } = await setup(t)
  module.set('install', { sleep: 30 })
  const op = await startOperation(server, agent, 'DownloadAndUpdate', [url('DownloadAndUpdate', packages.url('/pkg')), sha(SHA256)])
  await agent.waitForLog((l) => l.msg === 'FUMO module ran' && l.verb === 'check', 20_000)
  await server.waitFor(() => module.calls().find((c) => c.startsWith('install')), 10_000, 'install begun')
  await agent.kill()
  module.set('install', {})
  let restarted = cleanUpAgent(t, agent.restart())
  t.match(await waitForResult(server, restarted, op.correlator), { data: '200', type: TYPE.DownloadAndUpdate })
  t.match(module.calls().at(-1), /^verify /, 'verify ran at the restart')
  await restarted.stop()
  restarted = cleanUpAgent(t, restarted.restart())
  await restarted.online()
  await server.waitForSession((s) => s.origin === 'device' && s.closed && s.genericAlerts.length === 0, 20_000).catch(() => undefined)
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
