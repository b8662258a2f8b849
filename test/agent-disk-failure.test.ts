// A state directory and store that cannot be written (a full or failing disk, an SD card gone read-only) under
// the real agent over a broker: a change the store cannot take is answered 500 and is not kept in memory either,
// reads go on, and once the disk takes writes again the same change is stored and survives a SIGKILL.
import { execFileSync } from 'node:child_process'
import { chmodSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { AgentProcess, cleanUpAgent, factoryServer, finalStatus } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer, type DmServer } from './peers/dm-server.ts'
import { statusOf, resultFor, type PartySession } from './peers/session-record.ts'
import { get, replace, type OutCommand } from './peers/syncml.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

const NAME = './DMAcc/dms/Name'
const FACTORY_NAME = 'Example DM Server'

/**
 * Makes `dir` and the files in it (the store's journal, which the agent appends to) refuse writes, or lets them
 * take writes again. Permissions bind every user but root, for whom the immutable attribute does it (chattr:
 * e2fsprogs, on the ext4 of the machines the tests run on).
 */
function writable(dir: string, yes: boolean): void {
  const paths = [...readdirSync(dir).map((name) => join(dir, name)), dir]
  for (const path of yes ? paths.reverse() : paths) {
    if (process.getuid?.() === 0) execFileSync('chattr', [yes ? '-i' : '+i', path])
    else chmodSync(path, path === dir ? (yes ? 0o700 : 0o500) : yes ? 0o600 : 0o400)
  }
}

async function session(server: DmServer, commands: OutCommand[]): Promise<PartySession> {
  const pushed = await server.pushSession(commands)
  return server.waitForSession((s) => s === pushed && s.closed, 20_000)
}

t.test('a change the disk cannot take: 500, not kept; reads go on; stored once the disk takes writes again', async (t) => {
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url }))
  await server.waitForSession((s) => s.origin === 'device' && s.closed, 25_000)
  // A session that hands the server a nonce: the device reserves its nonces ahead, in blocks it persists
  // before using one, so a device that has been running holds a reserved block when the disk fails.
  t.equal(resultFor(await session(server, [get(NAME)]), NAME), FACTORY_NAME)

  const logged = agent.logs.length
  const read = get(NAME)
  const rename = replace(NAME, 'renamed on a full disk')
  writable(agent.stateDir, false)
  try {
    const refused = await session(server, [read, rename])
    t.equal(statusOf(refused, read), '200', 'the Get is answered')
    t.equal(resultFor(refused, NAME), FACTORY_NAME)
    t.equal(statusOf(refused, rename), '500', 'the Replace the disk cannot take: 500')
    const cause = await agent.waitForLogAfter(logged, (l) => String(l.msg).startsWith('changes not stored'))
    t.equal(cause.level, 'error')
    t.match(JSON.stringify(cause.error), /EPERM|EACCES/, 'the line names the cause')

    const meanwhile = await session(server, [get(NAME)])
    t.equal(resultFor(meanwhile, NAME), FACTORY_NAME, 'the refused change is not in the tree either')
  } finally {
    writable(agent.stateDir, true)
  }

  const again = replace(NAME, 'renamed once the disk has room')
  t.equal(statusOf(await session(server, [again]), again), '200', 'the same Replace, once the disk takes writes')

  const killed = await agent.kill()
  t.equal(killed.signal, 'SIGKILL')
  const restarted = cleanUpAgent(t, agent.restart())
  await restarted.online()
  const after = await session(server, [get(NAME)])
  t.equal(finalStatus(after, NAME), '200')
  t.equal(resultFor(after, NAME), 'renamed once the disk has room', 'what was acknowledged survives a SIGKILL')
})
