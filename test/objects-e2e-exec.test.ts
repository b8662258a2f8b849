/**
 * Exec of the integrator's objects (binding.md §8) through the real bundle over mosquitto: synchronous (200/500),
 * asynchronous (202, then one Generic Alert with the Exec's Correlator, the node, the object's alert type, format
 * int and 200/500/408), busy (417), the alert kept across a SIGKILL until the server has it and delivered once,
 * and a reboot reported after the restart from the boot id.
 */
import t from 'tap'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { AgentProcess, cleanUpAgent, FACTORY, factoryServer, type LogLine } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer, type DmServer } from './peers/dm-server.ts'
import { statusOf, resultFor, type GenericAlert } from './peers/session-record.ts'
import { exec, get, replace } from './peers/syncml.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

const dir = mkdtempSync(join(tmpdir(), 'gwmo-exec-'))
chmodSync(dir, 0o755)

function program(name: string, body: string): string {
  const file = join(dir, name)
  writeFileSync(file, `#!/bin/sh\n${body}\n`)
  chmodSync(file, 0o755)
  return file
}

const BUN = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', '.bin', 'bun')
const SRV = FACTORY.serverId
const RESULT_TYPE = 'urn:x-gwmo-agent:exec:1.0:result'
const alertsOf = (server: DmServer, correlator: string): GenericAlert[] =>
  server.sessions.flatMap((s) => s.genericAlerts).filter((a) => a.correlator === correlator)
const nonces = (server: DmServer) => ({ serverNonce: server.serverNonce, clientNonce: server.clientNonce })

/** An Exec whose program waits for `<gate>` to exist, then exits with the number it holds. */
function gated(name: string): { gate: string; command: string[] } {
  const gate = join(dir, `${name}.gate`)
  return { gate, command: [program(`${name}.sh`, `cat > /dev/null; while [ ! -e ${gate} ]; do sleep 0.05; done; exit $(cat ${gate})`)] }
}

t.test('sync and async Exec, busy, timeout, and the result alert', async (t) => {
  const job = gated('job')
  const objects = [
    { path: './Vendor/Ops/Job', acl: `Exec=${SRV}`, alertType: 'urn:test:job-done', exec: { command: job.command } },
    { path: './Vendor/Ops/Check', acl: `Exec=${SRV}`, async: false, exec: { command: [program('check.sh', '[ "$(cat)" = ok ]')] } },
    { path: './Vendor/Ops/Slow', acl: `Exec=${SRV}`, timeoutSeconds: 1, exec: { command: [program('slow.sh', 'sleep 60')] } },
    { path: './Vendor/Ops/Closed', exec: { command: [program('closed.sh', 'exit 0')] } },
  ]
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const first = exec('./Vendor/Ops/Job', undefined, 'corr-job')
  const busy = exec('./Vendor/Ops/Job', undefined, 'corr-busy')
  const checkOk = exec('./Vendor/Ops/Check', 'ok')
  const checkKo = exec('./Vendor/Ops/Check', 'not ok')
  const slow = exec('./Vendor/Ops/Slow', undefined, 'corr-slow')
  const closed = exec('./Vendor/Ops/Closed')
  server.queueSession([first, busy, checkOk, checkKo, slow, closed])
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, config: { objects } }))
  const session = await server.waitForSession((s) => s.closed, 30_000)
  t.equal(statusOf(session, first), '202', 'async: 202 at once')
  t.equal(statusOf(session, busy), '417', 'a second Exec while it runs: 417')
  t.equal(statusOf(session, checkOk), '200', 'sync, exit 0: 200')
  t.equal(statusOf(session, checkKo), '500', 'sync, non-zero exit: 500')
  t.equal(statusOf(session, slow), '202')
  t.equal(statusOf(session, closed), '425', 'an exec object without an ACL naming the server')

  const timedOut = await server.waitFor(() => alertsOf(server, 'corr-slow')[0], 30_000, 'the timeout alert')
  t.match(timedOut, { type: RESULT_TYPE, format: 'int', data: '408', source: './Vendor/Ops/Slow' }, 'killed at its timeout: 408')

  writeFileSync(job.gate, '0')
  const done = await server.waitFor(() => alertsOf(server, 'corr-job')[0], 30_000, 'the job alert')
  t.match(done, { type: 'urn:test:job-done', format: 'int', data: '200', source: './Vendor/Ops/Job' }, 'exit 0: 200, with the object\'s alert type')
  t.same(alertsOf(server, 'corr-busy'), [], 'nothing for the refused Exec')

  // Done: the node runs again, and a failure is reported 500.
  writeFileSync(job.gate, '3')
  const again = exec('./Vendor/Ops/Job', undefined, 'corr-job-2')
  const pushed = await server.pushSession([again])
  await server.waitForSession((s) => s === pushed && s.closed, 20_000)
  t.equal(statusOf(pushed, again), '202')
  const failed = await server.waitFor(() => alertsOf(server, 'corr-job-2')[0], 30_000, 'the failure alert')
  t.equal(failed.data, '500', 'non-zero exit: 500')
  t.ok(agent.logs.some((l: LogLine) => l.msg === 'exec failed' && l.uri === './Vendor/Ops/Job'), 'the failure logged')
  t.equal(alertsOf(server, 'corr-job').length, 1, 'each result delivered once')
})

