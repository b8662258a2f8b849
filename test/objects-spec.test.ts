/**
 * The integrator's object definitions (binding.md §8): defaults filled in, and every bad definition refused with
 * one line naming where it was defined, the object's path and the key, never its value.
 */
import t from 'tap'
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfigFile } from '../src/config.ts'
import { OBJECT_DEFAULTS, parseObjects } from '../src/objects/spec.ts'

const dir = mkdtempSync(join(tmpdir(), 'gwmo-spec-'))
const prog = join(dir, 'prog')
writeFileSync(prog, '#!/bin/sh\n')
chmodSync(prog, 0o755)
const loose = join(dir, 'loose')
writeFileSync(loose, '#!/bin/sh\n')
chmodSync(loose, 0o775)

t.test('defaults and the examples of binding.md §8', async (t) => {
  const r = parseObjects([
    { path: './Vendor/Sensors/CpuTemp', format: 'int', acl: 'Get=*', read: { file: '/sys/class/thermal/thermal_zone0/temp' } },
    { path: './Vendor/Config/ReportEvery', format: 'int', acl: 'Get=*&Replace=srv', value: '60', write: { command: [prog] } },
    { path: './Vendor/Ops/Restart', acl: 'Exec=srv', timeoutSeconds: 60, exec: { command: [prog, '--graceful'] } },
    { path: './Vendor/Ops', format: 'node', acl: 'Get=*' },
  ], 'objects')
  t.ok(r.ok)
  if (!r.ok) return
  t.same(r.objects[0], { path: './Vendor/Sensors/CpuTemp', format: 'int', acl: 'Get=*', read: { file: '/sys/class/thermal/thermal_zone0/temp' },
    async: true, alertType: OBJECT_DEFAULTS.alertType, rebootsDevice: false, timeoutSeconds: 10, maxBytes: 4096 })
  t.equal(r.objects[2]!.format, 'chr')
  t.same(r.objects[2]!.exec, { command: [prog, '--graceful'] })
  t.equal(r.objects[2]!.timeoutSeconds, 60)
  t.equal(r.objects[1]!.value, '60')
})

const BAD: [string, unknown, RegExp][] = [
  ['not an object', 'x', /^objects\[0\]: path: must be a URI/],
  ['no path', { value: 'x' }, /^objects\[0\]: path: must be a URI starting with/],
  ['bad path', { path: './a//b', value: 'x' }, /^objects\[0\]: path: "\.\/a\/\/b" is not a valid node URI/],
  ['reserved DMAcc', { path: './DMAcc/x', value: 'x' }, /path: \.\/DMAcc\/x is under \.\/DMAcc/],
  ['reserved DevInfo', { path: './DevInfo', format: 'node' }, /is under \.\/DevInfo/],
  ['reserved Inbox', { path: './Inbox/a', value: 'x' }, /is under \.\/Inbox/],
  ['reserved FUMO', { path: './FUMO/x/y', value: 'x' }, /is under \.\/FUMO/],
  ['unknown key', { path: './V/a', value: 'x', vaule: 'y' }, /^objects\[0\] \.\/V\/a: vaule: unknown key$/],
  ['bad format', { path: './V/a', format: 'date', value: 'x' }, /\.\/V\/a: format: must be one of/],
  ['bad acl', { path: './V/a', value: 'x', acl: 'Fly=*' }, /\.\/V\/a: acl: is not a DM ACL/],
  ['value not fitting', { path: './V/a', format: 'int', value: 'sixty' }, /\.\/V\/a: value: does not fit format int/],
  ['value and read', { path: './V/a', value: '1', read: { file: '/x' } }, /\.\/V\/a: value: only one of value and read/],
  ['value and write.file', { path: './V/a', value: '1', write: { file: '/x' } }, /\.\/V\/a: value: not with write\.file/],
  ['no source', { path: './V/a' }, /\.\/V\/a: value: a leaf needs value, read, write or exec/],
  ['relative file', { path: './V/a', read: { file: 'x' } }, /\.\/V\/a: read\.file: must be an absolute path/],
  ['read with both', { path: './V/a', read: { file: '/x', command: [prog] } }, /\.\/V\/a: read: must be/],
  ['empty command', { path: './V/a', write: { command: [] } }, /\.\/V\/a: write\.command: must be a non-empty list/],
  ['loose program', { path: './V/a', exec: { command: [loose] } }, /\.\/V\/a: exec\.command\[0\]: .*loose is writable by group or others$/],
  ['relative program', { path: './V/a', read: { command: ['ls'] } }, /\.\/V\/a: read\.command\[0\]: ls is not an absolute path/],
  ['async without exec', { path: './V/a', value: 'x', async: false }, /\.\/V\/a: async: only with exec/],
  ['sync reboot', { path: './V/a', exec: { command: [prog] }, async: false, rebootsDevice: true }, /rebootsDevice: only with an asynchronous exec/],
  ['timeout', { path: './V/a', exec: { command: [prog] }, timeoutSeconds: 0 }, /\.\/V\/a: timeoutSeconds: must be an integer from 1/],
  ['maxBytes', { path: './V/a', value: 'x', maxBytes: 'big' }, /\.\/V\/a: maxBytes: must be an integer/],
  ['node with value', { path: './V', format: 'node', value: 'x' }, /\.\/V: value: an interior node/],
]

