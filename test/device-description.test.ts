// The device describes itself (binding.md §8): ./DevDetail/FwV the kernel release, SwV /etc/os-release's
// PRETTY_NAME, HwV the board (device tree model, else DMI product_name), ./DevInfo/Man the maker (device tree
// compatible vendor, else DMI sys_vendor), ./DevDetail/Ext/GwmoAgent/Version the agent's; read from injected
// files under a root, at every start, the configuration's values winning, and written only when they changed.
import t, { type Test } from 'tap'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { release, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { parseConfig, type AgentConfig } from '../src/config.ts'
import { startAgent } from '../src/runtime/agent.ts'
import { describeDevice, prettyName, readDevice } from '../src/runtime/device-info.ts'
import { MemoryStore, MemoryFiles } from '../src/store/index.ts'
import { createStandardTree, updateDescription, type ManagementTree } from '../src/tree/index.ts'
import type { Transport } from '../src/session/port.ts'
import { captureLog, fakeClock } from './helpers/gwmo-harness.ts'
import { AGENT_FIXTURES } from './helpers/agent-process.ts'
import { copyOf } from './helpers/stores.ts'

/** A directory standing for `/`, holding `files` (path relative to it → content). */
function sysroot(t: Test, files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'gwmo-sysroot-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true })
    writeFileSync(join(root, path), content)
  }
  return root
}

/** What a Raspberry Pi 4 running Raspberry Pi OS holds. */
const PI = {
  'proc/sys/kernel/osrelease': '6.6.31+rpt-rpi-v8\n',
  'etc/os-release': 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n',
  'proc/device-tree/model': 'Raspberry Pi 4 Model B Rev 1.4\0',
  'proc/device-tree/compatible': 'raspberrypi,4-model-b\0brcm,bcm2711\0',
}

/** A PC: DMI, no device tree. */
const PC = {
  'proc/sys/kernel/osrelease': '6.1.0-21-amd64\n',
  'usr/lib/os-release': "PRETTY_NAME='Ubuntu 24.04 LTS'\n",
  'sys/class/dmi/id/product_name': 'Standard PC (Q35 + ICH9, 2009)\n',
  'sys/class/dmi/id/sys_vendor': 'QEMU\n',
}

t.test('a device tree board: the kernel release, the OS, the model and the vendor prefix', async (t) => {
  t.same(await readDevice({ root: sysroot(t, PI), version: '1.2.3' }), {
    fwV: '6.6.31+rpt-rpi-v8',
    swV: 'Debian GNU/Linux 12 (bookworm)',
    hwV: 'Raspberry Pi 4 Model B Rev 1.4',
    man: 'raspberrypi',
    version: '1.2.3',
  })
})

t.test('a PC: DMI product and vendor, /usr/lib/os-release when /etc has none', async (t) => {
  t.same(await readDevice({ root: sysroot(t, PC) }), {
    fwV: '6.1.0-21-amd64',
    swV: 'Ubuntu 24.04 LTS',
    hwV: 'Standard PC (Q35 + ICH9, 2009)',
    man: 'QEMU',
  })
})

t.test('the device tree comes before DMI; /etc/os-release before /usr/lib/os-release', async (t) => {
  const both = { ...PC, ...PI }
  const read = await readDevice({ root: sysroot(t, both) })
  t.equal(read.hwV, PI['proc/device-tree/model'].slice(0, -1))
  t.equal(read.man, 'raspberrypi')
  t.equal(read.swV, 'Debian GNU/Linux 12 (bookworm)')
})

t.test('missing and unusable files give nothing, so the nodes keep their defaults', async (t) => {
  t.same(await readDevice({ root: sysroot(t, {}) }), {}, 'an empty root: nothing at all')
  const unusable = await readDevice({
    root: sysroot(t, {
      'proc/sys/kernel/osrelease': '\n',
      'etc/os-release': 'NAME=Debian\n',
      'proc/device-tree/model': '\0',
      'proc/device-tree/compatible': 'no-vendor-prefix\0',
      'sys/class/dmi/id/product_name': 'x'.repeat(300),
      'sys/class/dmi/id/sys_vendor': 'bell\u0007\n',
    }),
  })
  t.same(unusable, {}, 'empty, without PRETTY_NAME, no vendor prefix, too long, a control character')
})

