// `gwmo-agent tree --config FILE [URI]` with the real bundle (binding.md §8): against a stopped agent it lists
// the stored tree and pending alerts, secrets as (secret), and changes no file; while a DM Server makes the
// running agent write 100 Replaces of a 12 KB leaf in a row (journal appends and checkpoints), every listing
// read meanwhile is whole and parseable, shows a value the leaf had, never an older one than the last the
// device acknowledged before the listing began, and never a secret.
import t from 'tap'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { AgentProcess, AGENT_FIXTURES, cleanUpAgent, FACTORY, factoryServer } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer } from './peers/dm-server.ts'
import { replace } from './peers/syncml.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

const LEAF = './Vendor/Burst/Leaf'
const LEAF_CHARS = 12 * 1024
const WRITES = 100
const SECRETS = [FACTORY.clientPassword, FACTORY.serverPassword]
const valueOf = (k: number) => `${k}:`.padEnd(LEAF_CHARS, '.')

/** The factory document with ./Vendor/Burst/Leaf, which the DM Server may replace. */
function factory(dir: string): string {
  const add = (k: number, uri: string, format: string, data?: string) =>
    `<Add><CmdID>${k}</CmdID><Item><Target><LocURI>${uri}</LocURI></Target><Meta><Format xmlns="syncml:metinf">${format}</Format></Meta>${data === undefined ? '' : `<Data>${data}</Data>`}</Item></Add>`
  const extra = [
    add(100, './Vendor', 'node'),
    add(101, './Vendor/Burst', 'node'),
    `<Replace><CmdID>102</CmdID><Item><Target><LocURI>./Vendor/Burst?prop=ACL</LocURI></Target><Meta><Format xmlns="syncml:metinf">chr</Format></Meta><Data>Get=*&amp;Replace=${FACTORY.serverId}</Data></Item></Replace>`,
    add(103, LEAF, 'chr', valueOf(0)),
  ]
  const xml = readFileSync(join(AGENT_FIXTURES, 'factory-bootstrap.xml'), 'utf8').replace('<Final/>', `${extra.join('')}<Final/>`)
  const path = join(dir, 'burst-factory.xml')
  writeFileSync(path, xml)
  return path
}

interface Listing {
  nodes: Map<string, string[]>
  alerts: string[][]
}

/** A listing parsed whole: every node line has its five fields, the alert count matches its lines; else throws. */
function parse(stdout: string): Listing {
  const lines = stdout.split('\n')
  if (lines.pop() !== '') throw new Error('the output does not end with a whole line')
  const count = lines.findIndex((l) => /^pending alerts: \d+$/.test(l))
  if (count < 0) throw new Error('no "pending alerts" line')
  const nodes = new Map<string, string[]>()
  for (const line of lines.slice(0, count)) {
    const fields = line.split('\t')
    if (fields.length !== 5 || !fields[0]!.startsWith('.')) throw new Error(`not a node line: ${line.slice(0, 80)}`)
    if (nodes.has(fields[0]!)) throw new Error(`${fields[0]} listed twice`)
    nodes.set(fields[0]!, fields.slice(1))
  }
  const alerts = lines.slice(count + 1).map((l) => l.split('\t'))
  if (alerts.length !== Number(lines[count]!.slice('pending alerts: '.length)) || alerts.some((a) => a.length !== 6)) {
    throw new Error('the alert lines do not match their count')
  }
  return { nodes, alerts }
}

/** Runs `gwmo-agent tree --config <dir>/config.json [uri]` and waits for it. */
async function tree(dir: string, ...uri: string[]) {
  const run = AgentProcess.run(['tree', '--config', join(dir, 'config.json'), ...uri], { dir })
  const exit = await run.waitForExit(60_000)
  return { code: exit.code, stdout: run.stdout, stderr: run.stderr }
}

/** Every file of the state folder: name, size, mtime and bytes. */
function snapshot(dir: string): string[] {
  return readdirSync(dir).sort().map((name) => {
    const stat = statSync(join(dir, name))
    return `${name} ${stat.size} ${stat.mtimeMs} ${readFileSync(join(dir, name)).toString('hex')}`
  })
}

