// `gwmo-agent tree --config FILE [URI]` (binding.md §8) on state files made here: every node with its format,
// type, ACL and value, secrets as (secret), bytes as base64 or a count, then the pending alerts per server;
// read-only (the files and a leftover temporary checkpoint are left exactly as they were); a torn journal tail
// is not shown; and files caught between a checkpoint and the journal after a newer one give the older state,
// never a mixture.
import t, { type Test } from 'tap'
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { STATE_FILES } from '../src/runtime/agent.ts'
import { EXIT } from '../src/runtime/cli.ts'
import { runTreeCli } from '../src/runtime/tree-cli.ts'
import { AgentState } from '../src/session/agent-state.ts'
import { DiskFiles, JournalStore } from '../src/store/index.ts'
import { ManagementTree } from '../src/tree/index.ts'
import { addAccount, chr, node, standardTree } from './fixtures/tree/trees.ts'

const SERVER = 'http://dms.example.com'

/** A folder with a config.json whose stateDir is `<dir>/state`. */
function folder(t: Test): { dir: string; config: string; stateDir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-tree-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const config = join(dir, 'config.json')
  writeFileSync(config, JSON.stringify({ deviceId: 'mac:01-ab-34-ef-69-0c', broker: { url: 'mqtt://127.0.0.1:1' }, stateDir: 'state', factoryBootstrap: 'factory.xml' }))
  return { dir, config, stateDir: join(dir, 'state') }
}

/** The store on disk, as the agent opens it: a tree with an account and ./Vendor leaves, and the agent state. */
async function openStore(stateDir: string) {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 })
  const store = new JournalStore(new DiskFiles(stateDir, STATE_FILES))
  const tree = await ManagementTree.open(store, {
    factory: () => {
      const made = standardTree()
      addAccount(made, {
        x: 'dms',
        serverId: SERVER,
        extra: [
          ['Ext/GwmoAgent/ClientCert', chr('-----BEGIN CERTIFICATE-----\nZGV2aWNl\n-----END CERTIFICATE-----\n')],
          ['Ext/GwmoAgent/ClientKey', chr('-----BEGIN PRIVATE KEY-----\ndevice-key\n-----END PRIVATE KEY-----\n')],
        ],
      })
      made.add('./Vendor', node(), 'device')
      made.replace('./Vendor?prop=ACL', chr('Get=*&Replace=http://dms.example.com'), 'device')
      return made
    },
  })
  const state = await AgentState.open(store, (n) => new Uint8Array(n).fill(9))
  if (!tree.ok || !state.ok) throw new Error('cannot open the store')
  return { store, tree: tree.tree, state: state.state }
}

async function tree(args: string[]) {
  const stdout: string[] = []
  const stderr: string[] = []
  const result = await runTreeCli({ argv: args, env: {}, stdout: (l) => stdout.push(...l.split('\n')), stderr: (l) => stderr.push(l) }, EXIT)
  return { code: result.code, stdout, stderr }
}

/** The node lines as { uri: [format, type, acl, value] }, and the alert lines; throws unless the listing is whole. */
function parse(lines: string[]) {
  const count = lines.findIndex((l) => l.startsWith('pending alerts: '))
  if (count < 0) throw new Error('no pending alerts line')
  const nodes = new Map<string, string[]>()
  for (const line of lines.slice(0, count)) {
    const fields = line.split('\t')
    if (fields.length !== 5) throw new Error(`not a node line: ${line}`)
    nodes.set(fields[0]!, fields.slice(1))
  }
  const alerts = lines.slice(count + 1).map((l) => l.split('\t'))
  if (alerts.length !== Number(lines[count]!.slice('pending alerts: '.length))) throw new Error('the alert count does not match')
  if (alerts.some((a) => a.length !== 6)) throw new Error('not an alert line')
  return { nodes, alerts }
}

