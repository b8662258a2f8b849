// Builds dist/gwmo-agent_<version>_all.deb from the bundle (npm run build first): a staging tree laid out as
// on the device, control files, then `dpkg-deb --root-owner-group --build`. The build is reproducible: every
// timestamp is SOURCE_DATE_EPOCH (default: the last commit's time), so two builds of one tree are identical.
//   node build/package-deb.mjs [--out DIR] [--bundle FILE] [--version V]     prints the .deb's path
// --version gives the upstream version (package.json's otherwise): the FUMO self-update test packages the same
// bundle as a newer release.
import { build } from 'esbuild'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { gzipSync } from 'node:zlib'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const systemdDir = join(root, 'targets', 'systemd')
const PACKAGE = 'gwmo-agent'
const DEFAULT_MAINTAINER = 'gwmo-agent maintainers <maintainers@gwmo-agent.example>'

const { values: opts } = parseArgs({
  options: {
    out: { type: 'string', default: join(root, 'dist') },
    bundle: { type: 'string', default: join(root, 'dist', 'gwmo-agent.js') },
    version: { type: 'string' },
  },
})

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
// A Debian revision makes this a non-native package, whose changelog is changelog.Debian.gz (Policy 12.7).
const version = `${opts.version ?? pkg.version}-1`
const maintainer = process.env.GWMO_DEB_MAINTAINER ?? DEFAULT_MAINTAINER
const epoch = sourceDateEpoch()

if (!existsSync(opts.bundle)) fail(`${opts.bundle} is missing: run "npm run build" first`)
const ddfBundle = join(dirname(opts.bundle), 'gwmo-agent-ddf.js')
if (!existsSync(ddfBundle)) fail(`${ddfBundle} is missing: run "npm run build" first`)

const bundled = await bundledPackages()
const stage = mkdtempSync(join(tmpdir(), 'gwmo-deb-'))
chmodSync(stage, 0o755)
try {
  const out = buildPackage(stage, bundled)
  console.log(out)
} finally {
  rmSync(stage, { recursive: true, force: true })
}

