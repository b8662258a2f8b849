// `gwmo-agent ddf --config FILE` with the real bundle (binding.md §8): the DDF 1.2 it prints is well-formed for
// xmllint, and describes every node the running agent serves to a DM Server that walks its tree (Get of an
// interior node lists its children), the configured objects among them, with the node's real format and type,
// Get only where a Get succeeds, Replace only where a Replace of the node's own value is not refused as
// unsupported (405), and Exec only where an Exec is not.
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { AgentProcess, AGENT_BUNDLE, AGENT_FIXTURES, cleanUpAgent, FACTORY, factoryServer, writeAgentConfig } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer } from './peers/dm-server.ts'
import type { PartySession } from './peers/session-record.ts'
import { exec, get, replace, type OutCommand } from './peers/syncml.ts'
import { child, childrenNamed, childText, isNode, readXml, type Node } from './peers/xml.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

/** The factory document with a vendor subtree the server may change (./Vendor/Conf/Every, an int). */
function factory(dir: string): string {
  const extra = [
    `<Add><CmdID>100</CmdID><Item><Target><LocURI>./Vendor/Conf/Every</LocURI></Target><Meta><Format xmlns="syncml:metinf">int</Format><Type xmlns="syncml:metinf">text/x-seconds</Type></Meta><Data>60</Data></Item></Add>`,
    `<Replace><CmdID>101</CmdID><Item><Target><LocURI>./Vendor?prop=ACL</LocURI></Target><Meta><Format xmlns="syncml:metinf">chr</Format></Meta><Data>Get=*&amp;Replace=${FACTORY.serverId}</Data></Item></Replace>`,
  ]
  const xml = readFileSync(join(AGENT_FIXTURES, 'factory-bootstrap.xml'), 'utf8').replace('<Final/>', `${extra.join('')}<Final/>`)
  const path = join(dir, 'vendor-factory.xml')
  writeFileSync(path, xml)
  return path
}

async function ddf(dir: string, ...args: string[]) {
  const run = AgentProcess.run(['ddf', ...args], { dir })
  const exit = await run.waitForExit(60_000)
  return { code: exit.code, stdout: run.stdout, stderr: run.stderr }
}

/** The DDF's description of a node: top-level Nodes by name, then named children, else the placeholder (''). */
function describedAt(tree: Node, uri: string): Node | undefined {
  let nodes = childrenNamed(tree, 'Node')
  let found: Node | undefined
  for (const segment of uri.split('/').slice(1)) {
    const name = (n: Node) => childText(n, 'NodeName') ?? ''
    found = nodes.find((n) => name(n) === segment) ?? nodes.find((n) => name(n) === '')
    if (found === undefined) return undefined
    nodes = childrenNamed(found, 'Node')
  }
  return found
}

/** The element names inside `DFProperties/<prop>` (`AccessType` → `['Get', 'Replace']`). */
function inner(node: Node, prop: string): string[] {
  return child(child(node, 'DFProperties'), prop)?.children.filter(isNode).map((c) => c.name) ?? []
}

interface Served {
  get: string
  format?: string
  type?: string
  data?: string
  replace?: string
  exec?: string
}