t.test('without a root, the kernel release is the running kernel\'s', async (t) => {
  t.equal((await readDevice()).fwV, release())
})

t.test('PRETTY_NAME as os-release(5) writes it', async (t) => {
  const cases: [string, string | undefined][] = [
    ['PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"', 'Debian GNU/Linux 12 (bookworm)'],
    ["PRETTY_NAME='Fedora Linux 40'", 'Fedora Linux 40'],
    ['PRETTY_NAME=Alpine', 'Alpine'],
    ['PRETTY_NAME="Say \\"hi\\" \\$HOME \\\\ \\`x\\`"', 'Say "hi" $HOME \\ `x`'],
    ['  PRETTY_NAME="indented"  ', 'indented'],
    ['PRETTY_NAME="first"\nPRETTY_NAME="last"', 'last'],
    ['NAME="Debian"\n# PRETTY_NAME="commented out"', undefined],
    ['', undefined],
  ]
  for (const [text, expected] of cases) t.equal(prettyName(text), expected, JSON.stringify(text))
})

t.test('the configuration wins over what the device says', async (t) => {
  const device = { man: 'raspberrypi', fwV: '6.6', swV: 'Debian', hwV: 'Pi 4', version: '1.0.0' }
  t.same(describeDevice({ mod: 'm', lang: 'en', devTyp: 'd', fwV: '1.0.3', man: 'Acme' }, device),
    { man: 'Acme', fwV: '1.0.3', swV: 'Debian', hwV: 'Pi 4', version: '1.0.0' })
  t.same(describeDevice({ mod: 'm', lang: 'en', devTyp: 'd', hwV: 'EX-1' }, {}), { hwV: 'EX-1' })
})

t.test('updateDescription writes what differs and nothing else; a tree without Ext gets the version', async (t) => {
  const tree = createStandardTree({ devId: 'd', mod: 'm', lang: 'en' })
  const at = (uri: string) => tree.get(uri, 'device').value?.data
  t.equal(at('./DevDetail/Ext'), undefined, 'a tree made without a version has no Ext')
  const first = updateDescription(tree, { fwV: '6.1', version: '0.2.0' })
  t.same(first, { ok: true, changed: ['./DevDetail/FwV', './DevDetail/Ext/GwmoAgent/Version'] })
  t.equal(at('./DevDetail/Ext/GwmoAgent/Version'), '0.2.0')
  t.same(updateDescription(tree, { fwV: '6.1', version: '0.2.0' }), { ok: true, changed: [] }, 'the same again: nothing')
  t.same(updateDescription(tree, { version: '0.2.0' }), { ok: true, changed: ['./DevDetail/FwV'] }, 'a value gone: the default')
  t.equal(at('./DevDetail/FwV'), '')
  t.same(updateDescription(tree, { man: 'Acme' }), { ok: true, changed: ['./DevInfo/Man'] }, 'no version: its node is left')
  t.equal(at('./DevDetail/Ext/GwmoAgent/Version'), '0.2.0')
  t.equal(tree.get('./DevDetail/Ext/GwmoAgent/Version', { serverId: 'any' }).status, 200, 'any server reads it')
  t.equal(tree.replace('./DevDetail/Ext/GwmoAgent/Version', { format: 'chr', data: 'x' }, { serverId: 'any' }), 405, 'none changes it')
})

// ---- the agent's start, in memory ----

const quietTransport: Transport = {
  start: () => Promise.resolve(),
  send: () => Promise.resolve(),
  stop: () => Promise.resolve(),
}

function agentConfig(devInfo: Record<string, string> = {}): AgentConfig {
  const parsed = parseConfig({
    deviceId: 'mac:01-ab-34-ef-69-0c',
    broker: { url: 'mqtt://127.0.0.1:1' },
    stateDir: '/nonexistent',
    factoryBootstrap: join(AGENT_FIXTURES, 'factory-bootstrap.xml'),
    location: { enabled: false },
    devInfo: { mod: 'EX-1', ...devInfo },
  }, {})
  if (!parsed.ok) throw new Error(parsed.error)
  return parsed.config
}

const DESCRIPTION = ['./DevInfo/Man', './DevDetail/FwV', './DevDetail/SwV', './DevDetail/HwV', './DevDetail/Ext/GwmoAgent/Version']

