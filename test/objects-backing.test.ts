/**
 * The backings of the integrator's objects (binding.md §8) behind the external-node callbacks: files and programs
 * read and written, and Execs run synchronously or reported once in a Generic Alert, across a restart too.
 */
import t from 'tap'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SyncMLStatusError } from '../src/errors.ts'
import { createLogger } from '../src/log.ts'
import { Execs } from '../src/objects/exec.ts'
import { objectNode } from '../src/objects/index.ts'
import { parseObjects, type ObjectSpec } from '../src/objects/spec.ts'
import { AgentState, type GenericAlertSpec } from '../src/session/agent-state.ts'
import { MemoryStore } from '../src/store/index.ts'
import type { ExternalCall } from '../src/tree/external.ts'
import { copyOf } from './helpers/stores.ts'

const dir = mkdtempSync(join(tmpdir(), 'gwmo-backing-'))
const lines: string[] = []
const logger = createLogger({ level: 'debug', write: (line) => lines.push(line) })

function program(name: string, body: string): string {
  const file = join(dir, name)
  writeFileSync(file, `#!/bin/sh\n${body}\n`)
  chmodSync(file, 0o755)
  return file
}

function spec(raw: Record<string, unknown>): ObjectSpec {
  const r = parseObjects([{ path: './Vendor/X', ...raw }], 'objects')
  if (!r.ok) throw new Error(r.error)
  return r.objects[0]!
}

const call = (extra: Partial<ExternalCall> = {}): ExternalCall => ({ serverId: 'srv', uri: './Vendor/X', signal: new AbortController().signal, ...extra })

interface Queued { server: string; alert: GenericAlertSpec }

async function world(store = new MemoryStore(), root?: string) {
  const opened = await AgentState.open(store, (n) => new Uint8Array(n).fill(7))
  if (!opened.ok) throw new Error(opened.error)
  const state = opened.state
  const queued: Queued[] = []
  const opens: string[] = []
  const sessions = {
    queueGenericAlert: async (server: string, alert: GenericAlertSpec) => {
      queued.push({ server, alert })
      state.enqueueAlert(server, alert, 0)
      await state.save()
      return 'id'
    },
    openSession: async (server: string) => {
      opens.push(server)
    },
  }
  const stopping = new AbortController()
  const execs = new Execs({ sessions, state, logger, stopped: stopping.signal, ...(root !== undefined && { root }) })
  return { state, queued, opens, execs, stopping, store }
}

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 20))
}

async function status(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p
    return undefined
  } catch (error) {
    return error instanceof SyncMLStatusError ? error.status : -1
  }
}

t.test('read.file: one trailing newline trimmed, 413 past maxBytes, 500 for a missing file, logged once', async (t) => {
  const { execs } = await world()
  const file = join(dir, 'temp')
  writeFileSync(file, '42000\n\n')
  const node = objectNode(spec({ format: 'int', read: { file }, maxBytes: 8 }), execs)
  t.equal(await node.get!(call()), '42000\n')
  writeFileSync(file, '123456789\n')
  t.equal(await status(node.get!(call())), 413)
  writeFileSync(file, '12345678\n')
  t.equal(await node.get!(call()), '12345678')
  const raw = objectNode(spec({ format: 'bin', read: { file }, maxBytes: 9 }), execs)
  t.same(await raw.get!(call()), new Uint8Array(Buffer.from('12345678\n')), 'bin: the bytes as they are')
  writeFileSync(file, '123456789\n')
  t.equal(await status(raw.get!(call())), 413, 'bin: no newline trimmed, so 10 bytes are over 9')
  const missing = objectNode(spec({ read: { file: join(dir, 'nothing') } }), execs)
  await t.rejects(missing.get!(call()), { status: 500, message: /^cannot read .*nothing \(ENOENT\)$/ }, 'the reason the session logs')
})

t.test('read.command: stdout, with the environment of §8; a failing one is 500', async (t) => {
  const { execs } = await world()
  const p = program('env.sh', 'echo "$GWMO_NODE|$GWMO_SERVER_ID|$GWMO_CORRELATOR"')
  t.equal(await objectNode(spec({ read: { command: [p] } }), execs).get!(call()), './Vendor/X|srv|')
  const bad = program('bad.sh', 'echo no >&2; exit 4')
  t.equal(await status(objectNode(spec({ read: { command: [bad] } }), execs).get!(call())), 500)
  const long = program('long.sh', 'head -c 5000 /dev/zero')
  t.equal(await status(objectNode(spec({ read: { command: [long] } }), execs).get!(call())), 413)
})

t.test('a program file made changeable by others after the start is not run: 500', async (t) => {
  const { execs } = await world()
  const marker = join(dir, 'loosened-ran')
  const p = program('loosened.sh', `touch ${marker}; echo x`)
  const node = objectNode(spec({ read: { command: [p] } }), execs)
  const execSpec = spec({ exec: { command: [p] }, async: false })
  chmodSync(p, 0o777)
  await t.rejects(node.get!(call()), { status: 500, message: /loosened\.sh is writable by group or others$/ })
  t.notOk(existsSync(marker), 'it never ran')
  t.equal(await execs.exec(execSpec, undefined, call()), 500)
  t.notOk(existsSync(marker))
})