t.test('the DDF is well-formed, and describes every node the agent serves as it serves it', async (t) => {
  const dir = AgentProcess.makeDir()
  writeFileSync(join(dir, 'temp'), '48312\n')
  writeFileSync(join(dir, 'name'), 'gw-1')
  const server = FACTORY.serverId
  const config = {
    devInfo: { man: 'Acme & Sons', mod: 'Gw<1>' },
    objects: [
      { path: './Vendor/Sensors/Temp', format: 'int', read: { file: join(dir, 'temp') } },
      { path: './Vendor/Conf/Mode', acl: `Get=*&Replace=${server}&Exec=${server}`, value: 'eco' },
      { path: './Vendor/Conf/Name', type: 'text/x-name', acl: `Get=*&Replace=${server}`, write: { file: join(dir, 'name') } },
      { path: './Vendor/Ops/Restart', acl: `Get=*&Exec=${server}`, exec: { command: ['/bin/true'] } },
    ],
    // binding.md §9: the FUMO object, which the server may change and run; a module that accepts anything.
    fumo: { name: 'fw', acl: `Get=*&Replace=${server}&Exec=${server}`, module: '/bin/true', installer: 'direct' },
  }
  const served = new Map<string, Served>()
  const requested = new Set<string>()
  /** A turn of the walk: what the last turn answered, then a Get of every node named but not asked yet. */
  const walk = (session: PartySession): OutCommand[] | undefined => {
    for (const uri of requested) {
      const code = session.statuses.filter((s) => s.target === uri).at(-1)?.code
      if (code === undefined || served.has(uri)) continue
      const item = session.results.flatMap((r) => r.items).find((i) => i.source === uri)
      served.set(uri, { get: code, format: item?.meta.format, type: item?.meta.type, data: item?.data })
    }
    const next: string[] = []
    const name = (uri: string) => {
      if (!requested.has(uri)) next.push(uri)
    }
    if (requested.size === 0) name('.')
    // No party lists ./DMAcc (binding.md §6): the server knows its own account.
    name('./DMAcc/dms')
    for (const [uri, node] of served) {
      if (node.format === 'node') for (const kid of node.data?.split('/').filter(Boolean) ?? []) name(uri === '.' ? `./${kid}` : `${uri}/${kid}`)
    }
    // A node that answers no Get tells its format through its Format property.
    for (const [uri, node] of served) if (node.get !== '200' && !uri.includes('?')) name(`${uri}?prop=Format`)
    for (const uri of next) requested.add(uri)
    return next.length > 0 ? next.map(get) : undefined
  }
  const dms = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => dms.stop())
  dms.queueSession(...Array.from({ length: 12 }, () => walk))
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, dir, factoryBootstrap: factory(dir), config }))
  const session = await dms.waitForSession((s) => s.closed, 30_000)
  // The Format properties answered, into the nodes they are of.
  for (const [uri, node] of [...served]) {
    if (!uri.endsWith('?prop=Format')) continue
    served.delete(uri)
    const of = served.get(uri.slice(0, -'?prop=Format'.length))!
    if (node.get === '200') of.format = node.data
  }
  // A node the server may not read at all (./DMAcc, ./Inbox: 425) is interior when the walk reached below it.
  for (const [uri, node] of served) if ([...served.keys()].some((u) => u.startsWith(uri + '/'))) node.format ??= 'node'
  t.ok(served.size > 30, `the walk reached ${served.size} nodes`)
  t.equal(served.get('./DMAcc/dms/AppAuth/1/AAuthSecret')?.get, '405', 'the walk met a secret')
  t.equal(served.get('./DMAcc/dms/AppAuth/1/AAuthSecret')?.format, 'chr', 'and its format')

  // Every leaf read is written back with its own value: 405 is a Replace the node does not support.
  const leaves = [...served].filter(([, n]) => n.get === '200' && n.format !== 'node' && n.data !== undefined)
  const pushed = await dms.pushSession(leaves.map(([uri, n]) => replace(uri, n.data!, n.format, n.type)))
  const replaced = await dms.waitForSession((s) => s === pushed && s.closed, 30_000)
  for (const [uri, n] of leaves) n.replace = replaced.statuses.filter((s) => s.target === uri).at(-1)?.code
  t.equal(served.get('./DevInfo/Mod')?.replace, '405')
  t.equal(served.get('./Vendor/Conf/Every')?.replace, '200')
  t.equal(served.get('./Vendor/Conf/Name')?.replace, '200', 'a written object')
  t.equal(served.get('./Vendor/Sensors/Temp')?.data, '48312', 'an object read from its file')
  // And every leaf is executed, and FUMO's operations: 405 is an Exec the node does not support.
  const runnable = [...leaves, ...['Download', 'Update', 'DownloadAndUpdate'].map((op) => [`./FUMO/fw/${op}`, served.get(`./FUMO/fw/${op}`)!] as const)]
  const execs = await dms.pushSession(runnable.map(([uri]) => exec(uri)))
  const executed = await dms.waitForSession((s) => s === execs && s.closed, 30_000)
  for (const [uri, n] of runnable) n.exec = executed.statuses.filter((s) => s.target === uri).at(-1)?.code
  t.equal(served.get('./Vendor/Ops/Restart')?.exec, '202', 'an exec object')
  t.equal(served.get('./Vendor/Conf/Mode')?.exec, '405', 'a stored object the server may Exec, which has nothing to run')
  t.equal(served.get('./FUMO/fw/Download')?.exec, '202', 'a FUMO operation')
  t.equal(served.get('./FUMO/fw/PkgName')?.exec, '405', 'a FUMO leaf')
  t.equal(served.get('./FUMO/fw/State')?.replace, '425', 'State is the device\'s to write')
  t.equal(session.closed, true)
  t.equal((await agent.stop()).code, 0)

  const run = await ddf(dir, '--config', join(dir, 'config.json'))
  t.equal(run.code, 0)
  t.equal(run.stderr, '')
  const file = join(dir, 'tree.ddf.xml')
  writeFileSync(file, run.stdout)
  t.doesNotThrow(() => execFileSync('xmllint', ['--noout', file], { stdio: 'pipe' }), 'xmllint finds it well-formed')
  const tree = readXml(run.stdout)!
  t.equal(tree.name, 'MgmtTree')
  t.equal(childText(tree, 'VerDTD'), '1.2')
  t.equal(childText(tree, 'Man'), 'Acme & Sons', 'Man and Mod from the device description, escaped')
  t.equal(childText(tree, 'Mod'), 'Gw<1>')

  for (const [uri, node] of served) {
    if (uri === '.') continue
    const described = describedAt(tree, uri)
    if (described === undefined) {
      t.fail(`${uri}: not described`)
      continue
    }
    const access = inner(described, 'AccessType')
    if (node.format !== undefined) t.same(inner(described, 'DFFormat'), [node.format], `${uri}: format ${node.format}`)
    if (node.get === '200') t.ok(access.includes('Get'), `${uri}: Get`)
    if (node.get === '405') t.notOk(access.includes('Get'), `${uri}: no Get (405)`)
    if (node.replace === '200') t.ok(access.includes('Replace'), `${uri}: Replace`)
    if (node.replace === '405') t.notOk(access.includes('Replace'), `${uri}: no Replace (405)`)
    if (node.exec === '200' || node.exec === '202') t.ok(access.includes('Exec'), `${uri}: Exec`)
    if (node.exec === '405') t.notOk(access.includes('Exec'), `${uri}: no Exec (405)`)
    const dfType = child(child(described, 'DFProperties'), 'DFType')
    if (node.format === undefined) continue
    if (node.format === 'node') {
      if (node.type !== undefined) t.equal(childText(dfType, 'DDFName'), node.type, `${uri}: DDF name`)
    } else {
      t.equal(childText(dfType, 'MIME'), node.type ?? 'text/plain', `${uri}: MIME type`)
    }
  }

  // An account a server adds: a placeholder with the whole DMAcc MO. FUMO under its configured name (binding.md §9).
  const account = describedAt(tree, './DMAcc/any')!
  t.equal(childText(account, 'NodeName'), '')
  t.same(inner(account, 'Occurrence'), ['ZeroOrMore'])
  t.same(inner(describedAt(tree, './DMAcc/any/AppAuth/x/AAuthData')!, 'DFFormat'), ['bin'])
  const fumo = describedAt(tree, './FUMO/fw')!
  t.equal(childText(fumo, 'NodeName'), 'fw')
  t.equal(childText(child(child(fumo, 'DFProperties'), 'DFType'), 'DDFName'), 'urn:oma:mo:oma-fumo:1.0')
  t.same(childrenNamed(fumo, 'Node').map((n) => childText(n, 'NodeName')), ['PkgName', 'PkgVersion', 'Download', 'Update', 'DownloadAndUpdate', 'State', 'Ext'])
  t.same(inner(describedAt(tree, './FUMO/fw/State')!, 'AccessType'), ['Get'])
  // An object the server only reads is described so: Get, and neither Replace nor Exec.
  t.same(inner(describedAt(tree, './Vendor/Sensors/Temp')!, 'AccessType'), ['Get'])
  t.same(inner(describedAt(tree, './Vendor/Conf/Mode')!, 'AccessType'), ['Get', 'Replace'])
  for (const secret of [FACTORY.clientPassword, FACTORY.serverPassword]) t.notOk(run.stdout.includes(secret), `no ${secret}`)
})

