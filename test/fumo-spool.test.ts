/**
 * FUMO's spool installer (binding.md §9): the agent, with `installer: "spool"`, hands a downloaded and verified
 * package to the root-side installer (targets/systemd/gwmo-agent-installer, run here by the test where systemd's
 * path unit would run it) and reports the result that installer leaves. The installer takes only a complete
 * request whose package has the SHA-256 it names, never follows a link out of the spool, and writes nothing into
 * the agent's directory.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cleanUpAgent } from './helpers/agent-process.ts'
import { alertsFor, makeModule, PACKAGE, readState, setup, sha, SHA256, startOperation, TYPE, url, waitForResult } from './helpers/fumo.ts'
import { startMosquitto } from './helpers/mosquitto.ts'

const INSTALLER = join(dirname(fileURLToPath(import.meta.url)), '..', 'targets', 'systemd', 'gwmo-agent-installer')

const broker = await startMosquitto()
t.teardown(() => broker.stop())

function runInstaller(spool: string, result: string, module: string): string {
  const r = spawnSync(INSTALLER, [spool, result, module], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`installer exited ${r.status}: ${r.stderr}`)
  return r.stdout
}

/** Polls until the agent's request is in the spool. */
async function requestIn(spool: string): Promise<string> {
  for (let i = 0; i < 300; i++) {
    if (existsSync(join(spool, 'request'))) return readFileSync(join(spool, 'request'), 'utf8')
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error('no request in the spool within 30 s')
}

t.test('through the spool: installed by the root side, a tampered package refused (402), a restart verified by the new agent', async (t) => {
  const resultDir = mkdtempSync(join(tmpdir(), 'gwmo-installer-'))
  const result = join(resultDir, 'result')
  const { server, packages, module, agent } = await setup(t, broker.url, { installer: 'spool', spoolResult: result })
  const spool = join(agent.stateDir, 'fumo-spool')

  const op = await startOperation(server, agent, 'DownloadAndUpdate', [url('DownloadAndUpdate', packages.url('/pkg')), sha(SHA256)])
  t.equal(op.execCode, '202')
  t.match(await requestIn(spool), new RegExp(`^id=[0-9a-f]+\nsha256=${SHA256}\n$`), 'the request names the package\'s SHA-256')
  t.same(readFileSync(join(spool, 'package')), PACKAGE, 'the verified package waits in the spool')
  t.same(module.calls(), [], 'the agent itself ran nothing')
  t.match(runInstaller(spool, result, module.path), /check=0 install=0 restart=0/)
  t.notOk(existsSync(join(spool, 'request')), 'the request is taken')
  t.match(await waitForResult(server, agent, op.correlator), { data: '200', type: TYPE.DownloadAndUpdate })
  t.same(module.calls(), [`check ${SHA256}`, `install ${SHA256}`], 'check and install by the installer, on its own copy')
  t.equal(await readState(server, agent), '100')

  module.reset()
  const tampered = await startOperation(server, agent, 'DownloadAndUpdate', [])
  await requestIn(spool)
  writeFileSync(join(spool, 'package'), 'something else')
  t.match(runInstaller(spool, result, module.path), /rejected=sha256 mismatch/)
  t.match(await waitForResult(server, agent, tampered.correlator), { data: '402' }, 'a package changed after its request: 402')
  t.same(module.calls(), [], 'nothing of it reached the module')

  module.reset()
  module.set('check', { exit: 3 })
  const mismatch = await startOperation(server, agent, 'DownloadAndUpdate', [])
  await requestIn(spool)
  runInstaller(spool, result, module.path)
  t.match(await waitForResult(server, agent, mismatch.correlator), { data: '403' }, 'check 3 on the root side: 403')

  module.reset()
  module.set('install', { out: 'restart\n' })
  const restart = await startOperation(server, agent, 'DownloadAndUpdate', [])
  await requestIn(spool)
  t.match(runInstaller(spool, result, module.path), /restart=1/)
  await agent.waitForLog((l) => l.msg === 'FUMO install done; the result waits for verify after the restart' || l.msg === 'FUMO module ran', 20_000).catch(() => undefined)
  await new Promise((resolve) => setTimeout(resolve, 1500))
  t.same(alertsFor(server, restart.correlator), [], 'no result until the agent restarts')
  await agent.stop()
  const again = cleanUpAgent(t, agent.restart())
  t.match(await waitForResult(server, again, restart.correlator), { data: '200' }, 'verified by the restarted agent')
  t.same(module.calls().map((c) => c.split(' ')[0]), ['check', 'install', 'verify'], 'verify by the agent, on the spooled package')
  t.equal(alertsFor(server, restart.correlator).length, 1)
})

t.test('the installer alone: links, missing packages and malformed requests are refused, and it writes only its result', async (t) => {
  const module = makeModule()
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-installer-'))
  const spool = join(dir, 'spool')
  const result = join(dir, 'out', 'result')
  mkdirSync(spool)
  mkdirSync(dirname(result))
  const secret = join(dir, 'secret')
  writeFileSync(secret, 'root only')
  const request = (text: string) => writeFileSync(join(spool, 'request'), text)

  t.equal(runInstaller(spool, result, module.path), '', 'no request: nothing')
  request(`id=abc1\nsha256=${'0'.repeat(64)}\n`)
  symlinkSync(secret, join(spool, 'package'))
  t.match(runInstaller(spool, result, module.path), /request abc1: rejected=no package/, 'a package that is a link is refused')
  t.equal(readFileSync(result, 'utf8'), 'id=abc1\nrejected=no package\n')

  symlinkSync(join(dir, 'elsewhere'), join(spool, 'request'))
  t.match(runInstaller(spool, result, module.path), /request refused: not a regular file/, 'a request that is a link is refused')
  t.notOk(existsSync(join(spool, 'request')), 'and removed, so the path unit does not fire again')

  request('sha256=x\n')
  t.match(runInstaller(spool, result, module.path), /request refused: no id/)
  request('id=abc2\n')
  t.match(runInstaller(spool, result, module.path), /rejected=no sha256/)
  t.same(module.calls(), [], 'the module never ran')
  t.same(readdirSync(spool).sort(), ['package'], 'nothing written into the spool')
})

t.test('an install decided on but not handed over when the agent went down is handed over at the next start', async (t) => {
  const resultDir = mkdtempSync(join(tmpdir(), 'gwmo-installer-'))
  const result = join(resultDir, 'result')
  const { server, packages, module, agent } = await setup(t, broker.url, { installer: 'spool', spoolResult: result })
  const spool = join(agent.stateDir, 'fumo-spool')
  const op = await startOperation(server, agent, 'DownloadAndUpdate', [url('DownloadAndUpdate', packages.url('/pkg')), sha(SHA256)])
  const first = await requestIn(spool)
  await agent.kill()
  // As the agent left things had it gone down just before the handover: the package still its own, no request.
  renameSync(join(spool, 'package'), join(agent.stateDir, 'fumo', 'package'))
  rmSync(join(spool, 'request'))
  const again = cleanUpAgent(t, agent.restart())
  t.equal(await requestIn(spool), first, 'the same request, made again')
  runInstaller(spool, result, module.path)
  t.match(await waitForResult(server, again, op.correlator), { data: '200' })
  t.same(module.calls(), [`check ${SHA256}`, `install ${SHA256}`])
  t.equal(alertsFor(server, op.correlator).length, 1)
})