t.test('write.file: atomic beside the file, its mode kept, no temporary file left; read back with no read', async (t) => {
  const { execs } = await world()
  const sub = join(dir, 'conf')
  mkdirSync(sub)
  const file = join(sub, 'interval')
  writeFileSync(file, '60\n')
  chmodSync(file, 0o640)
  const before = statSync(file).ino
  const node = objectNode(spec({ format: 'int', acl: 'Get=*&Replace=srv', write: { file } }), execs)
  t.equal(await node.get!(call()), '60')
  await node.replace!('90', call())
  t.equal(readFileSync(file, 'utf8'), '90')
  t.not(statSync(file).ino, before, 'replaced by a rename')
  t.equal(statSync(file).mode & 0o777, 0o640)
  t.same(readdirSync(sub), ['interval'])
  t.equal(await node.get!(call()), '90')
  const nowhere = objectNode(spec({ write: { file: join(dir, 'no', 'such') } }), execs)
  t.equal(await status(nowhere.replace!('1', call())), 500)
})

t.test('write.command: the value on stdin, exit 0 done, else 500', async (t) => {
  const { execs } = await world()
  const out = join(dir, 'written')
  const p = program('set.sh', `cat > ${out}; [ "$(cat ${out})" != fail ]`)
  const node = objectNode(spec({ value: '1', write: { command: [p] } }), execs)
  t.equal(node.get, undefined, 'the tree keeps the last value')
  await node.replace!('hello', call())
  t.equal(readFileSync(out, 'utf8'), 'hello')
  t.equal(await status(node.replace!('fail', call())), 500)
})

t.test('sync exec: 200, 500, 408; busy 417', async (t) => {
  const { execs, queued } = await world()
  const ok = program('ok.sh', 'cat >/dev/null; exit 0')
  const ko = program('ko.sh', 'exit 1')
  const slow = program('slow.sh', 'sleep 30')
  t.equal(await execs.exec(spec({ exec: { command: [ok] }, async: false }), 'data', call()), 200)
  lines.length = 0
  t.equal(await execs.exec(spec({ exec: { command: [ko] }, async: false }), undefined, call()), 500)
  t.match(lines.map((l) => JSON.parse(l)), [{ level: 'warn', msg: 'exec failed', uri: './Vendor/X', reason: 'exit 1' }], 'one line')
  const s = spec({ exec: { command: [slow] }, async: false, timeoutSeconds: 1 })
  const first = execs.exec(s, undefined, call())
  t.equal(await execs.exec(s, undefined, call()), 417)
  t.equal(await first, 408)
  t.same(queued, [])
})

t.test('async exec: 202, then one alert with the correlator, type, format int and status', async (t) => {
  const { execs, queued, opens, state } = await world()
  const gate = join(dir, 'gate')
  const p = program('async.sh', `while [ ! -e ${gate} ]; do sleep 0.05; done; exit $(cat ${gate})`)
  const s = spec({ exec: { command: [p] }, alertType: 'urn:x:done' })
  t.equal(await execs.exec(s, undefined, call({ correlator: 'c-1' })), 202)
  t.equal(await execs.exec(s, undefined, call({ correlator: 'c-2' })), 417)
  t.ok(state.slot('objects.execs'), 'noted before it ends')
  writeFileSync(gate, '3')
  await until(() => queued.length === 1)
  t.same(queued[0], { server: 'srv', alert: { type: 'urn:x:done', format: 'int', data: '500', source: './Vendor/X', correlator: 'c-1' } })
  t.same(opens, ['srv'])
  t.equal(state.slot('objects.execs'), undefined)
  const slow = spec({ exec: { command: [program('slow2.sh', 'sleep 30')] }, timeoutSeconds: 1 })
  t.equal(await execs.exec(slow, undefined, call()), 202)
  await until(() => queued.length === 2)
  t.equal(queued[1]!.alert.data, '408')
  t.equal(queued[1]!.alert.type, 'urn:x-gwmo-agent:exec:1.0:result')
  t.notOk('correlator' in queued[1]!.alert)
})

t.test('an async exec the agent stopped during is reported 500 at the next start, once', async (t) => {
  const { execs, queued, stopping, store } = await world()
  t.equal(await execs.exec(spec({ exec: { command: [program('long3.sh', 'sleep 30')] } }), undefined, call({ correlator: 'k' })), 202)
  stopping.abort()
  await new Promise((r) => setTimeout(r, 300))
  t.same(queued, [])
  const next = await world(copyOf(store))
  await next.execs.resume()
  t.same(next.queued.map((q) => [q.alert.data, q.alert.correlator]), [['500', 'k']])
  t.same(next.opens, [], 'the start opens the sessions')
  const again = await world(copyOf(next.store))
  await again.execs.resume()
  t.same(again.queued, [])
})

t.test('rebootsDevice: 200 after a restart with a new boot id, 500 with the same', async (t) => {
  for (const [later, expected] of [['boot-b', '200'], ['boot-a', '500']] as const) {
    const root = mkdtempSync(join(dir, 'root-'))
    mkdirSync(join(root, 'proc/sys/kernel/random'), { recursive: true })
    const bootFile = join(root, 'proc/sys/kernel/random/boot_id')
    writeFileSync(bootFile, 'boot-a\n')
    const { execs, queued, store } = await world(undefined, root)
    const s = spec({ exec: { command: [program('reboot.sh', 'exit 0')] }, rebootsDevice: true })
    t.equal(await execs.exec(s, undefined, call({ correlator: 'r' })), 202)
    await new Promise((r) => setTimeout(r, 300))
    t.same(queued, [], 'not reported before the restart')
    writeFileSync(bootFile, `${later}\n`)
    const next = await world(copyOf(store), root)
    await next.execs.resume()
    t.same(next.queued.map((q) => [q.alert.data, q.alert.correlator, q.alert.source]), [[expected, 'r', './Vendor/X']])
  }
  t.ok(existsSync(dir))
})