t.test('each bad definition is refused naming the object and the key', async (t) => {
  for (const [name, raw, expected] of BAD) {
    const r = parseObjects([raw], 'objects')
    t.equal(r.ok, false, name)
    if (!r.ok) {
      t.match(r.error, expected, name)
      t.notMatch(r.error, /\n/, `${name}: one line`)
    }
  }
})

t.test('a value is never echoed', async (t) => {
  const r = parseObjects([{ path: './V/a', format: 'int', value: 's3cr3t-value' }], 'objects')
  t.equal(r.ok, false)
  if (!r.ok) t.notMatch(r.error, /s3cr3t/)
})

t.test('a path defined twice is refused, in either notation', async (t) => {
  const r = parseObjects([{ path: './V/a', value: '1' }, { path: './V/a', value: '2' }], 'objects')
  t.same(r, { ok: false, error: 'objects[1] ./V/a: path: defined twice' })
})

t.test('objectsDir: one object or a list a file, after the configuration\'s; a bad one names its file', async (t) => {
  const d = join(dir, 'conf1')
  const drop = join(d, 'objects.d')
  mkdirSync(drop, { recursive: true })
  const config = {
    deviceId: 'dev-1', broker: { url: 'mqtt://localhost' }, stateDir: './state', factoryBootstrap: './f.xml',
    objects: [{ path: './Vendor/A', value: 'a' }], objectsDir: 'objects.d',
  }
  writeFileSync(join(d, 'config.json'), JSON.stringify(config))
  writeFileSync(join(drop, 'b.json'), JSON.stringify({ path: './Vendor/B', value: 'b' }))
  writeFileSync(join(drop, 'c.json'), JSON.stringify([{ path: './Vendor/C', value: 'c' }, { path: './Vendor/D', value: 'd' }]))
  writeFileSync(join(drop, 'ignored.txt'), 'not json')
  const ok = await loadConfigFile(join(d, 'config.json'), {})
  t.ok(ok.ok)
  if (ok.ok) t.same(ok.config.objects.map((o) => o.path), ['./Vendor/A', './Vendor/B', './Vendor/C', './Vendor/D'])

  writeFileSync(join(drop, 'e.json'), JSON.stringify({ path: './Vendor/A', value: 'again' }))
  t.same(await loadConfigFile(join(d, 'config.json'), {}), { ok: false, error: `config: ${join(drop, 'e.json')} ./Vendor/A: path: defined twice` })
  writeFileSync(join(drop, 'e.json'), '{ nope')
  t.same(await loadConfigFile(join(d, 'config.json'), {}), { ok: false, error: `config: ${join(drop, 'e.json')}: invalid JSON` })

  writeFileSync(join(d, 'config.json'), JSON.stringify({ ...config, objects: [{ path: './Vendor/A', format: 'int', value: 'a' }] }))
  t.same(await loadConfigFile(join(d, 'config.json'), {}), { ok: false, error: 'config: objects[0] ./Vendor/A: value: does not fit format int within maxBytes' })
  writeFileSync(join(d, 'config.json'), JSON.stringify({ ...config, objects: undefined, objectsDir: 'missing' }))
  t.same(await loadConfigFile(join(d, 'config.json'), {}), { ok: false, error: `config: objectsDir: cannot read ${join(d, 'missing')} (ENOENT)` })
})
