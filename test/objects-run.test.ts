/**
 * An integrator's program (binding.md §8): run without a shell and with nothing of the agent's environment, its
 * whole process group ended at the timeout or on abort, its output bounded; and the program files refused.
 */
import t from 'tap'
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { checkProgramFile, runProgram } from '../src/objects/run.ts'

const dir = mkdtempSync(join(tmpdir(), 'gwmo-run-'))

function program(name: string, body: string, mode = 0o755): string {
  const file = join(dir, name)
  writeFileSync(file, `#!/bin/sh\n${body}\n`)
  chmodSync(file, mode)
  return file
}

const text = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8')

/** Running, not merely a zombie nobody has reaped yet (a container's init may never reap). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

/** What the test runner itself puts into every child it starts (its coverage hooks), not the agent's. */
const RUNNER_ENV = /^(_TAPJS_|NODE_OPTIONS$)/

t.test('the environment holds PATH, LANG and the caller\'s variables, nothing of the agent\'s', async (t) => {
  process.env.GWMO_TEST_SECRET = 'hunter2-secret'
  t.teardown(() => delete process.env.GWMO_TEST_SECRET)
  const r = await runProgram(['/usr/bin/env', '-0'], { env: { GWMO_NODE: './Vendor/X' }, timeoutMs: 10_000, maxBytes: 1 << 20 })
  const all = text(r.stdout).split('\0').filter((l) => l !== '').map((line) => line.split('=')[0]!)
  const names = all.filter((name) => !RUNNER_ENV.test(name)).sort()
  t.same(names, ['GWMO_NODE', 'LANG', 'PATH'])
  t.notMatch(text(r.stdout), /hunter2/)
  t.equal(r.exitCode, 0)
  t.equal(r.timedOut, false)
})

t.test('argv is passed as it is, with no shell to expand it', async (t) => {
  const r = await runProgram(['/bin/echo', '$HOME', '*', 'a;b'], { timeoutMs: 10_000, maxBytes: 4096 })
  t.equal(text(r.stdout), '$HOME * a;b\n')
})

t.test('stdin is given and stdout, stderr and the exit code come back', async (t) => {
  const p = program('upper.sh', 'tr a-z A-Z; echo oops >&2; exit 3')
  const r = await runProgram([p], { stdin: 'hello', timeoutMs: 10_000, maxBytes: 4096 })
  t.equal(text(r.stdout), 'HELLO')
  t.equal(text(r.stderr), 'oops\n')
  t.equal(r.exitCode, 3)
  t.equal(r.signal, null)
  t.equal(r.truncated, false)
})

t.test('a program that never reads its stdin is no failure', async (t) => {
  const p = program('ignore-stdin.sh', 'exit 0')
  const r = await runProgram([p], { stdin: Buffer.alloc(1 << 20, 65), timeoutMs: 10_000, maxBytes: 16 })
  t.equal(r.exitCode, 0)
})

t.test('stdout and stderr are capped at maxBytes, the rest dropped', async (t) => {
  const p = program('loud.sh', 'head -c 100000 /dev/zero | tr "\\0" x; head -c 50 /dev/zero | tr "\\0" y >&2')
  const r = await runProgram([p], { timeoutMs: 10_000, maxBytes: 1000 })
  t.equal(r.stdout.length, 1000)
  t.equal(text(r.stdout), 'x'.repeat(1000))
  t.equal(text(r.stderr), 'y'.repeat(50))
  t.equal(r.truncated, true)
  t.equal(r.exitCode, 0)
})

t.test('at the timeout the whole group ends, a child the program forked too', async (t) => {
  const pidFile = join(dir, 'child.pid')
  const p = program('forks.sh', `sleep 300 & echo $! > ${pidFile}; sleep 300`)
  const r = await runProgram([p], { timeoutMs: 500, maxBytes: 4096 })
  t.equal(r.timedOut, true)
  t.equal(r.exitCode, null)
  t.equal(r.signal, 'SIGTERM')
  const child = Number(readFileSync(pidFile, 'utf8'))
  t.ok(child > 0)
  // The SIGTERM reached the whole group at once, but the forked child ends on its own time (the program's end is
  // what runProgram waits for); it is gone within the SIGKILL that follows 5 s later at the latest.
  const deadline = Date.now() + 6000
  while (alive(child) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(alive(child), false, 'the forked child is gone')
})

t.test('a group that ignores SIGTERM gets SIGKILL', async (t) => {
  const p = program('stubborn.sh', "trap '' TERM; sleep 300 & wait; sleep 300")
  const r = await runProgram([p], { timeoutMs: 200, maxBytes: 4096 })
  t.equal(r.timedOut, true)
  t.equal(r.signal, 'SIGKILL')
})

t.test('an abort ends the group as the timeout would, without timedOut', async (t) => {
  const p = program('sleeps.sh', 'sleep 300')
  const ac = new AbortController()
  const running = runProgram([p], { timeoutMs: 60_000, maxBytes: 4096, signal: ac.signal })
  setTimeout(() => ac.abort(), 100)
  const r = await running
  t.equal(r.timedOut, false)
  t.equal(r.signal, 'SIGTERM')
})

t.test('a program that cannot be started rejects', async (t) => {
  await t.rejects(runProgram([join(dir, 'missing')], { timeoutMs: 1000, maxBytes: 10 }), { code: 'ENOENT' })
  const ac = new AbortController()
  ac.abort()
  await t.rejects(runProgram(['/bin/true'], { timeoutMs: 1000, maxBytes: 10, signal: ac.signal }))
})

t.test('checkProgramFile refuses what another user could change', async (t) => {
  const ok = program('ok.sh', 'exit 0', 0o755)
  t.equal(checkProgramFile(ok), undefined)
  t.equal(checkProgramFile('/bin/sh'), undefined)
  t.equal(checkProgramFile('bin/sh'), 'is not an absolute path')
  t.match(checkProgramFile(join(dir, 'nope')), /cannot be read \(ENOENT\)/)
  const sub = join(dir, 'sub')
  mkdirSync(sub)
  t.equal(checkProgramFile(sub), 'is not a regular file')
  t.equal(checkProgramFile(program('gw.sh', 'exit 0', 0o775)), 'is writable by group or others')
  t.equal(checkProgramFile(program('ow.sh', 'exit 0', 0o757)), 'is writable by group or others')
  t.equal(checkProgramFile(program('noexec.sh', 'exit 0', 0o644)), 'is not executable')
  if (process.getuid?.() === 0) {
    const other = program('other.sh', 'exit 0', 0o755)
    chownSync(other, 65534, 65534)
    t.match(checkProgramFile(other), /owned by uid 65534/)
  }
  t.ok(existsSync(ok))
})