/** The alerts a stopped agent holds for delivery (`gwmo-agent tree`), as their Source URIs. */
async function pendingSources(agent: AgentProcess): Promise<string[]> {
  const run = AgentProcess.run(['tree', '--config', join(agent.dir, 'config.json'), './Vendor'], { dir: agent.dir })
  await run.waitForExit(60_000)
  const lines = run.stdout.split('\n')
  const at = lines.findIndex((l) => l.startsWith('pending alerts: '))
  return lines.slice(at + 1).filter((l) => l !== '').map((l) => l.split('\t')[4]!)
}

t.test('the result alert survives a SIGKILL before the server has it, and is delivered once', async (t) => {
  const job = gated('persist')
  const objects = [{ path: './Vendor/Ops/Persist', acl: `Exec=${SRV}`, exec: { command: job.command } }]
  let server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  let agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, config: { objects } }))
  await server.waitForSession((s) => s.closed, 30_000)
  await agent.online()
  const run = exec('./Vendor/Ops/Persist', undefined, 'corr-persist')
  const pushed = await server.pushSession([run])
  await server.waitForSession((s) => s === pushed && s.closed, 20_000)
  t.equal(statusOf(pushed, run), '202')

  // The server goes away; the program ends; the agent has the alert queued, then dies without a goodbye.
  const saved = nonces(server)
  await server.stop()
  const logged = agent.logs.length
  writeFileSync(job.gate, '0')
  await agent.waitForLogAfter(logged, (l) => l.msg === 'exec result queued' && l.uri === './Vendor/Ops/Persist', 20_000)
  await agent.kill()
  t.same(await pendingSources(agent), ['./Vendor/Ops/Persist'], 'the alert is stored')

  server = await startDmServer({ ...factoryServer(broker.url, t), ...saved })
  agent = cleanUpAgent(t, agent.restart())
  const alert = await server.waitFor(() => alertsOf(server, 'corr-persist')[0], 30_000, 'the alert after the restart')
  t.match(alert, { type: RESULT_TYPE, format: 'int', data: '200', source: './Vendor/Ops/Persist' })

  // The SIGKILL lost the nonces (binding.md §6): a Status for the alert in a server message the device refused
  // does not count, and the device sends it again in a later session until a Status it accepts (§3). Once that
  // came, the alert is gone for good.
  let pending: string[] = []
  for (let tries = 0; tries < 3; tries++) {
    const sessions = server.sessions.length
    await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === server.sessions.at(-1)?.sessionId, 20_000)
    t.equal((await agent.stop()).code, 0)
    pending = await pendingSources(agent)
    if (pending.length === 0) break
    agent = cleanUpAgent(t, agent.restart())
    await server.waitFor(() => (server.sessions.length > sessions && server.sessions.at(-1)!.closed ? true : undefined), 30_000, 'the next delivery')
  }
  t.same(pending, [], 'acknowledged: no longer stored')
  const count = alertsOf(server, 'corr-persist').length
  agent = cleanUpAgent(t, agent.restart())
  await agent.online()
  const check = await server.pushSession([get('./DevInfo/Mod')])
  await server.waitForSession((s) => s === check && s.closed, 20_000)
  t.equal(alertsOf(server, 'corr-persist').length, count, 'never delivered again')
})

