// What a small change writes does not grow with the tree (binding.md §11), under the real bundle: on a tree of
// about half a megabyte, ten Replaces of a 750-byte leaf, each in a DM Server's session, append a few kilobytes
// to the journal and rewrite nothing. Regression: the state was one file rewritten whole for every change (ten
// such Replaces wrote 16.5 MB).
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { AgentProcess, AGENT_FIXTURES, cleanUpAgent, factoryServer } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer } from './peers/dm-server.ts'
import { replace } from './peers/syncml.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

const LEAVES = 100
const LEAF_BYTES = 400
const LEAF = './Vendor/Data/leaf-7'

/** The factory document with ./Vendor/Data: LEAVES leaves of LEAF_BYTES each, which the DM Server may replace. */
function bigFactory(dir: string): string {
  const command = (kind: 'Add' | 'Replace', k: number, uri: string, format: string, data?: string) =>
    `<${kind}><CmdID>${k}</CmdID><Item><Target><LocURI>${uri}</LocURI></Target><Meta><Format xmlns="syncml:metinf">${format}</Format></Meta>${data === undefined ? '' : `<Data>${data}</Data>`}</Item></${kind}>`
  const filler = 'x'.repeat(LEAF_BYTES)
  const data = [command('Add', 100, './Vendor/Data', 'node'), command('Replace', 101, './Vendor/Data?prop=ACL', 'chr', 'Get=*&amp;Replace=http://dms.example.com')]
  for (let k = 0; k < LEAVES; k++) data.push(command('Add', 200 + k, `./Vendor/Data/leaf-${k}`, 'chr', filler))
  const xml = readFileSync(join(AGENT_FIXTURES, 'factory-bootstrap.xml'), 'utf8').replace('<Final/>', `${data.join('')}<Final/>`)
  const path = join(dir, 'big-factory.xml')
  writeFileSync(path, xml)
  return path
}

t.test('ten Replaces of a 750-byte leaf on a tree of 45 KB append kilobytes, not the tree', async (t) => {
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const dir = AgentProcess.makeDir()
  let agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, dir, factoryBootstrap: bigFactory(dir) }))
  await server.waitForSession((s) => s.origin === 'device' && s.closed, 30_000)
  // A clean stop folds everything into the checkpoint: the journal starts empty.
  t.equal((await agent.stop()).code, 0)
  const checkpoint = join(agent.stateDir, 'state.checkpoint')
  const journal = join(agent.stateDir, 'state.journal')
  const before = { checkpoint: statSync(checkpoint), journal: statSync(journal).size }
  t.ok(before.checkpoint.size > LEAVES * LEAF_BYTES, `the tree is stored: a checkpoint of ${before.checkpoint.size} bytes`)

  agent = cleanUpAgent(t, agent.restart())
  await agent.online()
  for (let k = 0; k < 10; k++) {
    const pushed = await server.pushSession([replace(LEAF, `${k}`.padEnd(750, '.'))])
    const done = await server.waitForSession((s) => s === pushed && s.closed, 20_000)
    t.equal(done.statuses.filter((s) => s.target === LEAF).at(-1)?.code, '200', `Replace ${k + 1}: 200`)
    await agent.waitForLog((l) => l.msg === 'session ended' && l.sessionId === done.sessionId, 20_000)
  }
  const after = { checkpoint: statSync(checkpoint), journal: statSync(journal).size }
  const appended = after.journal - before.journal
  t.ok(appended > 10 * 750, `the ten values are in the journal (${appended} bytes appended)`)
  t.ok(appended < 10 * 4096, `and little else: ${appended} bytes for ten changes to a tree of ${before.checkpoint.size}`)
  t.equal(after.checkpoint.ino, before.checkpoint.ino, 'the checkpoint was not rewritten')
  t.equal(after.checkpoint.mtimeMs, before.checkpoint.mtimeMs)
})