t.test('usage: --help names the command; no --config, or an unreadable factory document, is one line and no output', async (t) => {
  const dir = AgentProcess.makeDir()
  const help = AgentProcess.run(['--help'], { dir })
  await help.waitForExit(30_000)
  t.match(help.stdout, /gwmo-agent ddf --config FILE/)

  const bare = await ddf(dir)
  t.equal(bare.code, 2)
  t.equal(bare.stderr, 'gwmo-agent ddf: --config FILE is required\n')
  t.equal(bare.stdout, '')

  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    deviceId: FACTORY.deviceId, broker: { url: 'mqtt://127.0.0.1:1' }, stateDir: join(dir, 'state'), factoryBootstrap: join(dir, 'missing.xml'),
  }))
  const missing = await ddf(dir, '--config', join(dir, 'config.json'))
  t.equal(missing.code, 1)
  t.match(missing.stderr, /^gwmo-agent ddf: factoryBootstrap: cannot read .*missing\.xml \(ENOENT\)\n$/)
  t.equal(missing.stdout, '')

  // The command is a file of its own beside the agent's bundle (the agent never loads it): without it, one line.
  copyFileSync(AGENT_BUNDLE, join(dir, 'gwmo-agent.js'))
  const alone = spawnSync(process.execPath, [join(dir, 'gwmo-agent.js'), 'ddf', '--config', join(dir, 'config.json')], { encoding: 'utf8' })
  t.equal(alone.status, 2)
  t.equal(alone.stderr, 'gwmo-agent ddf: not installed beside this agent (gwmo-agent-ddf.js, built by npm run build)\n')
  t.equal(alone.stdout, '')
})

