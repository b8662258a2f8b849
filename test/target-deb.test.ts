// The Debian package: what it holds and with which modes, lintian's verdict, a reproducible build, the
// launcher running the packaged bundle with the host's node, and the maintainer scripts touching systemd only
// when systemd runs.
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import {
  chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseConfig } from '../src/config.ts'
import { parseObjects } from '../src/objects/spec.ts'
import { buildFactoryTree, readFactoryDocument } from '../src/runtime/factory.ts'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const { version: upstreamVersion } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  version: string
}
const debVersion = `${upstreamVersion}-1`
const work = mkdtempSync(join(tmpdir(), 'gwmo-deb-test-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))

function run(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: options.env ?? process.env, input: options.input })
  // Never skip: each tool here is a Debian package that .ci/run installs.
  if (r.error) throw new Error(`${cmd} is required: ${r.error.message}`)
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

function buildDeb(outDir: string): string {
  const r = run(process.execPath, [join(root, 'build', 'package-deb.mjs'), '--out', outDir],
    { env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000' } })
  if (r.status !== 0) throw new Error(`package-deb failed: ${r.stderr}`)
  return r.stdout.trim()
}

// The bundle is an input; `npm test` builds it first, a lone run of this file builds it here.
if (!existsSync(join(root, 'dist', 'gwmo-agent.js'))) execFileSync(process.execPath, [join(root, 'build', 'bundle.mjs')])
const deb = buildDeb(join(work, 'out'))
const tree = join(work, 'tree')
execFileSync('dpkg', ['-x', deb, tree])
const control = join(work, 'control')
execFileSync('dpkg-deb', ['-e', deb, control])

/** Runs a shell script in a private mount namespace, so it can mount over /run and /var/lib harmlessly. */
function inPrivateMounts(script: string, env: NodeJS.ProcessEnv) {
  const asRoot = process.getuid?.() === 0
  const ns = asRoot ? ['--mount'] : ['--user', '--map-root-user', '--mount']
  return run('unshare', [...ns, '--propagation', 'private', '--', '/bin/sh', '-c', script], { env })
}

t.test('the package is named after its version and built for every architecture', async (t) => {
  t.equal(deb, join(work, 'out', `gwmo-agent_${debVersion}_all.deb`))
  const field = (name: string) => execFileSync('dpkg-deb', ['-f', deb, name], { encoding: 'utf8' }).trim()
  t.equal(field('Package'), 'gwmo-agent')
  t.equal(field('Version'), debVersion)
  t.equal(field('Architecture'), 'all')
  t.equal(field('Depends'), 'nodejs (>= 18)')
  t.match(field('Description'), /^OMA DM Gateway Management \(GwMO\) End Device agent over MQTT\n .{20,}/)
  t.match(field('Installed-Size'), /^\d+$/)
})

t.test('the package holds the bundle, launcher, unit, example config and docs, root-owned', async (t) => {
  const listing = execFileSync('dpkg-deb', ['-c', deb], { encoding: 'utf8' }).trim().split('\n')
  const entries = new Map(listing.map((line) => {
    const [mode, owner, , , , path] = line.split(/\s+/)
    return [path!.replace(/^\.\//, '/'), { mode, owner }]
  }))
  const expected: Record<string, string> = {
    '/usr/bin/gwmo-agent': '-rwxr-xr-x',
    '/usr/lib/gwmo-agent/gwmo-agent.js': '-rw-r--r--',
    '/usr/lib/gwmo-agent/gwmo-agent-ddf.js': '-rw-r--r--',
    '/usr/lib/gwmo-agent/package.json': '-rw-r--r--',
    '/lib/systemd/system/gwmo-agent.service': '-rw-r--r--',
    '/usr/lib/sysusers.d/gwmo-agent.conf': '-rw-r--r--',
    '/etc/gwmo-agent/config.example.json': '-rw-r--r--',
    '/usr/share/doc/gwmo-agent/copyright': '-rw-r--r--',
    '/usr/share/doc/gwmo-agent/changelog.Debian.gz': '-rw-r--r--',
    '/usr/share/doc/gwmo-agent/README.Debian': '-rw-r--r--',
    '/usr/share/man/man1/gwmo-agent.1.gz': '-rw-r--r--',
    '/usr/share/doc/gwmo-agent/examples/mosquitto/make-acl.mjs': '-rw-r--r--',
    '/usr/share/doc/gwmo-agent/examples/mosquitto/world.example.json': '-rw-r--r--',
    '/usr/share/doc/gwmo-agent/examples/mosquitto/gwmo-agent.conf': '-rw-r--r--',
    '/etc/gwmo-agent/objects.d/': 'drwxr-xr-x',
    '/usr/share/doc/gwmo-agent/examples/objects.d/raspberry-pi.json.example': '-rw-r--r--',
    '/usr/share/doc/gwmo-agent/examples/systemd/objects-sandbox.conf': '-rw-r--r--',
    '/usr/share/doc/gwmo-agent/examples/systemd/gwmo-agent-request@.path': '-rw-r--r--',
    '/usr/share/doc/gwmo-agent/examples/systemd/gwmo-agent-request@.service': '-rw-r--r--',
    '/usr/share/doc/gwmo-agent/examples/systemd/gwmo-agent-request': '-rw-r--r--',
  }
  for (const [path, mode] of Object.entries(expected)) {
    t.equal(entries.get(path)?.mode, mode, `${path} ${mode}`)
  }
  t.equal(entries.get('/')?.mode, 'drwxr-xr-x', 'the root of the tree is not private')
  t.ok([...entries.values()].every((e) => e.owner === 'root/root'), 'everything root/root')
  t.notOk(entries.has('/etc/gwmo-agent/config.json'), 'no live config that would start a half-configured agent')

  t.equal(readFileSync(join(tree, 'usr/bin/gwmo-agent'), 'utf8'),
    '#!/bin/sh\nexec node /usr/lib/gwmo-agent/gwmo-agent.js "$@"\n')
  t.same(JSON.parse(readFileSync(join(tree, 'usr/lib/gwmo-agent/package.json'), 'utf8')), { type: 'commonjs' })
  t.equal(readFileSync(join(tree, 'lib/systemd/system/gwmo-agent.service'), 'utf8'),
    readFileSync(join(root, 'targets/systemd/gwmo-agent.service'), 'utf8'))
  t.same(JSON.parse(readFileSync(join(tree, 'etc/gwmo-agent/config.example.json'), 'utf8')),
    JSON.parse(readFileSync(join(root, 'build/example-config.json'), 'utf8')))
  t.equal(readFileSync(join(control, 'conffiles'), 'utf8'), '/etc/gwmo-agent/config.example.json\n')
  t.match(readFileSync(join(tree, 'usr/share/doc/gwmo-agent/copyright'), 'utf8'), /^License: Apache-2.0$/m)
})

t.test('md5sums cover every shipped file outside /etc', async (t) => {
  const check = spawnSync('md5sum', ['--check', '--quiet', join(control, 'md5sums')], { cwd: tree, encoding: 'utf8' })
  t.equal(check.status, 0, check.stdout + check.stderr)
  const listed = readFileSync(join(control, 'md5sums'), 'utf8').trim().split('\n').map((l) => l.split('  ')[1])
  t.ok(listed.includes('usr/lib/gwmo-agent/gwmo-agent.js'))
  t.ok(listed.includes('usr/bin/gwmo-agent'))
  t.notOk(listed.some((p) => p?.startsWith('etc/')), 'conffiles are tracked by conffiles, not md5sums')
})

t.test('lintian finds no error and no warning', async (t) => {
  // Overridden tags show as O: lines; any E: or W: line fails.
  const r = run('lintian', ['--pedantic', '--show-overrides', deb])
  t.equal(r.status, 0, r.stdout + r.stderr)
  t.notMatch(r.stdout, /^[EW]: /m, r.stdout)
  // The accepted tags are overridden in the package itself, each with its reason.
  t.match(r.stdout, /^O: gwmo-agent: initial-upload-closes-no-bugs/m)
})

t.test('two builds of one tree are byte-identical', async (t) => {
  const again = buildDeb(join(work, 'again'))
  t.ok(readFileSync(again).equals(readFileSync(deb)), 'same bytes')
})

t.test('the packaged launcher runs the packaged bundle with the host node', async (t) => {
  // Overlay the package's /usr/bin and /usr/lib on the host's in a private mount namespace, so the launcher
  // runs exactly as installed (its absolute /usr/lib/gwmo-agent path included) and the host stays untouched.
  const r = inPrivateMounts(
    'mount -t overlay overlay -o "lowerdir=$TREE/usr/lib:/usr/lib" /usr/lib && ' +
    'mount -t overlay overlay -o "lowerdir=$TREE/usr/bin:/usr/bin" /usr/bin && ' +
    'cd / && exec /usr/bin/gwmo-agent --version',
    { ...process.env, TREE: tree })
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stdout.trim(), upstreamVersion)
})

t.test('the packaged launcher runs gwmo-agent ddf from its own packaged file, with the packaged objects.d', async (t) => {
  const config = join(work, 'ddf-config.json')
  writeFileSync(config, JSON.stringify({
    deviceId: 'mac:01-ab-34-ef-69-0c', broker: { url: 'mqtt://127.0.0.1:1' }, stateDir: join(work, 'ddf-state'),
    factoryBootstrap: join(root, 'test/fixtures/agent/factory-bootstrap.xml'), objectsDir: join(tree, 'etc/gwmo-agent/objects.d'),
  }))
  const r = inPrivateMounts(
    'mount -t overlay overlay -o "lowerdir=$TREE/usr/lib:/usr/lib" /usr/lib && ' +
    'mount -t overlay overlay -o "lowerdir=$TREE/usr/bin:/usr/bin" /usr/bin && ' +
    'cd / && exec /usr/bin/gwmo-agent ddf --config "$CONFIG"',
    { ...process.env, TREE: tree, CONFIG: config })
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /<MgmtTree><VerDTD>1\.2<\/VerDTD>/)
  t.match(r.stdout, /<NodeName>DevInfo<\/NodeName>/)
})

t.test('the packaged unit verifies against the packaged launcher', async (t) => {
  const sysroot = join(work, 'sysroot')
  cpSync(tree, sysroot, { recursive: true })
  cpSync('/usr/lib/systemd/system', join(sysroot, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true })
  const r = run('systemd-analyze', ['verify', `--root=${sysroot}`, 'gwmo-agent.service'])
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stderr.trim(), '')
})

t.test('the shipped example and the emulated device\'s config are accepted by the agent\'s parser', async (t) => {
  const example = JSON.parse(readFileSync(join(root, 'build/example-config.json'), 'utf8')) as Record<string, unknown>
  t.equal(example.stateDir, '/var/lib/gwmo-agent', 'the unit\'s StateDirectory')
  t.equal(example.objectsDir, '/etc/gwmo-agent/objects.d', 'the drop-in directory the package creates')
  const parsed = parseConfig(example, {})
  t.equal(parsed.ok, true, parsed.ok ? 'accepted' : parsed.error)
  const qemuDir = join(root, 'targets/qemu')
  const device = JSON.parse(readFileSync(join(qemuDir, 'device-config.json'), 'utf8')) as unknown
  const parsedDevice = parseConfig(device, {}, { baseDir: qemuDir })
  t.equal(parsedDevice.ok, true, parsedDevice.ok ? 'accepted' : parsedDevice.error)
  if (!parsedDevice.ok) return
  // The emulated device's first start must get past its factory bootstrap (one DM Server account).
  const read = await readFactoryDocument(parsedDevice.config.factoryBootstrap)
  t.equal(read.ok, true, read.ok ? 'readable' : read.error)
  if (!read.ok) return
  const built = buildFactoryTree(parsedDevice.config, read.document)
  t.notOk('error' in built, 'error' in built ? built.error : 'applies')
  if (!('error' in built)) t.same(built.serverIds, ['qemu-dm-server'])
})

t.test('the Raspberry Pi drop-in example is accepted by the agent\'s parser', async (t) => {
  const file = join(tree, 'usr/share/doc/gwmo-agent/examples/objects.d/raspberry-pi.json.example')
  const parsed = parseObjects(JSON.parse(readFileSync(file, 'utf8')), file)
  t.equal(parsed.ok, true, parsed.ok ? 'accepted' : parsed.error)
  if (!parsed.ok) return
  t.same(parsed.objects.map((o) => o.path), ['./Vendor/Pi/CpuTemp', './Vendor/Pi/Uptime', './Vendor/Pi/DiskFree',
    './Vendor/Pi/Config/ReportEvery', './Vendor/Pi/Ops/RestartApp', './Vendor/Pi/Ops/Reboot'])
  t.same(parsed.objects.filter((o) => o.exec).map((o) => [o.async, o.rebootsDevice]), [[true, false], [true, true]])
})

// Maintainer scripts run against stub tools that log their calls; /run and /var/lib are private tmpfs.
const stubs = join(work, 'stubs')
mkdirSync(stubs)
for (const tool of ['deb-systemd-helper', 'deb-systemd-invoke', 'systemctl', 'systemd-sysusers', 'groupadd', 'getent']) {
  writeFileSync(join(stubs, tool), `#!/bin/sh
echo "${tool} $*" >> "$STUB_LOG"
case "${tool} $*" in
  "getent group "*) exit "\${GROUP_STATUS:-0}" ;;
  "deb-systemd-helper --quiet was-enabled "*) exit "\${WAS_ENABLED:-0}" ;;
esac
exit 0
`)
  chmodSync(join(stubs, tool), 0o755)
}

interface ScriptRun { calls: string[]; status: number | null; stateLeft: boolean }

function maintainerScript(name: string, args: string[], opts: {
  systemd: boolean; groupExists?: boolean; wasEnabled?: boolean; without?: string[]
}): ScriptRun {
  const log = join(work, `log-${Math.random().toString(36).slice(2)}`)
  writeFileSync(log, '')
  const bin = mkdtempSync(join(work, 'bin-'))
  for (const tool of ['deb-systemd-helper', 'deb-systemd-invoke', 'systemctl', 'systemd-sysusers', 'groupadd', 'getent']) {
    if (!opts.without?.includes(tool)) cpSync(join(stubs, tool), join(bin, tool))
  }
  symlinkSync('/bin/rm', join(bin, 'rm'))
  const script = [
    'mount -t tmpfs tmpfs /run', 'mount -t tmpfs tmpfs /var/lib',
    opts.systemd ? 'mkdir -p /run/systemd/system' : ':',
    'mkdir -p /var/lib/private/gwmo-agent && echo tree > /var/lib/private/gwmo-agent/tree.bin',
    `PATH="$BIN" /bin/sh "$SCRIPT" ${args.map((a) => `'${a}'`).join(' ')}`,
    'status=$?',
    'test -e /var/lib/private/gwmo-agent/tree.bin && echo STATE-LEFT',
    'exit $status',
  ].join('\n')
  const r = inPrivateMounts(script, {
    ...process.env, BIN: bin, SCRIPT: join(control, name), STUB_LOG: log,
    GROUP_STATUS: opts.groupExists ? '0' : '2', WAS_ENABLED: opts.wasEnabled === false ? '1' : '0',
  })
  const calls = readFileSync(log, 'utf8').trim().split('\n').filter((l) => l !== '')
  return { calls, status: r.status, stateLeft: r.stdout.includes('STATE-LEFT') }
}

t.test('postinst in a chroot creates the secrets group and leaves systemd alone', async (t) => {
  const viaSysusers = maintainerScript('postinst', ['configure', ''], { systemd: false })
  t.equal(viaSysusers.status, 0)
  t.same(viaSysusers.calls, ['getent group gwmo-agent-conf', 'systemd-sysusers gwmo-agent.conf'])
  const viaGroupadd = maintainerScript('postinst', ['configure', ''], { systemd: false, without: ['systemd-sysusers'] })
  t.same(viaGroupadd.calls, ['getent group gwmo-agent-conf', 'groupadd --system gwmo-agent-conf'])
  const groupThere = maintainerScript('postinst', ['configure', ''], { systemd: false, groupExists: true })
  t.same(groupThere.calls, ['getent group gwmo-agent-conf'])
})

t.test('postinst under systemd enables and starts a new install, restarts an upgrade', async (t) => {
  const install = maintainerScript('postinst', ['configure', ''], { systemd: true, groupExists: true })
  t.equal(install.status, 0)
  t.same(install.calls, [
    'getent group gwmo-agent-conf',
    'systemctl --system daemon-reload',
    'deb-systemd-helper --quiet was-enabled gwmo-agent.service',
    'deb-systemd-helper enable gwmo-agent.service',
    'deb-systemd-helper --quiet was-enabled gwmo-agent-installer.path',
    'deb-systemd-helper enable gwmo-agent-installer.path',
    'deb-systemd-invoke start gwmo-agent-installer.path',
    'deb-systemd-invoke start gwmo-agent.service',
  ])
  // An administrator's `systemctl disable` survives an upgrade.
  const upgrade = maintainerScript('postinst', ['configure', '0.0.9-1'], { systemd: true, groupExists: true, wasEnabled: false })
  t.same(upgrade.calls, [
    'getent group gwmo-agent-conf',
    'systemctl --system daemon-reload',
    'deb-systemd-helper --quiet was-enabled gwmo-agent.service',
    'deb-systemd-helper update-state gwmo-agent.service',
    'deb-systemd-helper --quiet was-enabled gwmo-agent-installer.path',
    'deb-systemd-helper update-state gwmo-agent-installer.path',
    'deb-systemd-invoke start gwmo-agent-installer.path',
    'deb-systemd-invoke try-restart gwmo-agent.service',
  ])
  t.notOk(upgrade.calls.some((c) => c.includes('gwmo-agent-installer.service')), 'the installer service (which may be running this dpkg) is left alone')
})

t.test('prerm stops the agent on removal under systemd only', async (t) => {
  t.same(maintainerScript('prerm', ['remove'], { systemd: true }).calls, ['deb-systemd-invoke stop gwmo-agent.service gwmo-agent-installer.path'])
  t.same(maintainerScript('prerm', ['remove'], { systemd: false }).calls, [])
  t.same(maintainerScript('prerm', ['upgrade', '0.2.0-1'], { systemd: true }).calls, [])
})

t.test('postrm keeps the state on remove and deletes it on purge', async (t) => {
  const remove = maintainerScript('postrm', ['remove'], { systemd: false })
  t.equal(remove.status, 0)
  t.same(remove.calls, [])
  t.ok(remove.stateLeft, 'remove keeps the persisted tree')
  const purge = maintainerScript('postrm', ['purge'], { systemd: true })
  t.equal(purge.status, 0)
  t.same(purge.calls, ['systemctl --system daemon-reload', 'deb-systemd-helper purge gwmo-agent.service gwmo-agent-installer.path'])
  t.notOk(purge.stateLeft, 'purge deletes the persisted tree')
})