t.test('--help names the command; a stopped agent\'s tree and alerts, secrets hidden, no file changed', async (t) => {
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const dir = AgentProcess.makeDir()
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, dir, factoryBootstrap: factory(dir) }))
  await server.waitForSession((s) => s.closed, 20_000)
  t.equal((await agent.stop()).code, 0)

  const help = AgentProcess.run(['--help'], { dir })
  await help.waitForExit(30_000)
  t.match(help.stdout, /gwmo-agent tree --config FILE \[URI\]/, '--help mentions it')

  const before = snapshot(agent.stateDir)
  const run = await tree(dir)
  t.equal(run.code, 0)
  t.equal(run.stderr, '')
  const listing = parse(run.stdout)
  t.same(listing.nodes.get('./DevInfo/DevId'), ['chr', '-', '-', JSON.stringify(FACTORY.deviceId)])
  t.same(listing.nodes.get('./Vendor/Burst'), ['node', '-', `Get=*&Replace=${FACTORY.serverId}`, '-'])
  t.equal(listing.nodes.get(LEAF)?.[3], JSON.stringify(valueOf(0)))
  t.ok(listing.nodes.has('./DevDetail/Ext/GwmoAgent/Version'), 'the agent\'s version node')
  const hidden = [...listing.nodes].filter(([uri]) => /\/AAuth(Secret|Data)$/.test(uri))
  t.same(hidden.map(([uri]) => uri).sort(), ['./DMAcc/dms/AppAuth/1/AAuthData', './DMAcc/dms/AppAuth/1/AAuthSecret', './DMAcc/dms/AppAuth/2/AAuthSecret'])
  t.same(hidden.map(([, fields]) => fields[3]), ['(secret)', '(secret)', '(secret)'], 'each shown as (secret)')
  for (const secret of SECRETS) t.notOk(run.stdout.includes(secret), `no ${secret}`)
  t.same(listing.alerts, [], 'the server acknowledged everything: no pending alert')
  t.same(snapshot(agent.stateDir), before, 'the state files are as they were')

  const sub = await tree(dir, './Vendor')
  t.same([...parse(sub.stdout).nodes.keys()], ['./Vendor', './Vendor/Burst', LEAF], 'under a URI: that subtree')
})

t.test('listings read during a burst of writes by the running agent are whole, current and secret-free', async (t) => {
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  const dir = AgentProcess.makeDir()
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, dir, factoryBootstrap: factory(dir) }))
  await server.waitForSession((s) => s.closed, 20_000)
  await agent.online()
  const checkpoint = join(agent.stateDir, 'state.checkpoint')
  const checkpointBefore = statSync(checkpoint, { throwIfNoEntry: false })?.ino

  /** Each listing, with the last write the device had acknowledged when it began. */
  const runs: Array<Promise<{ floor: number; code: number | null; stdout: string; stderr: string }>> = []
  let acknowledged = 0
  let bursting = true
  const listOnce = () => {
    const floor = acknowledged
    const run = tree(dir).then((result) => ({ floor, ...result }))
    runs.push(run)
    return run
  }
  // Two readers that list the tree over and over while the writes go on.
  const readers = [0, 1].map(async () => {
    while (bursting) await listOnce()
  })
  for (let k = 1; k <= WRITES; k++) {
    const pushed = await server.pushSession([replace(LEAF, valueOf(k))])
    const done = await server.waitForSession((s) => s === pushed && s.closed, 30_000)
    if (done.statuses.filter((s) => s.target === LEAF).at(-1)?.code !== '200') t.fail(`write ${k} not acknowledged`)
    acknowledged = k
    if (k % 20 === 0) void listOnce()
  }
  bursting = false
  await Promise.all(readers)
  const results = await Promise.all(runs)

  t.not(statSync(checkpoint).ino, checkpointBefore, 'the burst replaced the checkpoint at least once (1.2 MB of journal)')
  t.ok(results.length >= WRITES / 20 + 2, `${results.length} listings`)
  let worst = ''
  const seen = new Set<number>()
  for (const [i, run] of results.entries()) {
    const where = `listing ${i} (after write ${run.floor})`
    if (run.code !== 0 || run.stderr !== '') {
      worst ||= `${where}: exit ${run.code}, ${run.stderr.trim()}`
      continue
    }
    let listing: Listing
    try {
      listing = parse(run.stdout)
    } catch (error) {
      worst ||= `${where}: ${(error as Error).message}`
      continue
    }
    const value = listing.nodes.get(LEAF)?.[3]
    const k = value === undefined ? NaN : Number(/^"(\d+):/.exec(value)?.[1])
    if (!(k >= run.floor && k <= WRITES) || value !== JSON.stringify(valueOf(k))) worst ||= `${where}: the leaf is ${value?.slice(0, 20)}`
    if (!listing.nodes.has('./DevInfo/DevId') || listing.nodes.get('./DMAcc/dms/AppAuth/1/AAuthData')?.[3] !== '(secret)') {
      worst ||= `${where}: the standard nodes or the hidden secret are missing`
    }
    if (SECRETS.some((secret) => run.stdout.includes(secret))) worst ||= `${where}: a secret is printed`
    seen.add(k)
  }
  t.equal(worst, '', 'every listing whole, parseable, no older than the last acknowledged write, no secret')
  t.comment(`${results.length} listings saw ${seen.size} different values of the leaf`)
  t.equal((await agent.stop()).code, 0)
  const final = await tree(dir, LEAF)
  t.equal(parse(final.stdout).nodes.get(LEAF)?.[3], JSON.stringify(valueOf(WRITES)), 'after the stop: the last write')
})