/** Starts the agent on `store` with the files under `root`, reads the description nodes, stops it. */
async function startOnce(store: MemoryStore, root: string, config = agentConfig(), version = '0.1.0') {
  const log = captureLog('debug')
  const started = await startAgent({ config, logger: log.logger, transport: quietTransport, store, clock: fakeClock(), sysroot: root, version })
  if (!started.ok) throw new Error(started.error)
  const tree: ManagementTree = started.agent.tree
  const values = Object.fromEntries(DESCRIPTION.map((uri) => [uri, tree.get(uri, { serverId: 'http://dms.example.com' }).value?.data]))
  // What this start wrote, before the stop folds it into a checkpoint.
  const journal = Buffer.from(store.files.journal ?? new Uint8Array(0)).toString('latin1')
  await started.agent.stop()
  return { values, journal, log }
}

t.test('every start describes the device anew, writing only what changed; the configuration wins', async (t) => {
  const pi = sysroot(t, PI)
  const store = new MemoryStore()
  const first = await startOnce(store, pi)
  t.same(first.values, {
    './DevInfo/Man': 'raspberrypi',
    './DevDetail/FwV': '6.6.31+rpt-rpi-v8',
    './DevDetail/SwV': 'Debian GNU/Linux 12 (bookworm)',
    './DevDetail/HwV': 'Raspberry Pi 4 Model B Rev 1.4',
    './DevDetail/Ext/GwmoAgent/Version': '0.1.0',
  }, 'the first start: the factory tree holds the device\'s own values')
  t.match(first.log.lines.filter((l) => l.msg === 'device description read'), [{ level: 'debug', unread: [] }])

  const same = copyOf(store)
  const again = await startOnce(same, pi)
  t.same(again.values, first.values, 'the same device, the same values')
  t.notMatch(again.journal, /DevDetail|DevInfo/, 'a start with nothing new writes no node')
  t.notOk(again.log.lines.some((l) => l.msg === 'device description updated'))

  // A kernel and agent upgrade: the next start writes the two nodes that changed, and says so.
  const upgraded = sysroot(t, { ...PI, 'proc/sys/kernel/osrelease': '6.6.51+rpt-rpi-v8\n' })
  const next = copyOf(same)
  const third = await startOnce(next, upgraded, agentConfig(), '0.2.0')
  t.equal(third.values['./DevDetail/FwV'], '6.6.51+rpt-rpi-v8')
  t.equal(third.values['./DevDetail/Ext/GwmoAgent/Version'], '0.2.0')
  t.match(third.journal, /DevDetail\/FwV/, 'the changed node was written')
  t.notMatch(third.journal, /DevDetail\/SwV|DevDetail\/HwV|DevInfo\/Man/, 'the others were not')
  t.same(third.log.lines.filter((l) => l.msg === 'device description updated').map((l) => [l.level, l.nodes]),
    [['info', ['./DevDetail/FwV', './DevDetail/Ext/GwmoAgent/Version']]], 'one line names them')

  // The owner sets values: they win over the files, at the next start too.
  const fourth = await startOnce(copyOf(next), upgraded, agentConfig({ man: 'Acme Devices', hwV: 'EX-1 rev B' }), '0.2.0')
  t.equal(fourth.values['./DevInfo/Man'], 'Acme Devices')
  t.equal(fourth.values['./DevDetail/HwV'], 'EX-1 rev B')
  t.equal(fourth.values['./DevDetail/FwV'], '6.6.51+rpt-rpi-v8', 'what the configuration does not set still comes from the device')
})

t.test('unreadable files: the defaults, one debug line, nothing louder', async (t) => {
  const { values, log } = await startOnce(new MemoryStore(new MemoryFiles()), sysroot(t, {}), agentConfig({ swV: 'Example OS 3' }))
  t.same(values, {
    './DevInfo/Man': 'unknown',
    './DevDetail/FwV': '',
    './DevDetail/SwV': 'Example OS 3',
    './DevDetail/HwV': '',
    './DevDetail/Ext/GwmoAgent/Version': '0.1.0',
  })
  const about = log.lines.filter((l) => /device/.test(String(l.msg)))
  t.same(about.map((l) => [l.level, l.msg]), [['debug', 'device description read']], 'one debug line')
  t.same(about[0]?.unread, ['man', 'fwV', 'swV', 'hwV'])
  t.same(log.lines.filter((l) => l.level === 'warn' || l.level === 'error'), [], 'no warning, no error')
})
