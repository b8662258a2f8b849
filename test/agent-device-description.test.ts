// The real bundle describes the device it runs on (binding.md §8), here a root of injected files (GWMO_SYSROOT):
// a DM Server reads ./DevDetail/FwV, SwV, HwV, ./DevInfo/Man and ./DevDetail/Ext/GwmoAgent/Version and gets the
// files' values, the configuration's where it sets one, and the version --version prints; after a kernel
// upgrade, the next start gives the new release.
import t, { type Test } from 'tap'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { AgentProcess, cleanUpAgent, factoryServer } from './helpers/agent-process.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { startDmServer } from './peers/dm-server.ts'
import { resultFor } from './peers/session-record.ts'
import { get } from './peers/syncml.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

const VERSION = (JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'package.json'), 'utf8')) as { version: string }).version

function sysroot(t: Test, kernel: string): string {
  const root = mkdtempSync(join(tmpdir(), 'gwmo-sysroot-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const files = {
    'proc/sys/kernel/osrelease': `${kernel}\n`,
    'etc/os-release': 'PRETTY_NAME="Raspbian GNU/Linux 12 (bookworm)"\nID=raspbian\n',
    'proc/device-tree/model': 'Raspberry Pi Zero 2 W Rev 1.0\0',
    'proc/device-tree/compatible': 'raspberrypi,model-zero-2-w\0brcm,bcm2837\0',
  }
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true })
    writeFileSync(join(root, path), content)
  }
  return root
}

const READ = ['./DevDetail/FwV', './DevDetail/SwV', './DevDetail/HwV', './DevInfo/Man', './DevDetail/Ext/GwmoAgent/Version']

t.test('a DM Server reads the device\'s own description, the configuration winning where it sets a value', async (t) => {
  const server = await startDmServer(factoryServer(broker.url, t))
  t.teardown(() => server.stop())
  server.queueSession(READ.map((uri) => get(uri)))
  const root = sysroot(t, '6.6.31+rpt-rpi-v7')
  const agent = cleanUpAgent(t, AgentProcess.start({ brokerUrl: broker.url, env: { GWMO_SYSROOT: root }, config: { devInfo: { hwV: 'EX-1 rev B' } } }))
  const session = await server.waitForSession((s) => s.closed, 20_000)
  t.same(Object.fromEntries(READ.map((uri) => [uri, resultFor(session, uri)])), {
    './DevDetail/FwV': '6.6.31+rpt-rpi-v7',
    './DevDetail/SwV': 'Raspbian GNU/Linux 12 (bookworm)',
    './DevDetail/HwV': 'EX-1 rev B',
    './DevInfo/Man': 'raspberrypi',
    './DevDetail/Ext/GwmoAgent/Version': VERSION,
  }, 'the files\' values, HwV from the configuration, the package version')
  t.equal(session.devInfo['./DevInfo/Man'], 'raspberrypi', 'Package 1 reports the maker too')
  const printed = AgentProcess.run(['--version'], { dir: agent.dir })
  await printed.waitForExit(30_000)
  t.equal(printed.stdout.trim(), VERSION, '--version prints the same version')

  // A kernel upgrade, the configuration's HwV dropped: the next start describes the device as it is now.
  t.equal((await agent.stop()).code, 0)
  const upgraded = sysroot(t, '6.6.51+rpt-rpi-v7')
  const again = cleanUpAgent(t, agent.restart({ env: { GWMO_SYSROOT: upgraded }, config: {} }))
  await again.online()
  t.same(again.logs.find((l) => l.msg === 'device description updated')?.nodes, ['./DevDetail/FwV', './DevDetail/HwV'])
  const pushed = await server.pushSession(READ.slice(0, 3).map((uri) => get(uri)))
  const read = await server.waitForSession((s) => s === pushed && s.closed, 20_000)
  t.equal(resultFor(read, './DevDetail/FwV'), '6.6.51+rpt-rpi-v7')
  t.equal(resultFor(read, './DevDetail/HwV'), 'Raspberry Pi Zero 2 W Rev 1.0', 'the board from the device tree, once the configuration says nothing')
  t.equal((await again.stop()).code, 0)
})