t.test('the Raspberry Pi drop-in example, as the .deb ships it, is described whole', async (t) => {
  const dir = AgentProcess.makeDir()
  const dropIns = join(dir, 'objects.d')
  mkdirSync(dropIns)
  copyFileSync(join(AGENT_FIXTURES, '..', '..', '..', 'targets', 'systemd', 'objects.d', 'raspberry-pi.json.example'), join(dropIns, 'pi.json'))
  writeAgentConfig(dir, { brokerUrl: 'mqtt://127.0.0.1:1', config: { objectsDir: dropIns } })
  const run = await ddf(dir, '--config', join(dir, 'config.json'))
  t.equal(run.code, 0, run.stderr)
  writeFileSync(join(dir, 'pi.ddf.xml'), run.stdout)
  t.doesNotThrow(() => execFileSync('xmllint', ['--noout', join(dir, 'pi.ddf.xml')], { stdio: 'pipe' }), 'well-formed')
  const tree = readXml(run.stdout)!
  const described = (uri: string) => {
    const node = describedAt(tree, uri)!
    return [inner(node, 'DFFormat')[0], inner(node, 'AccessType').join('+')]
  }
  t.same(described('./Vendor/Pi/CpuTemp'), ['int', 'Get'])
  t.same(described('./Vendor/Pi/Uptime'), ['float', 'Get'])
  t.same(described('./Vendor/Pi/DiskFree'), ['chr', 'Get'])
  t.same(described('./Vendor/Pi/Config/ReportEvery'), ['int', 'Get+Replace'])
  t.same(described('./Vendor/Pi/Ops/RestartApp'), ['chr', 'Exec+Get'])
  t.same(described('./Vendor/Pi/Ops/Reboot'), ['chr', 'Exec+Get'])
  t.equal(childText(child(child(describedAt(tree, './Vendor/Pi/CpuTemp')!, 'DFProperties'), 'DFType'), 'MIME'), 'text/x-millidegree-celsius')
  t.equal(describedAt(tree, './FUMO'), undefined, 'no FUMO object without a fumo section')
})
