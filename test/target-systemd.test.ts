// The device's systemd unit: systemd's own verifier accepts it, its sandbox scores as exposure level ≤ 2.0,
// and it keeps what the agent needs (JIT, /proc/net, netlink) while granting nothing else.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const unitPath = join(root, 'targets', 'systemd', 'gwmo-agent.service')
const unitText = readFileSync(unitPath, 'utf8')
const HOST_UNITS = '/usr/lib/systemd/system'

function analyze(args: string[]) {
  const r = spawnSync('systemd-analyze', args, { encoding: 'utf8', cwd: tmpdir() })
  // Never skip: a machine without systemd-analyze cannot vouch for the unit (.ci/run installs systemd).
  if (r.error) throw new Error(`systemd-analyze is required (Debian package systemd): ${r.error.message}`)
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** A root tree holding the host's units (targets the unit refers to), the given unit, and a fake agent. */
function fakeRoot(unit: string, options: { withAgent: boolean }): string {
  const dir = mkdtempSync(join(tmpdir(), 'gwmo-unit-'))
  cpSync(HOST_UNITS, join(dir, HOST_UNITS), { recursive: true, verbatimSymlinks: true })
  mkdirSync(join(dir, 'lib', 'systemd', 'system'), { recursive: true })
  writeFileSync(join(dir, 'lib', 'systemd', 'system', 'gwmo-agent.service'), unit)
  mkdirSync(join(dir, 'usr', 'bin'), { recursive: true })
  if (options.withAgent) {
    writeFileSync(join(dir, 'usr', 'bin', 'gwmo-agent'), '#!/bin/sh\n')
    chmodSync(join(dir, 'usr', 'bin', 'gwmo-agent'), 0o755)
  }
  return dir
}

function verify(unit: string, options = { withAgent: true }) {
  const dir = fakeRoot(unit, options)
  try {
    return analyze(['verify', `--root=${dir}`, 'gwmo-agent.service'])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** [Section] → key → every value assigned, in order (systemd keys may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>()
  let current: Map<string, string[]> | undefined
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const header = /^\[(.+)\]$/.exec(line)
    if (header) {
      current = new Map()
      sections.set(header[1]!, current)
      continue
    }
    const eq = line.indexOf('=')
    if (!current || eq < 0) throw new Error(`unparsable unit line: ${line}`)
    const key = line.slice(0, eq)
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)])
  }
  return sections
}

const unit = parseUnit(unitText)
const service = unit.get('Service') ?? new Map<string, string[]>()
const last = (key: string) => service.get(key)?.at(-1)

t.test('systemd-analyze verify accepts the unit where its ExecStart exists', async (t) => {
  const r = verify(unitText)
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stderr.trim(), '', 'no warnings either')
})

t.test('the verifier would catch a broken unit (so a pass above means something)', async (t) => {
  const typo = verify(unitText.replace('ProtectClock=yes', 'ProtectClok=yes'))
  t.match(typo.stderr, /Unknown key 'ProtectClok'/)
  const noAgent = verify(unitText, { withAgent: false })
  t.not(noAgent.status, 0)
  t.match(noAgent.stderr, /\/usr\/bin\/gwmo-agent is not executable/)
})

t.test('systemd-analyze security rates the sandbox at exposure 2.0 or better', async (t) => {
  const r = analyze(['--offline=true', 'security', unitPath])
  t.equal(r.status, 0, r.stderr)
  const m = /Overall exposure level for gwmo-agent\.service: (\d+(?:\.\d+)?)/.exec(r.stdout)
  t.ok(m, 'an overall exposure line')
  const level = Number(m?.[1])
  t.ok(level <= 2.0, `exposure ${level} ≤ 2.0`)
  // The settings that matter most for a network-facing daemon must each pass, not just average out.
  const passed = r.stdout.split('\n').filter((l) => l.startsWith('✓')).map((l) => l.slice(1).trim().split(/\s/)[0])
  for (const essential of ['NoNewPrivileges=', 'ProtectSystem=', 'ProtectHome=', 'PrivateDevices=',
    'PrivateTmp=', 'SystemCallFilter=~@privileged', 'SystemCallArchitectures=', 'RestrictNamespaces=~user',
    'CapabilityBoundingSet=~CAP_SYS_ADMIN', 'User=/DynamicUser=', 'RestrictSUIDSGID=', 'LockPersonality=']) {
    t.ok(passed.includes(essential), `${essential} passes`)
  }
})