t.test('every node with its format, type, ACL and value; secrets hidden; then the pending alerts', async (t) => {
  const { config, stateDir } = folder(t)
  const { store, tree: stored, state } = await openStore(stateDir)
  stored.add('./Vendor/Text', chr('two\tlines\nand "quotes"'), 'device')
  stored.add('./Vendor/Small', { format: 'bin', data: new Uint8Array([0, 1, 2, 255]) }, 'device')
  stored.add('./Vendor/Big', { format: 'bin', data: new Uint8Array(1000).fill(7) }, 'device')
  await stored.flush()
  state.enqueueAlert(SERVER, { type: 'urn:oma:gwmo:1.0:LocationUpdate', data: '<Addr>10.0.0.2</Addr>', source: './GwMO' }, Date.UTC(2024, 4, 1))
  state.enqueueAlert(SERVER, { type: 'urn:x:bytes', data: new Uint8Array([1, 2]) }, Date.UTC(2024, 4, 2))
  state.enqueueAlert('http://other.example.com', { type: 'urn:x:other', data: 'x' }, Date.UTC(2024, 4, 3))
  await state.save()
  await store.checkpoint()

  const run = await tree(['--config', config])
  t.equal(run.code, 0)
  t.same(run.stderr, [])
  const { nodes, alerts } = parse(run.stdout)
  t.equal(run.stdout[0], '.\tnode\t-\tGet=*\t-', 'the root first')
  t.same(nodes.get('./DevInfo'), ['node', 'urn:oma:mo:oma-dm-devinfo:1.0', 'Get=*', '-'], 'an interior node: its type and ACL')
  t.same(nodes.get('./DevInfo/DevId'), ['chr', '-', '-', '"mac:01-ab-34-ef-69-0c"'], 'a leaf: its text as a JSON string, ACL inherited')
  t.same(nodes.get('./Vendor'), ['node', '-', 'Get=*&Replace=http://dms.example.com', '-'])
  t.equal(JSON.parse(nodes.get('./Vendor/Text')![3]!), 'two\tlines\nand "quotes"', 'tabs, newlines and quotes stay on one line')
  t.same(nodes.get('./Vendor/Small'), ['bin', '-', '-', 'base64:AAEC/w=='])
  t.same(nodes.get('./Vendor/Big'), ['bin', '-', '-', '(1000 bytes)'])
  for (const secret of ['./DMAcc/dms/AppAuth/1/AAuthSecret', './DMAcc/dms/AppAuth/1/AAuthData', './DMAcc/dms/AppAuth/2/AAuthSecret', './DMAcc/dms/Ext/GwmoAgent/ClientKey']) {
    t.equal(nodes.get(secret)?.[3], '(secret)', `${secret}: (secret)`)
  }
  const text = run.stdout.join('\n')
  t.notMatch(text, /device-secret|server-secret|device-key|AQID/, 'no secret, no key, no nonce')
  t.equal(nodes.size, [...stored.committed].length, 'every node, once')
  t.same(alerts, [
    [SERVER, '1', 'urn:oma:gwmo:1.0:LocationUpdate', '2024-05-01T00:00:00.000Z', './GwMO', '"<Addr>10.0.0.2</Addr>"'],
    [SERVER, '2', 'urn:x:bytes', '2024-05-02T00:00:00.000Z', '-', 'base64:AQI='],
    ['http://other.example.com', '3', 'urn:x:other', '2024-05-03T00:00:00.000Z', '-', '"x"'],
  ])

  const sub = await tree(['--config', config, './DMAcc/dms/AppAuth'])
  t.equal(sub.code, 0)
  t.same([...parse(sub.stdout).nodes.keys()].slice(0, 3), ['./DMAcc/dms/AppAuth', './DMAcc/dms/AppAuth/1', './DMAcc/dms/AppAuth/1/AAuthLevel'],
    'a URI: that node and what is below it, depth first')
  t.notOk([...parse(sub.stdout).nodes.keys()].some((uri) => !uri.startsWith('./DMAcc/dms/AppAuth')), 'nothing else')
  t.same(parse(sub.stdout).alerts.length, 3, 'the alerts all the same')
  t.same((await tree(['--config', config, 'DevInfo/DevId'])).stdout[0], './DevInfo/DevId\tchr\t-\t-\t"mac:01-ab-34-ef-69-0c"', 'the relative form too')
})

t.test('read-only: the files, a leftover temporary checkpoint and a torn tail are left as they were', async (t) => {
  const { config, stateDir } = folder(t)
  const { store, tree: stored } = await openStore(stateDir)
  await store.checkpoint()
  stored.replace('./DevDetail/FwV', chr('2.0'), 'device')
  await stored.flush()
  stored.replace('./DevDetail/FwV', chr('3.0'), 'device')
  await stored.flush()
  // A power cut in the last append: half of its record is on disk. And a checkpoint torn before its rename.
  const journalPath = join(stateDir, STATE_FILES.journal)
  const records = statSync(journalPath).size
  t.ok(records > 0, 'the two changes are journal records')
  appendFileSync(journalPath, Buffer.from([0, 0, 0, 40, 1, 2, 3]))
  writeFileSync(join(stateDir, `.${STATE_FILES.checkpoint}.tmp`), 'torn')
  const before = snapshot(stateDir)

  const run = await tree(['--config', config, './DevDetail/FwV'])
  t.equal(run.code, 0)
  t.same(run.stderr, [], 'a torn tail is no error')
  t.equal(run.stdout[0], './DevDetail/FwV\tchr\t-\t-\t"3.0"', 'every whole record, none of the torn one')
  t.same(snapshot(stateDir), before, 'no file changed, none added or removed')
  t.equal(statSync(journalPath).size, records + 7, 'the torn tail is still there for the agent to cut')
})