t.test('rebootsDevice: reported after the restart, 200 when the boot id changed, 500 when it did not', async (t) => {
  for (const [changed, expected] of [[true, '200'], [false, '500']] as const) {
    const sysroot = mkdtempSync(join(dir, 'root-'))
    mkdirSync(join(sysroot, 'proc/sys/kernel/random'), { recursive: true })
    const bootId = join(sysroot, 'proc/sys/kernel/random/boot_id')
    writeFileSync(bootId, '11111111-2222-3333-4444-555555555555\n')
    const marker = join(dir, `rebooted-${expected}`)
    const objects = [{
      path: './Vendor/Ops/Reboot', acl: `Exec=${SRV}`, rebootsDevice: true, alertType: 'urn:test:rebooted',
      exec: { command: [program(`reboot-${expected}.sh`, `touch ${marker}`)] },
    }]
    let server = await startDmServer(factoryServer(broker.url, t))
    t.teardown(() => server.stop())
    let agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, config: { objects }, env: { GWMO_SYSROOT: sysroot } }))
    await server.waitForSession((s) => s.closed, 30_000)
    await agent.online()
    const reboot = exec('./Vendor/Ops/Reboot', undefined, `corr-reboot-${expected}`)
    const pushed = await server.pushSession([reboot])
    await server.waitForSession((s) => s === pushed && s.closed, 20_000)
    t.equal(statusOf(pushed, reboot), '202')
    await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === pushed.sessionId, 20_000)
    const saved = nonces(server)
    await agent.stop()
    t.same(alertsOf(server, `corr-reboot-${expected}`), [], 'nothing before the restart')

    if (changed) writeFileSync(bootId, '99999999-2222-3333-4444-555555555555\n')
    await server.stop()
    server = await startDmServer({ ...factoryServer(broker.url, t), ...saved })
    agent = cleanUpAgent(t, agent.restart())
    const alert = await server.waitFor(() => alertsOf(server, `corr-reboot-${expected}`)[0], 30_000, 'the reboot alert')
    t.match(alert, { type: 'urn:test:rebooted', format: 'int', data: expected, source: './Vendor/Ops/Reboot' }, changed ? 'restarted: 200' : 'not restarted: 500')
    await server.waitForSession((s) => s.genericAlerts.includes(alert) && s.closed, 20_000)
    await agent.stop()
  }
})

t.test('under Bun: a program read, an atomic file write and an async Exec with its alert', async (t) => {
  const file = join(dir, 'bun-value')
  writeFileSync(file, 'before\n')
  const objects = [
    { path: './Vendor/Bun/Read', read: { command: [program('bun-read.sh', 'echo "$GWMO_NODE"')] } },
    { path: './Vendor/Bun/File', acl: `Get=*&Replace=${SRV}`, write: { file } },
    { path: './Vendor/Bun/Job', acl: `Exec=${SRV}`, exec: { command: [program('bun-job.sh', '[ "$(cat)" = go ]')] } },
  ]
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const job = exec('./Vendor/Bun/Job', 'go', 'corr-bun')
  server.queueSession([get('./Vendor/Bun/Read'), replace('./Vendor/Bun/File', 'after'), job])
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, config: { objects }, runtime: BUN }))
  const session = await server.waitForSession((s) => s.closed, 30_000)
  t.match(agent.logs.find((l) => l.msg === 'started'), { runtime: /^bun / }, 'the agent ran under Bun')
  t.equal(resultFor(session, './Vendor/Bun/Read'), './Vendor/Bun/Read')
  t.equal(readFileSync(file, 'utf8'), 'after')
  t.equal(statusOf(session, job), '202')
  const alert = await server.waitFor(() => alertsOf(server, 'corr-bun')[0], 30_000, 'the alert')
  t.match(alert, { type: RESULT_TYPE, format: 'int', data: '200', source: './Vendor/Bun/Job' })
})