t.test('the unit runs the packaged launcher as a restartable dynamic-user service', async (t) => {
  t.equal(last('Type'), 'exec')
  t.equal(last('ExecStart'), '/usr/bin/gwmo-agent --config /etc/gwmo-agent/config.json')
  t.equal(last('Restart'), 'on-failure')
  t.ok(unit.get('Unit')?.has('StartLimitIntervalSec'), 'restart rate limit window, in [Unit]')
  t.ok(unit.get('Unit')?.has('StartLimitBurst'), 'restart rate limit burst, in [Unit]')
  t.equal(last('DynamicUser'), 'yes')
  t.equal(last('StateDirectory'), 'gwmo-agent')
  t.equal(last('StateDirectoryMode'), '0700')
  t.equal(last('ConfigurationDirectory'), 'gwmo-agent')
  t.equal(last('UMask'), '0077')
  t.equal(last('TimeoutStopSec'), '10')
  t.equal(last('CapabilityBoundingSet'), '', 'no capabilities at all')
  t.equal(unit.get('Install')?.get('WantedBy')?.[0], 'multi-user.target')
})

t.test('the sandbox leaves the agent what it needs', async (t) => {
  const families = (last('RestrictAddressFamilies') ?? '').split(/\s+/)
  t.same(families.sort(), ['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_UNIX'], 'IP, netlink (addresses), unix')
  // ProcSubset=pid hides /proc/net, where the default route is read.
  t.not(last('ProcSubset'), 'pid')
  // V8 aborts on its first JIT-compiled function under MemoryDenyWriteExecute; only --jitless survives it.
  if (last('MemoryDenyWriteExecute') === 'yes') t.match(last('ExecStart'), /--jitless/)
  t.equal(last('ProtectSystem'), 'strict')
  t.equal(last('SupplementaryGroups'), 'gwmo-agent-conf', 'reads 0640 root:gwmo-agent-conf secrets')
  const sysusers = readFileSync(join(root, 'targets', 'systemd', 'gwmo-agent.sysusers'), 'utf8')
  t.match(sysusers, /^g gwmo-agent-conf -$/m, 'the group the unit joins is declared for systemd-sysusers')
})

t.test('FUMO\'s root-side installer: its units verify, its service scores 2.2 at worst, and it has no network', async (t) => {
  const dir = join(root, 'targets', 'systemd')
  const fake = fakeRoot(unitText, { withAgent: true })
  try {
    const units = join(fake, 'lib', 'systemd', 'system')
    for (const unit of ['gwmo-agent-installer.path', 'gwmo-agent-installer.service']) cpSync(join(dir, unit), join(units, unit))
    mkdirSync(join(fake, 'usr', 'lib', 'gwmo-agent'), { recursive: true })
    cpSync(join(dir, 'gwmo-agent-installer'), join(fake, 'usr', 'lib', 'gwmo-agent', 'gwmo-agent-installer'))
    const r = analyze(['verify', `--root=${fake}`, 'gwmo-agent-installer.path', 'gwmo-agent-installer.service'])
    t.equal(r.status, 0, r.stderr)
    t.equal(r.stderr.trim(), '', 'no warnings either')
  } finally {
    rmSync(fake, { recursive: true, force: true })
  }
  const r = analyze(['--offline=true', 'security', join(dir, 'gwmo-agent-installer.service')])
  const level = Number(/Overall exposure level for gwmo-agent-installer\.service: (\d+(?:\.\d+)?)/.exec(r.stdout)?.[1])
  t.ok(level <= 2.2, `exposure ${level} ≤ 2.2 (README "Updating devices" reports it)`)
  const installer = parseUnit(readFileSync(join(dir, 'gwmo-agent-installer.service'), 'utf8')).get('Service')
  t.same(installer?.get('PrivateNetwork'), ['yes'], 'a package comes from the spool, not the network')
  t.same(installer?.get('Type'), ['oneshot'])
  const path = parseUnit(readFileSync(join(dir, 'gwmo-agent-installer.path'), 'utf8')).get('Path')
  t.same(path?.get('PathExists'), ['/var/lib/private/gwmo-agent/fumo-spool/request'], 'it watches the agent\'s spool')
})