function buildPackage(stage, bundled) {
  // The bundle runs as `node FILE` from the launcher, so its shebang line is dropped: an executable-looking
  // file in /usr/lib that is not executable is what lintian would flag.
  const bundle = readFileSync(opts.bundle, 'utf8').replace(/^#![^\n]*\n/, '')
  put(stage, `usr/lib/${PACKAGE}/gwmo-agent.js`, bundle)
  // `gwmo-agent ddf`, loaded from beside the agent's bundle (src/main.ts).
  put(stage, `usr/lib/${PACKAGE}/gwmo-agent-ddf.js`, read(ddfBundle))
  // The bundle is CommonJS; this keeps it so even if a parent directory's package.json said "module".
  put(stage, `usr/lib/${PACKAGE}/package.json`, JSON.stringify({ type: 'commonjs' }) + '\n')
  put(stage, `usr/bin/${PACKAGE}`, '#!/bin/sh\nexec node /usr/lib/gwmo-agent/gwmo-agent.js "$@"\n', 0o755)
  put(stage, `lib/systemd/system/${PACKAGE}.service`, read(systemdDir, 'gwmo-agent.service'))
  // FUMO (binding.md §9): the default update module, and the root-side installer of the spool with its units.
  for (const file of ['fumo-deb-module', 'gwmo-agent-installer']) put(stage, `usr/lib/${PACKAGE}/${file}`, read(systemdDir, file), 0o755)
  for (const unit of ['gwmo-agent-installer.path', 'gwmo-agent-installer.service']) put(stage, `lib/systemd/system/${unit}`, read(systemdDir, unit))
  put(stage, `usr/lib/sysusers.d/${PACKAGE}.conf`, read(systemdDir, 'gwmo-agent.sysusers'))
  // An example only: a live config.json would start a half-configured agent on install.
  put(stage, `etc/${PACKAGE}/config.example.json`, read(root, 'build', 'example-config.json'))
  put(stage, `usr/share/doc/${PACKAGE}/README.Debian`, read(systemdDir, 'README.Debian'))
  // The least-privilege broker ACL (binding.md §6): for the broker's host, not the device; see README.Debian.
  for (const file of ['make-acl.mjs', 'world.example.json', 'gwmo-agent.conf']) {
    put(stage, `usr/share/doc/${PACKAGE}/examples/mosquitto/${file}`, read(root, 'targets', 'mosquitto', file))
  }
  // binding.md §8: the drop-in directory the example config's objectsDir names (empty: no objects until the
  // administrator adds some), and the examples of README "Managing your device".
  mkdirSync(join(stage, `etc/${PACKAGE}/objects.d`), { recursive: true, mode: 0o755 })
  put(stage, `usr/share/doc/${PACKAGE}/examples/objects.d/raspberry-pi.json.example`, read(systemdDir, 'objects.d', 'raspberry-pi.json.example'))
  for (const file of readdirSync(join(systemdDir, 'examples')).sort()) {
    put(stage, `usr/share/doc/${PACKAGE}/examples/systemd/${file}`, read(systemdDir, 'examples', file))
  }
  put(stage, `usr/share/man/man1/${PACKAGE}.1.gz`, gzipSync(read(systemdDir, 'gwmo-agent.1'), { level: 9 }))
  put(stage, `usr/share/lintian/overrides/${PACKAGE}`, read(systemdDir, 'lintian-overrides'))
  put(stage, `usr/share/doc/${PACKAGE}/copyright`, copyrightFile(bundled))
  put(stage, `usr/share/doc/${PACKAGE}/changelog.Debian.gz`, gzipSync(changelog(), { level: 9 }))

  const installedKiB = installedSize(stage)
  for (const script of ['postinst', 'prerm', 'postrm']) {
    put(stage, `DEBIAN/${script}`, read(systemdDir, 'deb', script), 0o755)
  }
  put(stage, 'DEBIAN/conffiles', `/etc/${PACKAGE}/config.example.json\n`)
  put(stage, 'DEBIAN/md5sums', md5sums(stage))
  put(stage, 'DEBIAN/control', control(installedKiB))

  clampTimes(stage)
  mkdirSync(opts.out, { recursive: true })
  const deb = join(opts.out, `${PACKAGE}_${version}_all.deb`)
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', stage, deb], {
    env: { ...process.env, SOURCE_DATE_EPOCH: String(epoch) },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  return deb
}

function control(installedKiB) {
  return [
    `Package: ${PACKAGE}`,
    `Version: ${version}`,
    'Architecture: all',
    `Maintainer: ${maintainer}`,
    `Installed-Size: ${installedKiB}`,
    'Depends: nodejs (>= 18)',
    'Section: net',
    'Priority: optional',
    'Description: OMA DM Gateway Management (GwMO) End Device agent over MQTT',
    ' gwmo-agent lets DM Servers and DM Gateways manage a Linux device as an',
    ' OMA DM 1.2 client. It speaks SyncML DM 1.2 over MQTT 5, keeps a',
    ' persistent, transactional management tree, accepts factory and local',
    ' bootstrap messages, and implements the GwMO 1.0 End Device role: it',
    ' answers a DM Gateway\'s Device Detection Alert with the list of DM Servers',
    ' it is bootstrapped to, tells those servers about its gateway when allowed',
    ' to, and reports changes of its network location.',
    ' .',
    ' The package runs the agent as a sandboxed systemd service once',
    ' /etc/gwmo-agent/config.json exists.',
    '',
  ].join('\n')
}

function changelog() {
  const date = new Date(epoch * 1000).toUTCString().replace(/GMT$/, '+0000')
  return [
    `${PACKAGE} (${version}) unstable; urgency=medium`,
    '',
    `  * Release ${opts.version ?? pkg.version}.`,
    '',
    ` -- ${maintainer}  ${date}`,
    '',
  ].join('\n')
}

/** npm packages that esbuild compiles into the bundle, with their licenses, for the copyright file. */
async function bundledPackages() {
  const result = await build({
    entryPoints: [join(root, 'src', 'main.ts')], bundle: true, platform: 'node', format: 'cjs',
    target: 'node18', write: false, metafile: true, logLevel: 'silent',
  })
  const names = new Set()
  for (const input of Object.keys(result.metafile.inputs)) {
    const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input)
    if (m) names.add(m[1])
  }
  return [...names].sort().map((name) => {
    const dir = join(root, 'node_modules', name)
    const meta = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
    const licenseFile = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f))
    const text = licenseFile ? readFileSync(join(dir, licenseFile), 'utf8') : ''
    return { name, version: meta.version, license: meta.license ?? 'unknown', holder: copyrightHolder(text, meta), text }
  })
}