t.test('a checkpoint read before a newer one replaced it: the older state, none of the journal after the newer', async (t) => {
  const { config, stateDir } = folder(t)
  const { store, tree: stored } = await openStore(stateDir)
  stored.replace('./DevDetail/FwV', chr('1.0'), 'device')
  stored.replace('./DevDetail/SwV', chr('old'), 'device')
  await stored.flush()
  await store.checkpoint()
  const older = readFileSync(join(stateDir, STATE_FILES.checkpoint))
  stored.replace('./DevDetail/FwV', chr('2.0'), 'device')
  await stored.flush()
  await store.checkpoint()
  // After the newer checkpoint: records that change SwV, which the older checkpoint's state never had with 2.0.
  stored.replace('./DevDetail/SwV', chr('new'), 'device')
  await stored.flush()
  t.ok(readFileSync(join(stateDir, STATE_FILES.journal)).length > 0, 'the journal holds a record after the newer checkpoint')

  const latest = parse((await tree(['--config', config, './DevDetail'])).stdout).nodes
  t.same([latest.get('./DevDetail/FwV')?.[3], latest.get('./DevDetail/SwV')?.[3]], ['"2.0"', '"new"'], 'the files as they are: the latest state')

  writeFileSync(join(stateDir, STATE_FILES.checkpoint), older)
  const run = await tree(['--config', config, './DevDetail'])
  t.equal(run.code, 0)
  const caught = parse(run.stdout).nodes
  t.same([caught.get('./DevDetail/FwV')?.[3], caught.get('./DevDetail/SwV')?.[3]], ['"1.0"', '"old"'],
    'the older checkpoint with the newer journal: the older state, not SwV "new" on FwV "1.0"')
})

t.test('errors: one line on stderr; usage and configuration exit 2, the state exits 1', async (t) => {
  const { dir, config, stateDir } = folder(t)
  const cases: [string[], number, RegExp][] = [
    [[], EXIT.usage, /--config FILE is required/],
    [['--config', config, '--verbose'], EXIT.usage, /verbose/],
    [['--config', config, './A', './B'], EXIT.usage, /at most one URI/],
    [['--config', config, './DevInfo/'], EXIT.usage, /not a node URI/],
    [['--config', config, './DevInfo?prop=ACL'], EXIT.usage, /not a node URI/],
    [['--config', join(dir, 'missing.json')], EXIT.usage, /missing\.json.*ENOENT/],
    [['--config', config], EXIT.failure, /holds no tree \(the agent has not started yet\)/],
  ]
  for (const [args, code, pattern] of cases) {
    const run = await tree(args)
    t.equal(run.code, code, `${args.join(' ')}: exit ${code}`)
    t.equal(run.stderr.length, 1, 'one line')
    t.match(run.stderr[0], /^gwmo-agent tree: /)
    t.match(run.stderr[0], pattern)
    t.same(run.stdout, [])
  }
  t.notOk(existsSync(stateDir), 'no stateDir was made')

  await openStore(stateDir)
  const missing = await tree(['--config', config, './Nowhere'])
  t.same([missing.code, missing.stderr], [EXIT.failure, ['gwmo-agent tree: ./Nowhere: no such node']])
  writeFileSync(join(stateDir, STATE_FILES.checkpoint), 'GWMOSTOR but not really')
  const corrupt = await tree(['--config', config])
  t.equal(corrupt.code, EXIT.failure)
  t.match(corrupt.stderr, [/^gwmo-agent tree: store: checkpoint: /])
})

/** Every file's name, size, mode, mtime and bytes. */
function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((name) => {
    const stat = statSync(join(dir, name))
    return [name, `${stat.size} ${stat.mode} ${stat.mtimeMs} ${readFileSync(join(dir, name)).toString('hex')}`]
  }))
}
