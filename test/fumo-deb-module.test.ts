/**
 * The default update module, targets/systemd/fumo-deb-module (binding.md §9), on small packages dpkg-deb builds
 * here: `check` takes a .deb for this architecture or `all` (0), refuses one for another (3, device mismatch) and
 * anything that is no .deb (1); `verify` says whether the installed version is the package's; an unknown verb
 * exits 0 and prints nothing. (`install` is `dpkg -i`, run for real by targets/systemd/boot-test.sh.)
 */
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const MODULE = join(dirname(fileURLToPath(import.meta.url)), '..', 'targets', 'systemd', 'fumo-deb-module')
const dir = mkdtempSync(join(tmpdir(), 'gwmo-deb-module-'))

function deb(name: string, version: string, arch: string): string {
  const root = join(dir, `${name}-${version}-${arch}`)
  mkdirSync(join(root, 'DEBIAN'), { recursive: true })
  writeFileSync(join(root, 'DEBIAN', 'control'), [
    `Package: ${name}`, `Version: ${version}`, `Architecture: ${arch}`, 'Maintainer: test <test@example.com>',
    'Description: a test package', '',
  ].join('\n'))
  const out = `${root}.deb`
  execFileSync('dpkg-deb', ['--root-owner-group', '--build', root, out], { stdio: 'ignore' })
  return out
}

const run = (verb: string, pkg: string) => {
  const r = spawnSync(MODULE, [verb, pkg], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } })
  return { code: r.status, stdout: r.stdout }
}

const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim()
const other = arch === 'arm64' ? 'armhf' : 'arm64'

t.test('check: this architecture or all 0, another 3, no .deb 1', async (t) => {
  t.equal(run('check', deb('gwmo-test-pkg', '1.0', 'all')).code, 0)
  t.equal(run('check', deb('gwmo-test-pkg', '1.0', arch)).code, 0)
  t.equal(run('check', deb('gwmo-test-pkg', '1.0', other)).code, 3, `a package for ${other}: device mismatch`)
  const junk = join(dir, 'junk.deb')
  writeFileSync(junk, 'not a Debian package')
  t.equal(run('check', junk).code, 1, 'not a .deb: not acceptable')
  t.equal(run('check', join(dir, 'missing.deb')).code, 1)
})

t.test('verify: 0 when the installed version is the package\'s, 1 otherwise', async (t) => {
  const installed = execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'coreutils'], { encoding: 'utf8' })
  t.equal(run('verify', deb('coreutils', installed, 'all')).code, 0, 'the version installed')
  t.equal(run('verify', deb('coreutils', `${installed}+newer`, 'all')).code, 1, 'another version')
  t.equal(run('verify', deb('gwmo-test-not-installed', '1.0', 'all')).code, 1, 'a package not installed')
})

t.test('an unknown verb: exit 0, nothing printed', async (t) => {
  t.same(run('rollback', deb('gwmo-test-pkg', '1.0', 'all')), { code: 0, stdout: '' })
  t.same(run('', ''), { code: 0, stdout: '' })
})