function copyrightHolder(licenseText, meta) {
  const line = licenseText.split('\n').find((l) => /^\s*copyright\s+(\(c\)|©)?\s*\d/i.test(l))
  if (line) return line.replace(/^\s*copyright\s*(\(c\)|©)?\s*/i, '').trim()
  const author = typeof meta.author === 'string' ? meta.author : meta.author?.name
  return author ?? `the ${meta.name} authors`
}

function copyrightFile(bundled) {
  const stanzas = [
    'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/',
    `Upstream-Name: ${PACKAGE}`,
    '',
    'Files: *',
    `Copyright: ${new Date(epoch * 1000).getUTCFullYear()} the gwmo-agent authors`,
    'License: Apache-2.0',
    ' On Debian systems the full text of the Apache License, Version 2.0 is in',
    ' /usr/share/common-licenses/Apache-2.0.',
  ]
  // The bundle also carries these npm packages (compiled in by esbuild); their notices follow.
  for (const p of bundled) {
    stanzas.push('', `Files: usr/lib/${PACKAGE}/gwmo-agent.js (${p.name} ${p.version})`, `Copyright: ${p.holder}`,
      `License: ${p.license}`)
  }
  // One License paragraph per short name, its text taken from the first package that carries it.
  const seen = new Set(['Apache-2.0'])
  for (const p of bundled) {
    if (seen.has(p.license)) continue
    seen.add(p.license)
    const body = p.text.split('\n').filter((l) => !/^\s*copyright\b/i.test(l)).join('\n').trim()
    const lines = body ? body.split('\n') : [`The ${p.license} license; see the ${p.name} package.`]
    stanzas.push('', `License: ${p.license}`, ...lines.map((l) => (l.trim() === '' ? ' .' : ` ${l.trimEnd()}`)))
  }
  return stanzas.join('\n') + '\n'
}

function installedSize(dir) {
  let kib = 0
  for (const file of walk(dir)) kib += Math.ceil(statSync(file).size / 1024)
  return Math.max(kib, 1)
}

function md5sums(stage) {
  return walk(stage)
    .filter((f) => !relative(stage, f).startsWith('DEBIAN') && !relative(stage, f).startsWith('etc/'))
    .map((f) => `${createHash('md5').update(readFileSync(f)).digest('hex')}  ${relative(stage, f)}`)
    .sort()
    .join('\n') + '\n'
}

function walk(dir) {
  const files = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name)
    if (entry.isDirectory()) files.push(...walk(p))
    else files.push(p)
  }
  return files
}

function clampTimes(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name)
    if (entry.isDirectory()) clampTimes(p)
    utimesSync(p, epoch, epoch)
  }
  utimesSync(dir, epoch, epoch)
}

function put(stage, path, content, mode = 0o644) {
  const file = join(stage, path)
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 })
  writeFileSync(file, content)
  chmodSync(file, mode)
}

function read(...parts) {
  return readFileSync(join(...parts))
}

function sourceDateEpoch() {
  if (process.env.SOURCE_DATE_EPOCH) return Number(process.env.SOURCE_DATE_EPOCH)
  try {
    return Number(execFileSync('git', ['-C', root, 'log', '-1', '--format=%ct'], { encoding: 'utf8' }).trim())
  } catch {
    return Math.floor(Date.now() / 1000)
  }
}

function fail(message) {
  console.error(`package-deb: ${message}`)
  process.exit(1)
}
